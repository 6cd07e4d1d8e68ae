"""GStreamer pipelines as a source: ``--source "gst:nvarguscamerasrc ! ... ! appsink"``.

Two ways in, tried in this order:

1. OpenCV built with GStreamer (``cv2.getBuildInformation()`` says ``GStreamer: YES``; the
   pip wheels of opencv-python say NO, JetPack's system OpenCV says YES): the pipeline goes to
   ``cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)``. End it in
   ``videoconvert ! video/x-raw,format=BGR ! appsink``.
2. PyGObject (``gi`` with Gst 1.0 and GstApp): ganrt runs the pipeline itself and pulls from
   its appsink (set to keep only the newest buffers, so a slow consumer never builds up lag).
   Formats BGR, RGB, BGRx/BGRA, RGBx/RGBA, GRAY8 and GRAY16_LE are understood.

Neither available: one SourceError line naming what is missing. A pipeline that stops
delivering is restarted with backoff like a camera (``LiveSource``).
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from ..errors import SourceError
from .live import CaptureLike, LiveSource, ReconnectPolicy

log = logging.getLogger(__name__)

PULL_TIMEOUT_NS = 1_000_000_000  # an appsink with nothing for 1 s counts as a failed read

# GStreamer raw video format -> (bytes per pixel, channels, dtype, cv2 conversion to BGR/gray or None)
_FORMATS: dict[str, tuple[int, int, type, int | None]] = {
    "BGR": (3, 3, np.uint8, None),
    "RGB": (3, 3, np.uint8, cv2.COLOR_RGB2BGR),
    "BGRx": (4, 4, np.uint8, cv2.COLOR_BGRA2BGR),
    "BGRA": (4, 4, np.uint8, cv2.COLOR_BGRA2BGR),
    "RGBx": (4, 4, np.uint8, cv2.COLOR_RGBA2BGR),
    "RGBA": (4, 4, np.uint8, cv2.COLOR_RGBA2BGR),
    "GRAY8": (1, 1, np.uint8, None),
    "GRAY16_LE": (2, 1, np.dtype("<u2").type, None),
}


def opencv_has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return line.split(":", 1)[1].strip().upper().startswith("YES")
    return False


def _pygobject() -> tuple[Any, Any, str]:
    """(Gst, GstApp, '') or (None, None, why not)."""
    try:
        import gi  # type: ignore[import-not-found]

        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        from gi.repository import Gst, GstApp  # type: ignore[import-not-found]

        Gst.init(None)
        return Gst, GstApp, ""
    except (ImportError, ValueError) as exc:  # ValueError: the typelib is not installed
        return None, None, f"{exc.__class__.__name__}: {exc}"


def frame_from_buffer(data: bytes | memoryview, fmt: str, width: int, height: int) -> np.ndarray:
    """An appsink buffer as a ganrt frame (BGR or gray, a copy), honouring row padding."""
    if fmt not in _FORMATS:
        raise SourceError(f"GStreamer appsink delivers {fmt}; put 'videoconvert ! video/x-raw,format=BGR' "
                          f"before the appsink (understood: {', '.join(_FORMATS)})")
    bpp, ch, dtype, conv = _FORMATS[fmt]
    buf = np.frombuffer(data, np.uint8)
    if height <= 0 or width <= 0 or buf.size < height * width * bpp:
        raise SourceError(f"GStreamer buffer of {buf.size} bytes is too small for {fmt} {width}x{height}")
    stride = buf.size // height  # rows are padded to 4 bytes for odd widths
    rows = buf[: stride * height].reshape(height, stride)[:, : width * bpp]
    img = np.ascontiguousarray(rows).view(dtype).reshape((height, width) if ch == 1 else (height, width, ch))
    if conv is not None:
        return cv2.cvtColor(img, conv)
    return img.copy() if ch == 1 and dtype is np.uint8 else np.ascontiguousarray(img)


class AppSinkCapture:
    """A ``CaptureLike`` over a PyGObject-run pipeline's appsink."""

    def __init__(self, pipeline: str, Gst: Any) -> None:
        self._Gst = Gst
        try:
            self._pipe = Gst.parse_launch(pipeline)
        except Exception as exc:  # noqa: BLE001 GLib.Error: no such element, bad syntax
            raise SourceError(f"GStreamer pipeline does not parse: {exc}") from None
        self._sink = self._find_appsink()
        self._sink.set_property("max-buffers", 2)
        self._sink.set_property("drop", True)  # newest wins: lag never accumulates in the appsink
        self._caps: tuple[str, int, int, float] | None = None
        if self._pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self._pipe.set_state(Gst.State.NULL)
            raise SourceError("GStreamer pipeline failed to start (device missing or caps not negotiable)")
        self._open = True

    def _find_appsink(self) -> Any:
        sink = self._pipe.get_by_name("sink") if hasattr(self._pipe, "get_by_name") else None
        if sink is None and hasattr(self._pipe, "iterate_sinks"):
            it = self._pipe.iterate_sinks()
            while True:
                ok, elem = it.next()
                if ok != self._Gst.IteratorResult.OK:
                    break
                if elem.get_factory() is not None and elem.get_factory().get_name() == "appsink":
                    sink = elem
                    break
        if sink is None:
            raise SourceError("GStreamer pipeline must end in an appsink (e.g. '... ! videoconvert ! "
                              "video/x-raw,format=BGR ! appsink')")
        return sink

    def isOpened(self) -> bool:
        return self._open

    def read(self) -> tuple[bool, np.ndarray | None]:
        sample = self._sink.emit("try-pull-sample", PULL_TIMEOUT_NS)
        if sample is None:  # EOS, error or timeout
            return False, None
        s = sample.get_caps().get_structure(0)
        ok_n, num, den = s.get_fraction("framerate") if s.has_field("framerate") else (False, 0, 1)
        self._caps = (s.get_value("format"), s.get_value("width"), s.get_value("height"),
                      num / den if ok_n and den else 0.0)
        buf = sample.get_buffer()
        ok, info = buf.map(self._Gst.MapFlags.READ)
        if not ok:
            return False, None
        try:
            return True, frame_from_buffer(info.data, *self._caps[:3])
        finally:
            buf.unmap(info)

    def get(self, prop: int) -> float:
        if self._caps is None:
            return 0.0
        return {cv2.CAP_PROP_FPS: self._caps[3], cv2.CAP_PROP_FRAME_WIDTH: self._caps[1],
                cv2.CAP_PROP_FRAME_HEIGHT: self._caps[2]}.get(prop, 0.0)

    def set(self, prop: int, value: float) -> bool:
        return False  # the pipeline string decides the format

    def release(self) -> None:
        if self._open:
            self._pipe.set_state(self._Gst.State.NULL)
            self._open = False


class GstSource(LiveSource):
    def __init__(self, pipeline: str, *, reconnect: ReconnectPolicy = ReconnectPolicy(), **kw) -> None:
        if not pipeline.strip():
            raise SourceError("gst: needs a pipeline, e.g. gst:\"v4l2src ! videoconvert ! video/x-raw,format=BGR ! appsink\"")
        self.pipeline = pipeline
        if opencv_has_gstreamer():
            self.via = "opencv"
        else:
            self._gst, _, why = _pygobject()
            if self._gst is None:
                raise SourceError("GStreamer source needs OpenCV built with GStreamer (this OpenCV "
                                  f"{cv2.__version__} says GStreamer: NO) or PyGObject with Gst 1.0 and GstApp "
                                  f"(python3-gi, gir1.2-gst-plugins-base-1.0; here: {why})")
            self.via = "pygobject"
        super().__init__(f"gst:{pipeline}", reconnect=reconnect, **kw)
        log.info("GStreamer source via %s: %s", self.via, pipeline)

    def _open_capture(self) -> CaptureLike:
        if self.via == "opencv":
            cap = cv2.VideoCapture(self.pipeline, cv2.CAP_GSTREAMER)
            if not cap.isOpened():
                raise SourceError("GStreamer pipeline did not start in OpenCV (check it with gst-launch-1.0; "
                                  "it must end in appsink)")
            return cap
        return AppSinkCapture(self.pipeline, self._gst)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "via": self.via}
