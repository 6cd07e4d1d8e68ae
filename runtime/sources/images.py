"""A folder of images (png/jpg/tif/bmp, 8- or 16-bit) as a frame sequence, in natural name order."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np

from ..errors import SourceError
from .base import DEFAULT_FPS, SourceBase

log = logging.getLogger(__name__)

SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def read_image(path: Path) -> np.ndarray | None:
    """Native dtype and channels (IMREAD_UNCHANGED); alpha dropped; None if undecodable."""
    try:
        data = np.fromfile(path, dtype=np.uint8)  # imdecode: also works for non-ASCII paths
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except (OSError, cv2.error):
        return None
    if img is None or img.ndim not in (2, 3):
        return None
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return img


class ImageFolderSource(SourceBase):
    """An unreadable image in the middle is skipped (warning + ``decode_errors``), not fatal:
    one bad file in a folder says nothing about the next one. It keeps its frame index (the
    record says ``dropped``/``unreadable``), so indices stay aligned with the file names."""

    def __init__(self, directory: str | Path, fps: float | None = None, **kw) -> None:
        self.dir = Path(directory)
        if not self.dir.is_dir():
            raise SourceError(f"no such folder: {self.dir}")
        self.files = sorted((p for p in self.dir.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()),
                            key=_natural_key)
        if not self.files:
            raise SourceError(f"{self.dir}: no images (png, jpg, tif or bmp) in this folder")
        first = read_image(self.files[0])
        if first is None:
            raise SourceError(f"{self.files[0]}: not a readable image")
        super().__init__(str(self.dir), fps=fps or DEFAULT_FPS, frame_count=len(self.files), **kw)
        self._pos = 0
        log.info("image folder %s: %d images, first %s %s", self.dir, len(self.files), first.shape, first.dtype)

    def _next_pixels(self) -> np.ndarray | None:
        while self._pos < len(self.files):
            path = self.files[self._pos]
            self._pos += 1
            img = read_image(path)
            if img is not None:
                return img
            self._skip()
            log.warning("%s: not a readable image, skipped", path.name)
        return None

    def _rewind(self) -> bool:
        self._pos = 0
        return True
