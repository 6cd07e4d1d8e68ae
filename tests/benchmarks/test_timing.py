"""The timing harness with a fake clock: warm-up exclusion, interleaving order, plans, analysis."""

from __future__ import annotations

import pytest

from ganrt.benchmarks.timing import Candidate, Plan, Warmup, analyse, round_order, run_interleaved, warm_up
from ganrt.runtime.errors import ConfigError


class FakeClock:
    """Nanosecond clock that only moves when a fake call says how long it took."""

    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t

    def advance_ms(self, ms: float) -> None:
        self.t += int(round(ms * 1e6))


def series_candidate(name: str, clock: FakeClock, durations_ms, log: list | None = None, **kw) -> Candidate:
    """Call k takes durations_ms[k] ms (k counts every call: warm-up, settle and timed)."""
    calls = {"n": 0}

    def call(i: int) -> None:
        k = calls["n"]
        calls["n"] += 1
        if log is not None:
            log.append((name, i))
        clock.advance_ms(durations_ms[k] if k < len(durations_ms) else durations_ms[-1])

    return Candidate(name, call, **kw)


def test_warmup_by_iterations_is_excluded():
    clock = FakeClock()
    series = [100.0, 50.0, 20.0] + [float(v) for v in range(1, 11)]
    c = series_candidate("m", clock, series)
    out = run_interleaved([c], Plan(iterations=10, per_round=5), Warmup(iterations=3), clock=clock)
    s = out["m"]
    assert s.ms == pytest.approx([float(v) for v in range(1, 11)])
    assert s.warmup_calls == 3 and s.warmup_s == pytest.approx(0.170)


def test_warmup_by_seconds_runs_until_the_time_has_passed():
    clock = FakeClock()
    # 400 ms per call while cold; 1 s of warm-up needs 3 calls (0.4, 0.8, 1.2 s), then 1 ms calls
    series = [400.0] * 3 + [1.0] * 20
    c = series_candidate("m", clock, series)
    out = run_interleaved([c], Plan(iterations=5), Warmup(iterations=1, seconds=1.0), clock=clock)
    assert out["m"].warmup_calls == 3
    assert out["m"].ms == [1.0] * 5


def test_warm_up_needs_both_minimums():
    clock = FakeClock()
    n, secs = warm_up(lambda i: clock.advance_ms(600.0), Warmup(iterations=5, seconds=1.0), clock)
    assert n == 5 and secs == pytest.approx(3.0)  # iterations dominate
    n, _ = warm_up(lambda i: clock.advance_ms(100.0), Warmup(iterations=0, seconds=0.35), clock)
    assert n == 4  # 0.1, 0.2, 0.3 < 0.35 -> a fourth call
    n, _ = warm_up(lambda i: None, Warmup(0, 0.0), clock)
    assert n == 0


def test_round_order_rotates():
    assert [round_order(3, r) for r in range(4)] == [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]


def test_interleaved_order_settle_and_per_round():
    clock = FakeClock()
    log: list = []
    cands = [series_candidate(n, clock, [1.0], log) for n in ("a", "b", "c")]
    out = run_interleaved(cands, Plan(iterations=4, per_round=2, settle=1), Warmup(0), clock=clock)
    # each turn: 1 settle call + 2 timed calls; 2 rounds; start rotates
    turns = [log[i][0] for i in range(0, len(log), 3)]
    assert turns == ["a", "b", "c", "b", "c", "a"]
    assert all(len(s.ms) == 4 for s in out.values())
    assert out["a"].round == [0, 0, 1, 1] and out["b"].round == [0, 0, 1, 1]
    # iteration indices keep counting (inputs rotate) across settle calls
    assert [i for n, i in log if n == "a"] == list(range(6))


def test_single_candidate_has_no_settle_calls():
    clock = FakeClock()
    log: list = []
    run_interleaved([series_candidate("a", clock, [1.0], log)], Plan(iterations=6, per_round=3, settle=2), Warmup(0),
                    clock=clock)
    assert len(log) == 6


def test_candidate_overrides_end_in_the_same_round():
    clock = FakeClock()
    fast = series_candidate("fast", clock, [1.0])
    slow = series_candidate("slow", clock, [1000.0], per_round=1, iterations=3)
    out = run_interleaved([fast, slow], Plan(iterations=30, per_round=10, settle=0), Warmup(0), clock=clock)
    assert len(out["fast"].ms) == 30 and len(out["slow"].ms) == 3
    assert sorted(set(out["slow"].round)) == [0, 1, 2] == sorted(set(out["fast"].round))


def test_duration_runs_whole_rounds_until_time_is_up():
    clock = FakeClock()
    a = series_candidate("a", clock, [10.0])
    b = series_candidate("b", clock, [30.0])
    # one round = 5 x 10 ms + 5 x 30 ms = 200 ms; 0.5 s -> 3 rounds (checked at round boundaries)
    out = run_interleaved([a, b], Plan(duration_s=0.5, per_round=5, settle=0), Warmup(0), clock=clock)
    assert len(out["a"].ms) == len(out["b"].ms) == 15


def test_repeats_rewarm_and_are_labelled():
    clock = FakeClock()
    c = series_candidate("m", clock, [1.0])
    out = run_interleaved([c], Plan(iterations=4, per_round=2, repeats=3), Warmup(2), clock=clock)
    s = out["m"]
    assert s.repeat == [0] * 4 + [1] * 4 + [2] * 4
    assert s.warmup_calls == 6


def test_analyse_ratios_spread_and_paired_blocks():
    clock = FakeClock()
    # the machine slows down 2x halfway through: both candidates see it in the same rounds
    base = [10.0] * 10 + [20.0] * 10
    cand = [5.0] * 10 + [10.0] * 10
    b = series_candidate("base", clock, base)
    c = series_candidate("cand", clock, cand)
    plan = Plan(iterations=20, per_round=5, settle=0, blocks=2)
    out = run_interleaved([b, c], plan, Warmup(0), clock=clock)
    st = analyse(out, plan, "base")
    v = st["cand"]["vs_baseline"]
    assert v["median_ratio"] == pytest.approx(7.5 / 15.0)
    assert v["speedup"] == pytest.approx(2.0)
    assert v["block_ratio_min"] == v["block_ratio_max"] == pytest.approx(0.5)  # drift cancels pair by pair
    sp = st["base"]["spread_blocks"]
    assert sp["medians"] == [10.0, 20.0]
    assert sp["range_pct"] == pytest.approx(10.0 / 15.0 * 100)
    assert st["base"]["latency_ms"]["n"] == 20
    assert st["cand"]["throughput_fps"] == pytest.approx(1000.0 / 7.5)


def test_analyse_per_candidate_baselines_and_repeats():
    clock = FakeClock()
    cands = [series_candidate(n, clock, [d]) for n, d in (("a@1", 1.0), ("b@1", 2.0), ("a@2", 4.0), ("b@2", 12.0))]
    plan = Plan(iterations=4, per_round=2, settle=0, blocks=2, repeats=2)
    out = run_interleaved(cands, plan, Warmup(0), clock=clock)
    st = analyse(out, plan, "a@1", baseline_for={"b@2": "a@2", "a@2": "a@2"})
    assert st["b@1"]["vs_baseline"]["median_ratio"] == pytest.approx(2.0)
    assert st["b@2"]["vs_baseline"]["median_ratio"] == pytest.approx(3.0)
    assert st["b@2"]["spread_repeats"]["medians"] == [12.0, 12.0]
    with pytest.raises(ConfigError):
        analyse(out, plan, "nope")


@pytest.mark.parametrize("kw", [dict(iterations=0), dict(duration_s=0.0), dict(per_round=0), dict(blocks=0),
                                dict(repeats=0), dict(settle=-1)])
def test_bad_plans_are_config_errors(kw):
    with pytest.raises(ConfigError):
        Plan(**kw)


def test_bad_warmup_and_candidates():
    with pytest.raises(ConfigError):
        Warmup(iterations=-1)
    with pytest.raises(ConfigError):
        run_interleaved([], Plan())
    c = Candidate("x", lambda i: None)
    with pytest.raises(ConfigError):
        run_interleaved([c, c], Plan(iterations=1))


def test_stage_times_are_collected_per_timed_call_only():
    clock = FakeClock()
    calls = {"n": 0}

    def call(i: int) -> None:
        calls["n"] += 1
        clock.advance_ms(1.0)

    stage = {"h2d": 0.0}

    def stages() -> dict[str, float]:
        stage["h2d"] += 1.0
        return {"h2d": stage["h2d"], "compute": 2.0}

    out = run_interleaved([Candidate("gpu", call, stages=stages)], Plan(iterations=3, per_round=3), Warmup(2),
                          clock=clock)
    assert calls["n"] == 5
    assert out["gpu"].stages == {"h2d": [1.0, 2.0, 3.0], "compute": [2.0, 2.0, 2.0]}
    st = analyse(out, Plan(iterations=3, per_round=3))
    assert st["gpu"]["stages_ms"]["h2d"]["median"] == 2.0
