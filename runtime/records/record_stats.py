"""What the report needs from a run's rows, kept as they arrive, in bounded memory.

A clinic day of live video is about a million frames: the rows go to disk (record.py) and
only these aggregates stay. Counts, n, min, max, mean, std and jitter are exact; percentiles
come from a uniform reservoir of ``RESERVOIR`` samples per series, exact while a series has
no more samples than that (every test and benchmark run), an unbiased sample beyond.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from ..frames import Outcome, Reason
from .stats import Summary, summarize

RESERVOIR = 65_536  # samples per series: 512 KiB of float64


class RunningSummary:
    """``stats.summarize`` over a stream of samples without keeping them all."""

    def __init__(self, cap: int = RESERVOIR, seed: int = 0) -> None:
        self._res = np.full(cap, np.nan)  # every page touched now: memory is flat from the first frame
        self._rng = random.Random(seed)  # fixed seed: the same run gives the same report
        self.n, self._mean, self._m2 = 0, 0.0, 0.0
        self._min, self._max = math.inf, -math.inf
        self._jitter, self._last = 0.0, math.nan

    def add(self, v: float) -> None:
        self.n += 1
        d = v - self._mean
        self._mean += d / self.n
        self._m2 += d * (v - self._mean)  # Welford
        self._min, self._max = min(self._min, v), max(self._max, v)
        if self.n > 1:
            self._jitter += abs(v - self._last)
        self._last = v
        cap = len(self._res)
        if self.n <= cap:
            self._res[self.n - 1] = v
        else:
            j = self._rng.randrange(self.n)
            if j < cap:
                self._res[j] = v

    def samples(self) -> np.ndarray:
        return self._res[:min(self.n, len(self._res))]

    def summary(self) -> Summary:
        s = summarize(self.samples())
        if self.n <= len(self._res):
            return s
        std = math.sqrt(self._m2 / (self.n - 1))
        return replace(s, n=self.n, min=self._min, max=self._max, mean=self._mean, std=std,
                       cv=std / self._mean if self._mean else math.nan, jitter=self._jitter / (self.n - 1))


class RunMeter:
    """Switches between enhanced and raw among the shown frames (in order), and the shortest run
    between two switches: the flicker a viewer sees when the picture flips. The first and last
    runs are cut by the stream's ends and do not count as runs between switches."""

    def __init__(self) -> None:
        self.switches = 0
        self.shortest: int | None = None  # None: fewer than two switches
        self._last: bool | None = None
        self._run = 0

    def add(self, enhanced: bool) -> None:
        if enhanced == self._last:
            self._run += 1
            return
        if self._last is not None:
            if self.switches:  # the run just ended began at a switch: it lies between two
                self.shortest = self._run if self.shortest is None else min(self.shortest, self._run)
            self.switches += 1
        self._last, self._run = enhanced, 1


class RecordStats:
    """Counts by outcome and reason, late frames, stage latencies and quality of the shown frames."""

    def __init__(self, stages: Iterable[str]) -> None:
        self.by: Counter[tuple[Outcome, str]] = Counter()
        self.late = 0
        self.latency = {s: RunningSummary() for s in (*stages, "capture_to_output_ms")}
        self.fidelity = RunningSummary()
        self.fidelity_rejected = 0
        self.change = RunningSummary()  # enhanced frames only
        self.flicker_n, self.flicker_in, self.flicker_out = 0, 0.0, 0.0
        self.tone_checked = self.tone_partial = 0  # local-mean check (runtime.tone)
        self.enhanced_fraction = RunningSummary()  # every shown frame: 0 raw, 1 whole region enhanced
        self.tiers: Counter[str] = Counter()  # shown frames by tier (runtime.tiers)
        self.runs = RunMeter()  # enhanced/raw switching of the shown frames

    def add(self, row) -> None:
        self.by[(row.outcome, row.reason.value)] += 1
        if row.outcome is Outcome.DROPPED:
            return
        self.late += bool(row.late)
        self.tiers[row.tier.value] += 1
        self.runs.add(row.outcome is Outcome.ENHANCED)
        for name, running in self.latency.items():
            v = getattr(row, name)
            if not math.isnan(v):
                running.add(v)
        if not math.isnan(row.fidelity_db):
            self.fidelity.add(row.fidelity_db)
        self.fidelity_rejected += row.reason is Reason.FIDELITY
        if row.outcome is Outcome.ENHANCED and not math.isnan(row.change_score):
            self.change.add(row.change_score)
        self.tone_checked += not math.isnan(row.tone_worst_p95)
        if not math.isnan(row.enhanced_fraction):
            self.enhanced_fraction.add(row.enhanced_fraction)
            self.tone_partial += row.outcome is Outcome.ENHANCED and row.enhanced_fraction < 1.0
        if not (math.isnan(row.flicker_in) or math.isnan(row.flicker_out)):
            self.flicker_n += 1
            self.flicker_in += row.flicker_in
            self.flicker_out += row.flicker_out

    @property
    def frames_in(self) -> int:
        return sum(self.by.values())

    @property
    def frames_out(self) -> int:
        return sum(n for (o, _), n in self.by.items() if o is not Outcome.DROPPED)

    def count(self, outcome: Outcome) -> dict[str, int]:
        return {why: n for (o, why), n in sorted(self.by.items(), key=lambda kv: kv[0][1]) if o is outcome}
