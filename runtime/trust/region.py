"""The imaging region: the part of a frame the model may change (ultrasound sector, scope circle).

Everything outside it is scanner UI (text, depth scale, patient data) or black surround, and
leaves the pipeline exactly as it came in. A region comes from the device profile or
``--region``: ``full`` (the whole frame), a rectangle, a polygon, a mask image, or ``auto``:

- **auto, from motion** (the usual case): the per-pixel temporal standard deviation over the
  first ``frames`` frames. Speckle and tissue change from frame to frame; burned-in UI does
  not. Moving pixels -> morphological opening (drops compression noise around text) ->
  largest connected component -> convex hull (fills anechoic cysts and the dark, barely
  moving edges of a sector). Static marks *inside* the hull that are bright or coloured
  (calipers, in-sector labels) are carved out, so they pass through unchanged too (so does
  a bright reflector that did not move while frames were collected: the safe direction).
- **auto, from one frame** (a still image, a frozen loop, ``auto:1``): intensity after a
  median filter (which erases thin text strokes) -> opening -> the component shaped most like
  an image area (large, solid; not a full-width header or toolbar band, not a line of text) ->
  hull. On a clean digital black background the threshold is black itself, so a fan whose deep
  part is anechoic is found whole (region_detect.py).
- **auto, from the file** (a DICOM source with a Sequence of Ultrasound Regions): its 2D tissue
  and colour-flow rectangles, after checking that they fit the frame (files resized or cropped
  after acquisition keep the original's coordinates: those are rejected, with the reason in the
  region's ``note``), and inside each rectangle the region detected there (a rectangle bounds a
  fan; its black corners and any text inside it are not tissue). Source ``dicom-us-regions``.
- Neither finds a plausible region (a blank stream): the whole frame, with a warning.

While auto-detection collects its frames, those frames are shown **raw** (reason
``region-pending``): a full-frame enhancement would touch the UI it is about to protect,
and the guarantee "outside is untouched" then holds for every frame. At 30 fps the default
15 frames are half a second. A source that says it has fewer frames collects only those; a
change of frame size starts detection again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from ..errors import ConfigError
from .graphics import overlay_mask
from .region_detect import (MIN_AREA_FRACTION, detect_in_boxes, detect_motion, detect_still, luma_u8,  # noqa: F401
                            static_marks)
from .us_regions import UsRegion, tissue_boxes

log = logging.getLogger(__name__)

DEFAULT_FRAMES = 15  # half a second at 30 fps: enough speckle decorrelation to separate it from UI
# detection's thresholds live with the detectors (region_detect.py)


class RegionMode(Enum):
    AUTO = "auto"
    FULL = "full"
    RECT = "rect"
    POLYGON = "polygon"
    MASK = "mask"


# The region a bundle gets when neither --region nor the profile's [region] names one, by the
# modality its manifest is for. Ultrasound frames carry scanner text, scales and calipers around
# and inside the sector: detect the image area (no UI pixel is touched unless --region full).
# Anything else (colour endoscopy: the scope's circle fills the frame) keeps the whole frame.
DEFAULT_MODE_BY_MODALITY: dict[str, RegionMode] = {"US": RegionMode.AUTO}


class Box(NamedTuple):
    x: int
    y: int
    w: int
    h: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)

    def scaled(self, s: int) -> "Box":
        return Box(self.x * s, self.y * s, self.w * s, self.h * s)


@dataclass(frozen=True)
class RegionConfig:
    mode: RegionMode = RegionMode.FULL
    frames: int = DEFAULT_FRAMES  # auto: frames collected before the region is fixed
    rect: Box | None = None
    polygon: tuple[tuple[int, int], ...] = ()
    mask: Path | None = None  # nonzero pixels are inside
    carve_marks: bool = True  # auto: static bright/coloured marks inside the sector stay untouched
    # auto: the source's DICOM ultrasound regions (checked against each frame size before use)
    us_regions: tuple[UsRegion, ...] = ()

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ConfigError(f"region frames must be >= 1 (got {self.frames})")
        need = {RegionMode.RECT: self.rect, RegionMode.POLYGON: self.polygon, RegionMode.MASK: self.mask}
        if self.mode in need and not need[self.mode]:
            raise ConfigError(f"region mode {self.mode.value} needs its '{self.mode.value}' value")
        if self.rect is not None and (self.rect.w < 1 or self.rect.h < 1):
            raise ConfigError(f"region rectangle needs a positive width and height (got {tuple(self.rect)})")
        if self.mode is RegionMode.POLYGON and len(self.polygon) < 3:
            raise ConfigError("region polygon needs at least 3 points")
        if self.mode is RegionMode.MASK and not self.mask.is_file():
            raise ConfigError(f"region mask {self.mask} does not exist")

    @classmethod
    def parse(cls, text: str, base: "RegionConfig | None" = None) -> "RegionConfig":
        """``--region auto[:FRAMES] | full | X,Y,W,H`` (other settings kept from ``base``)."""
        base = base or cls()
        t = text.strip().lower()
        keep = dict(frames=base.frames, carve_marks=base.carve_marks, us_regions=base.us_regions)
        if t == "full":
            return cls(RegionMode.FULL, **keep)
        if t == "auto" or t.startswith("auto:"):
            n = t.partition(":")[2]
            try:
                keep["frames"] = int(n) if n else base.frames
            except ValueError:
                raise ConfigError(f"--region {text!r}: auto:FRAMES needs a whole number") from None
            return cls(RegionMode.AUTO, **keep)
        try:
            vals = [int(v) for v in t.split(",")]
        except ValueError:
            vals = []
        if len(vals) != 4:
            raise ConfigError(f"--region {text!r}: expected auto[:FRAMES], full or X,Y,W,H in pixels")
        return cls(RegionMode.RECT, rect=Box(*vals), **keep)

    @classmethod
    def default_for(cls, modality: str) -> "RegionConfig":
        """The default region for a bundle whose frames are of ``modality`` (see DEFAULT_MODE_BY_MODALITY)."""
        return cls(DEFAULT_MODE_BY_MODALITY.get(modality, RegionMode.FULL))

    def for_source(self, source: object) -> "RegionConfig":
        """This config with what ``source`` says of its image areas (a DICOM file's ultrasound
        regions, ``source.us_regions``): used by auto detection only."""
        hint = tuple(getattr(source, "us_regions", None) or ())
        if self.mode is not RegionMode.AUTO or not hint:
            return self
        return replace(self, us_regions=hint)

    @classmethod
    def from_dict(cls, raw: dict, where: str, base_dir: Path | None = None) -> "RegionConfig":
        """The profile's ``[region]`` table (keys already checked by the profile loader)."""
        try:
            mode = RegionMode(raw.get("mode", "full"))
        except ValueError:
            choices = ", ".join(m.value for m in RegionMode)
            raise ConfigError(f"{where}: region.mode {raw.get('mode')!r} is not one of: {choices}") from None
        rect = raw.get("rect")
        poly = raw.get("polygon", ())
        if rect is not None and not (isinstance(rect, list) and len(rect) == 4
                                     and all(isinstance(v, int) for v in rect)):
            raise ConfigError(f"{where}: region.rect must be [x, y, width, height] in pixels")
        if not (isinstance(poly, (list, tuple)) and all(isinstance(p, list) and len(p) == 2
                                                       and all(isinstance(v, int) for v in p) for p in poly)):
            raise ConfigError(f"{where}: region.polygon must be a list of [x, y] points")
        mask = raw.get("mask")
        if mask is not None:
            mask = Path(mask)
            if not mask.is_absolute() and base_dir is not None:
                mask = base_dir / mask
        try:
            return cls(mode, frames=int(raw.get("frames", DEFAULT_FRAMES)), rect=Box(*rect) if rect else None,
                       polygon=tuple((int(x), int(y)) for x, y in poly), mask=mask,
                       carve_marks=bool(raw.get("carve_marks", True)))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True, eq=False)  # identity equality: a region is a cache key
class Region:
    hw: tuple[int, int]
    mask: np.ndarray | None  # uint8 0/255, HxW; None = the whole frame
    box: Box  # tight bounding box of the mask
    source: str  # how it was found: full, rect, polygon, mask, auto-motion, auto-still, auto-none
    from_frame: int = 0
    carved_px: int = 0  # static marks removed from an auto region
    note: str = ""  # why a source's own description of its regions was not used
    _crops: dict = field(default_factory=dict, repr=False)

    @classmethod
    def whole(cls, hw: tuple[int, int], source: str = "full", from_frame: int = 0) -> "Region":
        return cls(hw, None, Box(0, 0, hw[1], hw[0]), source, from_frame)

    @classmethod
    def from_mask(cls, mask: np.ndarray, source: str, from_frame: int = 0, carved_px: int = 0,
                  note: str = "") -> "Region | None":
        m = np.where(mask > 0, np.uint8(255), np.uint8(0))
        pts = cv2.findNonZero(m)
        if pts is None:
            return None
        if cv2.countNonZero(m) == m.size:
            return replace(cls.whole(m.shape[:2], source, from_frame), note=note)
        m.setflags(write=False)
        return cls(m.shape[:2], m, Box(*cv2.boundingRect(pts)), source, from_frame, carved_px, note)

    @property
    def full(self) -> bool:
        return self.mask is None

    @property
    def found(self) -> bool:
        """False for the whole-frame fallback of a failed auto-detection (nothing to protect from)."""
        return self.source != "auto-none"

    @property
    def area_fraction(self) -> float:
        if self.mask is None:
            return 1.0
        return cv2.countNonZero(self.mask) / float(self.mask.size)

    def crop_box(self, multiple: int) -> Box:
        """The bounding box grown to a multiple of ``multiple`` with real pixels around it (so the
        model sees context, not padding), kept inside the frame; the whole frame when full."""
        H, W = self.hw
        if self.mask is None:
            return Box(0, 0, W, H)
        x, y, w, h = self.box

        def grow(lo: int, n: int, size: int) -> tuple[int, int]:
            n2 = min(size, -(-n // multiple) * multiple)
            lo2 = max(0, min(lo - (n2 - n) // 2, size - n2))
            return lo2, n2

        x, w = grow(x, w, W)
        y, h = grow(y, h, H)
        return Box(x, y, w, h)

    def mask_in(self, box: Box, scale: int = 1) -> np.ndarray | None:
        """The mask cut to ``box`` (input pixels), enlarged ``scale`` times (nearest); cached."""
        if self.mask is None:
            return None
        key = (box, scale)
        m = self._crops.get(key)
        if m is None:
            m = self.mask[box.slices]
            if scale > 1:
                m = cv2.resize(m, (m.shape[1] * scale, m.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
            m = np.ascontiguousarray(m)
            m.setflags(write=False)
            self._crops[key] = m
        return m

    def enhance_mask(self, box: Box, crop: np.ndarray, scale: int = 1, bits: int = 16) -> np.ndarray | None:
        """Where the model's output for ``box`` may be shown (uint8 0/255 at the output size): the
        mask cut to the box, less this frame's own graphics (``graphics.overlay_mask`` of ``crop``,
        the frame's pixels in ``box``), enlarged ``scale`` times. None: everywhere in the box."""
        region = self.mask_in(box, scale)
        marks = overlay_mask(crop, bits)
        if marks is None:
            return region
        if scale > 1:
            marks = cv2.resize(marks, (marks.shape[1] * scale, marks.shape[0] * scale),
                               interpolation=cv2.INTER_NEAREST)
        keep = cv2.bitwise_not(marks)
        return keep if region is None else cv2.bitwise_and(region, keep)

    def to_dict(self) -> dict:
        out = {"source": self.source, "from_frame": self.from_frame, "hw": list(self.hw),
               "bbox": list(self.box), "area_fraction": round(self.area_fraction, 4), "carved_px": self.carved_px}
        if self.note:
            out["note"] = self.note
        return out


class _Collector:
    """Running sums of grey frames for the temporal mean and std (OpenCV accumulate: no loops).
    float32 sums of 8-bit values and their squares stay exact for 250 frames."""

    def __init__(self, hw: tuple[int, int], need: int, start: int) -> None:
        self.hw, self.need, self.start = hw, need, start
        self.sum = np.zeros(hw, np.float32)
        self.sq = np.zeros(hw, np.float32)
        self.n = 0
        self.last: np.ndarray | None = None

    def add(self, gray: np.ndarray, pixels: np.ndarray) -> None:
        cv2.accumulate(gray, self.sum)
        cv2.accumulateSquare(gray, self.sq)
        self.n += 1
        self.last = pixels

    @property
    def done(self) -> bool:
        return self.n >= self.need

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        mean = cv2.multiply(self.sum, 1.0 / self.n)
        var = cv2.subtract(cv2.multiply(self.sq, 1.0 / self.n), cv2.multiply(mean, mean))
        return mean, cv2.sqrt(cv2.max(var, 0.0))


def _from_us_regions(regions: Sequence[UsRegion], gray: np.ndarray, std: np.ndarray | None
                     ) -> tuple[np.ndarray | None, str]:
    """The region inside the source's DICOM ultrasound regions, or None and why they were not used."""
    if not regions:
        return None, ""
    images, why = tissue_boxes(regions, gray.shape[:2])
    if not images:
        return None, f"DICOM ultrasound regions not used: {why}"
    mask = detect_in_boxes([r.box for r in images], gray, std)
    if mask is None or cv2.countNonZero(mask) < MIN_AREA_FRACTION * mask.size:
        return None, "DICOM ultrasound regions not used: their rectangles are black in this frame"
    return mask, ""


def detect(collector: _Collector, gray_last: np.ndarray, carve: bool, frame_index: int,
           us_regions: Sequence[UsRegion] = ()) -> Region:
    """The auto region from collected frames: the source's DICOM ultrasound regions (refined by
    detection inside them) when they fit the frame, else motion, else one frame, else the whole frame."""
    mean, std = collector.stats()
    moving = collector.n > 1
    hull, note = _from_us_regions(us_regions, gray_last, std if moving else None)
    source = "dicom-us-regions"
    if note:
        log.warning("frames %d-%d: %s; detecting the region instead", collector.start, frame_index, note)
    if hull is None:
        hull, source = (detect_motion(std) if moving else None), "auto-motion"
    if hull is None:
        hull, source = detect_still(gray_last), "auto-still"
    if hull is None:
        log.warning("no imaging region found in frames %d-%d; enhancing the whole frame",
                    collector.start, frame_index)
        return replace(Region.whole(collector.hw, "auto-none", frame_index), note=note)
    carved = 0
    if carve and moving and source != "auto-still" and collector.last is not None:
        marks = static_marks(mean, std, collector.last, hull)
        carved = cv2.countNonZero(marks)
        if carved:
            hull = cv2.subtract(hull, marks)
    region = Region.from_mask(hull, source, frame_index, carved, note)
    return region if region is not None else Region.whole(collector.hw, "auto-none", frame_index)


def _read_mask(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ConfigError(f"region mask {path} cannot be read as an image")
    return np.where(img > 0, np.uint8(255), np.uint8(0))


def _fixed_mask(config: RegionConfig, hw: tuple[int, int], mask_file: np.ndarray | None) -> np.ndarray | None:
    if config.mode is RegionMode.MASK:
        return mask_file if mask_file is not None and mask_file.shape == hw else None
    m = np.zeros(hw, np.uint8)
    if config.mode is RegionMode.RECT:
        x, y, w, h = config.rect
        m[max(0, y):max(0, y + h), max(0, x):max(0, x + w)] = 255
    elif config.mode is RegionMode.POLYGON:
        cv2.fillPoly(m, [np.array(config.polygon, np.int32)], 255)
    return m


class RegionOutside(Exception):
    """The configured region does not cover any pixel of this frame (the frame is shown raw)."""


class RegionTracker:
    """Gives each frame its region: fixed ones per frame size, auto ones once detected.

    ``region_for`` returns None while auto-detection is still collecting frames."""

    def __init__(self, config: RegionConfig = RegionConfig(), *, expected_frames: int | None = None,
                 bits: int = 16) -> None:
        self.config, self.expected, self.bits = config, expected_frames, bits
        self.history: list[Region] = []  # every region used, in order (for the report)
        self._fixed: dict[tuple[int, int], Region | None] = {}
        self._current: Region | None = None
        self._collector: _Collector | None = None
        self._mask_file = _read_mask(config.mask) if config.mode is RegionMode.MASK else None

    @property
    def auto(self) -> bool:
        return self.config.mode is RegionMode.AUTO

    @property
    def current(self) -> Region | None:
        return self._current

    def _use(self, region: Region) -> Region:
        if region is not self._current:
            self._current = region
            self.history.append(region)
        return region

    def region_for(self, index: int, pixels: np.ndarray) -> Region | None:
        hw = (int(pixels.shape[0]), int(pixels.shape[1]))
        if self._current is not None and self._current.hw == hw:
            return self._current
        if self.config.mode is RegionMode.FULL:
            return self._use(Region.whole(hw, "full", index))
        if not self.auto:
            if hw not in self._fixed:
                m = _fixed_mask(self.config, hw, self._mask_file)
                self._fixed[hw] = Region.from_mask(m, self.config.mode.value, index) if m is not None else None
            region = self._fixed[hw]
            if region is None:
                raise RegionOutside(f"the {self.config.mode.value} region does not fit a {hw[0]}x{hw[1]} frame")
            return self._use(region)
        return self._collect(index, pixels, hw)

    def _collect(self, index: int, pixels: np.ndarray, hw: tuple[int, int]) -> Region | None:
        c = self._collector
        if c is None or c.hw != hw:
            need = self.config.frames
            if self.expected:  # a short file: collect what it has
                need = max(1, min(need, self.expected - index))
            c = self._collector = _Collector(hw, need, index)
        gray = luma_u8(pixels, self.bits)
        c.add(gray, pixels)
        if not c.done:
            return None
        self._collector = None
        return self._use(detect(c, gray, self.config.carve_marks, index, self.config.us_regions))

    def prime(self, frames: Sequence[np.ndarray]) -> Region | None:
        """Auto mode: detect from frames read ahead (a file source opened a second time), so the
        stream's first frame already has its region instead of waiting ``config.frames`` frames
        raw. Frames of another size than the first are ignored; None when not in auto mode."""
        if not self.auto or not len(frames):
            return None
        hw = (int(frames[0].shape[0]), int(frames[0].shape[1]))
        same = [f for f in frames if f.shape[:2] == hw]
        c = _Collector(hw, len(same), 0)
        for f in same:
            gray = luma_u8(f, self.bits)
            c.add(gray, f)
        region = detect(c, gray, self.config.carve_marks, 0, self.config.us_regions)
        return self._use(replace(region, source=f"{region.source}-lookahead"))

    def provisional(self, pixels: np.ndarray) -> Region | None:
        """A one-frame guess while auto-detection collects (PHI masking cannot wait); None when
        even that finds nothing."""
        gray = luma_u8(pixels, self.bits)
        hull = _from_us_regions(self.config.us_regions, gray, None)[0]
        if hull is None:
            hull = detect_still(gray)
        return Region.from_mask(hull, "auto-provisional") if hull is not None else None
