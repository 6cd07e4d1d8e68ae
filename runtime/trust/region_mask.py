"""The region's types: ``Box`` (a rectangle in pixels) and ``Region`` (a frame size's mask, its
bounding box and the crops of both the model sees). What a region is: region.py."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np

from .graphics import overlay_mask


class Box(NamedTuple):
    x: int
    y: int
    w: int
    h: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)

    def scaled(self, s: int) -> Box:
        return Box(self.x * s, self.y * s, self.w * s, self.h * s)


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
    def whole(cls, hw: tuple[int, int], source: str = "full", from_frame: int = 0) -> Region:
        return cls(hw, None, Box(0, 0, hw[1], hw[0]), source, from_frame)

    @classmethod
    def from_mask(cls, mask: np.ndarray, source: str, from_frame: int = 0, carved_px: int = 0,
                  note: str = "") -> Region | None:
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
