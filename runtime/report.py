"""End-of-run report: what happened to the frames and how long it took (percentiles, not means)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .frames import Outcome
from .record import STAGES, Record
from .stats import Summary, summarize

_SHOWN = ("median", "p90", "p99", "p99_9", "max", "jitter")


@dataclass(frozen=True)
class Report:
    frames_in: int
    frames_out: int
    enhanced: int
    passthrough: dict[str, int]  # reason -> count
    dropped: dict[str, int]
    late: int
    wall_s: float
    budget_ms: float
    latency: dict[str, Summary]  # per stage + capture_to_output_ms (ms)
    static: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # source id, fps, decode/read errors
    sink_errors: int = 0
    interrupted: bool = False

    @property
    def passthrough_total(self) -> int:
        return sum(self.passthrough.values())

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def deadline_miss_rate(self) -> float:
        return self.late / self.frames_out if self.frames_out else 0.0

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0

    @classmethod
    def from_record(cls, record: Record, *, wall_s: float, budget_ms: float, source: dict[str, Any] | None = None,
                    sink_errors: int = 0, interrupted: bool = False) -> "Report":
        rows = record.rows
        out = [r for r in rows if r.outcome is not Outcome.DROPPED]
        by = Counter((r.outcome, r.reason.value) for r in rows)
        lat = {s: summarize(v for r in out if not math.isnan(v := getattr(r, s))) for s in STAGES}
        lat["capture_to_output_ms"] = summarize(r.capture_to_output_ms for r in out
                                                if not math.isnan(r.capture_to_output_ms))
        return cls(
            frames_in=len(rows),
            frames_out=len(out),
            enhanced=sum(n for (o, _), n in by.items() if o is Outcome.ENHANCED),
            passthrough={why: n for (o, why), n in sorted(by.items(), key=lambda kv: kv[0][1])
                         if o is Outcome.PASSTHROUGH},
            dropped={why: n for (o, why), n in sorted(by.items(), key=lambda kv: kv[0][1]) if o is Outcome.DROPPED},
            late=sum(r.late for r in out),
            wall_s=wall_s,
            budget_ms=budget_ms,
            latency=lat,
            static=dict(record.static),
            source=dict(source or {}),
            sink_errors=sink_errors,
            interrupted=interrupted,
        )

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "enhanced": self.enhanced,
            "passthrough": self.passthrough_total,
            "passthrough_by_reason": self.passthrough,
            "dropped": self.dropped_total,
            "dropped_by_reason": self.dropped,
            "late": self.late,
            "deadline_miss_rate": self.deadline_miss_rate,
            "budget_ms": self.budget_ms,
            "wall_s": self.wall_s,
            "fps": self.fps,
            "latency_ms": {k: {f: clean(v) for f, v in s.to_dict().items()} for k, s in self.latency.items()},
            "model": self.static,
            "source": self.source,
            "sink_errors": self.sink_errors,
            "interrupted": self.interrupted,
        }

    def format_table(self) -> str:
        def reasons(d: dict[str, int]) -> str:
            return f" ({', '.join(f'{k} {v}' for k, v in d.items())})" if d else ""

        st = self.static
        lines = [
            f"model {st.get('model_sha', '?')} on {st.get('backend', '?')} {st.get('precision', '')}".rstrip(),
            f"frames in {self.frames_in}, out {self.frames_out}: enhanced {self.enhanced}, "
            f"raw {self.passthrough_total}{reasons(self.passthrough)}, dropped {self.dropped_total}"
            f"{reasons(self.dropped)}",
            f"deadline ({self.budget_ms:g} ms) missed by {self.late} frames ({100 * self.deadline_miss_rate:.1f}%); "
            f"{self.fps:.1f} fps over {self.wall_s:.2f} s" + ("; interrupted" if self.interrupted else ""),
            "",
            f"{'latency ms':22s}" + "".join(f"{c:>9s}" for c in ("p50", "p90", "p99", "p99.9", "max", "jitter")),
        ]
        for name, s in self.latency.items():
            if s.n:
                lines.append(f"{name.removesuffix('_ms'):22s}" + "".join(f"{getattr(s, c):9.2f}" for c in _SHOWN))
        if self.sink_errors:
            lines.append(f"sink errors: {self.sink_errors} (see log)")
        return "\n".join(lines)
