"""Fair turns between streams on one runner: the starvation loop it breaks, its rules, and its place
in the pipeline (no threads, no timing: decisions are driven by hand)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest

from ganrt.runtime.errors import ConfigError
from ganrt.runtime.frames import Outcome, Reason
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.records.record import Record
from ganrt.runtime.serve.fairness import FairConfig, FairShare, StreamShare
from ganrt.runtime.serve.pipeline import PipelineConfig, run

MS = 1_000_000


def contend(fair: FairShare | None, ticks: int = 300, infer_ms: float = 18.0, budget_ms: float = 33.0,
            probe_every: int = 15) -> list[int]:
    """Two 30 fps streams on one runner, frame by frame; stream 0's frames arrive a little earlier in
    each period. Each stream's policy is DeadlinePolicy's rule (p95 of its last 30 measured times,
    a probe every Nth predicted miss); a frame that queues behind the other stream's in the same
    period waits for it (2 x infer_ms). Returns frames run per stream and of them those in budget."""
    hist: list[collections.deque] = [collections.deque(maxlen=30), collections.deque(maxlen=30)]
    misses, probe = [0, 0], [False, False]
    ran, on_time = [0, 0], [0, 0]
    for _ in range(ticks):
        running = []
        for s in (0, 1):
            reason, probe[s] = None, False
            if hist[s] and np.percentile(hist[s], 95) > budget_ms:
                misses[s] += 1
                reason = Reason.PREDICTED_MISS if misses[s] % probe_every else None
                probe[s] = reason is None
            else:
                misses[s] = 0
            if fair is not None:
                reason = fair.arbitrate(s, reason)
            if reason is None:
                running.append(s)
        for k, s in enumerate(running):
            took = infer_ms * (k + 1)
            if probe[s] and took <= budget_ms:
                hist[s].clear()  # a probe that fits resets the history, as in DeadlinePolicy
            hist[s].append(took)
            ran[s] += 1
            on_time[s] += took <= budget_ms
    return ran, on_time


def test_without_fair_turns_one_stream_starves_and_with_them_both_get_an_even_share():
    unfair, unfair_on_time = contend(None)
    fair = FairShare(2)
    even, even_on_time = contend(fair)
    assert min(unfair) / max(unfair) < 0.2  # the feedback loop: one stream's waits keep it raw
    assert min(unfair_on_time) == 0
    assert min(even) / max(even) > 0.8
    assert min(even_on_time) > 0.3 * max(even_on_time)  # the owed stream's turns are mostly in budget
    assert sum(even) >= 0.85 * sum(unfair)
    assert sum(fair.yields) > 0 and sum(fair.turns) > 0


def test_a_lone_stream_is_never_overruled():
    fair = FairShare(2)
    verdicts = [fair.arbitrate(0, Reason.PREDICTED_MISS if i % 3 else None) for i in range(60)]
    assert verdicts == [Reason.PREDICTED_MISS if i % 3 else None for i in range(60)]
    assert fair.yields == [0, 0] and fair.turns == [0, 0]


def test_the_ahead_stream_yields_and_the_owed_stream_takes_its_turn():
    fair = FairShare(2, FairConfig(window=10, margin=0.1))
    for _ in range(10):  # stream 0 alone, running every frame
        assert fair.arbitrate(0, None) is None
    assert fair.arbitrate(1, Reason.PREDICTED_MISS) is Reason.PREDICTED_MISS  # no history yet: the policy's word
    assert fair.arbitrate(1, Reason.PREDICTED_MISS) is Reason.PREDICTED_MISS  # owed, but stream 0 has not given way
    assert fair.arbitrate(0, None) is Reason.FAIR_SHARE  # 1.0 vs 0.0: stream 0 gives way
    assert fair.arbitrate(1, Reason.PREDICTED_MISS) is None  # and stream 1 takes the turn
    assert fair.yields == [1, 0] and fair.turns == [0, 1]


def test_reasons_that_are_not_about_the_runners_time_pass_through_and_are_not_counted():
    fair = FairShare(2)
    for r in (Reason.BACKOFF, Reason.REGION_PENDING, Reason.INCOMPATIBLE):
        assert fair.arbitrate(0, r) is r
    assert fair.share(0) is None


def test_a_stream_that_stopped_asking_stops_counting():
    fair = FairShare(2, FairConfig(window=5, margin=0.1))
    for _ in range(5):
        fair.arbitrate(0, None)
        fair.arbitrate(1, Reason.PREDICTED_MISS)  # starved, then it ends (or its region goes pending)
    assert fair.arbitrate(0, None) is Reason.FAIR_SHARE  # while it still counts, stream 0 gives way
    for _ in range(2 * 5):
        fair.arbitrate(0, None)
    assert [fair.arbitrate(0, None) for _ in range(5)] == [None] * 5  # it no longer counts


@pytest.mark.parametrize("kw", [{"window": 1}, {"margin": 1.0}, {"margin": -0.1}])
def test_bad_settings_are_a_config_error(kw):
    with pytest.raises(ConfigError):
        FairConfig(**kw)


class Always:
    """A stand-in share handle that always gives the turn away."""

    def __init__(self) -> None:
        self.asked: list[Reason | None] = []

    def arbitrate(self, reason):
        self.asked.append(reason)
        return Reason.FAIR_SHARE if reason is None else reason


def test_the_pipeline_shows_a_yielded_frame_raw_records_why_and_never_calls_the_model():
    clock = ManualClock()
    runner = FakeRunner(latency_ms=2.0, clock=clock)
    src = FakeSource(n=6, clock=clock, interval_ns=33 * MS)
    share = Always()
    try:
        with runner:
            enh = Enhancer(runner, fake_manifest(1), clock=clock)
            rec = Record.for_enhancer(enh)
            report = run(src, enh, [], PipelineConfig.with_budget(33.0, warmup=0), clock=clock, record=rec,
                         share=share)
    finally:
        runner.release.set()
    assert [(r.outcome, r.reason) for r in rec.rows] == [(Outcome.PASSTHROUGH, Reason.FAIR_SHARE)] * 6
    assert runner.calls == 0 and share.asked == [None] * 6
    assert report.passthrough.get("fair-share") == 6


def test_stream_share_handles_speak_for_their_own_stream():
    fair = FairShare(3)
    StreamShare(fair, 2).arbitrate(None)
    assert fair.share(2) == 1.0 and fair.share(0) is None
