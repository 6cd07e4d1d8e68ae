"""Labels for what a viewer sees: enhanced frames say so quietly, raw frames say so loudly.

Only display/video sinks draw them, always on a copy; data sinks (PNG, record) never do.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..frames import FrameResult, Outcome, Reason, Tier

FONT = cv2.FONT_HERSHEY_SIMPLEX
ENHANCED_TEXT = "AI-ENHANCED"
REDUCED_TEXT = "AI-ENHANCED (reduced)"  # the model ran at reduced resolution near the budget (runtime.tiers)
RAW_TEXT = "RAW - enhancement off"
_WHITE, _BLACK = (255, 255, 255), (0, 0, 0)
_DARK = (40, 40, 40)
_AMBER = (0, 160, 255)  # BGR


def to_bgr(pixels: np.ndarray) -> np.ndarray:
    """A displayable BGR uint8 copy of a uint8 gray or BGR image."""
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.shape[2] == 4:  # a frame the model could not take, shown as it came
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
    return pixels.copy()


def inside(mask: np.ndarray, bw: int, bh: int) -> tuple[int, int] | None:
    """Top-left of the highest bw x bh box lying wholly inside ``mask`` (nonzero = inside), as
    close as possible to the mask's centre column; None when no such box exists."""
    m = (mask > 0).astype(np.uint8)
    h, w = m.shape
    if bw > w or bh > h:
        return None
    ii = cv2.integral(m)  # (h+1, w+1) sums: box sums in O(1)
    sums = ii[bh:, bw:] - ii[:-bh, bw:] - ii[bh:, :-bw] + ii[:-bh, :-bw]  # (h-bh+1, w-bw+1)
    ok = sums == bw * bh
    rows = np.flatnonzero(ok.any(axis=1))
    if rows.size == 0:
        return None
    cx = int(np.flatnonzero(m.any(axis=0)).mean()) - bw // 2
    y = int(rows[0])
    xs = np.flatnonzero(ok[y])
    return int(xs[np.argmin(np.abs(xs - cx))]), y


def _box(img: np.ndarray, text: str, corner: str, scale: float, thick: int, fill: tuple[int, int, int],
         alpha: float, ink: tuple[int, int, int], mask: np.ndarray | None = None) -> None:
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    pad = max(2, int(round(4 * scale)))
    h, w = img.shape[:2]
    bw, bh = min(w, tw + 2 * pad), min(h, th + base + 2 * pad)
    x0 = w - bw if corner.endswith("right") else 0
    y0 = h - bh if corner.startswith("bottom") else 0
    at = inside(mask, bw, bh) if mask is not None and mask.shape[:2] == (h, w) else None
    if at is not None:  # inside the imaging region: the scanner's pixels around it stay untouched
        x0, y0 = at
    roi = img[y0:y0 + bh, x0:x0 + bw]
    cv2.addWeighted(roi, 1.0 - alpha, np.full_like(roi, fill), alpha, 0.0, dst=roi)
    cv2.putText(img, text, (x0 + pad, y0 + pad + th), FONT, scale, ink, thick, cv2.LINE_AA)


def label(pixels: np.ndarray, result: FrameResult) -> np.ndarray:
    """A labelled BGR copy of ``pixels`` (never modifies them)."""
    img = to_bgr(pixels)
    s = max(0.3, min(img.shape[:2]) / 640.0)  # readable on 240p..4K without covering the image
    if result.outcome is Outcome.ENHANCED:
        text = REDUCED_TEXT if result.tier is Tier.REDUCED else ENHANCED_TEXT
        _box(img, text, "top-right", 0.5 * s, 1, _DARK, 0.45, _WHITE, result.label_mask)
    else:
        why = "" if result.reason is Reason.NONE else f" ({result.reason.value})"
        _box(img, RAW_TEXT + why, "top-left", 0.7 * s, max(1, int(round(2 * s))), _AMBER, 0.85, _BLACK,
             result.label_mask)
    return img


def for_display(pixels: np.ndarray, result: FrameResult, overlay: bool = True) -> np.ndarray:
    return label(pixels, result) if overlay else to_bgr(pixels)
