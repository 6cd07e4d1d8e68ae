"""The paired bootstrap interval the student-vs-teacher benchmark reports for gCNR differences."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")  # the benchmark module imports the export's metrics

from ganrt.benchmarks.student_vs_teacher import paired_ci


def test_interval_covers_a_known_mean_and_skips_undefined_frames():
    rng = np.random.default_rng(3)
    b = rng.uniform(0.3, 0.9, 400)
    a = b + 0.05 + rng.normal(0, 0.1, 400)
    a[::10] = np.nan  # frames without a lesion
    r = paired_ci(a, b)
    assert r["frames"] == 360
    assert r["lo95"] < 0.05 < r["hi95"]
    assert r["lo95"] < r["mean"] < r["hi95"]
    assert r["hi95"] - r["lo95"] < 0.05  # 360 frames of sd 0.1: about +-0.01


def test_identical_models_give_a_zero_width_interval_and_empty_gives_nan():
    a = np.array([0.2, 0.5, 0.9])
    r = paired_ci(a, a)
    assert r["mean"] == r["lo95"] == r["hi95"] == 0.0
    assert np.isnan(paired_ci(np.array([np.nan]), np.array([0.1]))["mean"])
