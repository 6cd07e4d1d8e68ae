"""End-of-run report: what happened to the frames and how long it took (percentiles, not means)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..frames import Outcome, Reason
from .record import Record
from .record_stats import RecordStats
from .stats import Summary

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
    guard: dict[str, Any] = field(default_factory=dict)  # settings, imaging regions used (Guard.summary)
    quality: dict[str, Any] = field(default_factory=dict)  # fidelity, change score, flicker (from the rows)
    remote: dict[str, Any] = field(default_factory=dict)  # a remote runner's calls, faults, server batches
    tiers: dict[str, int] = field(default_factory=dict)  # shown frames by tier: full / reduced / raw
    switching: dict[str, Any] = field(default_factory=dict)  # enhanced<->raw switches, shortest run between

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
                    sink_errors: int = 0, interrupted: bool = False, guard: dict[str, Any] | None = None) -> Report:
        st = record.stats  # running aggregates: a day-long run never holds its rows in memory
        return cls(
            frames_in=st.frames_in,
            frames_out=st.frames_out,
            enhanced=sum(st.count(Outcome.ENHANCED).values()),
            passthrough=st.count(Outcome.PASSTHROUGH),
            dropped=st.count(Outcome.DROPPED),
            late=st.late,
            wall_s=wall_s,
            budget_ms=budget_ms,
            latency={k: v.summary() for k, v in st.latency.items()},
            static=dict(record.static),
            source=dict(source or {}),
            sink_errors=sink_errors,
            interrupted=interrupted,
            guard=dict(guard or {}),
            quality=_quality(st, ((guard or {}).get("settings") or {}).get("fidelity")),
            tiers=dict(sorted(st.tiers.items())),
            switching={"enhanced_raw_switches": st.runs.switches, "min_run_between_switches": st.runs.shortest},
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
            "guard": {**self.guard.get("settings", {}), "phi_failures": self.guard.get("phi_failures", 0)},
            "imaging_region": self.guard.get("regions", []),
            **self.quality,
            "tiers": self.tiers,
            **self.switching,
            **({"remote": self.remote} if self.remote else {}),
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
        if self.tiers.get("reduced"):
            lines.append(f"tiers: {', '.join(f'{k} {v}' for k, v in self.tiers.items())}; enhanced/raw switches "
                         f"{self.switching.get('enhanced_raw_switches')}, shortest run between "
                         f"{self.switching.get('min_run_between_switches')} frames")
        lines += self._guard_lines()
        if self.remote:
            lines.append(remote_line(self.remote))
        if self.sink_errors:
            lines.append(f"sink errors: {self.sink_errors} (see log)")
        return "\n".join(lines)

    def _guard_lines(self) -> list[str]:
        lines = []
        for r in self.guard.get("regions", []):
            x, y, w, h = r["bbox"]
            lines.append(f"imaging region ({r['source']}, from frame {r['from_frame']}): {w}x{h} at ({x},{y}), "
                         f"{100 * r['area_fraction']:.0f}% of the frame"
                         + (f", {r['carved_px']} px of burned-in marks left untouched" if r.get("carved_px") else "")
                         + (f"; {r['note']}" if r.get("note") else ""))
        q = self.quality
        tone = q.get("tone")
        if tone and (tone["checked"] or tone["out_of_distribution"]):
            lines.append(f"local mean: {tone['checked']} frames checked, {tone['rejected']} shown raw, "
                         f"{tone['partial']} with some tiles raw; mean enhanced share of the region "
                         f"{tone['mean_enhanced_fraction']}; out-of-distribution inputs shown raw: "
                         f"{tone['out_of_distribution']}")
        fid = q.get("fidelity")
        if fid and fid["checked"]:
            reduced = fid.get("threshold_reduced_db")
            at = f"; reduced tier {reduced:g} dB" if reduced is not None and reduced != fid["threshold_db"] else ""
            lines.append(f"fidelity: {fid['checked']} frames checked, {fid['rejected']} shown raw "
                         f"(threshold {fid['threshold_db']:g} dB{at}, worst {fid['worst_db']:.1f} dB, "
                         f"median {fid['median_db']:.1f} dB)")
        ch = q.get("change_score")
        if ch and ch["n"]:
            lines.append(f"change inside the region: median {ch['median']:.1f}, p90 {ch['p90']:.1f}, "
                         f"max {ch['max']:.1f} levels")
        fl = q.get("flicker")
        if fl and fl["n"]:
            lines.append(f"flicker (mean frame-to-frame change inside the region): output {fl['output']:.2f} vs "
                         f"input {fl['input']:.2f} levels (excess {fl['excess']:+.2f})")
        settings = self.guard.get("settings", {})
        if settings.get("phi_masked"):
            failed = self.guard.get("phi_failures", 0)
            lines.append("PHI: everything outside the imaging region blanked in every output"
                         + (f"; {failed} frames blanked whole after a masking error" if failed else ""))
        return lines


def _quality(st: RecordStats, fidelity: dict[str, Any] | None) -> dict[str, Any]:
    """Fidelity, change and flicker over the shown frames (8-bit levels; fidelity in dB)."""
    fid, change = st.fidelity.summary(), st.change.summary()
    f_in = st.flicker_in / st.flicker_n if st.flicker_n else math.nan
    f_out = st.flicker_out / st.flicker_n if st.flicker_n else math.nan

    def clean(v: float) -> float | None:
        return None if math.isnan(v) else round(v, 4)

    frac = st.enhanced_fraction.summary()
    raw = st.count(Outcome.PASSTHROUGH)
    tone = {"checked": st.tone_checked, "rejected": raw.get(Reason.MEAN_SHIFT.value, 0), "partial": st.tone_partial,
            "mean_enhanced_fraction": clean(frac.mean) if frac.n else None,
            "out_of_distribution": raw.get(Reason.OUT_OF_DISTRIBUTION.value, 0)}
    return {
        "tone": tone,
        "fidelity": {"checked": fid.n, "rejected": st.fidelity_rejected,
                     "threshold_db": fidelity.get("min_db") if fidelity else None,
                     "threshold_reduced_db": fidelity.get("min_db_reduced") if fidelity else None,
                     "worst_db": clean(fid.min) if fid.n else None,
                     "median_db": clean(fid.median) if fid.n else None},
        "change_score": {"n": change.n, **{k: clean(getattr(change, k)) for k in ("median", "p90", "max")}},
        "flicker": {"n": st.flicker_n, "input": clean(f_in), "output": clean(f_out),
                    "excess": clean(f_out - f_in)},
    }


def remote_line(r: dict[str, Any]) -> str:
    """One line on a remote runner (the triton backend): its calls, faults and the batches the server formed."""
    sizes = r.get("server_batch_sizes")
    formed = ", ".join(f"{n} x{k}" for k, n in sizes.items()) if sizes else "unknown"
    return (f"remote {r.get('protocol')}://{r.get('url')} {r.get('model')} (shm {r.get('shared_memory')}): "
            f"{r.get('calls', 0)} calls, {r.get('failures', 0)} failed ({r.get('timeouts', 0)} timed out), "
            f"{r.get('skipped_while_down', 0)} skipped while down, {r.get('reconnects', 0)} reconnects; "
            f"server batches (executions x size): {formed}")
