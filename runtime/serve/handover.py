"""Frame hand-over between the capture thread and the processing loop.

The drop policy lives here and nowhere else: in live mode the newest frame wins and
an overtaken frame is handed to ``on_drop`` (so the record still lists it); in
offline mode ``put`` blocks instead, so every frame is processed.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator

from ..frames import Frame

log = logging.getLogger(__name__)

DropCallback = Callable[[Frame], None]


class LatestFrameQueue:
    def __init__(self, depth: int = 1, *, drop: bool = True, on_drop: DropCallback | None = None) -> None:
        if depth < 1:
            raise ValueError("queue depth must be >= 1")
        self.depth, self.drop = depth, drop
        self._on_drop = on_drop
        self._items: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped: list[Frame] = []  # also kept here when no callback is given

    def put(self, frame: Frame) -> bool:
        """Queue a frame. Full: drop mode overtakes the oldest waiting frame, blocking mode waits.
        Returns False when the queue was closed (the consumer stopped): the frame was not taken."""
        overtaken = None
        with self._cond:
            if not self.drop:
                while len(self._items) >= self.depth and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            if len(self._items) >= self.depth:
                overtaken = self._items.popleft()
            self._items.append(frame)
            self._cond.notify_all()
        if overtaken is not None:  # outside the lock: the callback may take its own
            self._report_drop(overtaken)
        return True

    def _report_drop(self, frame: Frame) -> None:
        if self._on_drop is not None:
            self._on_drop(frame)
        else:
            self.dropped.append(frame)

    def end(self) -> None:
        """The producer is done: consumers drain what is queued, then iteration stops."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    close = end

    def get(self, timeout: float | None = None) -> Frame | None:
        """Next frame, or None once the queue is closed and drained (or on timeout)."""
        with self._cond:
            while not self._items and not self._closed:
                if not self._cond.wait(timeout):
                    return None
            if not self._items:
                return None
            frame = self._items.popleft()
            self._cond.notify_all()  # wake a blocked producer
            return frame

    def drain(self) -> list[Frame]:
        """Remove and return everything still waiting (used when a run is stopped early)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._closed = True
            self._cond.notify_all()
            return items

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.get()) is not None:
            yield frame

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class CaptureThread(threading.Thread):
    """Reads a source until it ends and feeds the queue. A source exception ends the stream
    (logged and counted), it never reaches the processing loop."""

    def __init__(self, source, queue: LatestFrameQueue) -> None:
        super().__init__(name="ganrt-capture", daemon=True)  # a camera read may block forever
        self.source, self.queue = source, queue
        self.errors = 0
        self.unqueued: list[Frame] = []  # read after the consumer stopped: still to be recorded
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                if not self.queue.put(frame):
                    self.unqueued.append(frame)
                    break
        except Exception as exc:  # noqa: BLE001 - a broken source ends the stream, not the process
            self.errors += 1
            log.error("source %s failed, ending the stream: %s: %s",
                      getattr(self.source, "source_id", "?"), exc.__class__.__name__, exc)
        finally:
            self.queue.end()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        self.queue.end()
        self.join(timeout)


class SyncFrames:
    """Synchronous feed (no thread, no drops): each frame is read just before it is processed.
    Deterministic; the offline default."""

    def __init__(self, source) -> None:
        self.source = source
        self.errors = 0
        self._stopped = False

    def __iter__(self) -> Iterator[Frame]:
        while not self._stopped:
            try:
                frame = self.source.read()
            except Exception as exc:  # noqa: BLE001
                self.errors += 1
                log.error("source %s failed, ending the stream: %s: %s",
                          getattr(self.source, "source_id", "?"), exc.__class__.__name__, exc)
                return
            if frame is None:
                return
            yield frame

    def stop(self) -> None:
        self._stopped = True
