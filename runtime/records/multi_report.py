"""The report of several streams run together: each stream's rate and latency, then the combined ones."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .report import Report, remote_line
from .stats import Summary, summarize


def _ms(v: float) -> float | None:
    return None if math.isnan(v) else round(v, 3)


@dataclass(frozen=True)
class StreamResult:
    name: str  # "stream0", ...
    source: str
    report: Report | None  # None: the stream failed (``error`` says how)
    error: str = ""

    def summary(self) -> dict[str, Any]:
        r = self.report
        if r is None:
            return {"source": self.source, "error": self.error}
        c2o = r.latency["capture_to_output_ms"]
        return {"source": self.source, "fps": round(r.fps, 3), "frames_in": r.frames_in, "frames_out": r.frames_out,
                "enhanced": r.enhanced, "passthrough": r.passthrough_total, "dropped": r.dropped_total,
                "late": r.late, "budget_ms": r.budget_ms, "wall_s": round(r.wall_s, 3),
                "capture_to_output_ms": {"p50": _ms(c2o.median), "p99": _ms(c2o.p99), "max": _ms(c2o.max)},
                "interrupted": r.interrupted, **({"error": self.error} if self.error else {})}


@dataclass(frozen=True)
class MultiReport:
    streams: tuple[StreamResult, ...]
    wall_s: float  # first stream started -> last stream ended
    latency: Summary  # capture -> output of every shown frame of every stream
    scheduler: dict[str, Any]  # batch mode and the shared runner's call counts

    @classmethod
    def build(cls, streams: Iterable[StreamResult], capture_to_output_ms: Iterable[float], *, wall_s: float,
              scheduler: dict[str, Any]) -> MultiReport:
        """``capture_to_output_ms``: every stream's shown frames (each record's running sample)."""
        return cls(tuple(streams), wall_s, summarize(capture_to_output_ms), dict(scheduler))

    def _total(self, name: str) -> int:
        return sum(s.summary().get(name, 0) for s in self.streams)

    @property
    def fps(self) -> float:
        """Frames shown per second, all streams together."""
        return self._total("frames_out") / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def failed(self) -> list[StreamResult]:
        return [s for s in self.streams if s.report is None or s.error]

    def combined(self) -> dict[str, Any]:
        return {"streams": len(self.streams), "fps": round(self.fps, 3), "wall_s": round(self.wall_s, 3),
                **{k: self._total(k) for k in ("frames_in", "frames_out", "enhanced", "passthrough", "dropped",
                                               "late")},
                "capture_to_output_ms": {"p50": _ms(self.latency.median), "p99": _ms(self.latency.p99),
                                         "max": _ms(self.latency.max)}}

    def to_dict(self) -> dict[str, Any]:
        return {"streams": {s.name: s.summary() for s in self.streams}, "combined": self.combined(),
                "scheduler": self.scheduler}

    def format_table(self) -> str:
        lines = [f"{'stream':10s}{'fps':>7s}{'c2o p50':>9s}{'c2o p99':>9s}"
                 + "".join(f"{c:>6s}" for c in ("enh", "raw", "drop", "late")) + "  source"]

        def row(name: str, d: dict[str, Any], source: str) -> str:
            c = d["capture_to_output_ms"]
            num = lambda v: f"{v:9.1f}" if v is not None else f"{'-':>9s}"  # noqa: E731
            return (f"{name:10s}{d['fps']:7.1f}{num(c['p50'])}{num(c['p99'])}{d['enhanced']:6d}{d['passthrough']:6d}"
                    f"{d['dropped']:6d}{d['late']:6d}  {source}")

        for s in self.streams:
            d = s.summary()
            lines.append(row(s.name, d, s.source) if s.report is not None else f"{s.name:10s} failed: {s.error}")
        lines.append(row("combined", self.combined(), f"{len(self.streams)} streams, {self.wall_s:.2f} s"))
        lines.append("(c2o: capture -> output latency, ms)")
        sch = self.scheduler
        sizes = ", ".join(f"{n} x{k}" for k, n in sch.get("batch_sizes", {}).items()) or "none"
        lines.append(f"shared runner: {sch.get('mode', '?')}"
                     + (f" ({sch['why_serial']})" if sch.get("why_serial") else "")
                     + f"; {sch.get('runner_calls', 0)} calls for {sch.get('requests', 0)} requests (calls x frames: "
                       f"{sizes})")
        if sch.get("remote"):
            lines.append(remote_line(sch["remote"]))
        return "\n".join(lines)
