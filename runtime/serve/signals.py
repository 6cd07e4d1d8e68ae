"""SIGINT (Ctrl-C), SIGTERM (systemd, docker, a cart's shell) and SIGHUP end a run cleanly.

While frames stream, the first signal only asks every stream to stop after the frame in hand
(every sink gets it): the pipeline then closes every sink (a playable video, an assembled
DICOM series), the record and the report, and the command exits 128 + the signal's number
(129, 130, 143). Before streaming starts there is nothing to finish: the process leaves at once
with one line -- an exception raised into a half-done import or a native library's start-up
would give a traceback, an abort, or a misleading message. A second signal leaves at once too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_stop = threading.Event()
_state = {"received": None, "streaming": False}


def exit_code(signum: int) -> int:
    return 128 + int(signum)


def _leave(signum: int, why: str) -> None:
    os.write(2, f"ganrt: interrupted by {signal.Signals(signum).name}{why}\n".encode())
    os._exit(exit_code(signum))


def _handler(signum: int, _frame) -> None:
    first = _state["received"] is None
    if first:
        _state["received"] = signum
    if first and _state["streaming"]:
        _stop.set()
        return
    _leave(signum, "" if first else " again; outputs may be incomplete")


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the handlers for one command (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reset()
    previous = {s: signal.signal(s, _handler) for s in HANDLED}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def streaming() -> threading.Event:
    """From now on until the command ends, a signal sets the returned event instead of ending the
    process: the streams stop, and their outputs, records and reports are finished and written."""
    _state["streaming"] = True
    return _stop


def received() -> int | None:
    """The first signal this command received (None: none)."""
    return _state["received"]


def reset() -> None:
    _stop.clear()
    _state["received"], _state["streaming"] = None, False
