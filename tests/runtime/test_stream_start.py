"""How a stream starts: the warm-up runs on what the model will be given (the region's crop, also
when an auto region is found mid-stream, and before a live source starts capturing when frames were
read ahead), and a live stream starts at the reduced tier and earns the full one through a probe
(a manual clock: nothing here is timed)."""

from __future__ import annotations

from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest
from scenes import MS, ui_cine

from ganrt.runtime.frames import Tier
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import DeadlinePolicy, PolicyConfig
from ganrt.runtime.serve.tiers import TierConfig
from ganrt.runtime.trust.guard import GuardConfig
from ganrt.runtime.trust.region import RegionConfig, RegionMode, RegionTracker

AUTO = RegionConfig(RegionMode.AUTO)
FRAME = (256, 256)  # ui_cine's frame size


def cold_shapes(runner_shapes: list) -> float:
    """80 ms for the first call at an input shape (allocation), 4 ms after."""
    return 80.0 if runner_shapes[-1] not in runner_shapes[:-1] else 4.0


def start(frames, *, lookahead=(), live=False, region=AUTO, budget_ms=33.0, tiers=TierConfig()):
    clock = ManualClock()
    runner = FakeRunner(clock=clock)
    runner.latency_ms = lambda _i: cold_shapes(runner.shapes)
    src = FakeSource(frames, clock=clock, interval_ns=33 * MS, live=live)
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=budget_ms, tiers=tiers), warmup=2,
                         guard=GuardConfig(region=region))
    with runner:
        enh = Enhancer(runner, fake_manifest(1), clock=clock)
        report = run(src, enh, [], cfg, clock=clock, lookahead=lookahead)
    return report, runner


def test_the_warm_up_runs_on_the_region_crop_read_ahead_not_on_the_whole_frame():
    frames, _, _ = ui_cine(24)
    report, runner = start(frames, lookahead=frames[:AUTO.frames])
    crop = runner.shapes[-1]
    assert crop[2:] != FRAME and all(s[2:] != FRAME for s in runner.shapes)  # the frame itself never ran
    # two warm-up calls at the crop and one at the reduced tier's size, then one call per frame
    assert runner.calls == 3 + 24 and runner.shapes[:2] == [crop, crop] and runner.shapes[2] != crop
    assert report.enhanced == 24 and report.late == 0  # the allocating first call was not a frame's


def test_an_auto_region_found_mid_stream_is_warmed_before_its_first_timed_frame():
    frames, _, _ = ui_cine(24)
    n_pending = AUTO.frames - 1  # the frame that completes detection is pending too
    report, runner = start(frames)
    assert report.passthrough == {"region-pending": n_pending}
    # the first frame's warm-up is skipped (no region yet: the model would not see that frame's shape)
    crop = runner.shapes[-1]
    assert crop[2:] != FRAME and runner.shapes[:2] == [crop, crop]
    assert report.enhanced == 24 - n_pending and report.late == 0
    assert report.passthrough.get("timeout", 0) == 0


def test_with_the_whole_frame_as_region_the_first_frame_is_warmed_as_before():
    frames, _, _ = ui_cine(6)
    report, runner = start(frames, region=RegionConfig(RegionMode.FULL))
    assert runner.shapes[0][2:] == FRAME and runner.calls == 3 + 6 and report.enhanced == 6


def test_a_live_source_read_ahead_is_warmed_before_it_starts_capturing():
    # a live source's frames queue from its first read: a warm-up after it would make them wait (or drop)
    frames, _, _ = ui_cine(20)
    clock = ManualClock()
    runner = FakeRunner(clock=clock, latency_ms=4.0)
    calls_at_first_read = []
    src = FakeSource(frames, clock=clock, live=True,
                     on_read=lambda i: calls_at_first_read.append(runner.calls) if i == 0 else None)
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=33.0), warmup=2, guard=GuardConfig(region=AUTO))
    with runner:
        enh = Enhancer(runner, fake_manifest(1), clock=clock)
        run(src, enh, [], cfg, clock=clock, lookahead=frames[:AUTO.frames])
    assert calls_at_first_read == [3]  # two at the crop, one at the reduced tier's size


def test_the_tracker_region_matches_what_the_warm_up_used():
    frames, _, _ = ui_cine(20)
    tracker = RegionTracker(AUTO)
    region = tracker.prime(frames[:AUTO.frames])
    _, runner = start(frames, lookahead=frames[:AUTO.frames])
    box = region.crop_box(4)
    assert runner.shapes[0][2:] == (box.h, box.w)


# --- the first tier of a live stream ----------------------------------------------------------------


def test_a_live_stream_starts_reduced_and_moves_up_through_a_probe():
    p = DeadlinePolicy(PolicyConfig(budget_ms=33.0, probe_every=15, tiers=TierConfig(hold_frames=10)), live=True)
    picks = []
    for i in range(12):
        tier, reason = p.choose(i * 33 * MS, i * 33 * MS)
        picks.append((tier, reason, p.ladder.level))
        p.succeeded(3.0)  # cheap: the full tier (estimated 2 x 3 ms) fits with margin
    assert [t for t, _, _ in picks[:10]] == [Tier.REDUCED] * 10  # the hold
    assert picks[10][0] is Tier.FULL and picks[10][1] is None  # the probe of the full tier ...
    assert picks[11][2] is Tier.FULL  # ... finished with margin: the stream is up


def test_a_live_stream_whose_full_tier_would_not_fit_stays_reduced_without_a_raw_frame():
    p = DeadlinePolicy(PolicyConfig(budget_ms=33.0, tiers=TierConfig(hold_frames=10)), live=True)
    seen = []
    for i in range(40):
        tier, reason = p.choose(i * 33 * MS, i * 33 * MS)
        seen.append(tier)
        p.succeeded(14.0)  # full estimated at 28 ms: no margin within 33 ms, so never probed
    assert seen == [Tier.REDUCED] * 40


def test_a_file_read_as_fast_as_possible_and_a_policy_without_tiers_start_at_full():
    assert DeadlinePolicy(PolicyConfig(budget_ms=33.0)).choose(0, 0) == (Tier.FULL, None)
    single = PolicyConfig(budget_ms=33.0, tiers=TierConfig(enabled=False))
    assert DeadlinePolicy(single, live=True).choose(0, 0) == (Tier.FULL, None)


def test_the_tracker_collects_a_frame_asked_for_twice_once():
    frames, _, _ = ui_cine(AUTO.frames)
    once, twice = RegionTracker(AUTO), RegionTracker(AUTO)
    for i, f in enumerate(frames):
        a = once.region_for(i, f)
        b = twice.region_for(i, f)
        b = twice.region_for(i, f) if b is None else b  # the warm-up's look, then the frame's own check
        assert (a is None) == (b is None)
    assert once.current is not None and once.current.from_frame == twice.current.from_frame == AUTO.frames - 1
    assert (once.current.mask == twice.current.mask).all()
