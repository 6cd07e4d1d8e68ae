"""Latency statistics: percentiles the way trtexec and the report print them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True)
class Summary:
    n: int
    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    p99_9: float
    max: float
    std: float
    cv: float  # coefficient of variation (std / mean)
    jitter: float  # mean absolute difference of consecutive samples

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(samples: Iterable[float]) -> Summary:
    """Summary of a series (any unit). Empty input gives NaNs with n=0."""
    a = np.asarray(list(samples), dtype=np.float64)
    if a.size == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    # 'linear' interpolation (numpy default) between order statistics.
    p50, p90, p95, p99, p999 = (float(v) for v in np.percentile(a, PERCENTILES))
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    jitter = float(np.abs(np.diff(a)).mean()) if a.size > 1 else 0.0
    return Summary(
        n=int(a.size),
        min=float(a.min()),
        mean=mean,
        median=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        p99_9=p999,
        max=float(a.max()),
        std=std,
        cv=std / mean if mean else float("nan"),
        jitter=jitter,
    )


# --- run-to-run spread and paired ratios (benchmarks) --------------------------------------------


@dataclass(frozen=True)
class Spread:
    """How much a median moves between blocks (or repeats) of one run.

    ``range_pct`` is (max - min) of the block medians over the median of all samples: a
    difference between two candidates smaller than this is within the run's own noise."""

    medians: tuple[float, ...]
    min: float
    max: float
    range_pct: float
    cv_pct: float  # std of the block medians / their mean

    def to_dict(self) -> dict[str, object]:
        return {"medians": list(self.medians), "min": self.min, "max": self.max, "range_pct": self.range_pct,
                "cv_pct": self.cv_pct}


def block_medians(samples: Sequence[float], blocks: Sequence[int]) -> list[float]:
    """Median of each block; ``blocks[i]`` is the block of ``samples[i]``, numbered 0..B-1 in time order."""
    if len(samples) != len(blocks):
        raise ValueError("samples and blocks must have the same length")
    by: dict[int, list[float]] = {}
    for v, b in zip(samples, blocks):
        by.setdefault(int(b), []).append(float(v))
    return [float(np.median(by[b])) for b in sorted(by)]


def block_of_rounds(rounds: int, n_blocks: int) -> list[int]:
    """Block number of each round: ``n_blocks`` contiguous, near-equal groups of rounds."""
    if rounds < 1 or n_blocks < 1:
        raise ValueError("rounds and n_blocks must be >= 1")
    n_blocks = min(n_blocks, rounds)
    return [r * n_blocks // rounds for r in range(rounds)]


def spread(medians: Sequence[float], reference: float | None = None) -> Spread:
    """Spread of block (or repeat) medians, relative to ``reference`` (default: their median)."""
    m = np.asarray(list(medians), dtype=np.float64)
    if m.size == 0:
        nan = float("nan")
        return Spread((), nan, nan, nan, nan)
    ref = float(np.median(m)) if reference is None else float(reference)
    lo, hi = float(m.min()), float(m.max())
    mean = float(m.mean())
    cv = float(m.std(ddof=1)) / mean * 100.0 if m.size > 1 and mean else 0.0
    return Spread(tuple(float(v) for v in m), lo, hi, (hi - lo) / ref * 100.0 if ref else float("nan"), cv)


def ratio(a: float, b: float) -> float:
    """a / b, NaN when b is zero or either is NaN."""
    return float(a) / float(b) if b and not (math.isnan(a) or math.isnan(b)) else float("nan")


def paired_ratios(a_medians: Sequence[float], b_medians: Sequence[float]) -> list[float]:
    """Block-by-block ratios of two candidates measured in the same (interleaved) blocks: drift that
    hits both in a block cancels, so their range is the noise of the ratio itself."""
    if len(a_medians) != len(b_medians):
        raise ValueError("paired ratios need the same blocks for both candidates")
    return [ratio(a, b) for a, b in zip(a_medians, b_medians)]
