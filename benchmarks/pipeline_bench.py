"""End-to-end pipeline cost vs bare model inference, on one machine in one run.

    python -m ganrt.benchmarks.pipeline_bench            # bundled student, bundled 512x512 cine

Three measurements, interleaved with nothing else:
1. bare: ``runner.infer`` on pre-made 512x512 tensors (the model alone);
2. offline: the cine through the full pipeline as fast as possible into a NullSink
   (decode, pre, infer, post, policy, record) -- per-frame cost vs 1;
3. live: the cine replayed at its native 30 fps, newest frame wins, writing the enhanced
   video (mp4v) -- sustained fps and capture->output latency as a viewer would get them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from ganrt.benchmarks.model_bench import environment
from ganrt.runtime.app import DEMO_CINE
from ganrt.runtime.backends.registry import parse_backend, select
from ganrt.runtime.manifest import Manifest, bundled_model_dir
from ganrt.runtime.ops import Enhancer
from ganrt.runtime.pipeline import PipelineConfig, run
from ganrt.runtime.profiles import DeviceProfile
from ganrt.runtime.record import Record
from ganrt.runtime.sinks import NullSink, VideoCodec, VideoSink
from ganrt.runtime.sources import open_source
from ganrt.runtime.stats import summarize


def _bare(runner, enhancer: Enhancer, source_spec: str, n: int) -> dict:
    with open_source(source_spec, loop=True, max_frames=8) as src:
        frames = [f for f in iter(src.read, None)]
    tensors = [enhancer.pre(f.pixels)[0] for f in frames]  # exactly what the pipeline feeds the model
    name = runner.io.input_name
    for t in tensors[:3]:
        runner.infer({name: t})
    times = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        runner.infer({name: tensors[i % len(tensors)]})
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return summarize(times).to_dict()


def _per_frame_cost(rows) -> dict:
    # dequeue -> output of each enhanced frame: pre + infer + post + sinks (raw frames skip the model)
    return summarize([r.pre_ms + r.infer_ms + r.post_ms + r.sink_ms for r in rows if r.outcome.value == "enhanced"]).to_dict()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=bundled_model_dir())
    ap.add_argument("--source", default=str(DEMO_CINE))
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--profile", default="cpu-x86-2core")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    a = ap.parse_args(argv)

    manifest = Manifest.load(a.model)
    profile = DeviceProfile.load(a.profile)
    sel = select(manifest, parse_backend(a.backend), profile)
    result: dict = {"what": __doc__.splitlines()[0], "model_id": manifest.model_id, "source": Path(a.source).name,
                    "frames": a.frames, "profile": profile.name, "budget_ms": profile.budget_ms}
    with sel.runner as runner, TemporaryDirectory() as td:
        enhancer = Enhancer(runner, manifest, artifact=sel.artifact)
        result["backend"], result["precision"] = runner.io.description, sel.precision.value
        result["bare_infer_ms"] = _bare(runner, enhancer, a.source, a.frames)

        offline_rec = Record.for_enhancer(enhancer)
        t0 = time.perf_counter()
        rep = run(open_source(a.source, loop=True, max_frames=a.frames), enhancer, [NullSink()],
                  PipelineConfig.with_budget(profile.budget_ms), record=offline_rec)
        wall = time.perf_counter() - t0
        result["offline"] = {"report": rep.to_dict(), "per_frame_cost_ms": _per_frame_cost(offline_rec.rows),
                             "wall_per_frame_ms_incl_decode": 1000 * wall / max(rep.frames_out, 1)}

        live_rec = Record.for_enhancer(enhancer)
        rep = run(open_source(a.source, realtime=True, loop=True, max_frames=a.frames), enhancer,
                  [VideoSink(Path(td) / "live.mp4", 30.0, VideoCodec.MP4V)],
                  PipelineConfig.with_budget(profile.budget_ms), record=live_rec)
        result["live_30fps_with_video_sink"] = {"report": rep.to_dict(), "per_frame_cost_ms": _per_frame_cost(live_rec.rows)}

    bare = result["bare_infer_ms"]["median"]
    off = result["offline"]["per_frame_cost_ms"]["median"]
    live = result["live_30fps_with_video_sink"]["report"]
    result["ratios"] = {
        "offline_pipeline_median_over_bare_median": off / bare,
        "offline_wall_per_frame_over_bare_median": result["offline"]["wall_per_frame_ms_incl_decode"] / bare,
    }
    result["targets"] = {
        "pipeline_median_le_1.15x_bare": off / bare <= 1.15,
        "live_fps_ge_30": live["fps"] >= 29.5,  # 30 fps source: within half a frame per second
        "live_capture_to_output_p99_le_40ms": live["latency_ms"]["capture_to_output_ms"]["p99"] <= 40.0,
    }
    result["environment"] = environment()
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "pipeline_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    (a.out / "pipeline_cpu.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


def to_markdown(r: dict) -> str:
    b, off = r["bare_infer_ms"], r["offline"]
    live = r["live_30fps_with_video_sink"]["report"]
    c2o = live["latency_ms"]["capture_to_output_ms"]
    env = r["environment"]
    return "\n".join([
        f"# Pipeline vs bare model ({env['cpu']}, {env['cores']} cores; {r['backend']}, {r['precision']})", "",
        f"Source {r['source']} (512x512), {r['frames']} frames, profile {r['profile']} (budget {r['budget_ms']:g} ms).", "",
        "| measurement | median ms | p99 ms |", "|---|---|---|",
        f"| bare model inference | {b['median']:.2f} | {b['p99']:.2f} |",
        f"| pipeline per-frame cost of enhanced frames (pre+infer+post+sink, offline, NullSink) | {off['per_frame_cost_ms']['median']:.2f} | {off['per_frame_cost_ms']['p99']:.2f} |",
        f"| pipeline wall time per frame incl. decode (offline) | {off['wall_per_frame_ms_incl_decode']:.2f} | |",
        f"| live 30 fps + mp4 sink: capture -> output | {c2o['median']:.2f} | {c2o['p99']:.2f} |", "",
        f"Ratio pipeline/bare (medians): **{r['ratios']['offline_pipeline_median_over_bare_median']:.3f}** "
        f"(incl. decode: {r['ratios']['offline_wall_per_frame_over_bare_median']:.3f}).",
        f"Live: {live['fps']:.1f} fps sustained; enhanced {live['enhanced']}, raw {live['passthrough']}, "
        f"dropped {live['dropped']}; deadline misses {100 * live['deadline_miss_rate']:.1f}%.",
        f"Targets: {r['targets']}", "",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
