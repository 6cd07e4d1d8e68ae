"""The timing harness every ganrt benchmark uses: warm-up excluded (by iterations and/or seconds),
fixed iterations or a duration, several candidates interleaved round-robin.

Why interleaved: on a shared or thermally limited machine the speed drifts during a run. Timing
candidate A for a minute and then B for a minute puts the drift into the A/B ratio; running a
few calls of each in turn, round after round, spreads the drift over all of them alike. The
start of each round rotates, so no candidate always runs right after the same neighbour, and
``settle`` untimed calls after each switch keep the cost of re-warming caches (another
session's weights were just in them) out of the numbers.

A candidate is just a callable ``call(i)`` that runs iteration ``i`` (it picks input
``i % k`` itself); the harness owns the clock and the order. Times are host wall time
(``time.perf_counter_ns``) around each call; a candidate may also report per-call stage times
(CUDA events of the torch runner) through ``stages``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ganrt.runtime.errors import ConfigError
from ganrt.runtime.records.stats import block_medians, block_of_rounds, paired_ratios, ratio, spread, summarize

ClockNs = Callable[[], int]


@dataclass(frozen=True)
class Warmup:
    """Untimed calls before measuring: at least ``iterations`` calls *and* at least ``seconds``."""

    iterations: int = 20
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.seconds < 0:
            raise ConfigError("warm-up iterations and seconds must be >= 0")


@dataclass(frozen=True)
class Plan:
    """How long to measure: ``iterations`` timed calls per candidate, or rounds until ``duration_s``
    has passed (whole rounds only, so every candidate gets the same number of turns)."""

    iterations: int = 200
    duration_s: float | None = None
    per_round: int = 10  # timed calls of one candidate per turn
    settle: int = 1  # untimed calls after switching to a candidate (only with several candidates)
    blocks: int = 5  # contiguous groups of rounds whose medians give the run-to-run spread
    repeats: int = 1  # the whole interleaved run, repeated (fresh warm-up each time)

    def __post_init__(self) -> None:
        if self.duration_s is None and self.iterations < 1:
            raise ConfigError("--iterations must be >= 1")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError("--duration must be > 0 seconds")
        if self.per_round < 1 or self.settle < 0 or self.blocks < 1 or self.repeats < 1:
            raise ConfigError("--per-round, --blocks and --repeats must be >= 1 (settle >= 0)")

    def rounds_for(self, per_round: int) -> int:
        return -(-self.iterations // per_round)  # ceil


@dataclass
class Candidate:
    name: str
    call: Callable[[int], object]
    per_round: int | None = None  # overrides Plan.per_round (a model that takes seconds: 1)
    stages: Callable[[], dict[str, float]] | None = None  # per-call stage times after each call
    warmup: Warmup | None = None  # overrides the run's warm-up
    iterations: int | None = None  # overrides Plan.iterations (pair with per_round to end in the same round)

    def target(self, plan: Plan) -> int:
        return self.iterations or plan.iterations


@dataclass
class Samples:
    """One candidate's timed calls in time order, with the round (and repeat) each came from."""

    ms: list[float] = field(default_factory=list)
    round: list[int] = field(default_factory=list)
    repeat: list[int] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)
    warmup_calls: int = 0
    warmup_s: float = 0.0


def warm_up(call: Callable[[int], object], warmup: Warmup, clock: ClockNs = time.perf_counter_ns) -> tuple[int, float]:
    """Untimed calls until both minimums are met; returns (calls, seconds). Nothing is recorded."""
    t0 = clock()
    n = 0
    while n < warmup.iterations or (clock() - t0) / 1e9 < warmup.seconds:
        call(n)
        n += 1
    return n, (clock() - t0) / 1e9


def round_order(n_candidates: int, round_index: int) -> list[int]:
    """Candidates' turns in one round: round-robin, starting one further along each round."""
    return [(round_index + j) % n_candidates for j in range(n_candidates)]


def run_interleaved(candidates: Sequence[Candidate], plan: Plan, warmup: Warmup = Warmup(),
                    clock: ClockNs = time.perf_counter_ns,
                    on_round: Callable[[int, int], None] | None = None) -> dict[str, Samples]:
    """Time every candidate, interleaved; returns their samples by name (warm-up excluded)."""
    if not candidates:
        raise ConfigError("nothing to benchmark")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ConfigError(f"benchmark candidates must have distinct names (got {names})")
    out = {c.name: Samples() for c in candidates}
    settle = plan.settle if len(candidates) > 1 else 0
    counters = {c.name: 0 for c in candidates}  # iteration index per candidate: rotates its inputs
    global_round = 0
    for rep in range(plan.repeats):
        for c in candidates:
            n, s = warm_up(lambda i, c=c: c.call(counters[c.name] + i), c.warmup or warmup, clock)
            counters[c.name] += n
            out[c.name].warmup_calls += n
            out[c.name].warmup_s += s
        t_start = clock()
        done = {c.name: 0 for c in candidates}  # timed calls in this repeat
        r = 0
        while True:
            if plan.duration_s is None:
                if all(done[c.name] >= c.target(plan) for c in candidates):
                    break
            elif r > 0 and (clock() - t_start) / 1e9 >= plan.duration_s:
                break
            for j in round_order(len(candidates), r):
                c = candidates[j]
                smp = out[c.name]
                k = c.per_round or plan.per_round
                if plan.duration_s is None:  # never more than the asked iterations
                    k = min(k, c.target(plan) - done[c.name])
                    if k <= 0:
                        continue
                for _ in range(settle):
                    c.call(counters[c.name])
                    counters[c.name] += 1
                for _ in range(k):
                    t0 = clock()
                    c.call(counters[c.name])
                    smp.ms.append((clock() - t0) / 1e6)
                    counters[c.name] += 1
                    smp.round.append(global_round)
                    smp.repeat.append(rep)
                    if c.stages is not None:
                        for key, v in c.stages().items():
                            smp.stages.setdefault(key, []).append(float(v))
                done[c.name] += k
            if on_round is not None:
                on_round(rep, r)
            r += 1
            global_round += 1
    return out


# --- statistics of a run ------------------------------------------------------------------------


def blocks_of(samples: Samples, total_rounds: int, n_blocks: int) -> list[int]:
    """Block number of each sample (rounds grouped into ``n_blocks`` contiguous blocks)."""
    of_round = block_of_rounds(total_rounds, n_blocks)
    return [of_round[r] for r in samples.round]


def analyse(results: dict[str, Samples], plan: Plan, baseline: str | None = None,
            per_call_frames: int = 1, baseline_for: dict[str, str] | None = None) -> dict[str, dict]:
    """Summary, spread (blocks and repeats) and ratios vs the baseline for every candidate.
    ``baseline_for`` maps a candidate to its own baseline (e.g. fp32 at the same size)."""
    if not results:
        return {}
    baseline = baseline or next(iter(results))
    bases = {name: (baseline_for or {}).get(name, baseline) for name in results}
    for b in {baseline, *bases.values()}:
        if b not in results:
            raise ConfigError(f"baseline {b!r} is not one of: {', '.join(results)}")
    total_rounds = 1 + max((max(s.round) for s in results.values() if s.round), default=0)
    block_meds = {}
    for name, s in results.items():
        block_meds[name] = block_medians(s.ms, blocks_of(s, total_rounds, plan.blocks)) if s.ms else []
    medians = {name: summarize(s.ms).median for name, s in results.items()}
    out: dict[str, dict] = {}
    for name, s in results.items():
        summ = summarize(s.ms)
        base = bases[name]
        entry: dict = {
            "latency_ms": summ.to_dict(),
            "throughput_fps": 1000.0 * per_call_frames / summ.mean if summ.n else float("nan"),
            "warmup_excluded": {"calls": s.warmup_calls, "seconds": round(s.warmup_s, 4)},
            "spread_blocks": spread(block_meds[name], summ.median).to_dict(),
        }
        if plan.repeats > 1:
            rep_meds = [float(summarize(v for v, rp in zip(s.ms, s.repeat) if rp == k).median) for k in range(plan.repeats)]
            entry["spread_repeats"] = spread(rep_meds, summ.median).to_dict()
        if s.stages:
            entry["stages_ms"] = {k: summarize(v).to_dict() for k, v in s.stages.items()}
        same_blocks = len(block_meds[name]) == len(block_meds[base])
        pr = paired_ratios(block_meds[name], block_meds[base]) if same_blocks else []
        entry["vs_baseline"] = {
            "baseline": base,
            "median_ratio": ratio(summ.median, medians[base]),
            "speedup": ratio(medians[base], summ.median),
            "block_ratio_min": min(pr) if pr else float("nan"),
            "block_ratio_max": max(pr) if pr else float("nan"),
        }
        out[name] = entry
    return out
