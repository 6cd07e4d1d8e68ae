"""Where frames go: video files, PNG data, side-by-side comparison, a window, nowhere.

Display-type sinks (video, side-by-side, display) draw the overlay labels on a copy
unless ``overlay=False``; the PNG data sink always writes the clean pixels.
Sinks only get frames that were shown (enhanced or passthrough); dropped frames exist
only in the record.

Given a ``Provenance``, file sinks say what produced them: PNGs in tEXt chunks, videos in
a ``<file>.provenance.json`` sidecar (OpenCV's VideoWriter cannot write container
metadata). Other sinks: DICOM series (``sinks_dicom``), shared-memory ring and raw pipe
(``sinks_ipc``); ``sink_specs`` maps ``--sink`` specs to all of them.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..errors import ConfigError
from ..frames import Frame, FrameResult
from .outpaths import check_output, make_dir
from .overlay import for_display, to_bgr
from .provenance import Provenance, png_with_text, write_sidecar

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    def write(self, frame: Frame, result: FrameResult) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Sink: ...

    def __exit__(self, *exc: object) -> None: ...


class SinkBase:
    quit_requested = False  # a sink (a window) may ask the pipeline to stop

    def write(self, frame: Frame, result: FrameResult) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullSink(SinkBase):
    def __init__(self) -> None:
        self.count = 0

    def write(self, frame: Frame, result: FrameResult) -> None:
        self.count += 1


class VideoCodec(Enum):
    MP4V = "mp4v"  # .mp4, MPEG-4 part 2 (this OpenCV's FFmpeg has no H.264 encoder)
    MJPG = "mjpg"  # .avi, motion JPEG: every frame independent, easy to scrub
    FFV1 = "ffv1"  # .mkv, lossless

    @property
    def fourcc(self) -> int:
        return cv2.VideoWriter_fourcc(*{"mp4v": "mp4v", "mjpg": "MJPG", "ffv1": "FFV1"}[self.value])

    @property
    def suffix(self) -> str:
        return {"mp4v": ".mp4", "mjpg": ".avi", "ffv1": ".mkv"}[self.value]

    @classmethod
    def for_path(cls, path: Path) -> VideoCodec:
        return {".avi": cls.MJPG, ".mkv": cls.FFV1}.get(path.suffix.lower(), cls.MP4V)


SPACE_CHECK_EVERY = 30  # frames between free-space checks (a statvfs call)
MIN_FREE_BYTES = 8 << 20


class _Writer:
    """cv2.VideoWriter opened on the first frame (its size fixes the video's size); falls back
    to another codec with a warning when one does not open; later frames of another size are
    resized to the first one. Odd sizes are padded by one replicated row/column (FFmpeg's
    encoders would silently crop them)."""

    FALLBACKS = (VideoCodec.MP4V, VideoCodec.MJPG)

    def __init__(self, path: str | Path, fps: float, codec: VideoCodec | None) -> None:
        self.path = Path(path)
        self.fps = fps if fps and fps > 0 else 30.0
        self.codec = codec or VideoCodec.for_path(self.path)
        self._w: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None  # (w, h) as encoded (even)
        self._frame_size: tuple[int, int] | None = None  # (w, h) of the first frame
        self.frames = 0

    def _open(self, size: tuple[int, int]) -> None:
        make_dir(self.path.parent)
        self._frame_size = size
        size = (size[0] + size[0] % 2, size[1] + size[1] % 2)  # encoders crop odd sizes: pad instead
        tried = []
        for codec in (self.codec, *[c for c in self.FALLBACKS if c is not self.codec]):
            path = check_output(self.path if codec is self.codec else self.path.with_suffix(codec.suffix), "video")
            w = cv2.VideoWriter(str(path), codec.fourcc, self.fps, size, True)
            if w.isOpened():
                if codec is not self.codec:
                    log.warning("video codec %s does not open here; writing %s with %s instead",
                                self.codec.value, path.name, codec.value)
                self._w, self.path, self.codec, self._size = w, path, codec, size
                return
            tried.append(codec.value)
        raise ConfigError(f"cannot write video {self.path} (tried codecs: {', '.join(tried)})")

    def write(self, bgr: np.ndarray) -> None:
        size = (bgr.shape[1], bgr.shape[0])
        if self._w is None:
            self._open(size)
        elif size != self._frame_size:
            bgr = cv2.resize(bgr, self._frame_size, interpolation=cv2.INTER_AREA)
        if self._size != self._frame_size:
            bgr = cv2.copyMakeBorder(bgr, 0, self._size[1] - bgr.shape[0], 0, self._size[0] - bgr.shape[1],
                                     cv2.BORDER_REPLICATE)
        if self.frames % SPACE_CHECK_EVERY == 0:
            self._check_space(bgr.nbytes)
        self._w.write(bgr)
        self.frames += 1

    def _check_space(self, frame_bytes: int) -> None:
        """cv2.VideoWriter.write reports nothing when the disk is full; look before writing."""
        free = shutil.disk_usage(self.path.parent).free
        if free < max(MIN_FREE_BYTES, SPACE_CHECK_EVERY * frame_bytes):
            raise OSError(errno.ENOSPC, f"no space left for {self.path.name} ({free} bytes free)")

    def close(self) -> None:
        if self._w is not None:
            self._w.release()
            self._w = None
            if self.frames and not (self.path.exists() and self.path.stat().st_size > 0):
                raise OSError(errno.EIO, f"{self.path} is missing or empty after writing {self.frames} frames")


class VideoSink(SinkBase):
    """The output as a video file, labelled unless ``overlay=False``. Codec from the suffix
    (.mp4 -> mp4v, .avi -> MJPG, .mkv -> FFV1 lossless) or given."""

    def __init__(self, path: str | Path, fps: float = 30.0, codec: VideoCodec | None = None,
                 overlay: bool = True, provenance: Provenance | None = None) -> None:
        self._out = _Writer(path, fps, codec)
        self.overlay = overlay
        self._prov = _Sidecar(provenance)

    @property
    def path(self) -> Path:
        return self._out.path

    def write(self, frame: Frame, result: FrameResult) -> None:
        self._out.write(for_display(result.pixels, result, self.overlay))
        self._prov.count(result)

    def close(self) -> None:
        self._out.close()
        self._prov.write(self._out, overlay=self.overlay)


class _Sidecar:
    """Counts outcomes and writes ``<video>.provenance.json`` once the video exists."""

    def __init__(self, provenance: Provenance | None) -> None:
        self.provenance = provenance
        self.outcomes: Counter[str] = Counter()
        self.written: Path | None = None

    def count(self, result: FrameResult) -> None:
        self.outcomes[result.outcome.value] += 1

    def write(self, out: _Writer, **extra) -> None:
        if self.provenance is None or self.written is not None or not out.frames:
            return
        self.written = write_sidecar(out.path, self.provenance, frames=out.frames, outcomes=dict(self.outcomes),
                                     fps=out.fps, codec=out.codec.value, **extra)


class SideBySideSink(SinkBase):
    """Input | output in one video; labels only on the output half. For a super-resolution model
    the input half is enlarged to the output's size (nearest neighbour: nothing smoothed or invented)."""

    def __init__(self, path: str | Path, fps: float = 30.0, codec: VideoCodec | None = None,
                 overlay: bool = True, bits: int = 16, provenance: Provenance | None = None) -> None:
        self._out = _Writer(path, fps, codec)
        self.overlay, self.bits = overlay, bits
        self._prov = _Sidecar(provenance)

    @property
    def path(self) -> Path:
        return self._out.path

    def write(self, frame: Frame, result: FrameResult) -> None:
        from ..model.ops import to_uint8

        left = to_bgr(to_uint8(frame.pixels, self.bits))
        right = for_display(result.pixels, result, self.overlay)
        if right.shape[:2] != left.shape[:2]:  # a model with scale > 1: keep its detail, show the input's pixels big
            left = cv2.resize(left, (right.shape[1], right.shape[0]), interpolation=cv2.INTER_NEAREST)
        self._out.write(np.hstack((left, right)))
        self._prov.count(result)

    def close(self) -> None:
        self._out.close()
        self._prov.write(self._out, overlay=self.overlay, layout="input | output")


class PngSink(SinkBase):
    """Clean data for analysis: the output pixels exactly as computed (never labelled),
    ``frame_000123.png``; with ``inputs=True`` also the raw input at its native bit depth.
    With a provenance, output PNGs carry it in tEXt chunks (plus the frame's outcome)."""

    def __init__(self, directory: str | Path, inputs: bool = False, provenance: Provenance | None = None) -> None:
        self.dir = make_dir(directory, "png sink folder")
        self.inputs = inputs
        self.count = 0
        self._text = provenance.text_fields() if provenance is not None else None

    def _imwrite(self, path: Path, img: np.ndarray, text: dict[str, str] | None = None) -> None:
        check_output(path, "png sink")  # a frame file may be a hard link to an input
        if text is None:
            if not cv2.imwrite(str(path), img):
                raise OSError(f"cannot write {path}")
            return
        ok, buf = cv2.imencode(".png", img)
        if not ok:
            raise OSError(f"cannot encode {path}")
        path.write_bytes(png_with_text(buf.tobytes(), text))

    def write(self, frame: Frame, result: FrameResult) -> None:
        text = None
        if self._text is not None:
            text = {**self._text, "ganrt:outcome": result.outcome.value, "ganrt:frame": str(frame.index)}
            if result.reason.value:
                text["ganrt:reason"] = result.reason.value
        self._imwrite(self.dir / f"frame_{frame.index:06d}.png", result.pixels, text)
        if self.inputs:
            self._imwrite(self.dir / f"input_{frame.index:06d}.png", frame.pixels)
        self.count += 1


def has_screen() -> bool:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    gui = [ln for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith("GUI:")]
    return not (gui and gui[0].split(":", 1)[1].strip().upper() == "NONE")


class DisplaySink(SinkBase):
    """A window (cv2.imshow). 'q' or Esc asks the pipeline to stop."""

    def __init__(self, window: str = "ganrt", overlay: bool = True) -> None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ConfigError("display sink needs a screen (no DISPLAY or WAYLAND_DISPLAY); use a video or png sink")
        if not has_screen():
            raise ConfigError("display sink needs OpenCV with GUI support (this one is headless); "
                              "use a video or png sink")
        try:
            cv2.namedWindow(window, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise ConfigError(f"display sink cannot open a window ({str(exc).strip().splitlines()[-1]})") from None
        self.window, self.overlay = window, overlay

    def write(self, frame: Frame, result: FrameResult) -> None:
        cv2.imshow(self.window, for_display(result.pixels, result, self.overlay))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.quit_requested = True

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.window)
        except cv2.error:
            pass
