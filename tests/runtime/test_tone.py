"""Local mean preservation (runtime/trust/tone.py) and the input domain (runtime/trust/domain.py): the checks that
keep a model's tone map and its out-of-domain guesses off the screen."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest
from scenes import MS, KeepSink

from ganrt.export.guard_cal import local_shift
from ganrt.runtime.errors import ModelError
from ganrt.runtime.frames import Outcome, Reason
from ganrt.runtime.model.manifest import Manifest
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import PolicyConfig
from ganrt.runtime.trust.domain import DomainConfig, frame_stats
from ganrt.runtime.trust.guard import GuardConfig
from ganrt.runtime.trust.region import luma_u8
from ganrt.runtime.trust.tone import ToneCheck, ToneConfig, blend

REALSCAN = Path(__file__).resolve().parents[1] / "data" / "realscan"
MODELS = Path(__file__).resolve().parents[2] / "runtime" / "models"


def speckle(h=256, w=256, seed=0, grain=1.5, mean=100.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), grain)
    return np.clip(mean + n * (30.0 / n.std()), 0, 255).astype(np.uint8)


def blob(img: np.ndarray, cx: int, cy: int, r: int, level: float) -> np.ndarray:
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
    g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * r * r))
    return np.clip(img + level * g, 0, 255).astype(np.uint8)


def test_identity_and_small_shifts_pass_a_uniform_tone_change_sends_the_frame_raw():
    raw = speckle()
    check = ToneCheck()
    assert check.check(raw, raw, None, 256, 256).passed
    assert check.check(raw, cv2.add(raw, 2), None, 256, 256).passed  # 2 levels: within the limits
    v = check.check(raw, cv2.add(raw, 5), None, 256, 256)
    assert v.whole_frame_raw and v.failed == v.tiles == 64 and v.worst_median == pytest.approx(5.0, abs=0.1)


def test_a_local_blob_turns_only_its_tiles_raw_and_what_is_shown_keeps_the_limits():
    raw = speckle(seed=1)
    out = blob(raw, 60, 60, 10, 60.0)
    v = ToneCheck().check(raw, out, None, 256, 256)
    assert not v.passed and not v.whole_frame_raw and 0 < v.failed <= 9
    assert v.weights[60, 60] == 0.0 and v.weights[200, 200] == 1.0  # the blob's tile exactly raw, far tiles intact
    shown = blend(raw, out, v.weights)
    assert np.array_equal(shown[v.weights == 0], raw[v.weights == 0])
    assert np.array_equal(shown[v.weights == 1], out[v.weights == 1])
    med, p95 = local_shift(raw, shown, (v.weights > 0).astype(np.uint8) * 255, 256)
    assert med <= 3.0 and p95 <= 10.0
    _, p95_bad = local_shift(raw, out, (v.weights == 0).astype(np.uint8) * 255, 256)
    assert p95_bad > 10.0  # where the model's own output broke the limit


def test_shifts_outside_the_region_are_not_judged():
    raw = speckle(seed=2)
    mask = np.zeros(raw.shape, np.uint8)
    mask[:, :128] = 255
    out = raw.copy()
    out[:, 160:] = cv2.add(out[:, 160:], 40)
    assert ToneCheck().check(raw, out, mask, 256, 256).passed


@pytest.mark.parametrize("raw", [{"tone": []}, {"tone": {"max_p95": "ten"}}, {"tone": {"bogus": 1}},
                                 {"tone": {"max_median": float("nan")}}, {"tone": {"tile_frac": 0}}])
def test_malformed_tone_blocks_are_model_errors(raw):
    class M:
        pass

    m = M()
    m.raw = raw
    with pytest.raises(ModelError):
        ToneConfig.from_manifest(m)


def _fixtures():
    return sorted(REALSCAN.glob("*.npz"))


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.stem)
def test_the_bundled_models_harm_on_real_scans_never_reaches_the_screen(path):
    """Crops of pydicom's real acquisitions through today's bundled ultrasound students
    (tests/data/realscan/make_fixtures.py): whatever the check shows keeps the limits."""
    d = np.load(path)
    raw, out, frame_w = d["raw"], d["out"], int(d["frame_w"])
    bundle = path.stem.split("_examples")[0]
    cfg = ToneConfig.from_manifest(Manifest.load(MODELS / bundle))
    med0, p950 = local_shift(raw, out, None, frame_w)
    v = ToneCheck(cfg).check(luma_u8(raw), luma_u8(out), None, frame_w, frame_w)
    if med0 > cfg.max_median or p950 > cfg.max_p95:
        assert not v.passed
    if not v.whole_frame_raw:
        shown = out if v.weights is None else blend(raw, out, v.weights)
        keep = None if v.weights is None else (v.weights > 0).astype(np.uint8) * 255
        med, p95 = local_shift(raw, shown, keep, frame_w)
        assert med <= cfg.max_median and p95 <= cfg.max_p95


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.stem)
def test_a_tone_neutral_despeckle_of_the_same_real_crops_is_enhanced(path):
    raw = np.load(path)["raw"]
    frame_w = int(np.load(path)["frame_w"])
    for out in (cv2.bilateralFilter(raw, 7, 30, 3), cv2.fastNlMeansDenoisingColored(raw, None, 12, 12, 7, 21)):
        v = ToneCheck().check(luma_u8(raw), luma_u8(out), None, frame_w, frame_w)
        assert not v.whole_frame_raw
        assert v.weights is None or float(v.weights.mean()) >= 0.9


# --- the input domain -----------------------------------------------------------------------------
def test_grain_size_is_the_correlation_length_of_the_speckle():
    # white noise blurred by a Gaussian of sigma g has a Gaussian autocorrelation of sigma g * sqrt(2)
    est = {g: frame_stats(speckle(512, 512, seed=3, grain=g)) for g in (0.7, 1.0, 2.0, 3.0, 4.0)}
    for g in (0.7, 1.0, 2.0):
        assert est[g]["grain_px"] == pytest.approx(g * math.sqrt(2), rel=0.1)
    grains = [s["grain_px"] for s in est.values()]
    assert grains == sorted(grains)  # coarser still reads coarser (the high-pass compresses large grain)
    assert all(s["luma_mean"] == pytest.approx(100.0, abs=3.0) for s in est.values())


def test_domain_blocks_are_checked():
    class M:
        raw: dict

    for bad in ({"input_domain": []}, {"input_domain": {"ranges": {"nope": [0, 1]}}},
                {"input_domain": {"ranges": {"grain_px": [3, 1]}}},
                {"input_domain": {"ranges": {"grain_px": [1, 3]}, "every": 0}}):
        m = M()
        m.raw = bad
        with pytest.raises(ModelError):
            DomainConfig.from_manifest(m)
    d = DomainConfig({"grain_px": (1.0, 2.0)})
    assert d.outside({"grain_px": 1.5}) == [] and d.outside({"grain_px": math.nan}) == []
    assert "grain_px 3.00 outside [1, 2]" in d.outside({"grain_px": 3.0})[0]


def _stream(frames, fn, guard):
    clock = ManualClock()
    runner = FakeRunner(latency_ms=1.0, clock=clock, fn=fn)
    keep = KeepSink()
    src = FakeSource(frames, clock=clock, interval_ns=33 * MS)
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=100.0), warmup=0, guard=guard)
    with runner:
        report = run(src, Enhancer(runner, fake_manifest(1), clock=clock), [keep], cfg, clock=clock)
    return report, keep, runner


def test_a_model_that_brightens_the_frame_goes_raw_as_mean_shift():
    frames = [speckle(seed=i) for i in range(4)]
    report, keep, _ = _stream(frames, lambda x: np.clip(x + 0.1, 0, 1), GuardConfig(tone=ToneConfig()))
    assert all(r.reason is Reason.MEAN_SHIFT and r.enhanced_fraction == 0.0 for r in keep.results)
    assert all(np.array_equal(r.pixels, f) for r, f in zip(keep.results, frames))
    assert report.quality["tone"]["rejected"] == 4


def test_a_model_that_paints_one_blob_is_shown_with_that_tile_raw():
    frames = [speckle(seed=10 + i) for i in range(3)]

    def paint(x):
        y = x.copy()
        y[..., 40:80, 40:80] = 1.0
        return y

    report, keep, _ = _stream(frames, paint, GuardConfig(tone=ToneConfig()))
    for r, f in zip(keep.results, frames):
        assert r.outcome is Outcome.ENHANCED and 0.8 < r.enhanced_fraction < 1.0
        assert np.array_equal(r.pixels[40:80, 40:80], f[40:80, 40:80])
    assert report.quality["tone"]["partial"] == 3


def test_inputs_outside_the_declared_domain_go_raw_without_running_the_model():
    frames = [speckle(seed=20 + i, grain=5.0) for i in range(3)]
    guard = GuardConfig(domain=DomainConfig({"grain_px": (1.0, 2.5)}, every=1))
    report, keep, runner = _stream(frames, None, guard)
    assert all(r.reason is Reason.OUT_OF_DISTRIBUTION for r in keep.results)
    assert runner.calls == 0
    assert report.quality["tone"]["out_of_distribution"] == 3


def test_the_bundled_ultrasound_manifests_declare_their_checks():
    for name in ("us-enhance", "us-sr2x"):
        m = Manifest.load(MODELS / name)
        assert ToneConfig.from_manifest(m).enabled and DomainConfig.from_manifest(m) is not None
        cal = m.raw["metrics"]["guard_calibration"]["tone"]
        # the synthetic tone changes are always caught; the model's own harm on the real tuning scans is
        # caught when there is any (a tone-neutral, structure-preserving model may leave none to catch)
        assert cal["chosen"]["synthetic_catch_rate"] >= 0.95
        if cal["model_output_negatives"] > 0:
            assert cal["chosen"]["model_output_catch_rate"] >= 0.95
