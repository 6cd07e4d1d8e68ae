"""The DICOM Sequence of Ultrasound Regions (0018,6011): where the scanner says its image areas are.

An ultrasound file may describe each area of its frame: a 2D tissue or colour-flow image, an
M-mode strip, a spectral Doppler trace, an ECG trace, grey and colour bars (PS3.3 C.8.5.5.1,
the enumerated values of Region Spatial Format and Region Data Type are below). Each comes as
a bounding rectangle in pixels (Min X0/Y0 .. Max X1/Y1, inclusive) with its physical scale
(Physical Delta X/Y in the Physical Units of each direction).

Files are often resized or cropped after acquisition (a 640x480 acquisition stored as a
320x240 cine; a still cut below its ECG strip) while the sequence still describes the
original pixel grid. So ``tissue_boxes`` validates the sequence against the frame first: one
rectangle outside the frame, or no 2D tissue area of a plausible size, rejects it all, with a
reason for the report, and region detection is used instead.

``rescale_regions`` writes the sequence for a frame enlarged ``s`` times (a super-resolution
output): coordinates times ``s``, physical deltas divided by ``s``, so measurements hold.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class SpatialFormat(IntEnum):  # Region Spatial Format (0018,6012)
    NONE = 0
    TWO_D = 1  # 2D (tissue or flow)
    M_MODE = 2
    SPECTRAL = 3
    WAVEFORM = 4
    GRAPHICS = 5


class DataType(IntEnum):  # Region Data Type (0018,6014), the values the region logic looks at
    NONE = 0
    TISSUE = 1
    COLOR_FLOW = 2
    PW_SPECTRAL = 3
    CW_SPECTRAL = 4
    ECG = 10
    GRAY_BAR = 13
    COLOR_BAR = 14


UNITS_CM = 3  # Physical Units X/Y Direction (0018,6024/6026): 3 = cm
# Image areas the model may enhance: 2D tissue, and 2D colour flow (its grey background is tissue;
# its colour pixels pass through unchanged anyway, see graphics.overlay_mask).
IMAGE_TYPES = frozenset({DataType.TISSUE, DataType.COLOR_FLOW})
MIN_AREA_FRACTION = 0.02  # a tissue rectangle smaller than this is not an imaging area

# Attributes of a region item that are pixel positions (scaled with the frame) or per-pixel sizes.
PIXEL_POSITIONS = ("RegionLocationMinX0", "RegionLocationMinY0", "ReferencePixelX0", "ReferencePixelY0",
                   "DopplerSampleVolumeXPosition", "DopplerSampleVolumeYPosition", "TMLinePositionX0",
                   "TMLinePositionY0", "TMLinePositionX1", "TMLinePositionY1")
PIXEL_ENDS = ("RegionLocationMaxX1", "RegionLocationMaxY1")  # inclusive: the last pixel of the scaled area
PIXEL_SIZES = ("PhysicalDeltaX", "PhysicalDeltaY")


@dataclass(frozen=True)
class UsRegion:
    """One item of the sequence (pixel bounds inclusive, as in the file)."""

    spatial_format: int
    data_type: int
    x0: int
    y0: int
    x1: int
    y1: int
    delta_x: float | None = None
    delta_y: float | None = None
    units_x: int | None = None
    units_y: int | None = None

    @property
    def is_image(self) -> bool:
        return self.spatial_format == SpatialFormat.TWO_D and self.data_type in IMAGE_TYPES

    @property
    def label(self) -> str:
        fmt = SpatialFormat(self.spatial_format).name if self.spatial_format in SpatialFormat._value2member_map_ \
            else str(self.spatial_format)
        typ = DataType(self.data_type).name if self.data_type in DataType._value2member_map_ else str(self.data_type)
        return f"{fmt.lower()}/{typ.lower()} ({self.x0},{self.y0})-({self.x1},{self.y1})"

    def fits(self, hw: tuple[int, int]) -> bool:
        H, W = hw
        return 0 <= self.x0 <= self.x1 < W and 0 <= self.y0 <= self.y1 < H

    @property
    def box(self) -> tuple[int, int, int, int]:
        """x, y, width, height (exclusive end)."""
        return self.x0, self.y0, self.x1 - self.x0 + 1, self.y1 - self.y0 + 1

    def spacing_mm(self) -> tuple[float, float] | None:
        """(row, column) pixel spacing in mm when both directions are in cm."""
        if self.delta_x and self.delta_y and self.units_x == UNITS_CM and self.units_y == UNITS_CM:
            return abs(self.delta_y) * 10.0, abs(self.delta_x) * 10.0
        return None


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def read_regions(ds: Any) -> tuple[UsRegion, ...]:
    """The sequence's items (a pydicom Dataset); items missing a required value are left out."""
    out = []
    for item in ds.get("SequenceOfUltrasoundRegions") or ():
        vals = [_int(item.get(k)) for k in ("RegionSpatialFormat", "RegionDataType", "RegionLocationMinX0",
                                             "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")]
        if any(v is None for v in vals):
            continue
        out.append(UsRegion(*vals, delta_x=_float(item.get("PhysicalDeltaX")),
                            delta_y=_float(item.get("PhysicalDeltaY")),
                            units_x=_int(item.get("PhysicalUnitsXDirection")),
                            units_y=_int(item.get("PhysicalUnitsYDirection"))))
    return tuple(out)


def tissue_boxes(regions: Sequence[UsRegion], hw: tuple[int, int]) -> tuple[tuple[UsRegion, ...], str]:
    """The 2D tissue / colour-flow regions of a ``hw`` frame and ``""``; or ``()`` and why the
    sequence does not describe this frame (or has no image area)."""
    if not regions:
        return (), "no ultrasound regions"
    outside = [r for r in regions if not r.fits(hw)]
    if outside:
        return (), (f"region {outside[0].label} lies outside the {hw[1]}x{hw[0]} frame "
                    f"(the file describes another pixel grid: resized or cropped)")
    images = [r for r in regions if r.is_image]
    if not images:
        return (), "no 2D tissue or colour-flow region"
    H, W = hw
    small = [r for r in images if r.box[2] * r.box[3] < MIN_AREA_FRACTION * H * W]
    if small:
        return (), f"region {small[0].label} is too small to be an image area"
    return tuple(images), ""


def spacing_for(regions: Sequence[UsRegion], hw: tuple[int, int]) -> tuple[float, float] | None:
    """Pixel spacing (mm) from the first tissue region, only when the sequence fits the frame (a
    resized file's deltas belong to its original pixels)."""
    images, _ = tissue_boxes(regions, hw)
    for r in images:
        if (s := r.spacing_mm()) is not None:
            return s
    return None


def rescale_regions(seq: Any, s: int) -> Any:
    """A copy of a Sequence of Ultrasound Regions for frames enlarged ``s`` times (pydicom items)."""
    out = copy.deepcopy(seq)
    for item in out:
        for kw in PIXEL_POSITIONS:
            if kw in item and item[kw].value is not None:
                setattr(item, kw, int(item[kw].value) * s)
        for kw in PIXEL_ENDS:
            if kw in item and item[kw].value is not None:
                setattr(item, kw, (int(item[kw].value) + 1) * s - 1)
        for kw in PIXEL_SIZES:
            if kw in item and item[kw].value is not None:
                setattr(item, kw, float(item[kw].value) / s)
    return out


def rescale_spacing(spacing: Any, s: int) -> list[float]:
    """PixelSpacing (row, column) for frames enlarged ``s`` times."""
    return [float(v) / s for v in spacing]
