"""Torch runner latency on a CUDA GPU: precision x CUDA graphs x shape, stage by stage.

    python -m ganrt.benchmarks.torch_bench --out gpu_out/torch_bench.json

For each precision (fp32, fp16), CUDA graphs (off, on) and shape (1x1x512x512, 1x1x1080x1920):
one ``TorchRunner`` with ``stage_timing=True``; warm-up excluded (the first call of a shape also
captures its graph); then fixed iterations over several realistic frames. Per iteration:
CUDA-event times of H2D, compute and D2H on the runner's stream, and the host's
``perf_counter_ns`` around the whole ``infer`` (staging copy, launches, synchronise, output copy).
Percentiles via ``ganrt.runtime.records.stats.summarize``. Also: each configuration's output vs fp32
eager on the same frame (PSNR), and peak GPU memory.

The model is the bundled student (``--model``, default ``runtime/models/<task>``); when there is
no bundle with exported weights, a randomly initialised student of the shipped architecture
(``StudentConfig()``) is written to ``--bundle-dir`` and timed instead (latency does not depend
on the weights' values), and the JSON says so. Benchmarks are not tests: this measures, it does
not assert. ``--device cpu`` runs the same loop on the CPU (plumbing check only).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ganrt.runtime.errors import BackendUnavailable, ConfigError, GanrtError
from ganrt.runtime.model.manifest import FORMAT, MANIFEST_NAME, Manifest, Precision, bundled_model_dir, sha256_file
from ganrt.runtime.records.stats import summarize

DEFAULT_SHAPES = "1x1x512x512,1x1x1080x1920"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def parse_shapes(text: str) -> list[tuple[int, int, int, int]]:
    shapes = []
    for part in text.split(","):
        try:
            n, c, h, w = (int(v) for v in part.lower().strip().split("x"))
        except ValueError:
            raise ConfigError(f"--shapes entries must look like 1x1x512x512 (got {part!r})") from None
        shapes.append((n, c, h, w))
    return shapes


def random_bundle(root: Path, torch, channels: int = 1) -> Path:
    """A bundle with only ``student.safetensors`` (random init, the shipped StudentConfig)."""
    from safetensors.torch import save_file

    from ganrt.runtime.backends.torch.models import StudentConfig, build_student

    cfg = StudentConfig(channels=channels)
    torch.manual_seed(0)
    model = build_student(torch, cfg)
    root.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "student.safetensors"))
    sha = sha256_file(root / "student.safetensors")
    spec = {"channels": channels, "dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0],
            "color_order": "gray" if channels == 1 else "bgr"}
    raw = {"format": FORMAT, "task": "us-enhance", "description": "random-init student for torch timings only",
           "io": {"input": {"name": "input", **spec}, "output": {"name": "output", **spec}, "size_multiple": 4,
                  "scale": 1},
           "artifacts": {"fp32": {"file": "student.safetensors", "precision": "fp32", "sha256": sha,
                                  "notes": "placeholder: this bundle has weights only"}},
           "weights": {"file": "student.safetensors", "sha256": sha, "arch": "StudentGenerator",
                       "config": cfg.to_dict()}}
    (root / MANIFEST_NAME).write_text(json.dumps(raw, indent=2))
    return root


def frames(shape: tuple[int, int, int, int], count: int = 4) -> tuple[list[np.ndarray], str]:
    """The bundled cine resized (as ``ganrt bench``), else smooth random textures; never zeros."""
    from ganrt.benchmarks.model_bench import Shape, realistic_inputs

    try:
        return realistic_inputs(Shape(*shape), count), "bundled simulated cine"
    except (GanrtError, ImportError, OSError):
        rng = np.random.default_rng(0)
        n, c, h, w = shape
        out = []
        for _ in range(count):
            small = rng.random((n, c, max(2, h // 16), max(2, w // 16))).astype(np.float32)
            big = np.kron(small, np.ones((16, 16), np.float32))[..., :h, :w]
            big = np.pad(big, ((0, 0), (0, 0), (0, h - big.shape[2]), (0, w - big.shape[3])), mode="edge")
            out.append(np.ascontiguousarray(0.05 + 0.9 * big))
        return out, "random textures (cine unreadable)"


def environment(torch) -> dict:
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": getattr(torch.version, "cuda", None),
           "cudnn": cudnn, "numpy": np.__version__}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(torch.cuda.current_device())
        env.update(gpu=p.name, compute_capability=f"{p.major}.{p.minor}", sm_count=p.multi_processor_count,
                   gpu_memory_mib=p.total_memory // 2**20)
    return env


def run(args: argparse.Namespace) -> dict:
    from ganrt.runtime.backends.torch.runner import TorchRunner
    from ganrt.runtime.lazy import lazy_import

    torch = lazy_import("torch", extra="export", what="torch")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailable(f"no CUDA GPU for torch {torch.__version__} here "
                                 f"(use --device cpu for a plumbing check)")
    model_dir = Path(args.model) if args.model else bundled_model_dir(args.task)
    source = "bundle"
    m = None
    if (model_dir / MANIFEST_NAME).exists():
        m = Manifest.load(model_dir)
        if "weights" not in m.raw:
            m = None
    if m is None:
        bdir = Path(args.bundle_dir) if args.bundle_dir else Path(tempfile.mkdtemp(prefix="ganrt-torch-bench-"))
        m = Manifest.load(random_bundle(bdir, torch))
        source = f"random-init StudentConfig() (no bundle with weights at {model_dir})"
    precisions = [Precision.parse(p) for p in args.precisions.split(",")]
    graph_modes = [g.strip() == "on" for g in args.graphs.split(",")]
    shapes = parse_shapes(args.shapes)
    inputs = {s: frames(s) for s in shapes}

    # fp32 eager outputs: the accuracy reference for every configuration
    reference = {}
    with TorchRunner(m, Precision.FP32, device=args.device, cuda_graphs=False) as r:
        for s in shapes:
            reference[s] = r.infer({r.io.input_name: inputs[s][0][0]})[r.io.output_name]

    results = []
    for prec in precisions:
        for graphs in graph_modes:
            if args.device == "cpu" and (prec is Precision.FP16 or graphs):
                continue
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            runner = TorchRunner(m, prec, device=args.device, cuda_graphs=graphs, stage_timing=True)
            with runner as r:
                name, out = r.io.input_name, r.io.output_name
                for s in shapes:
                    xs, kind = inputs[s]
                    feeds = [{name: x} for x in xs]
                    t0 = time.perf_counter()
                    first = r.infer(feeds[0])[out]  # first call: cuDNN autotune (+ graph capture)
                    first_ms = (time.perf_counter() - t0) * 1e3
                    for i in range(args.warmup):
                        r.infer(feeds[i % len(feeds)])
                    host, stages = [], {"h2d": [], "compute": [], "d2h": []}
                    for i in range(args.iterations):
                        t = time.perf_counter_ns()
                        r.infer(feeds[i % len(feeds)])
                        host.append((time.perf_counter_ns() - t) / 1e6)
                        for k, v in r.last_stage_ms.items():
                            stages[k].append(v)
                    hs = summarize(host)
                    res = {
                        "precision": prec.value, "cuda_graphs": r.cuda_graphs, "cuda_graphs_wanted": graphs,
                        "shape": list(s), "iterations": args.iterations, "warmup": args.warmup, "inputs": kind,
                        "runner": r.io.description, "first_call_ms": first_ms,
                        "host_ms": hs.to_dict(),
                        "stages_ms": {k: summarize(v).to_dict() for k, v in stages.items() if v},
                        "throughput_fps": 1000.0 * s[0] / hs.mean,
                        "psnr_vs_fp32_eager_db": _psnr(first, reference[s]),
                    }
                    if args.device.startswith("cuda"):  # since this runner's activation (all its shapes so far)
                        res["peak_gpu_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
                    results.append(res)
                    print(format_line(res), flush=True)
    w = m.raw.get("weights", {})
    return {"benchmark": "torch_runner", "device": args.device, "model": {
        "source": source, "path": str(m.root), "weights_sha256": w.get("sha256"), "config": w.get("config")},
        "environment": environment(torch), "results": results}


def format_line(r: dict) -> str:
    h = r["host_ms"]
    st = r["stages_ms"]
    stage = "  ".join(f"{k} p50 {v['median']:.3f}" for k, v in st.items())
    return (f"{r['precision']:>4} graphs={'on ' if r['cuda_graphs'] else 'off'} {'x'.join(map(str, r['shape'])):>14}  "
            f"host p50 {h['median']:.3f} p99 {h['p99']:.3f} max {h['max']:.3f} ms  [{stage}]  "
            f"{r['throughput_fps']:.0f} fps  psnr {r['psnr_vs_fp32_eager_db']:.1f} dB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ganrt.benchmarks.torch_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="bundle directory (default: the bundled student)")
    ap.add_argument("--task", default="us-enhance")
    ap.add_argument("--bundle-dir", default=None, help="where to write a random-init bundle when none is bundled")
    ap.add_argument("--shapes", default=DEFAULT_SHAPES)
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--graphs", default="off,on", help="off,on | off | on")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (plumbing check)")
    ap.add_argument("--out", default=None, help="write the JSON here (default: print it)")
    args = ap.parse_args(argv)
    try:
        report = run(args)
    except GanrtError as exc:
        print(f"torch_bench: {exc}", file=sys.stderr)
        return exc.exit_code
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
