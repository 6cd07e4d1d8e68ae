"""Several live streams through one model at once, on this machine (`python -m ganrt.benchmarks.multistream_bench`).

    python -m ganrt.benchmarks.multistream_bench                  # the bundled 512x512 cine twice, int8-cpu
    python -m ganrt.benchmarks.multistream_bench --streams 3 --sink video --note "quiet machine"

Every stream replays its source at the source's native rate (realtime: newest frame wins,
drops allowed), all at the same time, through ``multistream.run_streams`` -- what
`ganrt run --realtime --source A --source B` does: one runner shared through a scheduler
thread (frames batched when the model takes a dynamic batch, else served one at a time), a
deadline policy per stream, fair turns between the streams (``runtime.fairness``). Then, for
comparison, the same streams without fair turns, and one stream alone with the same settings.

Written: each stream's fps, capture->output p50/p99, enhanced/raw/dropped counts; the combined
numbers; the scheduler's call counts; the machine's load average before, during and after and
the share of the CPUs that other processes used meanwhile (other work on the machine moves
these numbers: compare results only at similar load); the environment block. This script is
the only source of ``benchmarks/results/multistream_cpu.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from ganrt.benchmarks.env import describe, environment, save_result
from ganrt.benchmarks.resources import ResourceMeter, cpus
from ganrt.runtime.backends.registry import parse_backend, select
from ganrt.runtime.cli.demo import DEMO_CINE
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir
from ganrt.runtime.model.profiles import DeviceProfile
from ganrt.runtime.records.multi_report import StreamResult
from ganrt.runtime.serve.multistream import run_streams
from ganrt.runtime.serve.stream import RunSetup, StreamSpec, stream_once
from ganrt.runtime.sinks.specs import parse_sinks
from ganrt.runtime.trust.guard import GuardConfig

MEASURED = {
    "fps": "frames shown (enhanced or raw) per second of the stream's own run",
    "capture_to_output_ms": "from Frame.t_capture_ns (the source has just returned the decoded frame) to the "
                            "moment the stream's last sink returned; queueing for the shared runner included",
    "combined": "all streams together: frames shown per second of the whole run; percentiles over every "
                "shown frame of every stream",
    "load_avg": "os.getloadavg() (1, 5, 15 min) before and after; during: sampled every second",
    "cpu_other_pct": "share of all CPUs busy (/proc/stat) minus this process's share (getrusage) over the run",
}
SINKS = ("null", "video")


@dataclass(frozen=True)
class MultiBenchConfig:
    sources: tuple[str, ...] = (str(DEMO_CINE), str(DEMO_CINE))
    frames: int = 300  # per stream (files loop)
    sink: str = "null"
    precision: str = "int8-cpu"
    backend: str = "auto"
    budget_ms: float | None = None  # None: the profile's
    reference: bool = True  # also one stream alone
    unfair: bool = True  # also the same streams with no fair turns (each policy alone), for comparison
    note: str = ""  # what else the machine was doing

    def __post_init__(self) -> None:
        if self.frames < 1 or len(self.sources) < 1:
            raise ConfigError("--frames and --streams must be >= 1")
        if self.sink not in SINKS:
            raise ConfigError(f"--sink must be one of {', '.join(SINKS)}")


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


class LoadWatch:
    """Load average before, during (sampled) and after a stretch, and the CPU share of other processes."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self._stop = threading.Event()
        self._samples: list[float] = []
        self._thread = threading.Thread(target=self._sample, name="load-watch", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self._samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadWatch:
        self.before = [round(v, 2) for v in os.getloadavg()]
        self._cpu0 = _cpu_times()
        self._meter = ResourceMeter().__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._meter.__exit__(*exc)
        self.after = [round(v, 2) for v in os.getloadavg()]
        cpu1 = _cpu_times()
        self.machine_busy_pct = None
        if self._cpu0 and cpu1 and cpu1[1] > self._cpu0[1]:
            self.machine_busy_pct = round(100 * (cpu1[0] - self._cpu0[0]) / (cpu1[1] - self._cpu0[1]), 1)

    def result(self) -> dict[str, Any]:
        res = self._meter.result()
        ours = res.get("cpu_util_pct_all_cores")
        s = self._samples
        return {"load_avg_before": self.before, "load_avg_after": self.after,
                "load_avg_1min_during": {"min": round(min(s), 2), "max": round(max(s), 2)} if s else None,
                "cpu_busy_pct_all_cores": self.machine_busy_pct, "cpu_this_process_pct_all_cores": ours,
                "cpu_other_pct_all_cores": round(self.machine_busy_pct - ours, 1)
                if self.machine_busy_pct is not None and ours is not None else None,
                "cpus": cpus(), "resources": res}


def _stream_dict(s: StreamResult) -> dict[str, Any]:
    d = s.summary()
    if s.report is not None:
        d["passthrough_by_reason"], d["dropped_by_reason"] = s.report.passthrough, s.report.dropped
        d["source"] = Path(s.source).name
    return d


def run_multistream_bench(manifest: Manifest, profile: DeviceProfile, cfg: MultiBenchConfig) -> dict[str, Any]:
    sel = select(manifest, parse_backend(cfg.backend), profile, Precision.parse(cfg.precision))
    setup = RunSetup(manifest, profile, sel, sinks=parse_sinks([cfg.sink]), guard=GuardConfig(),
                     budget_ms=cfg.budget_ms)
    result: dict[str, Any] = {
        "benchmark": "multistream", "what": __doc__.splitlines()[0], "measured": MEASURED,
        "model_id": manifest.model_id, "precision": sel.precision.value, "profile": profile.name,
        "budget_ms": cfg.budget_ms or profile.budget_ms, "sources": [Path(s).name for s in cfg.sources],
        "frames_per_stream": cfg.frames, "sink": cfg.sink, "mode": "realtime", "note": cfg.note,
    }
    with TemporaryDirectory() as td:
        specs = [StreamSpec(src, Path(td) / f"stream{i}", realtime=True, loop=True, max_frames=cfg.frames,
                            name=f"stream{i}") for i, src in enumerate(cfg.sources)]
        with LoadWatch() as load:
            report, failures = run_streams(specs, setup)
        if failures:
            raise failures[0]
        result["streams"] = {s.name: _stream_dict(s) for s in report.streams}
        result["combined"], result["scheduler"] = report.combined(), report.scheduler
        result["backend"] = report.streams[0].report.static.get("backend", "?")
        result["load"] = load.result()
        if cfg.unfair and len(specs) > 1:
            specs = [replace(s, out=Path(td) / f"unfair{i}") for i, s in enumerate(specs)]
            with LoadWatch() as load_u:
                unfair, failures = run_streams(specs, setup, fair=None)
            if failures:
                raise failures[0]
            result["without_fair_share"] = {"streams": {s.name: _stream_dict(s) for s in unfair.streams},
                                            "combined": unfair.combined(), "load": load_u.result()}
        if cfg.reference:
            spec = StreamSpec(cfg.sources[0], Path(td) / "single", realtime=True, loop=True, max_frames=cfg.frames)
            with LoadWatch() as load1:
                single = stream_once(spec, setup)
            result["single_stream_reference"] = {**_stream_dict(StreamResult("single", cfg.sources[0], single)),
                                                 "load": load1.result()}
    t = profile.threads
    result["environment"] = environment({"profile": profile.name, "intra_op": t.intra_op, "inter_op": t.inter_op,
                                         "spin": t.spin})
    return result


# --- text --------------------------------------------------------------------------------------------


def _row(name: str, d: dict[str, Any]) -> str:
    c = d["capture_to_output_ms"]
    ms = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
    return (f"| {name} | {d['fps']:.1f} | {ms(c['p50'])} | {ms(c['p99'])} | {d['frames_in']} | {d['enhanced']} | "
            f"{d['passthrough']} | {d['dropped']} | {d['late']} |")


def _load_line(load: dict[str, Any]) -> str:
    during = load.get("load_avg_1min_during") or {}
    return (f"load average (1/5/15 min) {'/'.join(f'{v:g}' for v in load['load_avg_before'])} before, "
            f"{'/'.join(f'{v:g}' for v in load['load_avg_after'])} after"
            + (f", 1-min {during['min']:g}-{during['max']:g} during" if during else "")
            + (f"; CPUs {load['cpu_busy_pct_all_cores']}% busy, {load['cpu_other_pct_all_cores']}% of them "
               f"by other processes" if load.get("cpu_other_pct_all_cores") is not None else ""))


def _balance(streams: dict[str, Any]) -> float:
    en = [d["enhanced"] for d in streams.values()]
    return min(en) / max(en) if max(en) else float("nan")


def to_markdown(r: dict[str, Any]) -> str:
    env, sch = r["environment"], r["scheduler"]
    lines = [f"# {len(r['streams'])} concurrent streams, one shared model ({r['backend']}, {r['precision']})", "",
             f"{describe(env)}. Each stream replays {', '.join(sorted(set(r['sources'])))} at its native rate "
             f"(realtime, newest frame wins), {r['frames_per_stream']} frames per stream, {r['sink']} sink, "
             f"profile {r['profile']} (budget {r['budget_ms']:g} ms per stream).", ""]
    if r.get("note"):
        lines += [f"**Conditions:** {r['note']}.", ""]
    lines += [f"Machine during the run: {_load_line(r['load'])}.", "",
              "| stream | fps | capture->output p50 ms | p99 ms | frames in | enhanced | raw | dropped | late |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, d in r["streams"].items():
        lines.append(_row(name, d))
    lines.append(_row("**combined**", r["combined"]))
    if "without_fair_share" in r:
        for name, d in r["without_fair_share"]["streams"].items():
            lines.append(_row(f"{name}, no fair turns", d))
        lines.append(_row("combined, no fair turns", r["without_fair_share"]["combined"]))
    if "single_stream_reference" in r:
        ref = r["single_stream_reference"]
        lines.append(_row("one stream alone (reference)", ref))
    sizes = ", ".join(f"{n} calls of {k}" for k, n in sch["batch_sizes"].items())
    lines += ["", f"Shared runner: {sch['mode']}" + (f" ({sch['why_serial']})" if sch.get("why_serial") else "")
              + f"; {sch['runner_calls']} model calls for {sch['requests']} requests ({sizes}).", ""]
    fs = sch.get("fair_share")
    if fs:
        lines += [f"Fair turns (window {fs['window']} frames, margin {fs['margin']:g}): frames yielded by stream "
                  + ", ".join(f"{k} {v}" for k, v in fs["yields_by_stream"].items()) + "; owed turns taken "
                  + ", ".join(f"{k} {v}" for k, v in fs["turns_by_stream"].items()) + ".", ""]
        lines += [f"Enhanced-frame balance (fewest / most, 1 = equal): {_balance(r['streams']):.2f} with fair turns"
                  + (f", {_balance(r['without_fair_share']['streams']):.2f} without" if "without_fair_share" in r
                     else "") + ".", ""]
    for name, d in r["streams"].items():
        why = {**d.get("passthrough_by_reason", {}), **{f"dropped {k}": v for k, v in
                                                        d.get("dropped_by_reason", {}).items()}}
        if why:
            lines.append(f"- {name} raw/dropped by reason: " + ", ".join(f"{k} {v}" for k, v in why.items()))
    if "without_fair_share" in r:
        for name, d in r["without_fair_share"]["streams"].items():
            why = d.get("passthrough_by_reason", {})
            if why:
                lines.append(f"- {name}, no fair turns, raw by reason: " + ", ".join(f"{k} {v}" for k, v in why.items()))
        lines.append(f"- run without fair turns: {_load_line(r['without_fair_share']['load'])}")
    if "single_stream_reference" in r:
        lines.append(f"- reference run: {_load_line(r['single_stream_reference']['load'])}")
    lines += ["", "capture->output: " + r["measured"]["capture_to_output_ms"] + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=bundled_model_dir())
    ap.add_argument("--source", action="append", default=None, help="repeat per stream (default: the bundled cine)")
    ap.add_argument("--streams", type=int, default=2, help="streams of the bundled cine when no --source (default 2)")
    ap.add_argument("--frames", type=int, default=300, help="frames per stream (default 300 = 10 s at 30 fps)")
    ap.add_argument("--sink", choices=SINKS, default="null")
    ap.add_argument("--precision", default="int8-cpu")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--budget-ms", type=float, default=None)
    ap.add_argument("--profile", default="cpu-x86-2core")
    ap.add_argument("--no-reference", action="store_true", help="skip the one-stream reference run")
    ap.add_argument("--no-unfair", action="store_true", help="skip the comparison run without fair turns")
    ap.add_argument("--note", default="", help="what else the machine was doing (written into the result)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--name", default="multistream_cpu", help="result file stem (default multistream_cpu)")
    a = ap.parse_args(argv)
    sources = tuple(a.source) if a.source else (str(DEMO_CINE),) * a.streams
    cfg = MultiBenchConfig(sources=sources, frames=a.frames, sink=a.sink, precision=a.precision, backend=a.backend,
                           budget_ms=a.budget_ms, reference=not a.no_reference, note=a.note, unfair=not a.no_unfair)
    r = run_multistream_bench(Manifest.load(a.model), DeviceProfile.load(a.profile), cfg)
    print(save_result(a.out, a.name, r, to_markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
