"""The enhanced cine as a new DICOM series (``--sink dicom[:PATH]``, ``--deidentify``).

Frames are streamed to a temporary file as they arrive, so a long live recording never sits
in memory; ``close`` writes the attributes (``dicom_out``), appends the pixel data and moves
the file into place atomically. One file holds at most ``max_bytes`` of pixel data (DICOM's
32-bit length): a longer stream continues in ``NAME_002.dcm``, ... in the same series.
The output never replaces the input: a path that is the source file (or a link to it) is a
ConfigError before the run starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from ...errors import ConfigError
from ...frames import Frame, FrameResult
from ...lazy import lazy_import
from ..files import SinkBase
from ..outpaths import check_output, make_dir, open_exclusive, protect
from ..overlay import for_display
from ..provenance import Provenance
from .deid import Deidentifier
from .series import LABELS, NO_SIGNAL_LABEL, DerivedSeries, ImagePixel

log = logging.getLogger(__name__)

DEFAULT_NAME = "enhanced.dcm"
MAX_PIXEL_BYTES = 0xFFFFFFFE - 1  # largest even value of a 32-bit defined length
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian


def resolve_target(target: str | Path | None, out_dir: Path) -> Path:
    """A file path for the series: a folder (existing, or spelled with a trailing /) gets
    ``enhanced.dcm`` inside; no target means ``OUT/enhanced.dcm``."""
    if target is None or str(target) == "":
        return out_dir / DEFAULT_NAME
    p = Path(target).expanduser()
    if p.is_dir() or str(target).endswith(("/", os.sep)):
        return p / DEFAULT_NAME
    return p


def refuse_overwriting_source(path: Path, source_path: Path | None) -> None:
    """The series file passes the one output check (``outpaths``) with its source registered."""
    if source_path is not None:
        protect(source_path)
    check_output(path, "dicom sink")


class _Instance:
    """One output file being written: pixels to ``<file>.pixels.partial`` as they come."""

    def __init__(self, path: Path, number: int) -> None:
        self.path, self.number = path, number
        self.pixels_path = path.with_name(path.name + ".pixels.partial")
        make_dir(path.parent)
        self._fh: BinaryIO | None = open_exclusive(self.pixels_path, "wb")
        self.nbytes = 0
        self.indices: list[int] = []
        self.labels: list[str] = []
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def add(self, data: np.ndarray, frame: Frame, result: FrameResult) -> None:
        assert self._fh is not None
        self._fh.write(memoryview(data).cast("B"))
        self.nbytes += data.nbytes
        self.indices.append(frame.index)
        self.labels.append(NO_SIGNAL_LABEL if frame.signal_lost else LABELS.get(result.outcome.value, "RAW"))
        self.counts[result.outcome.value] += 1
        if result.reason.value:
            self.reasons[result.reason.value] += 1

    def finish(self, ds: Any, vr: bytes) -> Path:
        """Write ``ds`` + the pixel data element to ``<file>.partial`` and move it into place."""
        import pydicom

        assert self._fh is not None
        self._fh.close()
        self._fh = None
        partial = self.path.with_name(self.path.name + ".partial")
        pad = self.nbytes % 2
        with open_exclusive(partial, "wb") as out, open(self.pixels_path, "rb") as pixels:
            pydicom.dcmwrite(out, ds, enforce_file_format=True)
            out.write(PIXEL_DATA_TAG + vr + b"\0\0" + struct.pack("<I", self.nbytes + pad))
            shutil.copyfileobj(pixels, out, 1 << 20)
            if pad:
                out.write(b"\0")
        os.replace(partial, self.path)
        self.pixels_path.unlink(missing_ok=True)
        return self.path

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.pixels_path.unlink(missing_ok=True)


class DicomSink(SinkBase):
    def __init__(self, path: str | Path, *, provenance: Provenance, fps: float = 30.0, overlay: bool = True,
                 source_header: Any = None, source_path: str | Path | None = None,
                 source_hw: tuple[int, int] | None = None, modality: str = "US", deidentify: bool = False,
                 deid_salt: bytes | None = None, max_bytes: int = MAX_PIXEL_BYTES) -> None:
        lazy_import("pydicom", extra="dicom", what="pydicom (DICOM output)")
        self.path = Path(path)
        src_path = Path(source_path) if source_path else None
        refuse_overwriting_source(self.path, src_path)
        if self.path.suffix.lower() not in (".dcm", ".dicom", ""):
            log.info("dicom sink: writing DICOM to %s (unusual suffix %s)", self.path, self.path.suffix)
        self.overlay = overlay
        self.max_bytes = max(2, int(max_bytes))
        self.deidentifier = Deidentifier(deid_salt) if deidentify else None
        self.series = DerivedSeries(provenance, source_header=source_header, source_hw=source_hw, modality=modality,
                                    fps=fps, overlay=overlay, deidentifier=self.deidentifier)
        if deidentify and self.series.burned_in_source != "NO":
            log.warning("de-identifying the header only: the source does not say its pixels are free of "
                        "burned-in text (BurnedInAnnotation %s); ultrasound frames often show the patient's name",
                        self.series.burned_in_source or "absent")
        self.fmt: ImagePixel | None = None
        self._current: _Instance | None = None
        self.files: list[Path] = []
        self._source_path = src_path

    @property
    def series_uid(self) -> str:
        return self.series.series_uid

    def _pixels(self, frame: Frame, result: FrameResult) -> np.ndarray:
        img = for_display(result.pixels, result, True) if self.overlay else np.ascontiguousarray(result.pixels)
        if self.fmt is None:
            samples = 1 if img.ndim == 2 else 3
            bits = 16 if img.dtype == np.uint16 else 8
            self.fmt = ImagePixel(img.shape[0], img.shape[1], samples, bits)
            if self.fmt.frame_bytes > self.max_bytes:
                raise ConfigError(f"dicom sink: one frame ({self.fmt.frame_bytes} bytes) exceeds the file limit")
        fmt = self.fmt
        if img.shape[:2] != (fmt.rows, fmt.columns):  # one geometry per series
            img = cv2.resize(img, (fmt.columns, fmt.rows), interpolation=cv2.INTER_AREA)
        if fmt.samples == 3:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
        elif img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        want = np.uint16 if fmt.bits == 16 else np.uint8
        if img.dtype != want:
            img = (img.astype(np.uint16) * 257) if want is np.uint16 else (img >> 8).astype(np.uint8)
        return np.ascontiguousarray(img, dtype=np.dtype(want).newbyteorder("<"))

    def _instance_path(self, number: int) -> Path:
        if number == 1:
            return self.path
        return self.path.with_name(f"{self.path.stem}_{number:03d}{self.path.suffix or '.dcm'}")

    def write(self, frame: Frame, result: FrameResult) -> None:
        data = self._pixels(frame, result)
        if self._current is not None and self._current.nbytes + data.nbytes > self.max_bytes:
            self._finish()
        if self._current is None:
            number = len(self.files) + 1
            path = self._instance_path(number)
            refuse_overwriting_source(path, self._source_path)
            self._current = _Instance(path, number)
        self._current.add(data, frame, result)

    def _finish(self) -> None:
        inst, self._current = self._current, None
        if inst is None or not inst.indices:
            if inst is not None:
                inst.discard()
            return
        assert self.fmt is not None
        ds = self.series.instance(number=inst.number, fmt=self.fmt, frame_indices=inst.indices, labels=inst.labels,
                                  counts=inst.counts, reasons=inst.reasons)
        try:
            self.files.append(inst.finish(ds, b"OW" if self.fmt.bits == 16 else b"OB"))
        except Exception:
            inst.discard()
            raise
        log.info("dicom sink: wrote %s (%d frames, series %s)", inst.path, len(inst.indices), self.series_uid)

    def close(self) -> None:
        self._finish()
