"""Soak: 100 000 simulator frames through the pipeline, fast mode, null sink; resident memory must stay flat.

    python -m ganrt.benchmarks.soak                     # writes benchmarks/results/soak_cpu.{json,md}
    python -m ganrt.benchmarks.soak --frames 20000 --hw 64 --save /tmp/soak.json

The bundled student on ONNX Runtime, the record streamed to a file (as ``ganrt run`` does),
no fidelity check (so the measure is the pipeline's own memory). RSS (VmRSS) is sampled every
``--sample-every`` frames by a sink; growth is end vs the sample after ``--settle`` frames
(first allocations: ORT arenas, OpenCV buffers, the record's reservoirs). Small frames keep
the 2-core run short: the pipeline's per-frame state does not depend on the frame size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from ganrt.benchmarks.env import describe, environment
from ganrt.benchmarks.resources import _status_kib
from ganrt.benchmarks.sim_source import SimCineSource, render_cine, save
from ganrt.runtime.backends.registry import parse_backend, select
from ganrt.runtime.model.manifest import Manifest, bundled_model_dir
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.model.profiles import DEFAULT_PROFILE, DeviceProfile
from ganrt.runtime.records.record import Record
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.sinks.files import NullSink

RESULTS = Path(__file__).resolve().parent / "results"


class RssSampler(NullSink):
    """A null sink that notes VmRSS (KiB) every ``every`` frames."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every, self.samples = every, []

    def write(self, frame, result) -> None:
        super().write(frame, result)
        if self.count % self.every == 0:
            self.samples.append((self.count, _status_kib("VmRSS")))


def soak(frames: int, hw: int, sample_every: int, settle: int, cine_frames: int = 90) -> dict:
    manifest = Manifest.load(bundled_model_dir())
    profile = DeviceProfile.load(DEFAULT_PROFILE)
    sel = select(manifest, parse_backend("auto"), profile, None)
    cine = render_cine((hw, hw), cine_frames)
    sampler = RssSampler(sample_every)
    with sel.runner as runner, TemporaryDirectory() as td:
        enhancer = Enhancer(runner, manifest, artifact=sel.artifact)
        record = Record.for_enhancer(enhancer, Path(td) / "record.jsonl")
        t0 = time.perf_counter()
        report = run(SimCineSource(cine, frames), enhancer, [sampler],
                     PipelineConfig.with_budget(profile.budget_ms), record=record)
        wall = time.perf_counter() - t0
        record_mib = (Path(td) / "record.jsonl").stat().st_size / 2**20
    base = next(kib for n, kib in sampler.samples if n >= settle)
    end = sampler.samples[-1][1]
    peak = max(kib for n, kib in sampler.samples if n >= settle)
    tenth = next(kib for n, kib in sampler.samples if n >= frames // 10)
    return {
        "benchmark": "soak", "what": __doc__.splitlines()[0],
        "frames": frames, "frame_hw": [hw, hw], "distinct_frames": cine_frames, "mode": "fast (offline)",
        "sink": "null", "record": "jsonl file, streamed", "model_id": manifest.model_id,
        "backend": runner.io.description if hasattr(runner, "io") and runner.io else sel.backend.value,
        "precision": sel.precision.value, "profile": profile.name,
        "frames_in": report.frames_in, "frames_out": report.frames_out, "enhanced": report.enhanced,
        "passthrough_by_reason": report.passthrough, "wall_s": round(wall, 1), "fps": round(frames / wall, 1),
        "record_mib": round(record_mib, 1),
        "rss_settled_mib": round(base / 1024, 2), "rss_end_mib": round(end / 1024, 2),
        "rss_peak_after_settle_mib": round(peak / 1024, 2),
        "rss_growth_pct": round(100 * (end - base) / base, 3),
        "rss_peak_growth_pct": round(100 * (peak - base) / base, 3),
        "rss_growth_last_90pct_of_frames_pct": round(100 * (end - tenth) / tenth, 3),
        "settle_frames": settle, "rss_samples_kib": sampler.samples,
        "environment": environment({"profile": profile.name, "intra_op": profile.threads.intra_op}),
    }


def to_markdown(r: dict) -> str:
    return "\n".join([
        f"# Soak: {r['frames']} frames, {r['frame_hw'][0]}x{r['frame_hw'][1]}, {r['mode']}, {r['sink']} sink",
        "",
        f"{describe(r['environment'])}; load average at start {r['environment'].get('load_avg')}",
        f"model {r['model_id']} {r['precision']} on {r['backend']}; record: {r['record']} ({r['record_mib']} MiB)",
        "",
        "| frames in | enhanced | fps | RSS after settle | RSS end | peak | growth | peak growth | growth, last 90% |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {r['frames_in']} | {r['enhanced']} | {r['fps']} | {r['rss_settled_mib']} MiB | {r['rss_end_mib']} MiB "
        f"| {r['rss_peak_after_settle_mib']} MiB | {r['rss_growth_pct']}% | {r['rss_peak_growth_pct']}% "
        f"| {r['rss_growth_last_90pct_of_frames_pct']}% |",
        "",
        f"Growth: VmRSS at the end vs after the first {r['settle_frames']} frames, and vs after the first tenth "
        f"of the frames (sampled every {r['rss_samples_kib'][1][0] - r['rss_samples_kib'][0][0]} frames).",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--hw", type=int, default=64, help="frame side in pixels (default 64)")
    ap.add_argument("--sample-every", type=int, default=1000)
    ap.add_argument("--settle", type=int, default=5000, help="frames before the RSS baseline (default 5000)")
    ap.add_argument("--save", type=Path, default=RESULTS / "soak_cpu.json")
    args = ap.parse_args(argv)
    r = soak(args.frames, args.hw, args.sample_every, args.settle)
    save(r, args.save, to_markdown)
    return 0 if r["rss_growth_pct"] < 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
