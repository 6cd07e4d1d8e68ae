"""DICOM cines (ultrasound, echo, any multi-frame image) via pydicom >= 3 (ganrt[dicom]).

Frames come out like every other source's: uint8/uint16 gray or BGR.

- Photometric: MONOCHROME2 as stored; MONOCHROME1 inverted (0 = white in the file);
  YBR_FULL / YBR_FULL_422 / YBR_ICT / YBR_RCT converted to RGB by pydicom (its decoders know
  whether the JPEG codec already did it); PALETTE COLOR expanded through the file's LUT
  (``apply_color_lut``; 16-bit LUTs give uint16 frames); RGB as stored. Colour -> BGR.
- Depth: 8-bit stays uint8. 16-bit data with fewer stored bits (12-bit MR, 14-bit CT) is
  scaled to the full 16-bit range, and signed data offset to unsigned, because the pipeline
  normalises uint16 by 65535: a 12-bit image would otherwise look almost black. No VOI
  windowing is applied (``meta.extra['bits_stored']`` keeps the original depth).
- Rate: the attribute FrameIncrementPointer names (FrameTime or FrameTimeVector), else
  FrameTime, FrameTimeVector, CineRate, RecommendedDisplayFrameRate, else 30 fps.
- Compressed transfer syntaxes decode through pydicom's plugins, one frame at a time (a
  long cine is never decompressed whole); when no installed plugin can decode the file's
  syntax the error names the package that can.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from ..lazy import lazy_import
from ..trust.us_regions import UsRegion, read_regions, spacing_for
from .base import DEFAULT_FPS, SourceBase

log = logging.getLogger(__name__)

FRAME_TIME_TAG = 0x00181063
FRAME_TIME_VECTOR_TAG = 0x00181065

# Transfer syntax UID -> what to install when pydicom has no working decoder for it. Only
# permissively licensed packages are suggested first (pylibjpeg-libjpeg is GPL-3).
_JPEG_LOSSLESS = "python-gdcm, or pylibjpeg with pylibjpeg-libjpeg (GPL-3)"
DECODER_HINTS: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "pillow (ganrt[dicom]) or python-gdcm",  # JPEG baseline 8-bit
    "1.2.840.10008.1.2.4.51": "python-gdcm, or pylibjpeg with pylibjpeg-libjpeg (GPL-3) for 12-bit",  # extended
    "1.2.840.10008.1.2.4.57": _JPEG_LOSSLESS,
    "1.2.840.10008.1.2.4.70": _JPEG_LOSSLESS,
    "1.2.840.10008.1.2.4.80": "pyjpegls or python-gdcm",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pyjpegls or python-gdcm",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg (ganrt[dicom])",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg (ganrt[dicom])",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg (ganrt[dicom])",  # HTJ2K
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg (ganrt[dicom])",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg (ganrt[dicom])",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle (ganrt[dicom]); pydicom's own RLE decoder needs only numpy",
}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text[:300]}"


def _values(v: Any) -> list[Any]:
    """A DICOM value as a list (pydicom gives one value bare and several as a MultiValue)."""
    if v is None:
        return []
    if isinstance(v, (str, bytes)):
        return [v]
    try:
        return list(v)
    except TypeError:
        return [v]


def _positive(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None


def fps_from_tags(ds: Any) -> float:
    """Frames per second from the cine attributes (see the module docstring for the order)."""

    def from_time(ms: Any) -> float | None:
        v = _positive(ms)
        return 1000.0 / v if v else None

    def from_vector(vec: Any) -> float | None:
        deltas = [d for d in (_positive(v) for v in _values(vec)[1:]) if d]  # the first entry is 0
        return 1000.0 * len(deltas) / sum(deltas) if deltas else None

    pointers = {int(p) for p in _values(ds.get("FrameIncrementPointer"))}
    candidates = []
    if FRAME_TIME_VECTOR_TAG in pointers:
        candidates.append(from_vector(ds.get("FrameTimeVector")))
    if FRAME_TIME_TAG in pointers:
        candidates.append(from_time(ds.get("FrameTime")))
    candidates += [from_time(ds.get("FrameTime")), from_vector(ds.get("FrameTimeVector")),
                   _positive(ds.get("CineRate")), _positive(ds.get("RecommendedDisplayFrameRate"))]
    return next((c for c in candidates if c), DEFAULT_FPS)


def pixel_spacing_mm(ds: Any, regions: tuple[UsRegion, ...] = ()) -> tuple[float, float] | None:
    """(row, column) spacing in mm: PixelSpacing, else the first tissue ultrasound region's deltas
    (cm), only when the regions fit the frame (a resized file keeps its original's deltas)."""
    spacing = ds.get("PixelSpacing")
    if spacing is not None and len(spacing) == 2:
        return float(spacing[0]), float(spacing[1])
    hw = (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
    return spacing_for(regions or read_regions(ds), hw)


def _check_decodable(ds: Any, name: str) -> None:
    """One line naming the package to install when no plugin can decode this transfer syntax."""
    from pydicom.pixels import get_decoder

    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if tsyntax is None or not tsyntax.is_compressed:
        return
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise SourceError(f"{name}: pixel data in transfer syntax {tsyntax.name} ({tsyntax}) "
                          f"cannot be decoded by pydicom") from None
    if not decoder.is_available:
        hint = DECODER_HINTS.get(str(tsyntax), "; ".join(decoder.missing_dependencies))
        raise SourceError(f"{name}: pixel data is {tsyntax.name}; no decoder installed for it: install {hint}")


class FrameConverter:
    """Decoded DICOM frame (as pydicom returns it, YBR already RGB) -> ganrt frame."""

    def __init__(self, ds: Any, name: str) -> None:
        self.photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
        self.bits_allocated = int(ds.get("BitsAllocated", 8) or 8)
        self.bits_stored = int(ds.get("BitsStored", self.bits_allocated) or self.bits_allocated)
        self.signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        if self.bits_allocated not in (8, 16):
            raise SourceError(f"{name}: {self.bits_allocated}-bit pixel data is not a video frame "
                              f"(ganrt reads 8- and 16-bit images)")
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise SourceError(f"{name}: floating-point pixel data is not a video frame")
        self._ds = ds

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        if self.photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, self._ds)  # uint8 or uint16 RGB, as the LUT's entries
        elif arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 1):
            arr = self._gray(arr.reshape(arr.shape[:2]))
        if arr.ndim == 3:
            arr = np.ascontiguousarray(arr[..., ::-1])  # RGB -> BGR like the OpenCV sources
        if arr.dtype not in (np.uint8, np.uint16):
            arr = np.clip(arr, 0, 65535).astype(np.uint16)
        return arr

    def _gray(self, arr: np.ndarray) -> np.ndarray:
        bits = min(self.bits_stored, self.bits_allocated)
        top = (1 << bits) - 1
        a = arr.astype(np.int32)
        if self.signed:  # two's complement in `bits` bits -> 0..top
            a = a + (1 << (bits - 1))
        a = np.clip(a, 0, top)
        if self.photometric == "MONOCHROME1":  # 0 is white: invert by the stored depth, not the data
            a = top - a
        if self.bits_allocated == 8:
            return a.astype(np.uint8)
        return (a << (16 - bits)).astype(np.uint16) if bits < 16 else a.astype(np.uint16)


class DicomSource(SourceBase):
    """A single- or multi-frame DICOM image as a frame sequence (decoded frame by frame)."""

    def __init__(self, path: Path, **kw) -> None:
        pydicom = lazy_import("pydicom", extra="dicom", what="pydicom (DICOM input)")
        self.path = Path(path)
        name = self.path.name
        try:
            ds = pydicom.dcmread(str(self.path))
        except Exception as exc:  # noqa: BLE001 InvalidDicomError, truncated file, ...
            raise SourceError(f"{name}: not a readable DICOM file ({_one_line(exc)})") from None
        if "PixelData" not in ds:
            raise SourceError(f"{name}: DICOM file has no pixel data (not an image)")
        _check_decodable(ds, name)
        self._convert = FrameConverter(ds, name)
        self._ds = ds
        try:
            n = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            n = 1
        self._n = max(1, n)
        self._pos = 0
        first = self._decode(0, fatal=True)
        assert first is not None
        self._pending: np.ndarray | None = first
        super().__init__(name, fps=fps_from_tags(ds), frame_count=self._n,
                         modality=str(ds.get("Modality", "US") or "US"), **kw)
        tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        # the scanner's own map of its image areas: a hint for the imaging region (trust/region.py checks it)
        self.us_regions: tuple[UsRegion, ...] = read_regions(ds)
        self.meta = replace(self.meta, pixel_spacing_mm=pixel_spacing_mm(ds, self.us_regions), extra={
            "photometric": self._convert.photometric, "bits_stored": self._convert.bits_stored,
            "transfer_syntax": getattr(tsyntax, "name", str(tsyntax)), "sop_class": str(ds.get("SOPClassUID", ""))})
        log.info("DICOM %s: %d frame(s) %s, %s, %d-bit, %.3g fps, %s", name, self._n, first.shape,
                 self._convert.photometric, self._convert.bits_stored, self.fps, self.meta.extra["transfer_syntax"])

    @property
    def frame_hw(self) -> tuple[int, int]:
        return int(self._ds.Rows), int(self._ds.Columns)

    @property
    def dicom_header(self) -> Any:
        """The source's attributes without its pixel data (for a derived DICOM series)."""
        import pydicom

        return pydicom.dcmread(str(self.path), stop_before_pixels=True)

    def _decode(self, index: int, fatal: bool = False) -> np.ndarray | None:
        from pydicom.pixels import pixel_array

        try:
            arr = pixel_array(self._ds, index=index) if self._n > 1 else self._ds.pixel_array
            return self._convert(arr)
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 a plugin that cannot handle this variant, a corrupt fragment ...
            tsyntax = self._ds.file_meta.get("TransferSyntaxUID") if hasattr(self._ds, "file_meta") else None
            hint = DECODER_HINTS.get(str(tsyntax))
            msg = f"{self.path.name}: frame {index} cannot be decoded ({_one_line(exc)})"
            if fatal:
                raise SourceError(msg + (f"; a decoder that can: {hint}" if hint else "")) from None
            log.warning("%s; skipped", msg)
            return None

    def _next_pixels(self) -> np.ndarray | None:
        if self._pending is not None:
            img, self._pending = self._pending, None
            self._pos = 1
            return img
        while self._pos < self._n:
            img = self._decode(self._pos)
            self._pos += 1
            if img is not None:
                return img
            self.decode_errors += 1
        return None

    def _rewind(self) -> bool:
        self._pos = 0
        return True

    def info(self) -> dict[str, Any]:
        return {**super().info(), "photometric": self._convert.photometric,
                "bits_stored": self._convert.bits_stored, "transfer_syntax": self.meta.extra["transfer_syntax"]}
