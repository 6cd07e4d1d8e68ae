"""DICOM multi-frame cine (ultrasound, echo) via pydicom (ganrt[dicom]).

Frames come out as uint8/uint16 gray or BGR like every other source; YBR colour is
converted to RGB by pydicom (>= 3) and then to BGR; the frame rate comes from FrameTime or
CineRate. Compressed transfer syntaxes need pydicom's decoder plugins (the extra
installs pylibjpeg where wheels exist).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SourceError
from ..lazy import lazy_import
from .base import DEFAULT_FPS, SourceBase


def _fps(ds) -> float:
    for key, conv in (("CineRate", float), ("RecommendedDisplayFrameRate", float)):
        v = getattr(ds, key, None)
        if v:
            return conv(v)
    ft = getattr(ds, "FrameTime", None)  # milliseconds per frame
    return 1000.0 / float(ft) if ft else DEFAULT_FPS


class DicomSource(SourceBase):
    def __init__(self, path: Path, **kw) -> None:
        pydicom = lazy_import("pydicom", extra="dicom", what="pydicom (DICOM input)")
        try:
            ds = pydicom.dcmread(str(path))
            pixels = ds.pixel_array
        except Exception as exc:  # InvalidDicomError, missing decoder, truncated pixel data ...
            raise SourceError(f"{path.name}: cannot read DICOM pixels ({exc.__class__.__name__}: {exc})") from None
        n = int(getattr(ds, "NumberOfFrames", 1) or 1)
        if n == 1:
            pixels = pixels[None]
        photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
        # pydicom >= 3 already returns YBR_* as RGB from pixel_array.
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            pixels = apply_color_lut(pixels, ds)
        if pixels.ndim == 4:
            pixels = np.ascontiguousarray(pixels[..., ::-1])  # RGB -> BGR like OpenCV sources
        if photometric == "MONOCHROME1":
            pixels = pixels.max() - pixels
        if pixels.dtype not in (np.uint8, np.uint16):
            pixels = np.clip(pixels, 0, 65535).astype(np.uint16)
        self._frames = pixels
        self._pos = 0
        super().__init__(path.name, fps=_fps(ds), frame_count=int(pixels.shape[0]),
                         modality=str(getattr(ds, "Modality", "US")), **kw)

    def _next_pixels(self) -> np.ndarray | None:
        if self._pos >= self._frames.shape[0]:
            return None
        f = self._frames[self._pos]
        self._pos += 1
        return f

    def _rewind(self) -> bool:
        self._pos = 0
        return True
