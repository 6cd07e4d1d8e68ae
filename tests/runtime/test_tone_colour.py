"""The colour form of the local-mean check (runtime/trust/tone.py): a colour model's cast is caught in
CIELAB (lightness and a*b*), tone-neutral colour edits pass, and the guard runs it for 3-channel models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest
from scenes import MS, KeepSink

from ganrt.export.guard_cal import local_lab_shift
from ganrt.runtime.frames import Outcome, Reason
from ganrt.runtime.model.manifest import Manifest
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import PolicyConfig
from ganrt.runtime.trust.guard import GuardConfig
from ganrt.runtime.trust.tone import ToneCheck, ToneConfig, blend

MODELS = Path(__file__).resolve().parents[2] / "runtime" / "models"


def tissue(h=256, w=256, seed=0) -> np.ndarray:
    """A textured pink-red BGR frame (tissue-like colours, fine texture)."""
    rng = np.random.default_rng(seed)
    n = cv2.GaussianBlur(rng.standard_normal((h, w, 3)).astype(np.float32), (0, 0), 2.0)
    base = np.array([90.0, 100.0, 170.0], np.float32)  # B, G, R
    return np.clip(base + n * (25.0 / n.std()), 0, 255).astype(np.uint8)


def recolour(img: np.ndarray, da: float, db: float, region=(slice(None), slice(None))) -> np.ndarray:
    """``img`` with a* and b* moved by (da, db) inside ``region``, L* kept."""
    lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)
    lab[region + (1,)] += da
    lab[region + (2,)] += db
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2BGR) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def test_a_colour_cast_that_keeps_luma_is_caught_in_colour_and_missed_on_luma():
    raw = tissue()
    cast = recolour(raw, 8.0, 8.0)  # a warm cast, lightness unchanged
    grey = ToneCheck().check(cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY), cv2.cvtColor(cast, cv2.COLOR_BGR2GRAY),
                             None, 256, 256)
    assert not grey.whole_frame_raw  # the luma check alone lets it through
    v = ToneCheck().check(raw, cast, None, 256, 256)
    assert v.whole_frame_raw and v.worst_chroma_median > 8.0 and v.worst_median < 2.0


def test_identity_and_a_mild_colour_denoise_pass():
    raw = tissue(seed=1)
    check = ToneCheck()
    v = check.check(raw, raw, None, 256, 256)
    assert v.passed and v.worst_chroma_p95 == 0.0
    noisy = np.clip(raw + np.random.default_rng(2).normal(0, 6, raw.shape), 0, 255).astype(np.uint8)
    for out in (cv2.fastNlMeansDenoisingColored(noisy, None, 6, 6, 7, 21), cv2.bilateralFilter(noisy, 7, 30, 3)):
        assert check.check(noisy, out, None, 256, 256).passed


def test_a_local_hue_shift_turns_only_its_tiles_raw_and_what_is_shown_keeps_the_limits():
    raw = tissue(seed=3)
    out = recolour(raw, -15.0, 10.0, (slice(40, 80), slice(40, 80)))
    cfg = ToneConfig()
    v = ToneCheck(cfg).check(raw, out, None, 256, 256)
    assert not v.passed and not v.whole_frame_raw
    assert v.weights[60, 60] == 0.0 and v.weights[200, 200] == 1.0
    shown = blend(raw, out, v.weights)
    _, _, med, p95 = local_lab_shift(raw, shown, (v.weights > 0).astype(np.uint8) * 255, 256)
    assert med <= cfg.max_median_chroma and p95 <= cfg.max_p95_chroma


def test_the_colour_limits_round_trip_through_the_manifest():
    class M:
        raw = {"tone": {"max_median_l": 1.5, "max_p95_chroma": 7.0}}

    cfg = ToneConfig.from_manifest(M())
    assert cfg.max_median_l == 1.5 and cfg.max_p95_chroma == 7.0 and cfg.max_median == 3.0


def _stream(frames, fn):
    clock = ManualClock()
    runner = FakeRunner(latency_ms=1.0, clock=clock, fn=fn)
    keep = KeepSink()
    src = FakeSource(frames, clock=clock, interval_ns=33 * MS)
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=100.0), warmup=0, guard=GuardConfig(tone=ToneConfig()))
    with runner:
        run(src, Enhancer(runner, fake_manifest(3), clock=clock), [keep], cfg, clock=clock)
    return keep


def test_a_colour_model_that_tints_the_frame_goes_raw_as_mean_shift():
    frames = [tissue(seed=10 + i) for i in range(3)]

    def tint(x):  # NCHW, whatever the channel order: one channel up, another down (luma barely moves)
        y = x.copy()
        y[:, 0] = np.clip(y[:, 0] * 1.12, 0, 1)
        y[:, 2] = np.clip(y[:, 2] * 0.85, 0, 1)
        return y

    keep = _stream(frames, tint)
    assert all(r.reason is Reason.MEAN_SHIFT for r in keep.results)
    assert all(np.array_equal(r.pixels, f) for r, f in zip(keep.results, frames))


def test_a_colour_model_that_leaves_the_colours_alone_is_shown():
    frames = [tissue(seed=20 + i) for i in range(3)]
    keep = _stream(frames, lambda x: x)
    assert all(r.outcome is Outcome.ENHANCED and r.enhanced_fraction == 1.0 for r in keep.results)


def test_the_intraop_bundle_declares_a_colour_calibration_on_real_photographs():
    m = Manifest.load(MODELS / "intraop-enhance")
    cal = m.raw["metrics"]["guard_calibration"]["tone"]
    assert cal["measure"].startswith("CIELAB") and cal["frames"] > 0
    assert cal["chosen"]["positives_kept"] >= 0.9
    if cal["model_output_negatives"]:
        assert cal["chosen"]["model_output_catch_rate"] >= 0.95


@pytest.mark.parametrize("name", ["chelsea", "rocket"])
def test_the_intraop_bundle_on_a_real_tuning_photograph_never_shows_a_cast(name):
    """Today's bundle on real photographs: whatever the check shows keeps the colour limits."""
    pytest.importorskip("skimage")
    from ganrt.export.realphotos import run_bundle

    cfg = ToneConfig.from_manifest(Manifest.load(MODELS / "intraop-enhance"))
    for it in run_bundle(MODELS / "intraop-enhance", (name,)):
        w = it.shown_hw[1]
        v = ToneCheck(cfg).check(it.raw, it.out, None, w, min(it.shown_hw))
        if v.whole_frame_raw:
            continue
        shown = it.out if v.weights is None else blend(it.raw, it.out, v.weights)
        keep = None if v.weights is None else (v.weights > 0).astype(np.uint8) * 255
        ml, pl, mc, pc = local_lab_shift(it.raw, shown, keep, w)
        assert ml <= cfg.max_median_l and pl <= cfg.max_p95_l and mc <= cfg.max_median_chroma
        assert pc <= cfg.max_p95_chroma
