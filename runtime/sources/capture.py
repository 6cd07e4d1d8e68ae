"""What the OpenCV-backed sources (video file, camera) share."""

from __future__ import annotations

import cv2
import numpy as np


def grab(cap: cv2.VideoCapture) -> np.ndarray | None:
    """One decoded frame, or None for end of stream / a frame FFmpeg or V4L2 could not deliver."""
    try:
        ok, img = cap.read()
    except cv2.error:
        return None
    return img if ok and img is not None and img.size else None


class PendingFirst:
    """Sources read their first frame at open (to fail early); it is handed out before the next reads."""

    _pending: np.ndarray | None = None

    def _take_pending(self) -> np.ndarray | None:
        img, self._pending = self._pending, None
        return img
