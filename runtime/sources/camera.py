"""Live cameras and capture cards through V4L2 (index "0" or "/dev/video0")."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from ..errors import SourceError
from .base import SourceBase
from .capture import PendingFirst, grab

log = logging.getLogger(__name__)

START_TRIES = 30  # cameras often deliver a few empty buffers right after opening
READ_RETRIES = 5  # consecutive failed reads before the stream is declared ended


class CameraSource(PendingFirst, SourceBase):
    def __init__(self, device: int | str, *, size: tuple[int, int] | None = None, fps: float | None = None,
                 **kw) -> None:
        kw.pop("realtime", None)  # a camera paces itself
        self.device = device
        self._cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not self._cap.isOpened():
            raise SourceError(f"cannot open camera {device} (not present, busy, or no permission)")
        if size:  # (height, width), like every hw in ganrt
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[1])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[0])
        if fps:
            self._cap.set(cv2.CAP_PROP_FPS, fps)
        first = None
        for _ in range(START_TRIES):
            first = self._grab()
            if first is not None:
                break
        if first is None:
            self._cap.release()
            raise SourceError(f"camera {device} opened but delivers no frames")
        granted_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.granted_hw = (int(first.shape[0]), int(first.shape[1]))
        self.requested = {"hw": size, "fps": fps}
        super().__init__(f"camera:{device}", fps=granted_fps, frame_count=None, live=True, **kw)
        self._pending: np.ndarray | None = first
        log.info("camera %s: requested %s @ %s fps, granted %dx%d @ %g fps", device,
                 f"{size[0]}x{size[1]}" if size else "default", fps or "default",
                 self.granted_hw[0], self.granted_hw[1], granted_fps)
        if size and tuple(size) != self.granted_hw or fps and abs(granted_fps - fps) > 0.5:
            log.warning("camera %s did not grant the requested format: got %dx%d @ %g fps", device,
                        self.granted_hw[0], self.granted_hw[1], granted_fps)

    def _grab(self) -> np.ndarray | None:
        return grab(self._cap)

    def _next_pixels(self) -> np.ndarray | None:
        if self._pending is not None:
            return self._take_pending()
        for _ in range(READ_RETRIES):
            img = self._grab()
            if img is not None:
                return img
            self.decode_errors += 1
        log.warning("camera %s: %d reads failed in a row; ending the stream (unplugged?)", self.device, READ_RETRIES)
        return None

    def info(self) -> dict:
        return {**super().info(), "requested": self.requested, "granted_hw": self.granted_hw}

    def _close(self) -> None:
        self._cap.release()
