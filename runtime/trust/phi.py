"""PHI masking: nothing outside the imaging region leaves the station, except what the profile keeps.

Scanners burn the patient's name, ID, birth date and the institution into the frame around
the sector. ``--mask-phi`` blanks (to black) every pixel outside the imaging region, in the
input and the output that every sink receives, except the rectangles the profile lists in
``[phi] keep`` (a depth scale, a probe label, known to carry no identity).

Why blank everything instead of detecting text: a text detector that misses a word (an
unusual font, low contrast, a colour, text drawn over a gradient, a clock that changes
every second and so is not static) leaks identity, and there is no way to notice; blanking
the outside cannot miss, and the outside holds only scanner UI that an exported image does
not need. While auto-detection of the region is still collecting frames, a one-frame guess
of the region is used; without even that, or when detection found no region at all, everything
but the kept rectangles is blanked. Anything that goes wrong here blanks the whole frame:
masking fails closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..errors import ConfigError
from ..frames import Frame, FrameResult
from .region import Box, Region

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhiConfig:
    enabled: bool = False
    keep: tuple[Box, ...] = ()  # input-pixel rectangles outside the region that stay visible

    @classmethod
    def from_dict(cls, raw: dict, where: str) -> PhiConfig:
        keep = raw.get("keep", [])
        if not (isinstance(keep, list) and all(isinstance(k, list) and len(k) == 4
                                               and all(isinstance(v, int) for v in k) for k in keep)):
            raise ConfigError(f"{where}: phi.keep must be a list of [x, y, width, height] rectangles")
        return cls(enabled=bool(raw.get("enabled", False)), keep=tuple(Box(*k) for k in keep))


def _masked(pixels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """A copy of ``pixels`` that is zero where ``keep`` is 0 (same shape and type)."""
    return cv2.copyTo(pixels, keep).reshape(pixels.shape)


class PhiMasker:
    """Keeps the region (and the kept rectangles) of a frame and its result; blanks the rest."""

    def __init__(self, config: PhiConfig) -> None:
        self.config = config
        self._masks: dict[tuple[int, tuple[int, int], tuple[int, int]], np.ndarray] = {}
        self._regions: dict[int, Region | None] = {}  # id -> region, kept alive while cached
        self.failures = 0

    def _keep_mask(self, region: Region | None, in_hw: tuple[int, int], hw: tuple[int, int]) -> np.ndarray:
        """uint8 0/255 at ``hw`` (``in_hw`` scaled, for a super-resolution output)."""
        key = (id(region), in_hw, hw)
        m = self._masks.get(key)
        if m is None:
            if len(self._masks) > 16:  # sizes or regions changed many times: start over
                self._masks.clear()
                self._regions.clear()
            m = np.zeros(in_hw, np.uint8)
            if region is not None and region.hw == in_hw:
                m = np.full(in_hw, 255, np.uint8) if region.mask is None else region.mask.copy()
            for x, y, w, h in self.config.keep:
                m[max(0, y):max(0, y + h), max(0, x):max(0, x + w)] = 255
            if hw != in_hw:
                m = cv2.resize(m, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
            m.setflags(write=False)
            self._masks[key] = m
            self._regions[id(region)] = region
        return m

    def apply(self, frame: Frame, result: FrameResult, region: Region | None) -> Frame:
        """A frame whose pixels are masked (a new Frame; the caller's is untouched); ``result.pixels``
        is replaced by its masked copy."""
        try:
            in_hw = frame.hw
            frame = replace(frame, pixels=_masked(frame.pixels, self._keep_mask(region, in_hw, in_hw)))
            if result.pixels is not None:
                out_hw = (int(result.pixels.shape[0]), int(result.pixels.shape[1]))
                result.pixels = _masked(result.pixels, self._keep_mask(region, in_hw, out_hw))
            return frame
        except Exception as exc:  # noqa: BLE001 - fail closed: nothing of this frame leaves
            self.failures += 1
            log.error("PHI masking failed on frame %d (%s: %s); the frame is blanked", frame.index,
                      type(exc).__name__, exc)
            if result.pixels is not None:
                result.pixels = np.zeros_like(result.pixels)
            return replace(frame, pixels=np.zeros_like(frame.pixels))
