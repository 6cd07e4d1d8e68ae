"""What TensorRT says while it works: its log into Python logging, build progress onto the console."""

from __future__ import annotations

import logging
import threading
import time
from typing import IO, Any

log = logging.getLogger(__name__)


def make_logger(trt: Any):
    """A TensorRT ILogger that forwards to Python logging and keeps the last error."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.last_error = ""

        def log(self, severity: Any, msg: str) -> None:
            S = trt.ILogger.Severity
            text = " ".join(str(msg).split())
            if severity in (S.INTERNAL_ERROR, S.ERROR):
                self.last_error = text
                log.error("TensorRT: %s", text)
            elif severity == S.WARNING:
                log.warning("TensorRT: %s", text)
            else:
                log.debug("TensorRT: %s", text)

    return _Logger()


def make_progress_monitor(trt: Any, stream: IO[str], label: str):
    """An IProgressMonitor printing top-level phase progress to ``stream`` (thread-safe)."""

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._steps: dict[str, int] = {}
            self._parents: dict[str, str | None] = {}
            self._tty = bool(getattr(stream, "isatty", lambda: False)())
            self._t0 = time.perf_counter()

        def _say(self, text: str, final: bool = False) -> None:
            elapsed = time.perf_counter() - self._t0
            line = f"ganrt: building {label}: {text} [{elapsed:5.0f} s]"
            try:
                if self._tty:
                    stream.write("\r" + line[:120].ljust(120) + ("\n" if final else ""))
                else:
                    stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._steps[phase_name] = max(1, int(num_steps))
                self._parents[phase_name] = parent_phase
                if parent_phase is None or self._tty:
                    self._say(f"{phase_name} (0/{num_steps})")

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                if self._tty:
                    self._say(f"{phase_name} ({step + 1}/{self._steps.get(phase_name, 1)})")
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                if self._parents.pop(phase_name, "x") is None and not self._tty:
                    self._say(f"{phase_name} done")
                self._steps.pop(phase_name, None)

        def done(self) -> None:
            with self._lock:
                self._say("finished", final=True)

    return _Monitor()
