"""Frame sources and ``open_source``, which picks one from a user's spec string."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from ..errors import SourceError
from ..serve.clock import SYSTEM_CLOCK, Clock
from .base import FrameSource, SourceBase

__all__ = ["FrameSource", "SourceBase", "open_source"]

_CAMERA = re.compile(r"^(\d+|/dev/video\d+)(\?.*)?$")
GST_PREFIX = "gst:"
DICOM_SUFFIXES = (".dcm", ".dicom")


def is_dicom_file(path: Path) -> bool:
    """A .dcm/.dicom name, or the 'DICM' marker after the 128-byte preamble (PACS exports often
    have no suffix)."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def open_source(spec: str, *, realtime: bool = False, clock: Clock = SYSTEM_CLOCK, loop: bool = False,
                max_frames: int | None = None, fps: float | None = None,
                camera_size: tuple[int, int] | None = None, camera_fps: float | None = None) -> FrameSource:
    """Open ``spec``: a folder of images, a video file, a DICOM file (.dcm or the DICM marker),
    a camera index ("0") or V4L2 device ("/dev/video0"), optionally with a format request
    ("/dev/video0?fourcc=MJPG&size=1280x720&fps=60"), or a GStreamer pipeline ("gst:... ! appsink").
    Raises SourceError with one line when it cannot.

    ``realtime`` replays files at their native rate (``fps`` overrides it for image
    folders); cameras are always live. ``loop`` restarts files at their end."""
    if max_frames is not None and max_frames < 1:
        raise SourceError(f"max_frames must be >= 1 (got {max_frames})")
    common = dict(realtime=realtime, clock=clock, loop=loop, max_frames=max_frames)
    if spec.startswith(GST_PREFIX):
        from .gst import GstSource

        return GstSource(spec[len(GST_PREFIX):], clock=clock, max_frames=max_frames)
    path = Path(spec).expanduser()
    if path.is_file() and is_dicom_file(path):
        return _dicom(path, **common)
    if path.is_dir():
        from .images import ImageFolderSource

        return ImageFolderSource(path, fps=fps, **common)
    if path.is_file():
        from .video import VideoSource

        return VideoSource(path, **common)
    if _CAMERA.match(spec):
        from .camera import CameraRequest, CameraSource

        return CameraSource(CameraRequest.parse(spec, size_hw=camera_size, fps=camera_fps), clock=clock,
                            max_frames=max_frames)
    raise SourceError(f"no such file or device: {spec}")


def _dicom(path: Path, **kw) -> FrameSource:
    """Hook for DICOM cines; ``ganrt.runtime.sources.dicom`` (needs pydicom) provides DicomSource."""
    try:
        mod = importlib.import_module("ganrt.runtime.sources.dicom")
    except ImportError:
        raise SourceError("DICOM input needs ganrt[dicom]") from None
    return mod.DicomSource(path, **kw)
