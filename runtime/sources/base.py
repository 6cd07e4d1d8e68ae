"""The frame source interface and the plumbing every source shares.

A source numbers its frames 0, 1, 2, ... and stamps each with the injected clock when
it is produced. File sources can replay at their native rate (``realtime=True``, paced
by the clock, so tests never sleep) or run as fast as the consumer reads.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..frames import Frame, FrameMeta
from ..serve.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0  # pacing when a file does not say


@runtime_checkable
class FrameSource(Protocol):
    fps: float
    source_id: str
    frame_count: int | None
    live: bool  # frames arrive on their own schedule (camera, realtime replay): drops allowed

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...


class SourceBase:
    """Subclasses implement ``_next_pixels`` (None at the end) and optionally ``_rewind``/``_close``."""

    # Opening it again gives the same frames from the start (a file, even when replayed in real
    # time), so it can be read ahead; a capture device cannot (``LiveSource`` says False).
    replayable: bool = True

    def __init__(self, source_id: str, *, fps: float = 0.0, frame_count: int | None = None, live: bool = False,
                 realtime: bool = False, clock: Clock = SYSTEM_CLOCK, loop: bool = False,
                 max_frames: int | None = None, modality: str = "US") -> None:
        self.source_id, self.fps, self.frame_count = source_id, fps, frame_count
        self.realtime, self.clock, self.loop, self.max_frames = realtime, clock, loop, max_frames
        self.live = live or realtime
        self.meta = FrameMeta(source_id=source_id, fps=fps, modality=modality)
        self.decode_errors = 0  # frames that could not be decoded (the stream ended or skipped them)
        self.skipped: collections.deque[int] = collections.deque()  # indices of frames skipped as unreadable
        self._index = 0
        self._since_rewind = 0
        self._t0_ns: int | None = None  # pacing origin
        self._paced = 0
        self._closed = False

    # --- for subclasses ---------------------------------------------------------------------
    def _next_pixels(self) -> np.ndarray | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _rewind(self) -> bool:
        return False

    def _close(self) -> None:
        pass

    def _frame_meta(self) -> FrameMeta:
        """Meta of the frame being produced (a live source marks its 'no signal' frames here)."""
        return self.meta

    def _skip(self) -> None:
        """The frame at the current index cannot be decoded: it keeps its index, so indices stay
        aligned with the files, and the pipeline records it as dropped (unreadable)."""
        self.skipped.append(self._index)
        self._index += 1
        self.decode_errors += 1

    # --- the interface ----------------------------------------------------------------------
    def read(self) -> Frame | None:
        if self._closed or (self.max_frames is not None and self._index >= self.max_frames):
            return None
        pixels = self._next_pixels()
        if pixels is None and self.loop and self._since_rewind > 0 and self._rewind():
            self._since_rewind = 0
            pixels = self._next_pixels()
        if pixels is None:
            return None
        if self.realtime:
            self._pace()
        frame = Frame(self._index, self.clock.now_ns(), pixels, self._frame_meta())
        self._index += 1
        self._since_rewind += 1
        return frame

    def _pace(self) -> None:
        """Wait for this frame's slot at the native rate; after a stall, restart the schedule
        instead of bursting to catch up (a real probe never sends frames early)."""
        period = int(1e9 / (self.fps if self.fps > 0 else DEFAULT_FPS))
        now = self.clock.now_ns()
        if self._t0_ns is None or now > self._t0_ns + (self._paced + 1) * period:
            self._t0_ns, self._paced = now, 0
        self.clock.sleep_until_ns(self._t0_ns + self._paced * period)
        self._paced += 1

    @property
    def frames_read(self) -> int:
        return self._index

    def info(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "fps": self.fps, "frame_count": self.frame_count,
                "frames_read": self._index, "decode_errors": self.decode_errors, "live": self.live}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
