"""Live cameras and capture cards through V4L2: index "0" or "/dev/video0", with options.

``/dev/video0?fourcc=MJPG&size=1280x720&fps=60&buffers=1`` requests a pixel format, a size
(width x height, as cameras quote it), a frame rate and the driver's buffer count (fewer
buffers, less latency). Drivers grant what they can: what was *granted* is read back
(CAP_PROP_FOURCC / FRAME_WIDTH / FRAME_HEIGHT / FPS and the first frame's real size),
logged as one line, kept in ``info()`` (and so in the run's report) and in every frame's
``meta.extra['granted']``. A camera that disappears mid-stream is reopened with backoff
(``LiveSource``); one that is absent at start is a SourceError.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

import cv2

from ..errors import SourceError
from ..frames import FrameMeta
from .live import CaptureLike, LiveSource, ReconnectPolicy, fourcc_str

log = logging.getLogger(__name__)

DEVICE = re.compile(r"^(\d+|/dev/video\d+)$")
_SIZE = re.compile(r"^(\d+)[x:](\d+)$")


@dataclass(frozen=True)
class CameraRequest:
    """What to ask the driver for; None leaves the driver's default."""

    device: int | str
    fourcc: str | None = None  # e.g. MJPG, YUYV, NV12, H264
    size_hw: tuple[int, int] | None = None
    fps: float | None = None
    buffers: int | None = None

    @classmethod
    def parse(cls, spec: str, size_hw: tuple[int, int] | None = None, fps: float | None = None) -> CameraRequest:
        """``DEVICE[?fourcc=MJPG&size=WxH&fps=N&buffers=N]``; ``size_hw``/``fps`` are defaults."""
        dev, _, query = spec.partition("?")
        if not DEVICE.match(dev):
            raise SourceError(f"not a camera: {spec!r} (use an index like 0 or /dev/videoN)")
        opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
        unknown = set(opts) - {"fourcc", "size", "fps", "buffers"}
        if unknown:
            raise SourceError(f"camera {dev}: unknown option(s) {', '.join(sorted(unknown))} "
                              f"(known: fourcc, size, fps, buffers)")
        fourcc = opts.get("fourcc")
        if fourcc is not None and (len(fourcc) != 4 or not fourcc.isascii()):
            raise SourceError(f"camera {dev}: fourcc must be 4 characters, e.g. MJPG or YUYV (got {fourcc!r})")
        if "size" in opts:
            m = _SIZE.match(opts["size"])
            if not m:
                raise SourceError(f"camera {dev}: size must be WIDTHxHEIGHT, e.g. 1280x720 (got {opts['size']!r})")
            size_hw = (int(m.group(2)), int(m.group(1)))
        try:
            fps = float(opts["fps"]) if "fps" in opts else fps
            buffers = int(opts["buffers"]) if "buffers" in opts else None
        except ValueError:
            raise SourceError(f"camera {dev}: fps and buffers must be numbers") from None
        if (fps is not None and fps <= 0) or (buffers is not None and buffers < 1):
            raise SourceError(f"camera {dev}: fps and buffers must be positive")
        return cls(int(dev) if dev.isdigit() else dev, fourcc, size_hw, fps, buffers)

    def describe(self) -> str:
        size = f"{self.size_hw[1]}x{self.size_hw[0]}" if self.size_hw else "default size"
        return f"{self.fourcc or 'default format'} {size} @ {f'{self.fps:g} fps' if self.fps else 'default fps'}"


@dataclass(frozen=True)
class Granted:
    fourcc: str
    size_hw: tuple[int, int]  # of the frames actually delivered
    fps: float

    def describe(self) -> str:
        return f"{self.fourcc or '?'} {self.size_hw[1]}x{self.size_hw[0]} @ {self.fps:g} fps"

    def to_dict(self) -> dict[str, Any]:
        return {"fourcc": self.fourcc, "width": self.size_hw[1], "height": self.size_hw[0], "fps": self.fps}


def open_v4l2(device: int | str) -> CaptureLike:
    return cv2.VideoCapture(device, cv2.CAP_V4L2)


class CameraSource(LiveSource):
    def __init__(self, request: CameraRequest | int | str, *, size: tuple[int, int] | None = None,
                 fps: float | None = None, opener: Callable[[int | str], CaptureLike] = open_v4l2,
                 reconnect: ReconnectPolicy = ReconnectPolicy(), **kw) -> None:
        if not isinstance(request, CameraRequest):
            request = CameraRequest(request, size_hw=size, fps=fps)
        self.request = request
        self.device = request.device
        self._opener = opener
        super().__init__(f"camera:{request.device}", reconnect=reconnect, fps_hint=request.fps, **kw)
        self.granted = self._granted(self._pending)
        self.meta = _with_extra(self.meta, granted=self.granted.to_dict(), requested=self.requested)
        self._no_signal_meta = _with_extra(self._no_signal_meta, granted=self.granted.to_dict(),
                                           requested=self.requested)
        line = self.describe()
        if self._mismatch():
            log.warning("%s (not what was requested)", line)
        else:
            log.info("%s", line)

    @property
    def requested(self) -> dict[str, Any]:
        r = self.request
        return {"fourcc": r.fourcc, "width": r.size_hw[1] if r.size_hw else None,
                "height": r.size_hw[0] if r.size_hw else None, "fps": r.fps, "buffers": r.buffers}

    @property
    def granted_hw(self) -> tuple[int, int]:
        return self.granted.size_hw

    def describe(self) -> str:
        """One line: what was asked for and what the driver granted."""
        return f"camera {self.device}: requested {self.request.describe()}; granted {self.granted.describe()}"

    def _mismatch(self) -> bool:
        r, g = self.request, self.granted
        return bool((r.fourcc and g.fourcc and r.fourcc.upper() != g.fourcc.upper())
                    or (r.size_hw and tuple(r.size_hw) != g.size_hw)
                    or (r.fps and abs(g.fps - r.fps) > 0.5))

    def _open_capture(self) -> CaptureLike:
        cap = self._opener(self.request.device)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open camera {self.request.device} (not present, busy, or no permission)")
        return cap

    def _configure(self, cap: CaptureLike) -> None:
        r = self.request
        # FOURCC first: many drivers only offer large sizes / high rates in a compressed format
        if r.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*r.fourcc))
        if r.size_hw:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, r.size_hw[1])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, r.size_hw[0])
        if r.fps:
            cap.set(cv2.CAP_PROP_FPS, r.fps)
        if r.buffers:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, r.buffers)

    def _granted(self, first) -> Granted:
        cap = self._cap
        fourcc = fourcc_str(cap.get(cv2.CAP_PROP_FOURCC)) if cap is not None else ""
        return Granted(fourcc, (int(first.shape[0]), int(first.shape[1])), float(self.fps))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "requested": self.requested, "granted": self.granted.to_dict(),
                "granted_hw": self.granted.size_hw}


def _with_extra(meta: FrameMeta, **extra: Any) -> FrameMeta:
    return replace(meta, extra={**meta.extra, **extra})
