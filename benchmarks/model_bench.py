"""Model-only latency, trtexec-style: warm-up excluded, fixed iterations, percentiles, throughput."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ganrt.runtime.backends.registry import Selection
from ganrt.runtime.errors import ConfigError, SourceError
from ganrt.runtime.stats import summarize

ASSET_CINE = Path(__file__).resolve().parent.parent / "runtime" / "assets" / "sim_cine_512.mp4"


@dataclass(frozen=True)
class Shape:
    n: int
    c: int
    h: int
    w: int

    @classmethod
    def parse(cls, text: str) -> "Shape":
        try:
            n, c, h, w = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--shape must look like 1x1x512x512 (got {text!r})") from None
        if min(n, c, h, w) < 1:
            raise ConfigError(f"--shape dimensions must be positive (got {text!r})")
        return cls(n, c, h, w)


def realistic_inputs(shape: Shape, count: int = 4, cine: Path = ASSET_CINE) -> list[np.ndarray]:
    """Distinct ultrasound frames (the bundled simulated cine) resized to the shape, never zeros.

    Several inputs are rotated through so caches cannot flatter the number.
    """
    cap = cv2.VideoCapture(str(cine))
    frames = []
    while len(frames) < count * shape.n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    if not frames:
        raise SourceError(f"benchmark input cine missing or unreadable: {cine}")
    out = []
    for i in range(count):
        batch = []
        for j in range(shape.n):
            f = frames[(i * shape.n + j) % len(frames)]
            f = cv2.resize(f, (shape.w, shape.h), interpolation=cv2.INTER_LINEAR)
            f = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)[None] if shape.c == 1 else f.transpose(2, 0, 1)
            batch.append(f.astype(np.float32) / 255.0)
        out.append(np.ascontiguousarray(np.stack(batch)))
    return out


def environment() -> dict[str, object]:
    import onnxruntime

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def bench_model(sel: Selection, shape: Shape, iterations: int = 200, warmup: int = 20) -> dict:
    if iterations < 1 or warmup < 0:
        raise ConfigError("--iterations must be >= 1 and --warmup >= 0")
    inputs = realistic_inputs(shape)
    with sel.runner as r:
        name = r.io.input_name
        dtype = r.io.input_dtype
        feeds = [{name: x.astype(dtype)} for x in inputs]
        for i in range(warmup):
            r.infer(feeds[i % len(feeds)])
        times = []
        for i in range(iterations):
            t0 = time.perf_counter_ns()
            r.infer(feeds[i % len(feeds)])
            times.append((time.perf_counter_ns() - t0) / 1e6)
        desc = r.io.description
    s = summarize(times)
    return {
        "backend": sel.backend.value,
        "precision": sel.precision.value,
        "artifact": sel.artifact.path.name,
        "runner": desc,
        "shape": [shape.n, shape.c, shape.h, shape.w],
        "iterations": iterations,
        "warmup": warmup,
        "latency_ms": s.to_dict(),
        "throughput_fps": 1000.0 * shape.n / s.mean,
        "environment": environment(),
    }


def format_bench(r: dict) -> str:
    s = r["latency_ms"]
    return (
        f"{r['backend']} {r['precision']} {'x'.join(map(str, r['shape']))} ({r['runner']})\n"
        f"  latency ms: min {s['min']:.2f}  mean {s['mean']:.2f}  median {s['median']:.2f}  p90 {s['p90']:.2f}  "
        f"p95 {s['p95']:.2f}  p99 {s['p99']:.2f}  max {s['max']:.2f}  (cv {s['cv']:.3f}, n={s['n']})\n"
        f"  throughput: {r['throughput_fps']:.1f} frames/s"
    )
