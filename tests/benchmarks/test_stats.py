"""Latency statistics and run-to-run spread maths on synthetic series (no timing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ganrt.runtime.records.stats import (
    PERCENTILES,
    block_medians,
    block_of_rounds,
    paired_ratios,
    ratio,
    spread,
    summarize,
)


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 2), (2, 7), (3, 200), (4, 1001)])
def test_percentiles_match_numpy(seed, n):
    a = np.random.default_rng(seed).lognormal(3.0, 0.4, n)
    s = summarize(a)
    p = np.percentile(a, PERCENTILES)
    assert s.n == n
    assert (s.median, s.p90, s.p95, s.p99, s.p99_9) == pytest.approx(tuple(p), rel=1e-12)
    assert s.min == a.min() and s.max == a.max() and s.mean == pytest.approx(a.mean())


def test_cv_and_jitter():
    a = np.array([10.0, 12.0, 11.0, 15.0])
    s = summarize(a)
    assert s.std == pytest.approx(np.std(a, ddof=1))
    assert s.cv == pytest.approx(np.std(a, ddof=1) / a.mean())
    assert s.jitter == pytest.approx(np.mean(np.abs(np.diff(a))))
    assert summarize([5.0]).cv == 0.0


def test_empty_series_is_nan_not_an_error():
    s = summarize([])
    assert s.n == 0 and math.isnan(s.median) and math.isnan(s.cv)


def test_block_of_rounds_is_contiguous_and_balanced():
    assert block_of_rounds(10, 5) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert block_of_rounds(7, 3) == [0, 0, 0, 1, 1, 2, 2]
    assert block_of_rounds(2, 5) == [0, 1]  # never more blocks than rounds
    with pytest.raises(ValueError):
        block_of_rounds(0, 3)


def test_block_medians_and_spread():
    samples = [1, 2, 3, 10, 11, 12, 4, 5, 6]
    blocks = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    meds = block_medians(samples, blocks)
    assert meds == [2.0, 11.0, 5.0]
    sp = spread(meds, reference=5.0)
    assert (sp.min, sp.max) == (2.0, 11.0)
    assert sp.range_pct == pytest.approx((11 - 2) / 5 * 100)
    assert sp.cv_pct == pytest.approx(np.std(meds, ddof=1) / np.mean(meds) * 100)
    assert spread(meds).range_pct == pytest.approx(9 / 5 * 100)  # default reference: median of the medians
    with pytest.raises(ValueError):
        block_medians([1.0, 2.0], [0])


def test_ratio_and_paired_ratios():
    assert ratio(6.0, 3.0) == 2.0
    assert math.isnan(ratio(1.0, 0.0)) and math.isnan(ratio(float("nan"), 1.0))
    # drift that hits both candidates in a block cancels in the paired ratio
    base = [10.0, 20.0, 15.0]
    cand = [5.0, 10.0, 7.5]
    assert paired_ratios(cand, base) == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])
