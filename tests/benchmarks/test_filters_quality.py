"""Classic filters, flicker and the calibration sweep on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from ganrt.benchmarks.filters import GRIDS, FilterKind, FilterSpec, applicable, grid

pytest.importorskip("skimage", reason="quality metrics need the export extra (scikit-image)")
from ganrt.benchmarks import quality as Q


def _img(seed: int = 0, hw: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (hw, hw), dtype=np.uint8)


@pytest.mark.parametrize("kind", [k for k in FilterKind if not k.sr_only])
def test_every_filter_keeps_uint8_and_size(kind):
    for spec in grid(kind):
        out = spec.apply(_img())
        assert out.dtype == np.uint8 and out.shape == (48, 48), spec.describe()


def test_grid_is_the_product_and_bicubic_upscales():
    assert len(grid(FilterKind.BILATERAL)) == np.prod([len(v) for v in GRIDS[FilterKind.BILATERAL].values()])
    assert FilterSpec(FilterKind.BICUBIC, scale=2).apply(_img()).shape == (96, 96)
    assert "sigma=1.2" in FilterSpec(FilterKind.GAUSSIAN, (("sigma", 1.2),)).describe()


def test_applicable_follows_the_task_scale():
    ok, skipped = applicable(tuple(FilterKind), 1)
    assert FilterKind.BICUBIC not in ok and [s["name"] for s in skipped] == ["bicubic"]
    ok, skipped = applicable(tuple(FilterKind), 2)
    assert ok == [FilterKind.BICUBIC] and len(skipped) == len(FilterKind) - 1


def _cine(t: int = 5, hw: int = 32) -> Q.Cine:
    rng = np.random.default_rng(1)
    inputs = rng.random((t, hw, hw), dtype=np.float32)
    targets = np.repeat(inputs[:1], t, 0)  # a still scene: the target does not change
    sector = np.zeros((hw, hw), bool)
    sector[4:-4, 4:-4] = True
    return Q.Cine(inputs, targets, sector)


def test_flicker_is_output_change_minus_input_change():
    c = _cine()
    ident = Q.flicker(lambda u8: u8, c)
    assert ident["excess"] == pytest.approx(0.0, abs=1e-12)
    assert ident["target"] == 0.0
    frozen = Q.flicker(lambda u8: np.full_like(u8, 128), c)
    assert frozen["output"] == 0.0 and frozen["excess"] == pytest.approx(-frozen["input"])
    expected = np.abs(np.diff(Q.from_u8(Q.to_u8(c.inputs)).astype(np.float64), axis=0))[:, c.sector].mean()
    assert ident["input"] == pytest.approx(expected) and ident["output"] == pytest.approx(expected)


def test_sweep_picks_the_best_psnr_on_the_calibration_set():
    rng = np.random.default_rng(2)
    clean = np.repeat(rng.uniform(0.3, 0.7, (4, 1, 1)), 48, 1).repeat(48, 2).astype(np.float32)  # flat images
    noisy = np.clip(clean + rng.normal(0, 0.2, clean.shape), 0, 1).astype(np.float32)

    class Set:
        inputs, targets = noisy, clean

    specs = grid(FilterKind.GAUSSIAN)
    best, table = Q.sweep(specs, Set)
    assert len(table) == len(specs)
    assert table[specs.index(best)]["psnr"] == max(t["psnr"] for t in table)
    assert best.p["sigma"] == max(GRIDS[FilterKind.GAUSSIAN]["sigma"])  # flat + noise: the most blur wins


def test_seed_ranges_never_overlap_training_or_export_eval():
    assert Q.HELD_OUT_SEED0 >= 950_000 and Q.CINE_SEED >= 950_000
    assert 100_000 <= Q.CALIBRATION_SEED0 < 900_000
