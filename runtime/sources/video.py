"""Video files through OpenCV's FFmpeg backend."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import SourceError
from .base import SourceBase
from .capture import PendingFirst, grab

log = logging.getLogger(__name__)

# FFmpeg would print its own parser errors ("moov atom not found") for a bad file; our
# SourceError says it in one line instead. A user's own setting wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")


class VideoSource(PendingFirst, SourceBase):
    def __init__(self, path: str | Path, **kw) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"no such file: {self.path}")
        self._cap = self._open()
        first = self._grab()
        if first is None:
            self._cap.release()
            raise SourceError(f"{self.path}: video has no frames (empty or unreadable)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        super().__init__(str(self.path), fps=fps if fps and math.isfinite(fps) and fps > 0 else 0.0,
                         frame_count=n if n > 0 else None, **kw)
        self._pending: np.ndarray | None = first
        self._decoded = 1
        log.info("video %s: %dx%d, %s fps, %s frames", self.path.name, first.shape[1], first.shape[0],
                 f"{self.fps:g}" if self.fps else "unknown", self.frame_count or "unknown")

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise SourceError(f"{self.path}: not a video OpenCV/FFmpeg can read (wrong format or corrupt)")
        return cap

    def _grab(self) -> np.ndarray | None:
        return grab(self._cap)

    def _next_pixels(self) -> np.ndarray | None:
        if self._pending is not None:
            return self._take_pending()
        img = self._grab()
        if img is None:
            if self.frame_count and self._decoded < self.frame_count:
                self.decode_errors += 1
                log.warning("%s: stream ended after %d of %d frames (truncated or corrupt file)",
                            self.path.name, self._decoded, self.frame_count)
            return None
        self._decoded += 1
        return img

    def _rewind(self) -> bool:
        self._cap.release()
        self._cap = self._open()
        self._decoded = 0
        return True

    def _close(self) -> None:
        self._cap.release()
