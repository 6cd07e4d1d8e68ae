"""Live captures that may vanish mid-stream (a probe unplugged, a capture card resetting).

A ``LiveSource`` never ends because its device went away: after ``fail_reads`` failed reads
in a row it declares the signal lost, releases the device and reopens it with exponential
backoff. Meanwhile it keeps producing frames at the nominal rate, each a visible
"NO SIGNAL" card marked ``meta.extra['signal'] == 'lost'``, so the screen shows that the
picture is not live, every frame slot is accounted for in the record, and the pipeline
keeps running. ``info()`` counts outages, reconnects, failed reads and no-signal frames.
Only ``give_up_s`` (default: never) ends the stream.

Time (pacing, backoff) goes through the injected clock: tests drive outages with a
``ManualClock`` and a fake capture, without sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import cv2
import numpy as np

from ..errors import ConfigError, SourceError
from ..frames import SIGNAL_LOST, FrameMeta
from .base import DEFAULT_FPS, SourceBase
from .capture import grab

log = logging.getLogger(__name__)

START_TRIES = 30  # devices often deliver a few empty buffers right after opening


class CaptureLike(Protocol):
    """What ganrt uses of ``cv2.VideoCapture`` (fakes and the PyGObject appsink implement it too)."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop: int) -> float: ...

    def set(self, prop: int, value: float) -> bool: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class ReconnectPolicy:
    fail_reads: int = 5  # consecutive failed reads that mean the signal is lost
    first_delay_s: float = 0.5  # wait before the first reopen attempt
    max_delay_s: float = 8.0  # the backoff stops growing here
    factor: float = 2.0
    give_up_s: float | None = None  # end the stream after this long without signal (None: never)

    def __post_init__(self) -> None:
        if self.fail_reads < 1 or self.first_delay_s < 0 or self.max_delay_s < self.first_delay_s \
                or self.factor < 1 or (self.give_up_s is not None and self.give_up_s <= 0):
            raise ConfigError(f"invalid reconnect policy {self}")

    def delay_s(self, attempt: int) -> float:
        """Wait after the ``attempt``-th failed reopen (0 = before the first one)."""
        return min(self.max_delay_s, self.first_delay_s * self.factor ** attempt)


def no_signal_card(like: np.ndarray, text: str) -> np.ndarray:
    """A dark frame with the shape and dtype of ``like`` and a large amber message."""
    h, w = like.shape[:2]
    card = np.full((h, w, 3), 24, np.uint8)
    scale = max(0.4, min(h, w) / 480.0)
    thick = max(1, int(round(2 * scale)))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    org = (max(0, (w - tw) // 2), max(th, (h + th) // 2))
    cv2.putText(card, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 160, 255), thick, cv2.LINE_AA)
    if like.ndim == 2:
        card = cv2.cvtColor(card, cv2.COLOR_BGR2GRAY)
    if like.dtype == np.uint16:
        card = card.astype(np.uint16) * 257
    return card


class LiveSource(SourceBase):
    """Subclasses provide ``_open_capture()`` (raise SourceError when the device is not there)
    and may override ``_configure(cap)`` (request a format right after each open)."""

    replayable = False  # a camera or pipeline: a second opening is not the same frames (or not possible)

    def __init__(self, source_id: str, *, reconnect: ReconnectPolicy = ReconnectPolicy(),
                 fps_hint: float | None = None, **kw) -> None:
        kw.pop("realtime", None)  # a live device paces itself
        kw.pop("loop", None)
        self.reconnect = reconnect
        self._cap: CaptureLike | None = self._open_capture()
        self._configure(self._cap)
        first = self._first_frame(self._cap)
        if first is None:
            self._cap.release()
            raise SourceError(f"{source_id} opened but delivers no frames")
        fps = self._read_fps(self._cap) or fps_hint or 0.0
        super().__init__(source_id, fps=fps, frame_count=None, live=True, **kw)
        self._pending: np.ndarray | None = first
        self._last_shape = first
        self._failed_in_row = 0
        self._lost_since_ns: int | None = None
        self._next_attempt_ns = 0
        self._attempts = 0
        self._no_signal_meta = replace(self.meta, extra={**self.meta.extra, "signal": SIGNAL_LOST})
        self._emitting_no_signal = False
        self._t_next_card_ns = 0
        self.outages = 0
        self.reconnects = 0
        self.failed_reads = 0
        self.no_signal_frames = 0

    # --- for subclasses ---------------------------------------------------------------------
    def _open_capture(self) -> CaptureLike:  # pragma: no cover - overridden
        raise NotImplementedError

    def _configure(self, cap: CaptureLike) -> None:
        pass

    # --- the machinery ----------------------------------------------------------------------
    @staticmethod
    def _read_fps(cap: CaptureLike) -> float:
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        except (cv2.error, TypeError, ValueError):
            return 0.0
        return fps if 0 < fps < 1000 else 0.0

    @staticmethod
    def _first_frame(cap: CaptureLike) -> np.ndarray | None:
        for _ in range(START_TRIES):
            img = grab(cap)  # type: ignore[arg-type]
            if img is not None:
                return img
        return None

    def _frame_meta(self) -> FrameMeta:
        return self._no_signal_meta if self._emitting_no_signal else self.meta

    def _period_ns(self) -> int:
        return int(1e9 / (self.fps if self.fps > 0 else DEFAULT_FPS))

    def _next_pixels(self) -> np.ndarray | None:
        self._emitting_no_signal = False
        if self._pending is not None:
            img, self._pending = self._pending, None
            return img
        if self._lost_since_ns is None:
            img = self._read_connected()
            if img is not None:
                return img
        return self._while_lost()

    def _read_connected(self) -> np.ndarray | None:
        """A frame, or None once ``fail_reads`` reads failed in a row (the signal is then lost)."""
        assert self._cap is not None
        while self._failed_in_row < self.reconnect.fail_reads:
            img = grab(self._cap)  # type: ignore[arg-type]
            if img is not None:
                self._failed_in_row = 0
                self._last_shape = img
                return img
            self._failed_in_row += 1
            self.failed_reads += 1
        self._signal_lost()
        return None

    def _signal_lost(self) -> None:
        now = self.clock.now_ns()
        self.outages += 1
        self._lost_since_ns = now
        self._attempts = 0
        self._next_attempt_ns = now + int(self.reconnect.delay_s(0) * 1e9)
        self._t_next_card_ns = now
        self._release()
        log.warning("%s: %d reads failed in a row; signal lost, reconnecting with backoff "
                    "(showing NO SIGNAL frames meanwhile)", self.source_id, self.reconnect.fail_reads)

    def _release(self) -> None:
        if self._cap is not None:
            try:
                self._cap.release()
            except Exception:  # noqa: BLE001 - a vanished device may fail to release; it is gone anyway
                pass
            self._cap = None

    def _try_reopen(self) -> np.ndarray | None:
        self._attempts += 1
        try:
            cap = self._open_capture()
            self._configure(cap)
            img = self._first_frame(cap)
        except SourceError as exc:
            log.info("%s: reopen attempt %d failed: %s", self.source_id, self._attempts, exc)
            return None
        except Exception as exc:  # noqa: BLE001 - a driver error while the device comes back
            log.info("%s: reopen attempt %d failed: %s: %s", self.source_id, self._attempts, type(exc).__name__, exc)
            return None
        if img is None:
            cap.release()
            return None
        self._cap = cap
        return img

    def _while_lost(self) -> np.ndarray | None:
        assert self._lost_since_ns is not None
        now = self.clock.now_ns()
        if now >= self._next_attempt_ns:
            img = self._try_reopen()
            if img is not None:
                lost_s = (self.clock.now_ns() - self._lost_since_ns) / 1e9
                self.reconnects += 1
                self._lost_since_ns = None
                self._failed_in_row = 0
                fps = self._read_fps(self._cap)  # type: ignore[arg-type]
                if fps:
                    self.fps = fps
                log.warning("%s: signal back after %.1f s (%d attempt(s)), %dx%d", self.source_id, lost_s,
                            self._attempts, img.shape[1], img.shape[0])
                self._last_shape = img
                return img
            self._next_attempt_ns = self.clock.now_ns() + int(self.reconnect.delay_s(self._attempts) * 1e9)
        give_up = self.reconnect.give_up_s
        if give_up is not None and self.clock.now_ns() - self._lost_since_ns >= give_up * 1e9:
            log.error("%s: no signal for %.0f s; ending the stream", self.source_id, give_up)
            return None
        # one card per frame period: a display keeps its rate, the record one row per slot
        self._t_next_card_ns = max(self._t_next_card_ns + self._period_ns(), self.clock.now_ns())
        self.clock.sleep_until_ns(self._t_next_card_ns)
        self._emitting_no_signal = True
        self.no_signal_frames += 1
        lost_s = (self.clock.now_ns() - self._lost_since_ns) / 1e9
        return no_signal_card(self._last_shape, f"NO SIGNAL - reconnecting ({lost_s:.0f} s)")

    @property
    def signal_lost(self) -> bool:
        return self._lost_since_ns is not None

    def info(self) -> dict[str, Any]:
        return {**super().info(), "outages": self.outages, "reconnects": self.reconnects,
                "failed_reads": self.failed_reads, "no_signal_frames": self.no_signal_frames,
                "signal_lost_at_end": self.signal_lost}

    def _close(self) -> None:
        self._release()


def fourcc_str(code: float | int) -> str:
    """cv2's numeric FOURCC as its four characters ('' when the backend does not say)."""
    c = int(code) & 0xFFFFFFFF
    s = "".join(chr((c >> (8 * i)) & 0xFF) for i in range(4))
    return s if c and s.isprintable() else ""


OpenCapture = Callable[[], CaptureLike]
