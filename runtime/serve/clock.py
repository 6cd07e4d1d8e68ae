"""Injectable clocks: the system clock for real runs, a manual one for deterministic tests.

Everything that stamps or paces frames takes a ``Clock`` so tests never sleep to
create timing: a fake runner advances a ``ManualClock`` by its latency instead.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def sleep_until_ns(self, t_ns: int) -> None: ...


class SystemClock:
    """perf_counter_ns: monotonic, the finest host clock (docs/design.md, Principles)."""

    def now_ns(self) -> int:
        return time.perf_counter_ns()

    def sleep_until_ns(self, t_ns: int) -> None:
        delay = t_ns - time.perf_counter_ns()
        if delay > 0:
            time.sleep(delay / 1e9)


class ManualClock:
    """Time moves only when told: ``advance`` (fake runners, fake sources) or ``sleep_until_ns``
    (a paced source 'sleeps' by jumping ahead). Thread-safe."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self._t = start_ns
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            return self._t

    def advance(self, ns: int) -> None:
        with self._lock:
            self._t += int(ns)

    def advance_ms(self, ms: float) -> None:
        self.advance(int(round(ms * 1e6)))

    def sleep_until_ns(self, t_ns: int) -> None:
        with self._lock:
            self._t = max(self._t, int(t_ns))


SYSTEM_CLOCK = SystemClock()


def ms_between(t0_ns: int, t1_ns: int) -> float:
    return (t1_ns - t0_ns) / 1e6
