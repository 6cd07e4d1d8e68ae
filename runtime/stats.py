"""Latency statistics: percentiles the way trtexec and the report print them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

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
