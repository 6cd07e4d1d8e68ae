"""The inference worker: the enhancer runs in one thread so a hanging runner cannot stop the stream.

At the frame's deadline the caller stops waiting (``InferenceTimeout``); the call itself goes on
and ``busy`` stays True until it returns, which the frame steps read as "back off" (frame_steps.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from queue import SimpleQueue


class InferenceTimeout(Exception):
    pass


class InferenceWorker:
    """One daemon thread running the enhancer. A call that outlives its timeout is abandoned
    (its result discarded); ``busy`` stays True until it returns. Daemon, never joined: a
    stuck runner must not keep the process alive."""

    def __init__(self, fn: Callable) -> None:
        self._fn = fn
        self._jobs: SimpleQueue = SimpleQueue()
        self._current: Future | None = None
        threading.Thread(target=self._loop, name="ganrt-infer", daemon=True).start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            fut, args = job
            try:
                fut.set_result(self._fn(*args))
            except BaseException as exc:  # noqa: BLE001 - delivered to the caller
                fut.set_exception(exc)

    @property
    def busy(self) -> bool:
        return self._current is not None and not self._current.done()

    def call(self, *args, timeout_s: float):
        fut: Future = Future()
        self._current = fut
        self._jobs.put((fut, args))
        try:
            return fut.result(timeout_s)
        except FutureTimeout:
            raise InferenceTimeout(f"inference did not return by the frame's deadline ({timeout_s * 1e3:.1f} ms after "
                                   "it started)") from None

    def close(self) -> None:
        self._jobs.put(None)

