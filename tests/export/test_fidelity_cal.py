"""Fidelity calibration: the threshold sits below what the model does on held-out frames, and an
invented blob on the same frames falls below it."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from ganrt.export.fidelity_cal import CANDIDATES, calibrate, frame_scores, with_blobs, write_into_manifest
from ganrt.export.tasks import get_task
from ganrt.runtime.trust.fidelity import CALIBRATION_MARGIN_DB


@pytest.fixture(scope="module")
def pairs():
    return get_task("us-enhance").make_pairs(range(7300, 7306), (128, 128))


def blob(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """A bright Gaussian blob (sigma 1/20 of the frame) added at each region's centre."""
    out = images.copy()
    h, w = images.shape[1:3]
    yy, xx = np.mgrid[:h, :w]
    for i, m in enumerate(masks):
        r, c = (int(v.mean()) for v in np.nonzero(m))
        out[i] = np.clip(out[i] + 0.6 * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * (h / 20) ** 2)), 0, 1)
    return out


def smooth(images: np.ndarray) -> np.ndarray:
    """A faithful stand-in model: the input, despeckled by a small blur (invents nothing)."""
    import cv2

    return np.stack([cv2.GaussianBlur(x, (0, 0), 1.5) for x in images])


def test_threshold_is_margin_below_the_floor_of_every_artifact(pairs):
    faithful = pairs.targets  # the clean target: far from the speckled input, so it scores lowest
    cal = calibrate({"a": faithful, "b": pairs.inputs}, pairs, scale=1)
    scores = np.concatenate([frame_scores(x, pairs, 1, cal.config) for x in (faithful, pairs.inputs)])
    assert cal.floor_db == pytest.approx(float(np.nanmin(scores)))
    assert cal.config.min_db <= cal.floor_db - CALIBRATION_MARGIN_DB < cal.config.min_db + 0.1
    assert cal.floor_by_artifact["b"] > cal.floor_by_artifact["a"]  # the input explains itself best
    assert cal.manifest_block() == {"min_db": cal.config.min_db, "degrade": "gaussian",
                                    "method": cal.config.method.value, "detrend_cells": cal.config.detrend_cells,
                                    "window_cells": cal.config.window_cells}
    assert len(cal.candidates) == len(CANDIDATES)


def test_an_invented_blob_scores_below_the_calibrated_threshold(pairs):
    model = smooth(pairs.inputs)
    cal = calibrate({"fp32": model}, pairs, scale=1)
    hallucinated = frame_scores(blob(model, pairs.sector), pairs, 1, cal.config)
    assert np.nanmin(hallucinated) < cal.config.min_db
    assert np.mean(hallucinated < cal.config.min_db) >= 0.5
    # the recorded catch rate is the chosen scale's, the best of those tried
    best = max(c["blob_catch_rate"] for c in cal.candidates)  # the candidates record it to 3 decimals
    assert best > 0 and cal.catch_rate == pytest.approx(best, abs=5e-4)
    chosen = [c for c in cal.candidates if c["min_db"] == cal.config.min_db
              and c["method"] == cal.config.method.value][0]
    assert chosen["min_db"] == cal.config.min_db and chosen["blob_catch_rate"] == pytest.approx(cal.catch_rate, abs=1e-3)


def test_blobs_land_inside_the_region_and_leave_the_rest(pairs):
    model = smooth(pairs.inputs)
    added = with_blobs(model, pairs.sector, 0.5) - model
    assert np.all(added >= 0) and all(added[i][pairs.sector[i]].max() > 0.2 for i in range(len(model)))
    assert np.array_equal(with_blobs(model, pairs.sector, 0.5), with_blobs(model, pairs.sector, 0.5))  # seeded


def test_super_resolution_is_scored_on_the_input_grid():
    sr = get_task("us-sr2x").make_pairs(range(7400, 7403), (128, 128))
    cal = calibrate({"fp32": sr.targets}, sr, scale=2)
    assert cal.config.degrade.value == "downsample" and np.isfinite(cal.floor_db)


def test_written_into_the_manifest_beside_what_was_there(tmp_path, pairs):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"task": "us-enhance", "metrics": {"gates": {}}}))
    cal = calibrate({"fp32": pairs.targets}, pairs, scale=1)
    m = write_into_manifest(path, cal)
    assert json.loads(path.read_text()) == m
    assert m["fidelity"]["min_db"] == cal.config.min_db and "gates" in m["metrics"]
    assert m["metrics"]["fidelity_calibration"]["frames"] == len(pairs.inputs)


def test_reduced_tier_gets_its_own_floor_and_still_catches_blobs(pairs):
    import cv2

    from ganrt.export.fidelity_cal import reduced_tier

    model = smooth(pairs.inputs)
    cal = calibrate({"fp32": model}, pairs, scale=1)
    # the reduced tier's stand-in: the same model at half resolution, upsampled back (softer, further from the input)
    half = np.stack([cv2.resize(cv2.resize(x, (64, 64), interpolation=cv2.INTER_AREA), (128, 128),
                                interpolation=cv2.INTER_LINEAR) for x in model])
    red = reduced_tier(cal, {"fp32": half}, pairs, scale=1, factor=2)
    floor = float(np.nanmin(frame_scores(half, pairs, 1, cal.config)))
    assert red.reduced_tier["floor_db"] == pytest.approx(floor, abs=0.01)
    assert red.config.min_db_reduced == min(red.config.min_db, red.reduced_tier["min_db"])
    assert red.config.min_db_reduced <= floor - CALIBRATION_MARGIN_DB + 0.1
    assert red.config.min_db == cal.config.min_db  # the full tier's threshold is left alone
    # an invention on a reduced-tier frame still scores below the reduced threshold
    faked = frame_scores(blob(half, pairs.sector), pairs, 1, red.config)
    assert np.mean(faked < red.config.min_db_reduced) >= 0.5 and red.reduced_tier["blob_catch_rate"] > 0
    assert red.manifest_block()["min_db_reduced"] == red.config.min_db_reduced
