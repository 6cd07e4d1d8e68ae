"""The imaging region on real scanner output (the ultrasound files pydicom ships) and the default
region a bundle gets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ganrt.runtime.cli.demo import guard_config
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.model.manifest import Manifest, bundled_model_dir
from ganrt.runtime.model.profiles import DeviceProfile
from ganrt.runtime.trust.region import RegionConfig, RegionMode, RegionTracker

pytest.importorskip("pydicom")

from test_dicom_io import pydicom_file, read_all

from ganrt.runtime.sources import open_source


def _region(name: str, frames: int = 15):
    src = open_source(pydicom_file(name))
    pixels = [f.pixels for f in read_all(src)][:frames]
    return RegionTracker(RegionConfig(RegionMode.AUTO).for_source(src)).prime(pixels), pixels[0]


def test_ob_still_gets_its_fan_not_its_header_bar():
    """Philips OB still (800x350, palette colour): a full-width blue header bar on top, text down the
    left, a curvilinear fan whose deep part is anechoic (one level above the black around it)."""
    region, _ = _region("examples_palette.dcm")
    m = region.mask > 0
    assert region.source == "auto-still-lookahead" and 0.3 < region.area_fraction < 0.5
    assert not m[:62].any()  # the header bar
    assert not m[:, :150].any()  # the text column on the left, "Gen OB ... 3/3/4"
    assert not m[80:105, 120:310].any() and not m[64:82, 310:332].any()  # "+ Cist Mag 1.06 cm", the P logo
    assert not m[:, 770:].any()  # the grey scale bar on the right
    assert m[100:120, 420:500].all()  # the bright near field
    assert m[290, 459] and m[300, 498] and m[330, 300] and m[330, 620]  # the calipers' depth, the deep fan


@pytest.mark.parametrize("name, scale", [("examples_jpeg2k.dcm", 1), ("examples_rgb_color.dcm", 2)])
def test_ge_doppler_still_gets_its_tissue_rectangle(name, scale):
    """GE power Doppler (640x480, and the same image at 320x240): a rectangle of tissue between text
    lines above ('IM#2', '78DR78') and 'LYMPH NODE' and a scale below."""
    region, _ = _region(name)
    m = region.mask > 0
    s = lambda v: v // scale  # noqa: E731 - coordinates given at 640x480
    assert region.source == "auto-still-lookahead" and 0.35 < region.area_fraction < 0.6
    assert not m[:s(104)].any()  # every text line above: the last ('IM#2', '78DR78') ends at row 103
    assert m[s(112), s(320)]  # the tissue begins at row 108
    assert not m[s(355):].any()  # 'LYMPH NODE', the scale bar, 'TIS<0.4 MI=0.8'
    assert m[s(120):s(320), s(60):s(600)].mean() > 0.97  # the tissue, colour boxes included


def test_echo_cine_region_is_the_whole_sector_without_its_ui():
    """SonoSite echo cine (320x240, JPEG): its sector's lateral walls barely move (std ~1 level) but
    the black around it and the UI are bit-identical from frame to frame."""
    region, _ = _region("examples_ybr_color.dcm")
    m = region.mask > 0
    assert region.source == "auto-motion-lookahead" and 0.3 < region.area_fraction < 0.45
    assert not m[215:].any() and not m[:32, :70].any()  # the toolbar, 'PLA Gen THI S'
    assert not m[:, 302:].any() and not m[:12].any()  # 'Crd P21 MI 0.9 TIS 0.7', above the apex
    assert m[120, 160] and m[150, 50] and m[150, 290] and m[200, 160]  # the heart, both lateral walls, the arc


# --- the default region --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manifests() -> dict[str, Manifest]:
    return {t: Manifest.load(bundled_model_dir(t)) for t in ("us-enhance", "us-sr2x", "intraop-enhance")}


def test_ultrasound_bundles_detect_the_region_by_default(manifests):
    profile = DeviceProfile.load("cpu-x86-2core")
    assert profile.region is None  # this profile says nothing: the bundle decides
    for task in ("us-enhance", "us-sr2x"):
        assert manifests[task].modality == "US"
        assert guard_config(profile, manifests[task]).region.mode is RegionMode.AUTO
        assert guard_config(profile, manifests[task], region="full").region.mode is RegionMode.FULL
    assert guard_config(profile, manifests["intraop-enhance"]).region.mode is RegionMode.FULL
    assert guard_config(profile, manifests["us-enhance"], mask_phi=True).phi.enabled  # a region to mask around
    with pytest.raises(ConfigError, match="needs an imaging region"):
        guard_config(profile, manifests["intraop-enhance"], mask_phi=True)


def test_a_profiles_region_overrides_the_bundles_default(manifests):
    profile = DeviceProfile.load("cpu-x86-2core")
    full = replace(profile, region=RegionConfig(RegionMode.FULL))
    assert guard_config(full, manifests["us-enhance"]).region.mode is RegionMode.FULL
    auto = replace(profile, region=RegionConfig(RegionMode.AUTO, frames=9))
    got = guard_config(auto, manifests["intraop-enhance"]).region
    assert got.mode is RegionMode.AUTO and got.frames == 9
    assert DeviceProfile.load("jetson-orin-nano").region.mode is RegionMode.AUTO
