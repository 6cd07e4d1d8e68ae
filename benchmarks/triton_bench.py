"""In-process onnxruntime against the same model on a Triton server on this machine
(`python -m ganrt.benchmarks.triton_bench`).

    python -m ganrt.benchmarks.triton_bench                   # 512x512, int8-cpu, 4 streams
    python -m ganrt.benchmarks.triton_bench --note "quiet machine"

The server is the tritonserver of nvidia-pytriton (``benchmarks/triton_server.py``, its cached
``.venv-triton``) serving the repository `ganrt export triton` writes, through the stand-in
onnxruntime Python-based backend: the same onnxruntime, the same artifact and the same number of
intra-op threads (the profile's) as the in-process runner. So the difference is what serving
costs: the request over gRPC (the frame serialised into the request, or written once into system
shared memory), the server's scheduling and dynamic batcher (its queue delay included) and the
Python backend's hand-over to its model process. A real Triton onnxruntime backend (C++) skips that
last hand-over, so these overheads are an upper bound for it.

1. Latency, one frame per call, the three ways interleaved round-robin (``timing.run_interleaved``):
   in-process, remote gRPC, remote gRPC + system shared memory.
2. Throughput of 4 concurrent streams (threads sending frames back to back): in-process through
   the shared runner (``scheduler.SharedRunner``, which batches them), and 4 stations each with its
   own gRPC client against the server, whose dynamic batcher merges them; with the batch sizes
   the server formed (its statistics endpoint).

Client and server share this machine's cores: the server's CPU time shows up as other
processes' load. This script is the only source of ``benchmarks/results/triton_cpu.{json,md}``.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ganrt.benchmarks.env import describe, environment, save_result
from ganrt.benchmarks.multistream_bench import LoadWatch
from ganrt.benchmarks.timing import Candidate, Plan, Warmup, analyse, round_order, run_interleaved
from ganrt.benchmarks.triton_server import TritonServer, ensure_venv, prepare_backends
from ganrt.export.triton_repo import RepoConfig, write_repository
from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner, Provider
from ganrt.runtime.backends.triton.contract import SharedMemory, TritonOptions
from ganrt.runtime.backends.triton.runner import TritonRunner
from ganrt.runtime.cli.demo import DEMO_CINE
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir
from ganrt.runtime.model.profiles import DeviceProfile
from ganrt.runtime.records.stats import summarize
from ganrt.runtime.serve.scheduler import SchedulerConfig, SharedRunner

LATENCY = ("in-process", "grpc", "grpc+shm")
MEASURED = {
    "latency_ms": "host wall time around runner.infer for one 1x1xHxW float32 frame (the model's input, after "
                  "preprocessing), warm-up excluded, the three ways interleaved round-robin",
    "streams_fps": "frames returned per second by all streams together, each stream a thread sending its next "
                   "frame as soon as the previous one came back; the three ways in turns over several rounds",
    "server_batch_sizes": "executions per batch size from the server's statistics endpoint over the run",
}


@dataclass(frozen=True)
class TritonBenchConfig:
    hw: int = 512
    precision: str = "int8-cpu"
    iterations: int = 200  # timed calls per way
    streams: int = 4
    stream_frames: int = 60  # per stream and way, over all rounds
    rounds: int = 3  # the concurrent-streams part runs the ways in turns
    max_batch: int = 8
    note: str = ""

    def __post_init__(self) -> None:
        if self.hw < 16 or self.iterations < 10 or min(self.streams, self.stream_frames, self.rounds) < 1:
            raise ConfigError("triton bench: --hw >= 16, --iterations >= 10, --streams, --stream-frames and "
                              "--rounds >= 1")


def cine_frames(hw: int, n: int = 8) -> list[np.ndarray]:
    """``n`` frames of the bundled cine as the model's input (1x1xHxW float32 in [0, 1])."""
    cap = cv2.VideoCapture(str(DEMO_CINE))
    out = []
    while len(out) < n:
        ok, img = cap.read()
        if not ok:
            break
        gray = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (hw, hw), interpolation=cv2.INTER_AREA)
        out.append((gray.astype(np.float32) / 255.0)[None, None])
    cap.release()
    if not out:
        raise ConfigError(f"cannot read frames from {DEMO_CINE}")
    return out


def _remote(manifest: Manifest, precision: Precision, url: str, shm: SharedMemory) -> TritonRunner:
    return TritonRunner(manifest, manifest.artifact_for(precision), TritonOptions(url=url, shared_memory=shm,
                                                                                   timeout_ms=10_000), 33.0)


def _streams(call: Callable[[int, np.ndarray], object], frames: list[np.ndarray], n: int,
             per_stream: int) -> tuple[float, list[float]]:
    """``n`` threads calling back to back: the wall time of the whole stretch and every call's latency (ms)."""
    lat: list[list[float]] = [[] for _ in range(n)]
    start = threading.Barrier(n + 1)

    def body(k: int) -> None:
        start.wait()
        for i in range(per_stream):
            t0 = time.perf_counter_ns()
            call(k, frames[(k + i) % len(frames)])
            lat[k].append((time.perf_counter_ns() - t0) / 1e6)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, [v for row in lat for v in row]


def _latency(local, remotes: dict[str, TritonRunner], frames, cfg: TritonBenchConfig) -> dict[str, Any]:
    def call(runner):
        return lambda i: runner.infer({"input": frames[i % len(frames)]})

    cands = [Candidate("in-process", call(local))] + [Candidate(k, call(r)) for k, r in remotes.items()]
    plan = Plan(iterations=cfg.iterations, per_round=10, blocks=5)
    res = analyse(run_interleaved(cands, plan, Warmup(iterations=20)), plan, baseline="in-process")
    base = res["in-process"]["latency_ms"]
    for r in res.values():
        r["overhead_ms"] = {q: round(r["latency_ms"][q] - base[q], 2) for q in ("median", "p90", "p99")}
    return res


def _concurrent(local, manifest, precision, url: str, frames, cfg: TritonBenchConfig) -> dict[str, Any]:
    """The three ways in turns (``cfg.rounds`` rounds, order rotated, as ``timing.round_order``), so
    drift in the machine's load hits them alike; fps = all frames / all wall time of that way."""
    stations = {shm: [_remote(manifest, precision, url, shm) for _ in range(cfg.streams)]
                for shm in (SharedMemory.NONE, SharedMemory.SYSTEM)}
    for group in stations.values():
        for r in group:
            r.activate()
            r.infer({"input": frames[0]})  # each client's first call (channel set-up) is not the server's speed
    acc = {name: {"wall": 0.0, "ms": [], "batches": Counter()} for name in LATENCY}
    per_round = max(1, cfg.stream_frames // cfg.rounds)
    with SharedRunner(local, SchedulerConfig(max_batch=cfg.streams)) as shared:
        ways = {"in-process": lambda k, x: shared.submit(k, {"input": x}).result()}
        for shm, name in ((SharedMemory.NONE, "grpc"), (SharedMemory.SYSTEM, "grpc+shm")):
            ways[name] = lambda k, x, g=stations[shm]: g[k].infer({"input": x})
        for rnd in range(cfg.rounds):
            for j in round_order(len(LATENCY), rnd):
                name = LATENCY[j]
                remote = stations.get({"grpc": SharedMemory.NONE, "grpc+shm": SharedMemory.SYSTEM}.get(name))
                if remote:
                    remote[0].mark_server_batches()
                wall, ms = _streams(ways[name], frames, cfg.streams, per_round)
                acc[name]["wall"] += wall
                acc[name]["ms"] += ms
                if remote:
                    acc[name]["batches"].update({int(k): v for k, v in
                                                 (remote[0].remote_stats()["server_batch_sizes"] or {}).items()})
        acc["in-process"]["batches"].update(shared.stats.batch_sizes)
    for group in stations.values():
        for r in group:
            r.deactivate()
    out = {}
    for name, a in acc.items():
        s = summarize(a["ms"])
        who = "scheduler_batch_sizes" if name == "in-process" else "server_batch_sizes"
        out[name] = {"fps": round(len(a["ms"]) / a["wall"], 2), "wall_s": round(a["wall"], 3),
                     "frames": len(a["ms"]), "call_ms_p50": round(s.median, 2), "call_ms_p99": round(s.p99, 2),
                     who: {str(k): v for k, v in sorted(a["batches"].items())}}
    return out


def run_triton_bench(manifest: Manifest, profile: DeviceProfile, cfg: TritonBenchConfig) -> dict[str, Any]:
    precision = Precision.parse(cfg.precision)
    art = manifest.artifact_for(precision)
    frames = cine_frames(cfg.hw)
    threads = profile.threads.intra_op or 2
    with tempfile.TemporaryDirectory(prefix="ganrt-triton-bench-") as td:
        repo, logs = Path(td) / "repo", Path(td) / "server.log"
        write_repository(manifest, repo, RepoConfig(precisions=(precision,), max_batch=cfg.max_batch))
        server = TritonServer(repo, prepare_backends(ensure_venv(), Path(td) / "backends"), log_path=logs,
                              ort_threads=threads, ort_spin=profile.threads.spin).start()
        try:
            local = OnnxRuntimeRunner(art, (Provider.CPU,), threads, 1, spin=profile.threads.spin)
            with local, LoadWatch() as load:
                remotes = {"grpc": _remote(manifest, precision, server.grpc_url, SharedMemory.NONE),
                           "grpc+shm": _remote(manifest, precision, server.grpc_url, SharedMemory.SYSTEM)}
                for r in remotes.values():
                    r.activate()
                latency = _latency(local, remotes, frames, cfg)
                for r in remotes.values():
                    r.deactivate()
                concurrent = _concurrent(local, manifest, precision, server.grpc_url, frames, cfg)
        finally:
            server.stop()
    return {"precision": precision.value, "hw": cfg.hw, "iterations": cfg.iterations, "streams": cfg.streams,
            "stream_frames": cfg.stream_frames, "rounds": cfg.rounds, "server_max_batch": cfg.max_batch,
            "server": "tritonserver 2.51 (nvidia-pytriton 0.7.0), onnxruntime via a Python-based backend, "
                      f"1 instance, {threads} intra-op threads (spinning {'on' if profile.threads.spin else 'off'}), 127.0.0.1",
            "note": cfg.note, "latency": latency, "concurrent": concurrent, "load": load.result(),
            "measured": MEASURED,
            "environment": environment({"profile": profile.name, "intra_op": threads, "inter_op": 1,
                                        "spin": profile.threads.spin})}


def to_markdown(r: dict[str, Any]) -> str:
    env, lat, conc = r["environment"], r["latency"], r["concurrent"]
    lines = [f"# Triton Inference Server on this machine vs in-process onnxruntime ({r['precision']}, "
             f"{r['hw']}x{r['hw']})", "", f"{describe(env)}. Server: {r['server']}.", ""]
    if r.get("note"):
        lines += [f"**Conditions:** {r['note']}.", ""]
    lines += [f"Load average (1/5/15 min) {'/'.join(map(str, r['load']['load_avg_before']))} before, "
              f"{'/'.join(map(str, r['load']['load_avg_after']))} after (the server's CPU counts as other load).",
              "", f"**One frame per call** ({r['iterations']} timed calls each, interleaved):", "",
              "| way | p50 ms | p90 ms | p99 ms | p50 over in-process | p99 over in-process | spread % |",
              "|---|---|---|---|---|---|---|"]
    for name in LATENCY:
        d = lat[name]
        q = d["latency_ms"]
        lines.append(f"| {name} | {q['median']:.2f} | {q['p90']:.2f} | {q['p99']:.2f} | "
                     f"{d['overhead_ms']['median']:+.2f} | {d['overhead_ms']['p99']:+.2f} | "
                     f"{d['spread_blocks']['range_pct']:.1f} |")
    lines += ["", f"**{r['streams']} concurrent streams** ({r['stream_frames']} frames each, back to back; the ways in turns "
              f"over {r['rounds']} rounds):", "",
              "| way | fps (all streams) | call p50 ms | call p99 ms | batches (executions x size) |",
              "|---|---|---|---|---|"]
    for name in LATENCY:
        d = conc[name]
        sizes = d.get("server_batch_sizes") or d.get("scheduler_batch_sizes") or {}
        who = "server" if "server_batch_sizes" in d else "in-process scheduler"
        lines.append(f"| {name} | {d['fps']:.1f} | {d['call_ms_p50']:.1f} | {d['call_ms_p99']:.1f} | "
                     f"{who}: {', '.join(f'{n} x{k}' for k, n in sizes.items())} |")
    lines += ["", *(f"- {k}: {v}." for k, v in r["measured"].items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=bundled_model_dir())
    ap.add_argument("--profile", default="cpu-x86-2core")
    ap.add_argument("--hw", type=int, default=512)
    ap.add_argument("--precision", default="int8-cpu")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--stream-frames", type=int, default=60, help="per stream and way (default 60)")
    ap.add_argument("--rounds", type=int, default=3, help="turns of the three ways in the streams part (default 3)")
    ap.add_argument("--note", default="", help="what else the machine was doing (written into the result)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--name", default="triton_cpu")
    a = ap.parse_args(argv)
    cfg = TritonBenchConfig(hw=a.hw, precision=a.precision, iterations=a.iterations, streams=a.streams,
                            stream_frames=a.stream_frames, rounds=a.rounds, note=a.note)
    r = run_triton_bench(Manifest.load(a.model), DeviceProfile.load(a.profile), cfg)
    print(save_result(a.out, a.name, r, to_markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
