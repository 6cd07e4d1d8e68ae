"""Pseudo-B-mode simulator: speckle statistics, lesion contrast, determinism, alignment, cine, I/O."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ganrt.export.data.cine_io import write_cine
from ganrt.export.data.phantom import Structure
from ganrt.export.data.simulator import (
    SimConfig,
    cine,
    gcnr,
    render_dataset,
    render_pair,
    single_angle,
    speckle_snr,
    to_uint8,
)

CYST_ONLY = SimConfig(kinds=frozenset({Structure.CYST}))
SEEDS = (0, 1, 2)


def test_single_angle_speckle_is_fully_developed_and_compounding_reduces_it():
    single = [render_pair(s, single_angle(CYST_ONLY)) for s in SEEDS]
    comp = [render_pair(s, CYST_ONLY) for s in SEEDS]
    snr1 = [speckle_snr(p.envelope_target, p.homogeneous_polar) for p in single]
    snr5 = [speckle_snr(p.envelope_target, p.homogeneous_polar) for p in comp]
    assert all(p.homogeneous_polar.sum() > 1000 for p in single)
    assert abs(np.mean(snr1) - 1.91) < 0.15, snr1
    assert all(abs(v - 1.91) < 0.3 for v in snr1), snr1
    assert all(c > s + 0.5 for c, s in zip(snr5, snr1)), (snr1, snr5)


def test_cyst_is_visible_and_the_input_is_worse():
    g_t, g_i = [], []
    for s in SEEDS:
        p = render_pair(s, CYST_ONLY)
        assert p.lesion.sum() > 50 and p.background.sum() > 50
        assert not (p.lesion & p.background).any()
        g_t.append(gcnr(p.target, p.lesion, p.background))
        g_i.append(gcnr(p.input, p.lesion, p.background))
    assert min(g_t) > 0.5, g_t
    assert np.mean(g_i) < np.mean(g_t), (g_i, g_t)


def test_gcnr_helper_extremes():
    img = np.zeros((4, 4), np.float32)
    img[:, 2:] = 1.0
    a = np.zeros((4, 4), bool)
    a[:, :2] = True
    assert gcnr(img, a, ~a) == pytest.approx(1.0)
    assert gcnr(img, a, a) == pytest.approx(0.0)


def test_deterministic_by_seed():
    a, b, c = render_pair(7), render_pair(7), render_pair(8)
    for f in ("lesion", "background", "homogeneous", "sector"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    # OpenCV's threaded DFT may sum in a schedule-dependent order: equal up to float32 rounding.
    for f in ("input", "target", "envelope_target"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=0, atol=1e-5)
    assert not np.array_equal(a.input, c.input)
    assert not np.array_equal(a.target, c.target)


def test_shapes_ranges_and_alignment():
    for s in SEEDS:
        p = render_pair(s)
        for img in (p.input, p.target):
            assert img.shape == (256, 256) and img.dtype == np.float32
            assert img.min() >= 0.0 and img.max() <= 1.0
            assert np.all(img[~p.sector] == 0.0)
        assert p.sector.mean() > 0.3
        assert not (p.lesion & ~p.sector).any() and not (p.homogeneous & ~p.sector).any()
        # heavily blurred images share structure inside the sector (no mask edge helping)
        inner = cv2.erode(p.sector.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
        bi = cv2.GaussianBlur(p.input, (0, 0), 6)
        bt = cv2.GaussianBlur(p.target, (0, 0), 6)
        assert np.corrcoef(bi[inner], bt[inner])[0, 1] > 0.6
        assert np.corrcoef(bi.ravel(), bt.ravel())[0, 1] > 0.8


def test_render_dataset_stacks_pairs():
    x, y = render_dataset([3, 4], SimConfig(out_hw=(128, 160)))
    assert x.shape == y.shape == (2, 128, 160) and x.dtype == y.dtype == np.float32
    np.testing.assert_array_equal(x[0], render_pair(3, SimConfig(out_hw=(128, 160))).input)


def test_cine_is_temporally_coherent_but_moving():
    frames = list(cine(11, 6, SimConfig(out_hw=(192, 192)), fps=30.0))
    assert len(frames) == 6
    for a, b in zip(frames[:-1], frames[1:]):
        m = a.sector
        ct = np.corrcoef(a.target[m], b.target[m])[0, 1]
        ci = np.corrcoef(a.input[m], b.input[m])[0, 1]
        assert ct > 0.7 and ci > 0.7, (ct, ci)
        assert not np.array_equal(a.target, b.target)
    # two seconds later the tissue has moved: speckle is no longer where it was
    late = list(cine(11, 61, SimConfig(out_hw=(96, 96)), fps=30.0))
    m = late[0].sector
    assert np.corrcoef(late[0].target[m], late[-1].target[m])[0, 1] < 0.9


def test_write_cine_mp4_png_dcm(tmp_path):
    frames = [to_uint8(f.target) for f in cine(2, 5, SimConfig(out_hw=(96, 128)))]
    paths = write_cine(tmp_path, frames, 25.0, ("mp4", "png"), stem="loop")
    mp4 = tmp_path / "loop.mp4"
    assert mp4 in paths and mp4.stat().st_size > 0
    cap = cv2.VideoCapture(str(mp4))
    n = 0
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        assert fr.shape[:2] == (96, 128)
        n += 1
    cap.release()
    assert n == 5
    pngs = sorted(tmp_path.glob("loop_*.png"))
    assert [p.name for p in pngs] == [f"loop_{i:05d}.png" for i in range(5)]
    np.testing.assert_array_equal(cv2.imread(str(pngs[3]), cv2.IMREAD_GRAYSCALE), frames[3])

    pydicom = pytest.importorskip("pydicom")
    (dcm,) = write_cine(tmp_path, frames, 25.0, ("dcm",), stem="loop")
    ds = pydicom.dcmread(dcm)
    assert ds.pixel_array.shape == (5, 96, 128)
    np.testing.assert_array_equal(ds.pixel_array, np.stack(frames))
    assert ds.Modality == "US" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1"
    assert ds.PhotometricInterpretation == "MONOCHROME2" and int(ds.NumberOfFrames) == 5
    assert float(ds.FrameTime) == pytest.approx(40.0)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


def test_write_cine_dicom_without_pydicom_is_a_config_error(tmp_path, monkeypatch):
    import builtins

    from ganrt.runtime.errors import ConfigError

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] == "pydicom":
            raise ImportError("blocked")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ConfigError, match="pydicom"):
        write_cine(tmp_path, [np.zeros((8, 8), np.uint8)], 10.0, ("dcm",))
