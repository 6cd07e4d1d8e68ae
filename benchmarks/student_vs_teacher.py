"""Student vs teacher on one machine in one run: held-out quality and 512x512 CPU latency.

    python -m ganrt.benchmarks.student_vs_teacher --teacher runs/us-enhance/teacher_fp32.onnx

Quality is measured afresh on simulated scenes from a seed range used by neither training,
calibration nor the export's own held-out set. Latency rounds are interleaved (teacher,
then each student artifact, repeated) so drift on a noisy machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from ganrt.benchmarks.model_bench import Shape, environment, realistic_inputs
from ganrt.export.arrays import to_images, to_nchw
from ganrt.export.data.simulator import gcnr
from ganrt.export.evaluate import gain_ratio, quality
from ganrt.export.onnx_export import ort_session, run_onnx
from ganrt.export.tasks import get_task
from ganrt.runtime.model.manifest import Manifest, bundled_model_dir
from ganrt.runtime.records.stats import summarize

BENCH_SEED0 = 950_000


def _outputs(sess, x: np.ndarray) -> np.ndarray:
    return np.concatenate([run_onnx(sess, x[i : i + 1]) for i in range(len(x))])


def _luma(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else (img @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def _per_frame_gcnr(out: np.ndarray, held) -> np.ndarray:
    """gCNR (on luma, as the quality metric) of each frame that has a lesion (NaN otherwise), to pair
    frames across models."""
    return np.array([gcnr(_luma(out[i]), held.lesion[i], held.background[i])
                     if held.lesion[i].any() and held.background[i].any() else np.nan for i in range(len(out))])


def _bicubic(inputs: np.ndarray, scale: int) -> np.ndarray:
    """The super-resolution baseline (and the honest "input" row): bicubic upsampling, clipped."""
    if scale == 1:
        return inputs
    h, w = inputs.shape[1:3]
    return np.stack([np.clip(cv2.resize(x, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC), 0, 1)
                     for x in inputs]).astype(np.float32)


def paired_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 4000, seed: int = 0) -> dict[str, float]:
    """Mean of a - b over frames with both defined, and a 95% bootstrap interval (frames resampled
    in pairs): per-frame gCNR swings by +-0.3 between scenes, so a mean difference needs its spread."""
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if d.size == 0:
        return {"mean": float("nan"), "lo95": float("nan"), "hi95": float("nan"), "frames": 0}
    idx = np.random.default_rng(seed).integers(0, d.size, (n_boot, d.size))
    boots = d[idx].mean(axis=1)
    return {"mean": float(d.mean()), "lo95": float(np.percentile(boots, 2.5)),
            "hi95": float(np.percentile(boots, 97.5)), "frames": int(d.size)}


def run(bundle: Path, teacher: Path, frames: int, hw: int, rounds: int, threads: int) -> dict:
    m = Manifest.load(bundle)
    task = get_task(m.task)
    held = task.make_pairs(range(BENCH_SEED0, BENCH_SEED0 + frames), (hw, hw))
    x = to_nchw(held.inputs)
    sessions = {"teacher_fp32": ort_session(teacher, threads)}
    for key, art in m.artifacts.items():
        sessions[f"student_{key}"] = ort_session(art.verified_bytes(), threads)
    q = {"input": quality(_bicubic(held.inputs, task.scale), held), "target": quality(held.targets, held)}
    per_frame: dict[str, np.ndarray] = {}
    # The TensorRT artifact's quality is its exact Q/DQ arithmetic (what TensorRT computes); ORT's
    # fused x86 kernels saturate 16-bit sums on CPUs without VNNI, which TensorRT does not.
    quality_sessions = dict(sessions)
    if "int8-trt" in m.artifacts:
        quality_sessions["student_int8-trt"] = ort_session(m.artifacts["int8-trt"].verified_bytes(), threads,
                                                           reference=True)
    for name, s in quality_sessions.items():
        out = to_images(_outputs(s, x))
        q[name] = quality(out, held)
        per_frame[name] = _per_frame_gcnr(out, held)
    ratios = {k: gain_ratio(q["student_fp32"], q["teacher_fp32"], q["input"], k) for k in ("psnr", "ssim")}
    ratios_int8 = {k: gain_ratio(q["student_int8-cpu"], q["teacher_fp32"], q["input"], k) for k in ("psnr", "ssim")}

    shape = Shape(1, task.channels, 512 // task.scale, 512 // task.scale)  # a 512x512 output frame
    inputs = realistic_inputs(shape)
    times: dict[str, list[float]] = {n: [] for n in sessions}
    for s in sessions.values():  # warm-up
        for inp in inputs[:2]:
            run_onnx(s, inp)
    for r in range(rounds):
        for name, s in sessions.items():
            reps = 1 if name.startswith("teacher") else 10  # the teacher takes seconds per frame
            for i in range(reps):
                t0 = time.perf_counter_ns()
                run_onnx(s, inputs[(r + i) % len(inputs)])
                times[name].append((time.perf_counter_ns() - t0) / 1e6)
    lat = {n: summarize(v).to_dict() for n, v in times.items()}
    t_med = lat["teacher_fp32"]["median"]
    speedup = {n: t_med / v["median"] for n, v in lat.items() if n != "teacher_fp32"}
    cost = m.raw.get("cost", {})
    return {
        "what": "student vs teacher: held-out simulated quality + ORT CPU latency at 512x512, one run",
        "bundle": str(bundle), "model_id": m.model_id, "task": m.task,
        "held_out": {"frames": frames, "hw": [hw, hw], "seed0": BENCH_SEED0},
        **({"input_row": f"bicubic x{task.scale} upsample of the input"} if task.scale != 1 else {}),
        "quality": q,
        "student_gain_ratio_vs_teacher": {"fp32": ratios, "int8-cpu": ratios_int8},
        "int8_trt_quality_semantics": "qdq-reference (exact int8 products, int32 sums, as TensorRT computes); "
                                      "its latency is ORT CPU kernels, not the artifact's target",
        "gcnr_student_minus_teacher": {k: q[f"student_{k}"]["gcnr"] - q["teacher_fp32"]["gcnr"] for k in m.artifacts},
        "gcnr_student_minus_teacher_paired_ci": {k: paired_ci(per_frame[f"student_{k}"], per_frame["teacher_fp32"])
                                                 for k in m.artifacts},
        "latency_ms_512": lat,
        "speedup_vs_teacher_fp32_median": speedup,
        "cost": cost,
        "threads": threads or "all",
        "environment": environment(),
    }


def to_markdown(r: dict) -> str:
    lines = [f"# {r['task']}: student vs teacher ({r['environment']['cpu']}, {r['environment']['cores']} cores)", "",
             f"Held-out: {r['held_out']['frames']} simulated scenes {r['held_out']['hw'][0]}², seeds from {r['held_out']['seed0']}."
             + (f" Load average at the start: {', '.join(f'{v:.2f}' for v in r['environment']['load_avg'])} on "
                f"{r['environment']['cores']} cores (latencies are interleaved, so ratios hold better than absolute times)."
                if r["environment"].get("load_avg") else ""), "",
             *([f"The input row is the {r['input_row']}.", ""] if r.get("input_row") else []),
             "| output | PSNR dB | SSIM | gCNR | speckle SNR | median ms @512² | speedup vs teacher |",
             "|---|---|---|---|---|---|---|"]
    for k, v in r["quality"].items():
        lat = r["latency_ms_512"].get(k, {}).get("median")
        sp = r["speedup_vs_teacher_fp32_median"].get(k)
        lines.append(f"| {k} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['gcnr']:.3f} | {v['speckle_snr']:.2f} | "
                     f"{'' if lat is None else f'{lat:.1f}'} | {'' if sp is None else f'{sp:.0f}x'} |")
    if "int8_trt_quality_semantics" in r:
        lines += ["", "int8-trt quality is computed with exact Q/DQ arithmetic (int8 products, int32 sums: what TensorRT "
                  "computes); its latency row is ONNX Runtime's CPU kernels, not the engine it is built for."]
    g = r["student_gain_ratio_vs_teacher"]
    c = r["cost"]
    q = r["quality"]
    gains = {k: {m: q[k][m] - q["input"][m] for m in ("psnr", "ssim")} for k in ("teacher_fp32", "student_fp32", "student_int8-cpu")}
    lines += ["", f"Student gain / teacher gain (fp32): PSNR {g['fp32']['psnr']:.3f}, SSIM {g['fp32']['ssim']:.3f}; "
              f"(int8-cpu): PSNR {g['int8-cpu']['psnr']:.3f}, SSIM {g['int8-cpu']['ssim']:.3f}. "
              "A ratio is undefined (nan) when the teacher does not improve on the input; gains over the input: "
              + "; ".join(f"{k} PSNR {v['psnr']:+.2f} dB, SSIM {v['ssim']:+.4f}" for k, v in gains.items()) + ".",
              "gCNR student - teacher: " + ", ".join(f"{k} {v:+.3f}" for k, v in r["gcnr_student_minus_teacher"].items()) + "."]
    ci = r.get("gcnr_student_minus_teacher_paired_ci")
    if ci:
        lines.append("Paired per-frame gCNR difference, 95% bootstrap interval: " + ", ".join(
            f"{k} {v['mean']:+.3f} [{v['lo95']:+.3f}, {v['hi95']:+.3f}] ({v['frames']} frames)" for k, v in ci.items()) + ".")
    if c:
        lines.append(f"MACs at 512²: teacher {c['teacher']['macs_512'] / 1e9:.1f} G, student {c['student']['macs_512'] / 1e9:.2f} G "
                     f"({c['mac_ratio_teacher_over_student']:.0f}x fewer).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=bundled_model_dir())
    ap.add_argument("--teacher", type=Path, default=Path("runs/us-enhance/teacher_fp32.onnx"))
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--hw", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    a = ap.parse_args(argv)
    r = run(a.bundle, a.teacher, a.frames, a.hw, a.rounds, a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    stem = a.out / f"{r['task']}_student_vs_teacher"
    stem.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(r))
    print(to_markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
