"""CPU utilisation and memory of this process over a measured stretch (stdlib only: /proc and
``resource``; no psutil)."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path


def _status_kib(key: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (VmRSS, VmHWM), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class ResourceMeter:
    """``with ResourceMeter() as m: ...`` then ``m.result()``: process CPU time (all threads, user +
    system) over wall time, and resident memory at start, end and peak."""

    _t0: float = 0.0
    _cpu0: float = 0.0
    _rss0: int | None = None
    _peak_reset: bool = False
    _out: dict = field(default_factory=dict)

    @staticmethod
    def _cpu_s() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    def __enter__(self) -> ResourceMeter:
        self._peak_reset = _reset_peak()
        self._rss0 = _status_kib("VmRSS")
        self._cpu0 = self._cpu_s()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t0
        cpu = self._cpu_s() - self._cpu0
        n = cpus()
        rss1 = _status_kib("VmRSS")
        hwm = _status_kib("VmHWM")
        lifetime_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        mib = lambda k: None if k is None else round(k / 1024, 1)  # noqa: E731
        self._out = {
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            "cpu_util_pct_one_core": round(100 * cpu / wall, 1) if wall > 0 else None,
            "cpu_util_pct_all_cores": round(100 * cpu / wall / n, 1) if wall > 0 else None,
            "cpus": n,
            "rss_start_mib": mib(self._rss0),
            "rss_end_mib": mib(rss1),
            "rss_peak_mib": mib(hwm if self._peak_reset else lifetime_peak_kib),
            "rss_peak_scope": "this stretch (VmHWM reset at start)" if self._peak_reset else "process lifetime (ru_maxrss)",
        }

    def result(self) -> dict:
        return dict(self._out)
