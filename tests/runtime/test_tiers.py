"""The reduced-resolution tier and the hysteresis between tiers: the state machine on its own, the
policy's per-tier predictor, and the pipeline with a fake runner whose latency depends on the input
size (a manual clock: nothing here is timed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest, make_frames
from scenes import KeepSink

from ganrt.runtime.errors import ConfigError
from ganrt.runtime.frames import Frame, FrameResult, Outcome, Reason, Tier
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.model.profiles import DeviceProfile
from ganrt.runtime.records.record import Record, read_rows
from ganrt.runtime.records.record_stats import RunMeter
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import DeadlinePolicy, PolicyConfig
from ganrt.runtime.serve.tiers import TierConfig, TierLadder
from ganrt.runtime.sinks.overlay import label
from ganrt.runtime.trust.guard import GuardConfig
from ganrt.runtime.trust.tone import ToneConfig

MS = 1_000_000
F, R, X = Tier.FULL, Tier.REDUCED, Tier.RAW
HW = (64, 64)


def always(_tier) -> bool:
    return True


def never(_tier) -> bool:
    return False


def only(*tiers):
    return lambda t: t in tiers


# --- the state machine ---------------------------------------------------------------------------


def test_down_at_once_up_only_through_a_probe_after_the_hold():
    ladder = TierLadder(TierConfig(hold_frames=10), probe_every=15)
    assert ladder.choose(always, always).tier is F
    assert ladder.choose(only(R), never).tier is R  # full predicted to miss: reduced at once
    # full fits again at once, but the picture stays reduced for the hold (frames 1..10 at reduced)
    picks = [ladder.choose(always, always) for _ in range(9)]
    assert [c.tier for c in picks] == [R] * 9 and not any(c.probe for c in picks)
    probe = ladder.choose(always, always)  # the 11th frame: a probe of the full tier
    assert probe.tier is F and probe.probe and ladder.level is R
    ladder.probed(F, with_margin=True)
    assert ladder.level is F and ladder.switches == 2


def test_a_probe_without_margin_stays_down_and_the_next_try_waits_twice_as_long():
    ladder = TierLadder(TierConfig(hold_frames=3), probe_every=4)
    ladder.choose(only(R), never)  # -> reduced
    seq = [ladder.choose(always, always) for _ in range(3)]
    assert [c.probe for c in seq] == [False, False, True]
    ladder.probed(F, with_margin=False)
    seq = [ladder.choose(always, always) for _ in range(7)]
    assert [c.probe for c in seq] == [False] * 6 + [True] and ladder.level is R and ladder.up_hold == 6
    # probes that would not fit with margin are skipped: the next slots come every probe_every frames
    ladder.probed(F, with_margin=False)
    seq = [ladder.choose(always, never) for _ in range(12 + 1 + 4)]
    assert not any(c.probe for c in seq)  # the slots after 12 + 1 and 12 + 1 + 4 frames
    assert [ladder.choose(always, always).probe for _ in range(4)] == [False] * 3 + [True]


def test_no_probe_up_while_the_higher_tier_would_not_fit_with_margin():
    ladder = TierLadder(TierConfig(hold_frames=2), probe_every=3)
    ladder.choose(only(R), never)
    assert not any(ladder.choose(always, never).probe for _ in range(20))  # fits, but not with margin
    assert ladder.level is R


def test_after_a_switch_up_a_prediction_alone_does_not_undo_it_a_real_miss_does():
    ladder = TierLadder(TierConfig(hold_frames=5), probe_every=2)
    ladder.choose(only(R), never)
    while not ladder.choose(always, always).probe:
        pass
    ladder.probed(F, with_margin=True)
    assert [ladder.choose(only(R), never).tier for _ in range(5)] == [F] * 5  # predicted misses ignored
    assert ladder.choose(only(R), never).tier is R  # the hold is over: the prediction counts again
    # up again, then a real miss inside the hold: down at once, and the next try waits twice as long
    while not ladder.choose(always, always).probe:
        pass
    ladder.probed(F, with_margin=True)
    ladder.choose(always, always)
    ladder.missed(F)
    assert ladder.level is R and ladder.up_hold == 10
    assert [ladder.choose(always, always).probe for _ in range(11)] == [False] * 10 + [True]


def test_the_reduced_tier_goes_raw_at_its_second_real_miss_within_the_hold_not_its_first():
    ladder = TierLadder(TierConfig(hold_frames=4), probe_every=3)
    ladder.choose(only(R), never)
    ladder.missed(R)
    assert ladder.level is R  # one stall: one raw frame, not a raw stretch
    for _ in range(5):
        ladder.choose(only(R), never)
    ladder.missed(R)
    assert ladder.level is R  # the first miss is 5 frames back: isolated again
    ladder.choose(only(R), never)
    ladder.missed(R)
    assert ladder.level is X
    # raw: a probe of the reduced tier after the hold, whatever the estimates say (raw measures nothing)
    picks = [ladder.choose(never, never) for _ in range(5)]
    assert [(c.tier, c.probe) for c in picks] == [(X, False)] * 4 + [(R, True)]


def test_full_goes_straight_to_raw_when_the_reduced_tier_would_miss_too():
    ladder = TierLadder(TierConfig(), probe_every=15)
    assert ladder.choose(never, never).tier is X and ladder.level is X


@pytest.mark.parametrize("kw", [dict(factor=1), dict(factor=5), dict(factor=2.0), dict(hold_frames=-1),
                                dict(up_margin=0.0), dict(up_margin=1.5), dict(up_margin=math.nan),
                                dict(enabled="yes")])
def test_tier_config_refuses_bad_values(kw):
    with pytest.raises(ConfigError, match="tiers"):
        TierConfig(**kw)


def test_profile_tiers_section():
    base = dict(name="t", budget_ms=33.0, input_hw=[64, 64], precision="int8-cpu", backends=["onnxruntime"])
    assert DeviceProfile.from_dict(base, "t.toml").tiers == TierConfig()
    p = DeviceProfile.from_dict({**base, "tiers": {"factor": 3, "hold_frames": 20}}, "t.toml")
    assert p.tiers.factor == 3 and p.tiers.hold_frames == 20 and p.tiers.enabled
    with pytest.raises(ConfigError, match="t.toml: unknown key 'tiers.hold'"):
        DeviceProfile.from_dict({**base, "tiers": {"hold": 3}}, "t.toml")
    with pytest.raises(ConfigError, match="t.toml: tiers.up_margin"):
        DeviceProfile.from_dict({**base, "tiers": {"up_margin": 2}}, "t.toml")
    assert DeviceProfile.load("cpu-x86-2core").tiers.enabled


def test_run_meter_counts_switches_and_the_shortest_run_between_two():
    m = RunMeter()
    for e in [True] * 3 + [False] * 12 + [True] * 4 + [False] * 2:
        m.add(e)
    assert m.switches == 3 and m.shortest == 4  # the first and last runs are cut by the stream's ends
    m2 = RunMeter()
    for e in [True, True, False, False]:
        m2.add(e)
    assert m2.switches == 1 and m2.shortest is None


# --- the policy's per-tier predictor ---------------------------------------------------------------


def test_policy_estimates_the_tier_not_running_from_the_running_one():
    p = DeadlinePolicy(PolicyConfig(budget_ms=33.0, history=4))
    assert p.choose(0, 0) == (F, None)  # nothing known: try full
    p.succeeded(40.0)  # full is too slow for a 33 ms budget
    tier, reason = p.choose(0, 0)
    assert (tier, reason) == (R, None)  # reduced: never ran, so tried
    p.succeeded(8.0)
    assert p.predicted_ms(R) == pytest.approx(8.0)
    # the full tier, not running: the reduced one's median times the work ratio (40 / 8, but the work
    # shrinks at most with the pixel count: factor**2 = 4) plus its stalls (none)
    assert p.predicted_ms(F) == pytest.approx(8.0 * 4)


def test_policy_a_timed_out_call_steps_full_down_without_entering_the_history():
    # its 30 ms are only a lower bound of one call: in the history it would hold the quantile up for long
    p = DeadlinePolicy(PolicyConfig(budget_ms=33.0))
    assert p.choose(0, 0)[0] is F
    p.failed(Reason.TIMEOUT, waited_ms=30.0)
    assert p.ladder.level is R and p.predicted_ms(F) is None


def test_a_frame_that_queued_behind_a_stall_runs_a_tier_lower_and_the_level_stays():
    p = DeadlinePolicy(PolicyConfig(budget_ms=33.0))
    p.choose(0, 0)
    p.succeeded(20.0)
    assert p.choose(0, 0) == (F, None)
    assert p.choose(0, 15 * MS) == (R, None)  # 15 ms already spent in the queue: full would miss
    assert p.ladder.level is F and p.choose(0, 0) == (F, None)
    assert p.choose(0, 25 * MS) == (X, Reason.PREDICTED_MISS) and p.ladder.level is F


def test_from_raw_the_reduced_tier_is_probed_even_when_its_old_times_say_it_would_miss():
    p = DeadlinePolicy(PolicyConfig(budget_ms=33.0, probe_every=15))
    for _ in range(3):  # full, then reduced twice: timeouts -> raw
        p.choose(0, 0)
        p.failed(Reason.TIMEOUT, waited_ms=31.0)
    assert p.ladder.level is X
    picks = [p.choose(0, 0) for _ in range(11)]
    assert picks[:10] == [(X, Reason.PREDICTED_MISS)] * 10 and picks[10] == (R, None)  # the probe
    p.succeeded(4.0)
    assert p.ladder.level is R and p.choose(0, 0) == (R, None)


def test_a_probe_from_raw_runs_even_when_the_slack_leaves_less_than_the_estimate():
    p = DeadlinePolicy(PolicyConfig(budget_ms=33.0, probe_every=15))
    for _ in range(30):
        p.observe_raw(20.0)  # showing a raw frame takes 20 ms here: 12 ms left for the model
    assert p.choose(0, 0) == (F, None)
    p.failed(Reason.TIMEOUT, waited_ms=12.0)
    assert p.choose(0, 0) == (R, None)  # never ran: tried
    p.failed(Reason.TIMEOUT, waited_ms=12.0)  # one stall: the level stays
    p.succeeded(13.0)  # the reduced tier's median is now over the 12 ms left
    picks = [p.choose(0, 0) for _ in range(11)]
    assert p.ladder.level is X and picks[0] == (X, Reason.PREDICTED_MISS)
    assert picks[10] == (R, None) and p.probes == 1  # the try runs; only its result can lift the level


def test_with_tiers_timeouts_are_misses_for_the_ladder_not_failures_that_back_off():
    p = DeadlinePolicy(PolicyConfig(budget_ms=33.0, fail_threshold=2))
    tiers = []
    for _ in range(3):
        tier, reason = p.choose(0, 0)
        assert reason is None
        tiers.append(tier)
        p.failed(Reason.TIMEOUT, waited_ms=30.0)
    assert tiers == [F, R, R]  # full steps down at once; reduced at its second miss within the hold
    assert p.backoffs == 0 and p.ladder.level is X and p.choose(0, 0) == (X, Reason.PREDICTED_MISS)
    p.failed(Reason.BACKEND_ERROR)
    p.failed(Reason.BACKEND_ERROR)
    assert p.backoffs == 1  # real failures still back off


# --- the pipeline ----------------------------------------------------------------------------------


def stream(latency, n=60, budget_ms=33.0, tiers=TierConfig(), sinks=(), guard=GuardConfig(), fn=None, record=None):
    """``latency(call, input_hw)`` -> ms; frames every 33 ms."""
    clock = ManualClock()
    box = {}
    runner = FakeRunner(clock=clock, latency_ms=lambda i: latency(i, box["r"].shapes[i][2:]), fn=fn)
    box["r"] = runner
    src = FakeSource(make_frames(n, HW), clock=clock, interval_ns=33 * MS)
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=budget_ms, tiers=tiers), warmup=0, guard=guard)
    with runner:
        enh = Enhancer(runner, fake_manifest(1), clock=clock)
        rec = record or Record.for_enhancer(enh)
        report = run(src, enh, list(sinks), cfg, clock=clock, record=rec)
    return report, rec, runner


def size_latency(full_ms, reduced_ms):
    return lambda i, hw: full_ms(i) if hw[0] >= HW[0] else reduced_ms(i)


def tiers_of(rec):
    return [r.tier for r in rec.rows]


def test_a_model_too_slow_at_full_resolution_runs_reduced_instead_of_raw():
    report, rec, runner = stream(size_latency(lambda i: 45.0, lambda i: 10.0))
    t = tiers_of(rec)
    assert t[0] is X and rec.rows[0].reason is Reason.LATE  # full tried once: its late result is never shown
    assert t[1:] == [R] * 59
    assert all(r.outcome is Outcome.ENHANCED for r in rec.rows[1:])
    assert (32, 32) in {s[2:] for s in runner.shapes}  # the model saw the crop downsampled by 2
    d = report.to_dict()
    assert d["tiers"] == {"raw": 1, "reduced": 59} and d["enhanced_raw_switches"] == 1
    assert "tiers: raw 1, reduced 59" in report.format_table()


def test_without_tiers_the_same_model_goes_raw():
    _, rec, _ = stream(size_latency(lambda i: 45.0, lambda i: 10.0), tiers=TierConfig(enabled=False))
    assert sum(r.outcome is Outcome.ENHANCED for r in rec.rows) == 0
    assert all(t is X for t in tiers_of(rec))


def test_a_calmer_machine_moves_back_up_after_the_hold_and_stays():
    # a busy machine for the first 20 calls (full too slow, reduced 3x slower than when calm), then calm
    busy = lambda i: i < 20  # noqa: E731
    report, rec, _ = stream(size_latency(lambda i: 45.0 if busy(i) else 12.0, lambda i: 12.0 if busy(i) else 4.0))
    t = tiers_of(rec)
    first_full = t.index(F)
    assert t[1:first_full] == [R] * (first_full - 1) and first_full - 1 >= 10  # the hold
    assert t[first_full:] == [F] * (60 - first_full)
    assert report.to_dict()["min_run_between_switches"] is None  # raw -> enhanced once, never back


def runs_of(seq):
    out, start = [], 0
    for i in range(1, len(seq) + 1):
        if i == len(seq) or seq[i] is not seq[start]:
            out.append((seq[start], i - start))
            start = i
    return out


def test_a_flaky_full_tier_costs_one_raw_frame_per_try_and_the_tries_get_rarer():
    n_full = [0]

    def latency(i, hw):  # every 6th full-resolution call stalls past the budget (a real miss)
        if hw[0] < HW[0]:
            return 4.0
        n_full[0] += 1
        return 36.0 if n_full[0] % 6 == 0 else 10.0

    _, rec, _ = stream(latency, n=300)
    runs = runs_of(tiers_of(rec))
    raw = [i for i, r in enumerate(rec.rows) if r.tier is X]
    assert all(rec.rows[i].reason is Reason.LATE for i in raw)  # raw only where the model really missed
    assert all(t is not X or n == 1 for t, n in runs)  # one raw frame per miss, then the reduced tier
    reduced = [n for t, n in runs[:-1] if t is R]
    assert reduced[:4] == [10, 20, 40, 80]  # the hold, doubled after each failed try up
    assert all(n == 5 for t, n in runs if t is F)  # up, until the next real miss


def test_the_output_checks_apply_to_the_reduced_tier():
    # a model that brightens only at reduced size: its reduced output fails the local-mean check
    def fn(x):
        return np.clip(x + 0.3, 0, 1) if x.shape[2] < HW[0] else x.copy()

    frames = [np.full(HW, 100, np.uint8) + (np.indices(HW).sum(0) % 7).astype(np.uint8) for _ in range(20)]
    clock = ManualClock()
    box = {}
    runner = FakeRunner(clock=clock, fn=fn, latency_ms=lambda i: 45.0 if box["r"].shapes[i][2] >= HW[0] else 12.0)
    box["r"] = runner
    keep = KeepSink()
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=33.0), warmup=0, guard=GuardConfig(tone=ToneConfig()))
    with runner:
        enh = Enhancer(runner, fake_manifest(1), clock=clock)
        rec = Record.for_enhancer(enh)
        run(FakeSource(frames, clock=clock, interval_ns=33 * MS), enh, [keep], cfg, clock=clock, record=rec)
    assert any(s[2] < HW[0] for s in runner.shapes)  # the reduced tier ran
    assert all(r.reason is Reason.MEAN_SHIFT for r in rec.rows[1:])
    assert all(np.array_equal(shown, f) for shown, f in zip(keep.shown, frames))  # raw went out


def test_record_files_carry_the_tier(tmp_path):
    for fmt in ("jsonl", "csv"):
        path = tmp_path / f"rec.{fmt}"
        clock = ManualClock()
        enh = Enhancer(FakeRunner().__enter__(), fake_manifest(1), clock=clock)
        rec = Record.for_enhancer(enh, path, fmt)
        stream(size_latency(lambda i: 45.0, lambda i: 10.0), n=5, record=rec)
        rows = read_rows(path, fmt)
        assert [r.tier for r in rows] == [X, R, R, R, R]
        if fmt == "jsonl":
            assert json.loads(path.read_text().splitlines()[1])["tier"] == "reduced"
        else:
            assert path.read_text().splitlines()[0].split(",")[4] == "tier"


def test_reduced_frames_are_labelled_as_enhanced_reduced():
    img = np.full((240, 320), 90, np.uint8)
    full = label(img, FrameResult(0, Outcome.ENHANCED, tier=Tier.FULL))
    reduced = label(img, FrameResult(0, Outcome.ENHANCED, tier=Tier.REDUCED))
    raw = label(img, FrameResult(0, Outcome.PASSTHROUGH, Reason.PREDICTED_MISS, tier=Tier.RAW))
    assert not np.array_equal(full, reduced)  # a longer label
    assert np.array_equal(full[:, :100], reduced[:, :100]) and not np.array_equal(raw[:, :100], full[:, :100])


@pytest.mark.parametrize("channels,scale", [(1, 1), (3, 1), (1, 2)])
def test_reduced_enhancement_has_the_full_output_size(channels, scale):
    from dataclasses import replace

    manifest = replace(fake_manifest(1), scale=scale)
    up = (lambda x: x.repeat(2, 2).repeat(2, 3)) if scale == 2 else None
    with FakeRunner(fn=up) as runner:
        enh = Enhancer(runner, manifest)
        px = make_frames(1, (50, 62), channels)[0]
        out = enh.enhance(Frame(0, 0, px), factor=2)
        assert runner.shapes[-1][2:] == (28, 32)  # 25x31 padded to the size multiple of 4
        assert out.shape[:2] == (50 * scale, 62 * scale) and out.ndim == px.ndim
        full = enh.enhance(Frame(0, 0, px))
        assert full.shape == out.shape


def test_a_probe_from_raw_that_does_not_move_up_is_shown_raw_not_as_a_one_frame_blip():
    # both tiers too slow at first (the level goes raw); later the reduced tier finishes in time, but without
    # the margin a move up needs: its tries every 15 frames run and are shown raw (reason `probe`)
    n_reduced = [0]

    def latency(i, hw):
        if hw[0] >= HW[0]:
            return 45.0
        n_reduced[0] += 1
        return 45.0 if n_reduced[0] <= 3 else 29.0

    report, rec, runner = stream(latency, n=120)
    t = tiers_of(rec)
    probes = [i for i, r in enumerate(rec.rows) if r.reason is Reason.PROBE]
    assert len(probes) >= 3 and all(t[i] is X for i in probes)  # tried, measured, not shown
    assert all(r.outcome is not Outcome.ENHANCED for r in rec.rows[10:])  # raw from the level's fall on
    assert report.to_dict()["min_run_between_switches"] is None or report.to_dict()["min_run_between_switches"] >= 10
    assert runner.calls > 3 + len(probes) - 1  # the probes did call the model


def test_at_the_reduced_tier_frames_that_go_raw_by_themselves_count_as_misses_the_second_gives_a_raw_stretch():
    # one queued frame raw is one raw frame; two within the hold would flicker: the level goes raw instead
    p = DeadlinePolicy(PolicyConfig(budget_ms=33.0, tiers=TierConfig(hold_frames=10)))
    p.choose(0, 0)
    p.failed(Reason.TIMEOUT, waited_ms=31.0)  # full missed: the level is reduced
    assert p.choose(0, 0) == (R, None)
    p.succeeded(10.0)
    assert p.choose(0, 30 * MS) == (X, Reason.PREDICTED_MISS) and p.ladder.level is R  # isolated: stays
    for _ in range(3):
        assert p.choose(0, 0) == (R, None)
        p.succeeded(10.0)
    assert p.choose(0, 30 * MS) == (X, Reason.PREDICTED_MISS) and p.ladder.level is X  # the second: raw
    assert [p.choose(0, 0)[0] for _ in range(10)] == [X] * 10  # held, not flipping back next frame
