"""The RGB section of the real-scan benchmark: its measures, baselines, degradations and verdicts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("skimage")

from ganrt.benchmarks.realphoto import clahe_nlm, guided
from ganrt.benchmarks.realphoto_metrics import colour_shift, restoration
from ganrt.benchmarks.realphoto_report import verdicts
from ganrt.export.data.photo_degrade import PRESETS, PhotoDegradation, degrade
from ganrt.export.realphotos import REPORT, TUNE, load


def photo() -> np.ndarray:
    rgb = load("coffee")
    assert rgb is not None and rgb.shape[0] % 2 == 0 and max(rgb.shape[:2]) <= 512
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def test_the_tuning_and_report_photographs_are_disjoint():
    assert not set(TUNE) & set(REPORT) and len(REPORT) >= 4


def test_colour_shift_is_zero_on_identity_and_sees_a_warm_cast_in_chroma():
    img = photo()
    assert colour_shift(img, img)["local_chroma_median"] == 0.0
    warm = np.clip(img.astype(np.float32) * np.array([0.9, 1.0, 1.1]), 0, 255).astype(np.uint8)
    s = colour_shift(img, warm)
    assert s["local_chroma_median"] > 3.0 and s["ciede2000_median"] > 1.0


def test_the_degradations_hurt_and_the_identity_degradation_does_not():
    rgb = photo()[:, :, ::-1].astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    assert np.abs(degrade(rgb, PhotoDegradation(), rng) - rgb).max() <= 1.0 / 255 + 1e-6  # gamma round trip only
    orig = photo()
    for d in PRESETS.values():
        out = (degrade(rgb, d, rng)[:, :, ::-1] * 255 + 0.5).astype(np.uint8)
        assert restoration(orig, out)["psnr_db"] < 30.0


def test_baselines_keep_shape_and_the_guided_filter_smooths_noise_not_flat_colour():
    flat = np.full((64, 64, 3), (40, 90, 160), np.uint8)
    assert np.abs(guided(flat).astype(int) - flat).max() <= 1
    noisy = np.clip(flat + np.random.default_rng(1).normal(0, 10, flat.shape), 0, 255).astype(np.uint8)
    assert guided(noisy).std(axis=(0, 1)).max() < noisy.std(axis=(0, 1)).max()
    assert clahe_nlm(noisy).shape == noisy.shape


def test_verdicts_count_limits_and_wins_against_clahe_nlm():
    m = "intraop-enhance bare fp32"
    clean = {"local_l_median": 1.0, "local_chroma_median": 2.0}
    result = {"images": {"a": {"conditions": {
        "clean": {"methods": {m: clean}},
        "smoke": {"methods": {"clahe+nlm": {"psnr_db": 20.0, "ciede2000_mean": 5.0},
                              m: {"psnr_db": 21.0, "ciede2000_mean": 4.0}}},
        "low-light": {"methods": {"clahe+nlm": {"psnr_db": 20.0, "ciede2000_mean": 5.0},
                                  m: {"psnr_db": 21.0, "ciede2000_mean": 6.0}}}}}}}
    v = verdicts(result)[m]
    assert v["clean_within_limits"] == ["a"] and v["beats_clahe_nlm"] == 1 and v["degraded_cases"] == 2


def test_each_pipeline_row_starts_with_a_clean_input_registry(tmp_path):
    """Earlier rows' inputs are forgotten: a deleted input's inode, reused by a new output, once made
    `ganrt run` refuse the output as "would overwrite its input". Here the temp folder itself is
    registered as an input, the harshest stand-in for such a leftover."""
    import tempfile

    from ganrt.benchmarks.realphoto import _pipeline
    from ganrt.runtime.sinks import outpaths

    frame = np.full((64, 96, 3), 120, np.uint8)
    frame[16:48, 24:72] = (40, 90, 160)
    outpaths.protect(tempfile.gettempdir())
    try:
        shown, label = _pipeline(frame, 1000.0)
    finally:
        outpaths.clear()
    assert shown.shape == frame.shape and label.split()[0] in ("enhanced", "passthrough")


def test_the_int8_probe_runs_every_artifact_on_every_case(monkeypatch):
    """The int8 probe (fp32, int8 on ORT's kernels, int8 as written) on one clean and one degraded crop."""
    from ganrt.benchmarks import realphoto_int8 as probe

    crop = photo()[:64, :96]
    dark = (crop * 0.5).astype(np.uint8)
    monkeypatch.setattr(probe, "report_cases", lambda: [("coffee", "clean", crop, crop), ("coffee", "low-light", crop, dark)])
    r = probe.run(probe.bundled_model_dir(probe.BUNDLE))
    clean, low = r["cases"]
    assert list(clean["runs"]) == list(low["runs"]) == list(probe.RUNS)
    assert all("local_l_median" in m for m in clean["runs"].values())
    assert all(m["psnr_db"] > 0 for m in low["runs"].values())
    md = probe.to_markdown(r)
    assert "| coffee | clean | L* " in md and "| coffee | low-light | " in md


def test_detail_kept_is_one_on_identity_and_sees_softening_and_sharpening():
    from ganrt.benchmarks.realphoto_metrics import detail_kept

    img = photo()
    assert detail_kept(img, img) == {"detail_kept_median": 1.0, "detail_kept_p5": 1.0}
    soft = cv2.GaussianBlur(img, (0, 0), 1.2)
    assert detail_kept(img, soft)["detail_kept_median"] < 0.6
    sharp = cv2.addWeighted(img, 1.8, cv2.GaussianBlur(img, (0, 0), 1.0), -0.8, 0)
    assert detail_kept(img, sharp)["detail_kept_median"] > 1.2
    # a colour cast moves the colour measures, not the detail
    warm = np.clip(img.astype(np.float32) * np.array([0.9, 1.0, 1.1]), 0, 255).astype(np.uint8)
    assert abs(detail_kept(img, warm)["detail_kept_median"] - 1.0) < 0.1
