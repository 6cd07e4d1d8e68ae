"""The DICOM Sequence of Ultrasound Regions: read, checked against the frame, used as the imaging
region (refined by detection inside it), and rescaled in a super-resolution output series."""

from __future__ import annotations

import json

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from bundles import make_bundle  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from scenes import ui_cine  # noqa: E402
from test_dicom_io import PROV, _run, pydicom_file, read_all, write_dicom  # noqa: E402

from ganrt.runtime.frames import Frame, FrameMeta, FrameResult, Outcome  # noqa: E402
from ganrt.runtime.sinks.dicom.sink import DicomSink  # noqa: E402
from ganrt.runtime.sources import open_source  # noqa: E402
from ganrt.runtime.trust.region import RegionConfig, RegionMode, RegionTracker  # noqa: E402
from ganrt.runtime.trust.us_regions import UsRegion, read_regions, tissue_boxes  # noqa: E402

AUTO = RegionConfig(RegionMode.AUTO)


def _item(fmt: int, typ: int, box: tuple[int, int, int, int], delta: float = 0.02) -> Dataset:
    it = Dataset()
    it.RegionSpatialFormat, it.RegionDataType, it.RegionFlags = fmt, typ, 0
    (it.RegionLocationMinX0, it.RegionLocationMinY0, it.RegionLocationMaxX1, it.RegionLocationMaxY1) = box
    it.PhysicalUnitsXDirection = it.PhysicalUnitsYDirection = 3  # cm
    it.PhysicalDeltaX = it.PhysicalDeltaY = delta
    it.ReferencePixelX0, it.ReferencePixelY0 = 10, 0
    return it


def _sector_cine(tmp_path, n: int = 16):
    """The simulated cine with its UI, as an ultrasound DICOM whose tissue region is the sector's
    bounding box (plus an ECG strip region): a file whose regions fit its frames."""
    frames, sector, ui = ui_cine(n)
    ys, xs = np.nonzero(sector)
    box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    regions = [_item(1, 1, box), _item(4, 10, (20, 240, 235, 254), 0.01)]
    path = write_dicom(tmp_path / "sector.dcm", np.stack(frames), Modality="US",
                       SequenceOfUltrasoundRegions=regions)
    return path, frames, sector, box


def test_regions_read_and_checked_against_the_frame():
    regs = (UsRegion(1, 1, 10, 20, 109, 99, 0.02, 0.02, 3, 3), UsRegion(4, 10, 0, 110, 119, 127))
    images, why = tissue_boxes(regs, (128, 120))
    assert why == "" and images == regs[:1] and images[0].box == (10, 20, 100, 80)
    assert images[0].spacing_mm() == pytest.approx((0.2, 0.2))
    assert tissue_boxes(regs, (100, 120))[1].startswith("region wave")  # the ECG strip is below a 100-row frame
    assert "no 2D tissue" in tissue_boxes(regs[1:], (128, 120))[1]
    assert "too small" in tissue_boxes((UsRegion(1, 1, 0, 0, 5, 5),), (128, 120))[1]


@pytest.mark.parametrize("name, hw", [("examples_ybr_color.dcm", (240, 320)), ("examples_palette.dcm", (350, 800))])
def test_real_files_whose_regions_describe_another_pixel_grid_are_rejected(name, hw):
    """The echo cine is a 320x240 copy of a 640x480 acquisition; the OB still was cut at 350 rows
    while its regions reach row 576: both keep the original's coordinates."""
    regs = read_regions(pydicom.dcmread(pydicom_file(name), stop_before_pixels=True))
    assert regs and regs[0].is_image
    images, why = tissue_boxes(regs, hw)
    assert images == () and f"outside the {hw[1]}x{hw[0]} frame" in why


def test_real_echo_cine_falls_back_to_motion_and_says_why():
    src = open_source(pydicom_file("examples_ybr_color.dcm"))
    frames = [f.pixels for f in read_all(src)][:15]
    region = RegionTracker(AUTO.for_source(src)).prime(frames)
    assert region.source == "auto-motion-lookahead" and "outside the 320x240 frame" in region.note
    assert region.to_dict()["note"] == region.note and 0.1 < region.area_fraction < 0.6


def test_fitting_regions_are_used_inside_their_rectangle_without_the_fans_corners(tmp_path):
    path, frames, sector, (x0, y0, x1, y1) = _sector_cine(tmp_path)
    src = open_source(str(path))
    assert src.us_regions[0].is_image and src.frames_read == 0
    assert src.meta.pixel_spacing_mm == pytest.approx((0.2, 0.2))  # 0.02 cm: the regions fit the frame
    region = RegionTracker(AUTO.for_source(src)).prime(frames[:15])
    src.close()
    assert region.source == "dicom-us-regions-lookahead" and region.note == ""
    m = region.mask > 0
    rect = np.zeros_like(m)
    rect[y0:y1 + 1, x0:x1 + 1] = True
    assert not (m & ~rect).any()  # nothing outside the file's rectangle
    assert not m[y1, x0] and not m[y1, x1]  # the black corners beside the fan's arc are not tissue
    inter, union = (m & sector).sum(), (m | sector).sum()
    assert inter / union > 0.9
    # a single frame (a still) uses the rectangle too, refined by the still detector
    still = RegionTracker(RegionConfig(RegionMode.AUTO, frames=1).for_source(src)).region_for(0, frames[0])
    assert still.source == "dicom-us-regions" and not (still.mask[~rect] > 0).any()


def test_the_hint_is_for_auto_only_and_reaches_the_run(tmp_path, capsys):
    path, _, _, _ = _sector_cine(tmp_path)
    src = open_source(str(path))
    assert RegionConfig(RegionMode.FULL).for_source(src).us_regions == ()  # --region full: the user's word
    src.close()
    bundle = make_bundle(tmp_path / "b")
    rc, _, err = _run(capsys, "run", "--source", str(path), "--model", str(bundle), "--out", str(tmp_path / "o"),
                      "--sink", "null", "--budget-ms", "2000")  # an ultrasound bundle: auto by default
    assert rc == 0, err
    regions = json.loads((tmp_path / "o" / "report.json").read_text())["imaging_region"]
    assert [r["source"] for r in regions] == ["dicom-us-regions-lookahead"]


# --- super-resolution output ------------------------------------------------------------------------
def _header(hw: tuple[int, int]) -> Dataset:
    ds = pydicom.dcmread(pydicom_file("examples_ybr_color.dcm"), stop_before_pixels=True)
    ds.Rows, ds.Columns = hw
    ds.PixelSpacing = [0.3, 0.25]
    ds.SequenceOfUltrasoundRegions = [_item(1, 1, (10, 5, 69, 44), 0.025)]
    return ds


def _write(tmp_path, header, out_hw):
    sink = DicomSink(tmp_path / "sr.dcm", provenance=PROV, overlay=False, source_header=header, source_hw=(48, 80))
    px = np.zeros((*out_hw, 3), np.uint8)
    sink.write(Frame(0, 0, px, FrameMeta()), FrameResult(0, Outcome.ENHANCED, pixels=px))
    sink.close()
    return pydicom.dcmread(sink.files[0])


def test_super_resolution_series_keeps_measurements_right(tmp_path):
    header = _header((48, 80))
    ds = _write(tmp_path, header, (96, 160))  # a 2x model
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.15, 0.125])
    r = ds.SequenceOfUltrasoundRegions[0]
    assert (r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1) == \
        (20, 10, 139, 89)  # the same tissue: 60x40 source pixels are 120x80 output pixels
    assert (r.ReferencePixelX0, r.ReferencePixelY0) == (20, 0)
    assert r.PhysicalDeltaX == pytest.approx(0.0125) and r.PhysicalDeltaY == pytest.approx(0.0125)
    # a caliper across the region keeps its length in cm
    assert 60 * 0.025 == pytest.approx(120 * r.PhysicalDeltaX)
    src = header.SequenceOfUltrasoundRegions[0]  # the source header is not edited
    assert src.RegionLocationMaxX1 == 69 and src.PhysicalDeltaX == 0.025 and list(header.PixelSpacing) == [0.3, 0.25]
    region_check = tissue_boxes(read_regions(ds), (96, 160))
    assert region_check[1] == ""  # the rescaled regions fit the output frames


def test_geometry_is_dropped_when_the_output_is_not_a_whole_multiple(tmp_path):
    ds = _write(tmp_path, _header((48, 80)), (72, 120))  # 1.5x: no exact pixel correspondence
    assert "PixelSpacing" not in ds and "SequenceOfUltrasoundRegions" not in ds
    same = _write(tmp_path, _header((48, 80)), (48, 80))
    assert same.SequenceOfUltrasoundRegions[0].RegionLocationMaxX1 == 69
