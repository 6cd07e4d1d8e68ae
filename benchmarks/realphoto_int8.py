"""The intraop-enhance int8-cpu artifact on the report photographs, run two ways beside fp32.

    python -m ganrt.benchmarks.realphoto_int8 --out benchmarks/results/realscan

- ONNX Runtime's optimized CPU kernels: what this machine runs with ``--precision int8-cpu``. On x86
  without VNNI its fused u8s8 kernels saturate 16-bit partial sums (docs/bundle-and-export.md), which is
  why the CPU backend picks fp32 for a colour model there (``runtime/backends/cpu_int8.py``);
- the Q/DQ graph as written (graph optimizations off: int8 products summed exactly), which is what a CPU
  with VNNI and TensorRT compute.

The whole frame through the bare artifact (no guard, no tiling), the same cases and measures as the
real-photograph report (``realphoto.report_cases``, ``realphoto_metrics``): clean frames against the input,
degraded ones against the original. Writes ``realphoto_int8.json`` / ``.md``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ganrt.runtime.model.manifest import bundled_model_dir

from .env import describe, environment, save_result
from .realphoto import BUNDLE, report_cases
from .realphoto_metrics import colour_shift, restoration

RUNS = {  # name: (artifact file, Q/DQ as written: the export gate's QDQ_REFERENCE semantics)
    "fp32": ("student_fp32.onnx", False),
    "int8-cpu, ORT kernels": ("student_int8_cpu.onnx", False),
    "int8-cpu, Q/DQ as written": ("student_int8_cpu.onnx", True),
}


def _enhance(sess, bgr: np.ndarray) -> np.ndarray:
    from ganrt.export.onnx_export import run_onnx

    x = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    y = run_onnx(sess, x)[0].transpose(1, 2, 0)
    return cv2.cvtColor(np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def run(bundle: Path) -> dict:
    from ganrt.export.onnx_export import ort_session  # the session the export's int8 gate uses

    t0 = time.perf_counter()
    sessions = {name: ort_session(bundle / f, reference=w) for name, (f, w) in RUNS.items()}
    cases: list[dict] = []
    for name, cond, orig, inp in report_cases():
        measure = (lambda o, inp=inp: colour_shift(inp, o)) if cond == "clean" else (lambda o, orig=orig: restoration(orig, o))
        cases.append({"image": name, "condition": cond,
                      "runs": {r: measure(_enhance(s, inp)) for r, s in sessions.items()}})
    return {"benchmark": "realphoto-int8", "bundle": BUNDLE, "bundle_dir": str(bundle), "cases": cases,
            "seconds": round(time.perf_counter() - t0, 1), "environment": environment()}


def to_markdown(r: dict) -> str:
    names = list(RUNS)
    lines = [f"# {r['bundle']} int8-cpu on the report photographs: ORT kernels against the Q/DQ graph as written", "",
             "`python -m ganrt.benchmarks.realphoto_int8 --out benchmarks/results/realscan` "
             "(benchmarks/realphoto_int8.py). Bare artifact on the whole frame.", "",
             f"{describe(r['environment'])}; {r['seconds']} s.", "",
             "Clean: local L* median / p95 and local chroma median against the input. Degraded: PSNR dB / CIEDE2000 mean against the original.",
             "", "| image | condition | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for c in r["cases"]:
        if c["condition"] == "clean":
            cells = [f"L* {m['local_l_median']} / {m['local_l_p95']}, chroma {m['local_chroma_median']}"
                     for m in c["runs"].values()]
        else:
            cells = [f"{m['psnr_db']} / {m['ciede2000_mean']}" for m in c["runs"].values()]
        lines.append(f"| {c['image']} | {c['condition']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=None, help=f"bundle directory (default: the packaged {BUNDLE})")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/realscan"))
    args = ap.parse_args(argv)
    print(save_result(args.out, "realphoto_int8", run(args.bundle or bundled_model_dir(BUNDLE)), to_markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
