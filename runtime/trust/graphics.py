"""Pixels of a frame that are the scanner's drawing, not the patient's echoes: they must reach the
display exactly as they came in, whatever the model does around them.

Two kinds, found on each frame (so moving calipers, a colour box dragged across the sector and
live colour Doppler are caught, not only what stood still while the region was detected):

- **colour**: colour-flow / power Doppler pixels, colour bars, coloured labels. A B-mode echo is
  grey (B = G = R up to compression noise); a pixel whose red or blue colour difference (Cr, Cb)
  is more than ``CHROMA_MIN`` levels from neutral is colour.
- **bright thin strokes**: calipers, dotted measurement lines, text, tick marks. Graphics are
  drawn near white (in luma: a yellow label counts) and thin; tissue that bright is broad (a
  specular wall) or rare. A white top-hat (the frame minus its opening by a ``STROKE_MAX`` px
  square) keeps what is thinner than the square; a stroke pixel is near white and stands
  ``STROKE_CONTRAST`` levels above that opening.

Both are dilated by ``GROW`` px: anti-aliased and chroma-subsampled edges of a mark belong to it.
All steps are single OpenCV calls on 8-bit images (about 0.2 ms for a grey and 0.6 ms for a
colour 512x512 frame on one x86 core).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

CHROMA_MIN = 16  # 8-bit levels of Cr or Cb away from neutral grey (128)
WHITE_MIN = 200  # 8-bit level of a burned-in stroke (drawn near white; yellow text is ~230 in grey)
STROKE_CONTRAST = 80  # levels above the surrounding opening
STROKE_MAX = 5  # px: strokes thinner than this (a caliper cross, text, a dotted line) are found
GROW = 1  # px of dilation for anti-aliased edges

_SQUARE = cv2.getStructuringElement(cv2.MORPH_RECT, (STROKE_MAX, STROKE_MAX))
_GROW = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * GROW + 1, 2 * GROW + 1))


def _to_u8(pixels: np.ndarray, bits: int) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return cv2.convertScaleAbs(pixels, alpha=255.0 / ((1 << bits) - 1))
    return np.clip(pixels, 0, 255).astype(np.uint8)


class _Scratch:
    """Intermediate images for one frame size, reused from frame to frame: frames this size are
    above the allocator's mmap threshold, and fresh pages for each intermediate cost as much as the
    arithmetic. One per thread (several streams may call at once)."""

    def __init__(self, hw: tuple[int, int]) -> None:
        self.ycc = np.empty((*hw, 3), np.uint8)
        self.luma, self.a, self.b, self.c = (np.empty(hw, np.uint8) for _ in range(4))


_local = threading.local()


def _scratch(hw: tuple[int, int]) -> _Scratch:
    s = getattr(_local, "scratch", None)
    if s is None or s.luma.shape != hw:
        s = _local.scratch = _Scratch(hw)
    return s


def colour_and_luma(bgr: np.ndarray, w: _Scratch) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 0/255 mask of the colour pixels, luma) of an 8-bit BGR frame, in ``w``. Colour: Cr or
    Cb more than ``CHROMA_MIN`` from neutral (one YCrCb conversion and one range test: 3x faster here
    than splitting the channels for max - min)."""
    cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb, dst=w.ycc)
    lo, hi = 128 - CHROMA_MIN, 128 + CHROMA_MIN
    cv2.inRange(w.ycc, (0, lo, lo), (255, hi, hi), dst=w.c)
    cv2.bitwise_not(w.c, dst=w.c)
    cv2.extractChannel(w.ycc, 0, dst=w.luma)
    return w.c, w.luma


def stroke_mask(bright: np.ndarray, w: _Scratch) -> np.ndarray:
    """uint8 0/255 (in ``w.a``): near-white pixels of strokes thinner than ``STROKE_MAX`` (8-bit, one channel)."""
    cv2.morphologyEx(bright, cv2.MORPH_TOPHAT, _SQUARE, dst=w.a)
    cv2.compare(w.a, STROKE_CONTRAST, cv2.CMP_GE, dst=w.a)
    cv2.compare(bright, WHITE_MIN, cv2.CMP_GE, dst=w.b)
    return cv2.bitwise_and(w.a, w.b, dst=w.a)


def overlay_mask(pixels: np.ndarray, bits: int = 8) -> np.ndarray | None:
    """uint8 0/255 mask (the size of ``pixels``: HxW gray or HxWxC BGR[A], uint8 or uint16 of
    ``bits``) of the pixels that must pass through unchanged; None when there are none."""
    p = _to_u8(pixels, bits)
    if p.ndim == 3 and p.shape[2] == 1:
        p = p[:, :, 0]
    w = _scratch(p.shape[:2])
    if p.ndim == 3:
        colour, luma = colour_and_luma(cv2.cvtColor(p, cv2.COLOR_BGRA2BGR) if p.shape[2] == 4 else p, w)
        mask = cv2.bitwise_or(colour, stroke_mask(luma, w), dst=w.b)
    else:
        mask = stroke_mask(p, w)
    if not cv2.countNonZero(mask):
        return None
    return cv2.dilate(mask, _GROW)  # a new array: the caller keeps it
