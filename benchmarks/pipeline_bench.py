"""End-to-end pipeline latency (`ganrt bench pipeline`) next to the bare model, on one machine in one run.

    python -m ganrt.benchmarks.pipeline_bench            # bundled student, bundled 512x512 cine
    ganrt bench pipeline --source clip.mp4 --mode both --sink video --plot out/

Up to three measurements of the same source and model, one after the other:
1. bare: ``runner.infer`` on the exact tensors the pipeline feeds it (the model alone);
2. fast: the source through the full pipeline as fast as possible, no drops (decode, pre,
   infer, post, policy, record, sink) -- the per-frame cost vs 1;
3. realtime: the source replayed at its native fps, newest frame wins (drops allowed) --
   what a viewer gets: sustained fps, capture->output latency, deadline misses, raw frames.

For each pipeline run: latency per stage (wait, pre, infer, post, sink, capture->output) as
percentiles and per-frame values, deadline-miss rate, passthrough and drop counts by reason,
fps, process CPU utilisation and resident memory. ``MEASURED`` says what each number runs from
and to.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from ganrt.benchmarks.env import describe, environment
from ganrt.benchmarks.resources import ResourceMeter
from ganrt.benchmarks.timing import Candidate, Plan, Warmup, analyse, run_interleaved
from ganrt.runtime.backends.registry import parse_backend, select
from ganrt.runtime.cli.demo import DEMO_CINE, guard_config
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.frames import Outcome, Tier
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.model.profiles import DeviceProfile
from ganrt.runtime.records.record import STAGES, Record
from ganrt.runtime.records.record_stats import RunMeter
from ganrt.runtime.records.stats import summarize
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.tiers import TierConfig
from ganrt.runtime.sinks.files import NullSink, VideoCodec, VideoSink
from ganrt.runtime.sources import open_source
from ganrt.runtime.trust.guard import GuardConfig
from ganrt.runtime.trust.region import RegionMode

MEASURED = {
    "capture_to_output_ms": "from Frame.t_capture_ns (the source has just returned the decoded frame) to the "
                            "moment the last sink's write() returned; decode happens before the start, display "
                            "scan-out after the end",
    "wait_ms": "capture -> the processing loop takes the frame off the queue (queueing)",
    "pre_ms": "uint8 frame -> model input tensor", "infer_ms": "runner.infer (host wall time)",
    "post_ms": "model output -> uint8 frame, with the output check", "sink_ms": "all sinks' write()",
    "wall_per_frame_ms": "fast mode: run wall time / frames out, so it includes decode",
    "bare_infer_ms": "runner.infer alone on pre-made tensors (see `ganrt bench`)",
    "cpu_util": "process CPU time (all threads, user+system, getrusage) / wall time of the run",
    "rss": "resident set size from /proc/self/status (VmRSS, VmHWM)",
}


class Mode(Enum):
    FAST = "fast"  # as fast as possible, every frame processed
    REALTIME = "realtime"  # native fps, newest frame wins


class BenchSink(Enum):
    NULL = "null"  # nothing written: the pipeline's own cost
    VIDEO = "video"  # mp4v file: what a recording viewer pays


@dataclass(frozen=True)
class PipelineBenchConfig:
    source: str = str(DEMO_CINE)
    frames: int = 300
    modes: tuple[Mode, ...] = (Mode.FAST, Mode.REALTIME)
    sink_fast: BenchSink = BenchSink.NULL
    sink_realtime: BenchSink = BenchSink.VIDEO
    budget_ms: float | None = None  # None: the profile's
    bare: bool = True
    keep_per_frame: bool = True
    checks: bool = True  # the run command's default checks for the bundle; False: the bare loop
    lookahead: bool = True  # an auto region read ahead from the file, as `ganrt run` does; False: a camera's start

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ConfigError("--frames must be >= 1")
        if not self.modes:
            raise ConfigError("choose at least one pipeline mode")


def _bare(runner, enhancer: Enhancer, source_spec: str, n: int) -> dict:
    with open_source(source_spec, loop=True, max_frames=8) as src:
        frames = [f for f in iter(src.read, None)]
    tensors = [enhancer.pre(f.pixels)[0] for f in frames]  # exactly what the pipeline feeds the model
    name = runner.io.input_name
    plan = Plan(iterations=n, blocks=5)
    smp = run_interleaved([Candidate("bare", lambda i: runner.infer({name: tensors[i % len(tensors)]}))], plan,
                          Warmup(5))
    st = analyse(smp, plan)["bare"]
    return {"latency_ms": st["latency_ms"], "spread_blocks": st["spread_blocks"], "inputs": len(tensors)}


def _per_frame(rows) -> dict[str, list[float | None]]:
    out = [r for r in rows if r.outcome.value != "dropped"]
    clean = lambda v: None if v is None or math.isnan(v) else round(v, 4)  # noqa: E731
    return {k: [clean(getattr(r, k)) for r in out] for k in (*STAGES, "capture_to_output_ms")} | {
        "outcome": [r.outcome.value for r in out], "reason": [r.reason.value for r in out],
        "tier": [r.tier.value for r in out]}


def _frame_cost(rows) -> dict:
    """pre + infer + post + guard + sink of every frame shown enhanced at full resolution (the bare
    model's input size; reduced-tier frames are cheaper, and a frame the output checks sent raw does
    not say at which tier it ran): what one frame costs the loop, checks included."""
    costs = [r.pre_ms + r.infer_ms + r.post_ms + r.guard_ms + r.sink_ms for r in rows if r.tier is Tier.FULL]
    return summarize([c for c in costs if not math.isnan(c)]).to_dict()


# raw because of time, not because of a check; backoff: the model still busy with an earlier call that
# timed out (or backing off after failures: counted here too, to err on the side of more raw frames)
TIME_REASONS = ("predicted-miss", "timeout", "late", "backoff", "probe")


def _for_time(d: dict, rows) -> dict:
    """The share of frames in shown raw for time (the reasons above) or dropped (overtaken by newer
    ones), over the run and after the start-up (the frames before the model's first result in time,
    captured while it warmed up); the flicker measure: the shortest run of enhanced or raw frames
    between two switches, and the same where only raw for time counts as raw (a frame the output
    checks sent raw had its model result in time)."""
    for_time = [r.outcome is Outcome.DROPPED or r.reason.value in TIME_REASONS for r in rows]
    start = next((i for i, r in enumerate(rows) if r.outcome is not Outcome.DROPPED and not for_time[i]
                  and not math.isnan(r.infer_ms)), len(rows))
    timing = RunMeter()
    for r, late in zip(rows, for_time):
        if r.outcome is not Outcome.DROPPED:
            timing.add(not late)
    after = for_time[start:]
    return {"raw_or_dropped_for_time": sum(for_time) / len(rows) if rows else 0.0,
            "raw_or_dropped_for_time_frames": sum(for_time), "startup_frames": start,
            "raw_or_dropped_for_time_after_startup": sum(after) / len(after) if after else 0.0,
            "tiers": d["tiers"], "enhanced_raw_switches": d["enhanced_raw_switches"],
            "min_run_between_switches": d["min_run_between_switches"],
            "time_switches": timing.switches, "min_run_between_time_switches": timing.shortest}


def _lookahead(cfg: PipelineBenchConfig, guard: GuardConfig) -> list:
    """The frames `ganrt run` reads ahead from a file source under an auto region (serve.stream.read_ahead),
    so the region is known from the first frame; none with ``lookahead`` off: the region is collected
    from the stream, as from a camera, and those frames are shown raw (``region-pending``)."""
    if not (cfg.lookahead and guard.region.mode is RegionMode.AUTO):
        return []
    with open_source(cfg.source, max_frames=guard.region.frames) as src:
        return [f.pixels for f in iter(src.read, None) if not f.signal_lost]


def _sink(kind: BenchSink, tmp: Path, fps: float):
    return NullSink() if kind is BenchSink.NULL else VideoSink(tmp / "bench.mp4", fps or 30.0, VideoCodec.MP4V)


def _one_mode(mode: Mode, cfg: PipelineBenchConfig, enhancer: Enhancer, budget_ms: float, tmp: Path,
              guard: GuardConfig, tiers: TierConfig) -> dict:
    realtime = mode is Mode.REALTIME
    source = open_source(cfg.source, realtime=realtime, loop=True, max_frames=cfg.frames)
    sink_kind = cfg.sink_realtime if realtime else cfg.sink_fast
    rec = Record.for_enhancer(enhancer)
    ahead = _lookahead(cfg, guard)
    meter = ResourceMeter()
    with meter:
        t0 = time.perf_counter()
        rep = run(source, enhancer, [_sink(sink_kind, tmp, source.fps)],
                  PipelineConfig.with_budget(budget_ms, tiers, guard=guard), record=rec, lookahead=ahead)
        wall = time.perf_counter() - t0
    d = rep.to_dict()
    out = {
        "mode": mode.value, "sink": sink_kind.value, "source_fps": source.fps, "lookahead_frames": len(ahead),
        "frames_in": d["frames_in"], "frames_out": d["frames_out"], "enhanced": d["enhanced"],
        "passthrough": d["passthrough"], "passthrough_by_reason": d["passthrough_by_reason"],
        "dropped": d["dropped"], "dropped_by_reason": d["dropped_by_reason"],
        "raw_or_dropped": (d["passthrough"] + d["dropped"]) / max(d["frames_in"], 1),  # for any reason
        "late": d["late"], "deadline_miss_rate": d["deadline_miss_rate"], "budget_ms": budget_ms,
        "fps": d["fps"], "wall_s": d["wall_s"], "wall_per_frame_ms": 1000 * wall / max(d["frames_out"], 1),
        **_for_time(d, rec.rows), "latency_ms": d["latency_ms"], "frame_cost_ms": _frame_cost(rec.rows),
        "resources": meter.result(), "model": d["model"],
    }
    if cfg.keep_per_frame:
        out["per_frame"] = _per_frame(rec.rows)
    return out


def run_pipeline_bench(manifest: Manifest, profile: DeviceProfile, cfg: PipelineBenchConfig,
                       backend: str = "auto", precision: Precision | None = None) -> dict[str, Any]:
    sel = select(manifest, parse_backend(backend), profile, precision)
    budget = cfg.budget_ms or profile.budget_ms
    result: dict[str, Any] = {
        "benchmark": "pipeline", "what": __doc__.splitlines()[0], "measured": MEASURED,
        "model_id": manifest.model_id, "source": Path(cfg.source).name, "frames": cfg.frames,
        "profile": profile.name, "budget_ms": budget, "modes": {},
    }
    # the checks `ganrt run` applies to this bundle by default (region, local mean, domain, fidelity)
    guard = guard_config(profile, manifest) if cfg.checks else GuardConfig()
    result["guard"], result["checks"] = guard.to_dict(), cfg.checks
    result["tiers"] = dataclasses.asdict(profile.tiers)
    with sel.runner as runner, TemporaryDirectory() as td:
        enhancer = Enhancer(runner, manifest, artifact=sel.artifact)
        result["backend"], result["precision"] = runner.io.description, sel.precision.value
        if cfg.bare:
            result["bare_infer_ms"] = _bare(runner, enhancer, cfg.source, min(cfg.frames, 300))
        for mode in cfg.modes:
            result["modes"][mode.value] = _one_mode(mode, cfg, enhancer, budget, Path(td), guard, profile.tiers)
    result["ratios"] = _ratios(result)
    t = profile.threads
    result["environment"] = environment({"profile": profile.name, "intra_op": t.intra_op, "inter_op": t.inter_op,
                                         "spin": t.spin})
    return result


def _ratios(r: dict) -> dict:
    out = {}
    bare = r.get("bare_infer_ms", {}).get("latency_ms", {}).get("median")
    fast = r["modes"].get("fast")
    if bare and fast:
        if fast["frame_cost_ms"]["n"]:  # none when the output checks sent every frame raw
            out["fast_frame_cost_median_over_bare_median"] = fast["frame_cost_ms"]["median"] / bare
        out["fast_wall_per_frame_over_bare_median"] = fast["wall_per_frame_ms"] / bare
    return out


# --- text --------------------------------------------------------------------------------------------


def _cell(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def _checks(g: dict) -> str:
    on = [k for k in ("fidelity", "tone", "input_domain") if g.get(k)]
    return f"(region {g.get('region_mode')}{', ' + ', '.join(on) if on else ''})"


def to_markdown(r: dict) -> str:
    env = r["environment"]
    lines = [f"# Pipeline latency ({r['backend']}, {r['precision']})", "",
             f"{describe(env)}; load average {env.get('load_avg')} (1, 5, 15 min, at the end). Source {r['source']}, {r['frames']} frames per mode, profile {r['profile']} "
             f"(budget {r['budget_ms']:g} ms). Output checks: "
             f"{'the bundle defaults ' + _checks(r['guard']) if r.get('checks') else 'none (the bare loop)'}; "
             f"tiers {r.get('tiers')}.", ""]
    if "bare_infer_ms" in r:
        b = r["bare_infer_ms"]["latency_ms"]
        lines.append(f"Bare model inference: median {b['median']:.2f} ms, p99 {b['p99']:.2f} ms.")
        lines.append("")
    for name, m in r["modes"].items():
        res = m["resources"]
        lines += [f"## {name} ({m['sink']} sink{', source at {:g} fps'.format(m['source_fps']) if name == 'realtime' else ''})", "",
                  f"{m['fps']:.1f} fps out; frames in {m['frames_in']}: enhanced {m['enhanced']}, raw {m['passthrough']}"
                  f"{' ' + str(m['passthrough_by_reason']) if m['passthrough'] else ''}, dropped {m['dropped']}"
                  f"{' ' + str(m['dropped_by_reason']) if m['dropped'] else ''}; deadline misses "
                  f"{100 * m['deadline_miss_rate']:.1f}% ({m['late']} frames over {m['budget_ms']:g} ms).",
                  f"Raw or dropped for any reason: {100 * m['raw_or_dropped']:.1f}% "
                  f"(region read ahead from {m.get('lookahead_frames', 0)} frames).",
                  f"Tiers shown: {m['tiers']}; raw for time ({', '.join(TIME_REASONS)}) or dropped "
                  f"{100 * m['raw_or_dropped_for_time']:.1f}% ({m['raw_or_dropped_for_time_frames']} frames; "
                  f"{100 * m['raw_or_dropped_for_time_after_startup']:.1f}% after the {m['startup_frames']} start-up "
                  f"frames); enhanced/raw switches {m['enhanced_raw_switches']}, shortest run between two "
                  f"{m['min_run_between_switches']} frames; counting only raw for time: switches "
                  f"{m['time_switches']}, shortest run {m['min_run_between_time_switches']} frames.",
                  f"CPU {res['cpu_util_pct_one_core']}% of one core ({res['cpu_util_pct_all_cores']}% of {res['cpus']}); "
                  f"RSS {res['rss_start_mib']} -> {res['rss_end_mib']} MiB, peak {res['rss_peak_mib']} MiB; "
                  f"wall per frame incl. decode {m['wall_per_frame_ms']:.2f} ms.", "",
                  "| stage (ms) | p50 | p90 | p99 | p99.9 | max |", "|---|---|---|---|---|---|"]
        for k, s in m["latency_ms"].items():
            if s.get("n"):
                lines.append(f"| {k.removesuffix('_ms')} | {_cell(s['median'])} | {_cell(s['p90'])} | {_cell(s['p99'])} | "
                             f"{_cell(s['p99_9'])} | {_cell(s['max'])} |")
        lines.append("")
    lines.append("capture->output: " + r["measured"]["capture_to_output_ms"] + ".")
    if r.get("ratios"):
        lines.append("Ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in r["ratios"].items()) + ".")
    if "fast" in r["modes"] and not r["modes"]["fast"]["frame_cost_ms"]["n"]:
        lines.append("No per-frame cost ratio: no frame was shown enhanced at full resolution in the fast run.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=bundled_model_dir())
    ap.add_argument("--source", default=str(DEMO_CINE))
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--profile", default="cpu-x86-2core")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--plot", action="store_true", help="also write latency CDF/histogram PNGs (needs matplotlib)")
    a = ap.parse_args(argv)
    manifest, profile = Manifest.load(a.model), DeviceProfile.load(a.profile)
    r = run_pipeline_bench(manifest, profile, PipelineBenchConfig(source=a.source, frames=a.frames), a.backend)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "pipeline_cpu.json").write_text(json.dumps(r, indent=1) + "\n")
    (a.out / "pipeline_cpu.md").write_text(to_markdown(r))
    if a.plot:
        from ganrt.benchmarks.plots import pipeline_plots

        pipeline_plots(r, a.out, "pipeline_cpu")
    print(to_markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
