"""Output to a second process: a shared-memory ring (``shm:NAME``) or a raw byte pipe (``pipe:-``).

Both are display-type outputs (labels drawn unless ``overlay=False``) with one frame
geometry per stream: frames of another size are resized to the first frame's (a camera that
came back in another mode must not break the consumer). Formats: docs/shm_ring.md.

- ``ShmRingSink``: never blocks the pipeline; a slow reader loses frames (it can count them).
- ``PipeSink``: raw frames to stdout, a FIFO or a file. ``raw`` is plain concatenated pixels
  (what ``ffmpeg -f rawvideo`` reads; one line on stderr gives the exact arguments),
  ``framed`` adds a stream header (JSON: geometry, provenance) and a 64-byte header per frame.
  A pipe applies back-pressure: a reader slower than the stream slows the pipeline (live
  frames are then dropped by the queue, and recorded), so a consumer that may lag belongs on
  the shm ring. A reader that goes away disables the sink (counted), never the run.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import struct
import sys
from enum import Enum
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from ...errors import ConfigError
from ...frames import Frame, FrameResult, Outcome
from ..files import SinkBase
from ..overlay import for_display
from ..provenance import Provenance
from .ring import FRAME_HEADER, FRAME_MAGIC, PIPE_MAGIC, PIPE_VERSION, ShmRingWriter

log = logging.getLogger(__name__)

OUTCOME_CODES = {Outcome.ENHANCED: 0, Outcome.PASSTHROUGH: 1}


def _display_pixels(result: FrameResult, overlay: bool) -> np.ndarray:
    """What the consumer sees: labelled BGR, or the clean output in its own layout."""
    return for_display(result.pixels, result, True) if overlay else np.ascontiguousarray(result.pixels)


class _Conform:
    """Keeps one geometry per stream: the first frame's size and channel count."""

    def __init__(self) -> None:
        self.shape: tuple[int, ...] | None = None

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.shape is None:
            self.shape = img.shape
            return img
        if img.shape == self.shape:
            return img
        if img.shape[:2] != self.shape[:2]:
            img = cv2.resize(img, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_AREA)
        if img.ndim != len(self.shape):
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_BGR2GRAY)
        return img


class ShmRingSink(SinkBase):
    def __init__(self, name: str, *, slots: int = 4, overlay: bool = True, fps: float = 0.0,
                 provenance: Provenance | None = None, checksum: bool | None = None) -> None:
        meta = {"producer": "ganrt", "overlay": overlay}
        if provenance is not None:
            meta["provenance"] = provenance.to_dict()
        self.ring = ShmRingWriter(name, slots=slots, checksum=checksum, fps=fps, meta=meta)
        self.overlay = overlay
        self._conform = _Conform()

    @property
    def name(self) -> str:
        return self.ring.name

    def write(self, frame: Frame, result: FrameResult) -> None:
        img = self._conform(_display_pixels(result, self.overlay))
        self.ring.publish(img, frame_index=frame.index, t_capture_ns=frame.t_capture_ns,
                          outcome=OUTCOME_CODES.get(result.outcome, 1), late=result.late)

    def close(self) -> None:
        self.ring.close()


class PipeFormat(Enum):
    RAW = "raw"
    FRAMED = "framed"


def pix_fmt(img: np.ndarray) -> str:
    """FFmpeg's name for the layout (for the rawvideo hint)."""
    gray = img.ndim == 2
    if img.dtype == np.uint16:
        return "gray16le" if gray else "bgr48le"
    return "gray" if gray else "bgr24"


class PipeSink(SinkBase):
    """``target``: '-' (stdout), an existing FIFO (``mkfifo`` it first; opening waits for the
    reader), or a file path (a raw stream file)."""

    def __init__(self, target: str, *, fmt: PipeFormat = PipeFormat.RAW, overlay: bool = True, fps: float = 0.0,
                 provenance: Provenance | None = None, stdout: BinaryIO | None = None,
                 hint: BinaryIO | None = None) -> None:
        self.target, self.fmt, self.overlay, self.fps = target, fmt, overlay, fps
        self.provenance = provenance
        self._stdout = stdout
        self._hint = hint
        self._fh: BinaryIO | None = None
        self._owns = False
        self._conform = _Conform()
        self.count = 0
        if target != "-":
            p = Path(target)
            if p.is_dir():
                raise ConfigError(f"pipe sink target {target} is a folder (give '-', a FIFO or a file)")

    @property
    def to_stdout(self) -> bool:
        return self.target == "-"

    def _open(self) -> BinaryIO:
        if self.to_stdout:
            return self._stdout or sys.stdout.buffer
        p = Path(self.target)
        if p.exists() and stat.S_ISFIFO(p.stat().st_mode):
            log.info("pipe sink: waiting for a reader on FIFO %s", p)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
        self._owns = True
        return open(p, "wb", buffering=0)

    def _start(self, img: np.ndarray) -> None:
        self._fh = self._open()
        h, w = img.shape[:2]
        fmt = pix_fmt(img)
        where = "stdout" if self.to_stdout else self.target
        if self.fmt is PipeFormat.RAW:
            line = (f"pipe sink: raw {fmt} {w}x{h} @ {self.fps:g} fps -> {where} "
                    f"(ffmpeg -f rawvideo -pixel_format {fmt} -video_size {w}x{h} -framerate {self.fps:g} -i ...)")
        else:
            header = {"format": "ganrt-pipe/1", "width": w, "height": h, "channels": 1 if img.ndim == 2 else img.shape[2],
                      "dtype": img.dtype.name, "pix_fmt": fmt, "fps": self.fps, "overlay": self.overlay,
                      "provenance": self.provenance.to_dict() if self.provenance else None}
            body = json.dumps(header).encode()
            self._fh.write(PIPE_MAGIC + struct.pack("<II", PIPE_VERSION, len(body)) + body)
            line = f"pipe sink: framed {fmt} {w}x{h} @ {self.fps:g} fps -> {where} (format: docs/shm_ring.md)"
        print(line, file=self._hint or sys.stderr, flush=True)

    def write(self, frame: Frame, result: FrameResult) -> None:
        img = self._conform(_display_pixels(result, self.overlay))
        if self._fh is None:
            self._start(img)
        assert self._fh is not None
        try:
            if self.fmt is PipeFormat.FRAMED:
                ch = 1 if img.ndim == 2 else img.shape[2]
                self._fh.write(FRAME_HEADER.pack(FRAME_MAGIC, FRAME_HEADER.size, self.count + 1, frame.index,
                                                 max(0, frame.t_capture_ns), img.nbytes,
                                                 OUTCOME_CODES.get(result.outcome, 1), 1 if result.late else 0,
                                                 img.shape[1], img.shape[0], ch, img.dtype.itemsize))
            self._fh.write(memoryview(np.ascontiguousarray(img)).cast("B"))
            if self.to_stdout:
                self._fh.flush()
        except BrokenPipeError:
            self._fh = self._quiet_close()
            raise OSError("pipe sink: the reader went away (broken pipe)") from None
        self.count += 1

    def _quiet_close(self) -> None:
        """Drop the stream after the reader went away, without further EPIPE noise."""
        fh, self._fh = self._fh, None
        if fh is not None and self.to_stdout:
            # keep the interpreter from flushing into the dead pipe again at exit
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), fh.fileno())
            except (OSError, ValueError, AttributeError):
                pass
        elif fh is not None:
            try:
                fh.close()
            except OSError:
                pass
        return None

    def close(self) -> None:
        if self._fh is None:
            return
        if self._owns:
            self._fh.close()
        else:
            try:
                self._fh.flush()
            except (BrokenPipeError, ValueError):
                self._quiet_close()
        self._fh = None
