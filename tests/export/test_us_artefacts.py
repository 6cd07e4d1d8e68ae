"""Scan formats, acoustic shadowing, probe-fixed clutter and the harmonic look of the simulator."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from ganrt.export.data.phantom import Structure
from ganrt.export.data.simulator import POC_PROBE, ScanFormat, SimConfig, _geometry, _scan_maps, render_pair
from ganrt.export.data.us_artefacts import Clutter
from ganrt.export.data.us_domain import DomainConfig, harmonic, render_domain_pair, scanner


def test_linear_is_a_rectangle_and_curvilinear_a_fan_with_a_curved_face():
    lin = _scan_maps(SimConfig(scan_format=ScanFormat.LINEAR))[2]
    rows, cols = np.nonzero(lin)
    box = lin[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert box.mean() > 0.99  # every pixel of its bounding box is imaged

    curv = _scan_maps(SimConfig(scan_format=ScanFormat.CURVILINEAR, apex_mm=40.0))[2]
    phased = _scan_maps(SimConfig())[2]
    # a phased sector starts at a point; a curved face spans the width, its arc concentric with the
    # bottom's: the face's centre lies deeper than its corners
    top = int(np.nonzero(curv.any(1))[0][0])
    corners = np.nonzero(curv[top])[0]  # the face's two ends are its highest points
    mid = curv.shape[1] // 2
    assert corners.max() - corners.min() > 0.3 * curv.shape[1]
    assert np.nonzero(curv[:, mid])[0][0] > top + 3
    apex = int(np.nonzero(phased.any(1))[0][0])
    assert phased[apex : apex + 3].sum(1).max() < 8


@pytest.mark.parametrize("fmt", list(ScanFormat))
def test_every_format_keeps_pairs_aligned_and_masks_inside(fmt):
    s = render_pair(3, SimConfig(scan_format=fmt))
    assert np.all(s.input[~s.sector] == 0) and np.all(s.target[~s.sector] == 0)
    assert s.lesion.sum() > 50 and s.homogeneous.sum() > 200
    for m in (s.lesion, s.background, s.homogeneous):
        assert not (m & ~s.sector).any()
    # the cyst-like lesions are darker than their ring in both images: the masks sit on the structures
    if Structure.CYST in s.phantom.kinds:
        assert s.target[s.lesion].mean() < s.target[s.background].mean()


def _shadowed_scene(seed_range=range(40)):
    for seed in seed_range:
        s = render_pair(seed, SimConfig(shadow_prob=1.0))
        if s.phantom.shadows:
            return s
    raise AssertionError("no scene took a shadow")


def test_shadow_darkens_the_beams_behind_its_reflector_in_input_and_target():
    s = _shadowed_scene()
    sh = s.phantom.shadows[0]
    g = _geometry(SimConfig())
    r = (np.arange(g.n_r) + 0.5) * g.dz
    th = -g.half + (np.arange(g.n_t) + 0.5) * g.dth
    rr, tt = np.meshgrid(r, th, indexing="ij")
    behind = (np.abs(tt - sh.th_c) < 0.7 * sh.half_width) & (rr > sh.r_start + 3) & (rr < 0.9 * g.depth)
    beside = (np.abs(np.abs(tt - sh.th_c) - 2.5 * sh.half_width) < 0.5 * sh.half_width) & (rr > sh.r_start + 3) \
        & (rr < 0.9 * g.depth) & (np.abs(tt) < g.half)
    assert behind.sum() > 100 and beside.sum() > 100
    # envelope power behind it is far below the power beside it at the same depths (>= 10 dB drawn)
    ratio = np.mean(s.envelope_target[behind] ** 2) / np.mean(s.envelope_target[beside] ** 2)
    assert ratio < 10 ** (-0.5), ratio
    assert Structure.CALCIFICATION.value in np.unique(s.phantom.labels)
    # the speckle and contrast measures leave shadowed pixels out
    _, _, _, x, y = _scan_maps(SimConfig(shadow_prob=1.0))  # the tissue (x, y) of every output pixel
    lit = sh.factor(x, y) > 0.9
    assert not (s.homogeneous & ~lit).any() and not (s.lesion & ~lit).any()


def test_clutter_fills_an_anechoic_chamber_more_in_the_input_than_in_the_target():
    base = SimConfig(chamber_prob=1.0, kinds=frozenset({Structure.LAYER}))
    g = _geometry(base)
    depth = ((np.arange(g.n_r) + 0.5) * g.dz)[:, None]
    raised_in, raised_tg = [], []
    for seed in range(6):
        a, b = render_pair(seed, replace(base, clutter_prob=1.0)), render_pair(seed, base)
        # the chamber's upper part (polar), where the clutter is not hidden by tissue
        dark = (b.phantom.echogenicity < 0.05) & (depth < 0.6 * g.depth)
        if dark.sum() < 200:
            continue
        raised_in.append(float(np.mean(a.envelope_input[dark] ** 2) / np.mean(b.envelope_input[dark] ** 2)))
        raised_tg.append(float(np.mean(a.envelope_target[dark] ** 2) / np.mean(b.envelope_target[dark] ** 2)))
    assert len(raised_in) >= 3
    # haze and bands light up the chamber in the input (drawn levels vary: -13 to -3 dB at the skin)
    assert min(raised_in) > 1.1 and np.median(raised_in) > 1.2, raised_in
    # the compounded target shows 10 dB less of the same clutter
    assert np.median(raised_tg) - 1 < 0.5 * (np.median(raised_in) - 1), (raised_in, raised_tg)


def test_clutter_echo_is_haze_near_the_skin_and_bands_at_multiples_of_the_interface():
    c = Clutter(haze=0.3, haze_mm=10.0, band_mm=6.0, band_echo=0.4, band_decay=0.5, band_width_mm=1.0,
                th_lo=-0.2, th_hi=0.2)
    r = np.linspace(0, 60, 601, dtype=np.float32)
    on, off = c.echo(r, np.zeros_like(r)), c.echo(r, np.full_like(r, 0.5))
    assert off[0] == pytest.approx(0.3) and off[-1] < 1e-3  # haze only, decaying; no bands off the interface
    band = on - off
    for k in (2, 3):
        j = int(np.argmin(np.abs(r - 6.0 * k)))
        assert band[j] > 10 * band[j + 12]  # a peak at k x 6 mm, gone 1.2 mm further
    assert band[int(round(18 * 10))] == pytest.approx(0.5 * band[int(round(12 * 10))], rel=0.05)
    assert c.reach_mm() >= 7 * 6.0


def test_harmonic_probe_narrows_the_beam_and_shows_less_clutter():
    h = harmonic(POC_PROBE)
    assert h.f0_mhz == 2 * POC_PROBE.f0_mhz and h.sigma_lateral_mm < POC_PROBE.sigma_lateral_mm / 1.3
    assert h.clutter_db < POC_PROBE.clutter_db


def test_domain_draws_every_format_and_the_artefacts():
    rng = np.random.default_rng(0)
    cfgs = [scanner(rng, SimConfig()) for _ in range(60)]
    assert {c.scan_format for c in cfgs} == set(ScanFormat)
    assert any(c.probe_poc.f0_mhz > POC_PROBE.f0_mhz for c in cfgs)  # some harmonic inputs
    assert any(c.probe_poc.f0_mhz == POC_PROBE.f0_mhz for c in cfgs)
    dom = DomainConfig()
    assert all(c.shadow_prob == dom.shadow_prob and c.clutter_prob == dom.clutter_prob for c in cfgs)
    assert all(math.isfinite(c.apex_mm) and dom.apex_mm[0] <= c.apex_mm <= dom.apex_mm[1] for c in cfgs)


def test_scanner_smoothing_applies_to_both_images_and_keeps_the_sector_black():
    plain = DomainConfig(text_prob=0.0, jpeg_prob=0.0, smooth_prob=0.0)
    smooth = replace(plain, smooth_prob=1.0, smooth_px=(2.0, 2.0))
    a = render_domain_pair(5, SimConfig(out_hw=(128, 128)), dom=plain)
    b = render_domain_pair(5, SimConfig(out_hw=(128, 128)), dom=smooth)
    inner = cv2.erode(a.sector.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0

    def detail(img):
        return float(np.abs(img - cv2.GaussianBlur(img, (0, 0), 4))[inner].mean())

    assert detail(b.input) < 0.7 * detail(a.input) and detail(b.target) < 0.7 * detail(a.target)
    assert np.all(b.input[~b.sector] == 0)  # no blur leaks out of the sector
    # still tone-neutral: the target's local mean is the (smoothed) input's
    blur = cv2.GaussianBlur
    assert float(np.abs(blur(b.target, (0, 0), 6) - blur(b.input, (0, 0), 6))[inner].mean()) < 0.01
