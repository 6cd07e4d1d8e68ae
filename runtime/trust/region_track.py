"""The region of each frame over a stream: fixed regions per frame size, auto regions detected
from the first frames collected (region_detect.py finds them), a new detection when the frame size
changes. How auto detection works and why pending frames go out raw: region.py."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError
from .region_config import RegionConfig, RegionMode
from .region_detect import MIN_AREA_FRACTION, detect_in_boxes, detect_motion, detect_still, luma_u8, static_marks
from .region_mask import Region
from .us_regions import UsRegion, tissue_boxes

log = logging.getLogger(__package__ + ".region")  # the region's messages keep the name they are known by


class _Collector:
    """Running sums of grey frames for the temporal mean and std (OpenCV accumulate: no loops).
    float32 sums of 8-bit values and their squares stay exact for 250 frames."""

    def __init__(self, hw: tuple[int, int], need: int, start: int) -> None:
        self.hw, self.need, self.start = hw, need, start
        self.sum = np.zeros(hw, np.float32)
        self.sq = np.zeros(hw, np.float32)
        self.n = 0
        self.last: np.ndarray | None = None
        self.last_index: int | None = None

    def add(self, gray: np.ndarray, pixels: np.ndarray, index: int | None = None) -> None:
        cv2.accumulate(gray, self.sum)
        cv2.accumulateSquare(gray, self.sq)
        self.n += 1
        self.last, self.last_index = pixels, index

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
        if c is not None and c.hw == hw and c.last_index == index:
            return None  # asked twice for one frame (the warm-up looks ahead): collected once
        if c is None or c.hw != hw:
            need = self.config.frames
            if self.expected:  # a short file: collect what it has
                need = max(1, min(need, self.expected - index))
            c = self._collector = _Collector(hw, need, index)
        gray = luma_u8(pixels, self.bits)
        c.add(gray, pixels, index)
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
