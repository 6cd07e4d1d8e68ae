"""The whole export chain in one call: data -> teacher -> student -> ONNX -> FP16/INT8 -> gate -> bundle."""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ganrt.runtime.errors import GateError
from ganrt.runtime.manifest import FORMAT, MANIFEST_NAME, Precision, sha256_file

from . import gate as gating
from .archs import ResnetGenerator, StudentConfig, StudentGenerator, TeacherConfig, count_macs, count_params
from .checkpoint import load_weights, save_weights
from .data.pairs import PairBank
from .distill import DistillConfig, distill_student
from .evaluate import gain_ratio, quality
from .onnx_export import INPUT, OUTPUT, export_onnx, parity_db
from .quantize import QuantRecipe, quantize_int8, recipes_for, sensitivity, to_fp16, with_float
from .report import model_card, side_by_side
from .tasks import PairSet, Task, get_task
from .train import TeacherTrainConfig, train_teacher

log = logging.getLogger(__name__)

# Disjoint seed ranges: held-out scenes are never seen in training or calibration.
TRAIN_SEED0, CALIB_SEED0, EVAL_SEED0 = 0, 100_000, 900_000
ARTIFACT_FILES = {
    Precision.FP32: "student_fp32.onnx",
    Precision.FP16: "student_fp16.onnx",
    Precision.INT8_TRT: "student_int8_trt.onnx",
    Precision.INT8_CPU: "student_int8_cpu.onnx",
}


@dataclass(frozen=True)
class ExportConfig:
    task: str = "us-enhance"
    train_pairs: int = 320
    train_hw: tuple[int, int] = (256, 256)
    calib_frames: int = 128
    eval_frames: int = 24
    teacher_arch: TeacherConfig | None = None  # None = the task's
    student_arch: StudentConfig | None = None
    teacher_train: TeacherTrainConfig = field(default_factory=TeacherTrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    threads: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


SMOKE = ExportConfig(
    train_pairs=8,
    train_hw=(128, 128),
    calib_frames=8,
    eval_frames=3,
    teacher_arch=TeacherConfig(ngf=8, n_blocks=2, feature_blocks=(0, 1)),
    student_arch=StudentConfig(width=16, n_blocks=2),
    teacher_train=TeacherTrainConfig(steps=6, batch=2, patch=64, warmup_l1_steps=3, checkpoint_every=3),
    distill=DistillConfig(steps=8, adv_steps=3, batch=4, patch=64, checkpoint_every=4),
)


def _tool_versions() -> dict[str, str]:
    import cv2
    import onnx
    import onnxruntime

    return {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "opencv": cv2.__version__}


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2), dtype=np.float32)


def _torch_out(model: torch.nn.Module, frames: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(frames[i : i + 1])).numpy() for i in range(len(frames))])


def run_export(cfg: ExportConfig, out_dir: Path, run_dir: Path, resume: bool = True, progress: bool = True) -> dict:
    """Build a gated bundle in ``out_dir``; training state and the teacher stay in ``run_dir``."""
    t_start = time.perf_counter()
    task: Task = get_task(cfg.task)
    t_arch = cfg.teacher_arch or task.teacher
    s_arch = cfg.student_arch or task.student
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(out_dir.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    log.info("simulating %d training, %d calibration, %d held-out pairs", cfg.train_pairs, cfg.calib_frames, cfg.eval_frames)
    train = task.make_pairs(range(TRAIN_SEED0, TRAIN_SEED0 + cfg.train_pairs), cfg.train_hw)
    calib = task.make_pairs(range(CALIB_SEED0, CALIB_SEED0 + cfg.calib_frames), cfg.train_hw)
    held: PairSet = task.make_pairs(range(EVAL_SEED0, EVAL_SEED0 + cfg.eval_frames), cfg.train_hw)
    bank = PairBank(train.inputs, train.targets, train.sector)

    teacher, disc, t_summary = train_teacher(bank, run_dir, t_arch, cfg.teacher_train, resume, progress)
    teacher_sha = save_weights(teacher, run_dir / "teacher.safetensors", {"arch": json.dumps(t_arch.to_dict())})
    student, s_summary = distill_student(bank, teacher, disc, run_dir, s_arch, cfg.distill, resume, progress)
    student_sha = save_weights(student, staging / "student.safetensors", {"arch": json.dumps(s_arch.to_dict())})

    # ONNX export + parity
    x_eval, y_eval = _nchw(held.inputs), _nchw(held.targets)
    fp32 = export_onnx(student, staging / ARTIFACT_FILES[Precision.FP32], task.channels)
    parity = parity_db(student, fp32, x_eval[: min(4, len(x_eval))])
    teacher_onnx = export_onnx(teacher, run_dir / "teacher_fp32.onnx", task.channels)
    teacher_parity = parity_db(teacher, teacher_onnx, x_eval[:1])

    # Quantized artifacts, each gated on the held-out set.
    fp32_out = gating.outputs(fp32, x_eval)
    results: dict[str, dict] = {}
    recipes: dict[str, dict] = {}
    to_fp16(fp32, staging / ARTIFACT_FILES[Precision.FP16])
    g16 = gating.gate("fp16", gating.outputs(staging / ARTIFACT_FILES[Precision.FP16], x_eval), fp32_out, y_eval)
    gating.require(g16)
    results["fp16"], recipes["fp16"] = g16.to_dict(), {"precision": "fp16", "io": "float32"}
    calib_x = _nchw(calib.inputs)
    for prec in (Precision.INT8_TRT, Precision.INT8_CPU):
        g, recipe = _quantize_gated(fp32, staging / ARTIFACT_FILES[prec], prec, calib_x, x_eval, fp32_out, y_eval)
        results[prec.value], recipes[prec.value] = g.to_dict(), recipe.describe()
    lint = gating.lint_qdq_for_tensorrt(staging / ARTIFACT_FILES[Precision.INT8_TRT])
    if lint:
        raise GateError("int8-trt artifact breaks TensorRT Q/DQ rules: " + "; ".join(lint[:3]))

    # Quality on held-out scenes: input, teacher, each student artifact vs the cart-quality target.
    teacher_out = _torch_out(teacher, x_eval)
    outs = {"input": x_eval, "teacher": teacher_out, "student_fp32": fp32_out}
    for prec in (Precision.FP16, Precision.INT8_TRT, Precision.INT8_CPU):
        outs[f"student_{prec.value}"] = gating.outputs(staging / ARTIFACT_FILES[prec], x_eval)
    q = {k: quality(v[:, 0], held) for k, v in outs.items()}
    q["target"] = quality(y_eval[:, 0], held)
    ratios = {k: gain_ratio(q["student_fp32"], q["teacher"], q["input"], k) for k in ("psnr", "ssim")}

    hw512 = (512, 512)
    cost = {
        "teacher": {"params": count_params(teacher), "macs_512": count_macs(teacher, hw512, task.channels)},
        "student": {"params": count_params(student), "macs_512": count_macs(student, hw512, task.channels)},
    }
    cost["mac_ratio_teacher_over_student"] = cost["teacher"]["macs_512"] / cost["student"]["macs_512"]

    artifacts = {}
    for prec, fname in ARTIFACT_FILES.items():
        artifacts[prec.value] = {
            "file": fname, "precision": prec.value, "sha256": sha256_file(staging / fname),
            "bytes": (staging / fname).stat().st_size,
            "recipe": recipes.get(prec.value, {"precision": "fp32"}),
            "gate": results.get(prec.value),
        }
    manifest = {
        "format": FORMAT,
        "task": task.name,
        "description": task.description,
        "io": {
            "input": {"name": INPUT, "channels": task.channels, "dtype": "float32", "layout": "NCHW",
                      "range": [0.0, 1.0], "color_order": task.color_order},
            "output": {"name": OUTPUT, "channels": task.channels, "dtype": "float32", "layout": "NCHW",
                       "range": [0.0, 1.0], "color_order": task.color_order},
            "size_multiple": task.size_multiple,
            "scale": task.scale,
            "dynamic_hw": True,
        },
        "artifacts": artifacts,
        "default_artifact": {"cpu": "int8-cpu", "gpu": "fp16", "tensorrt": "int8-trt"},
        "weights": {"file": "student.safetensors", "sha256": sha256_file(staging / "student.safetensors"),
                    "arch": "StudentGenerator", "config": s_arch.to_dict()},
        "source_checkpoint": {"teacher_sha256": teacher_sha, "student_sha256": student_sha,
                              "teacher_arch": t_arch.to_dict()},
        "metrics": {
            "held_out": {"frames": cfg.eval_frames, "hw": list(cfg.train_hw), "seed0": EVAL_SEED0, **q},
            "student_gain_ratio_vs_teacher": ratios,
            "gates": results,
            "onnx_parity_db": {"student": parity, "teacher": teacher_parity},
        },
        "cost": cost,
        "calibration": {"frames": cfg.calib_frames, "source": f"simulated {task.name} pairs, seeds "
                        f"{CALIB_SEED0}..{CALIB_SEED0 + cfg.calib_frames - 1}, {cfg.train_hw[0]}x{cfg.train_hw[1]}"},
        "training": {"config": cfg.to_dict(), "teacher": t_summary, "student": s_summary},
        "tools": _tool_versions(),
        "opset": 18,
    }
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    (staging / "MODEL_CARD.md").write_text(model_card(manifest))
    side_by_side(held.inputs[:2], outs["student_fp32"][:2, 0], teacher_out[:2, 0], held.targets[:2],
                 run_dir / "side_by_side.png")
    # Swap the finished bundle into place only now: a failed export never leaves half a bundle.
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    manifest["wall_seconds"] = time.perf_counter() - t_start
    (run_dir / "export_report.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return manifest


def _quantize_gated(fp32: Path, dst: Path, prec: Precision, calib_x: np.ndarray, x_eval: np.ndarray,
                    fp32_out: np.ndarray, y_eval: np.ndarray) -> tuple[gating.GateResult, QuantRecipe]:
    """Fully quantized first (both calibrations); if the gate fails, keep the convs int8 hurts most
    in float, most sensitive first, until it passes (DESIGN: first/last conv in higher precision)."""
    tried: list[tuple[float, QuantRecipe, gating.GateResult]] = []
    for recipe in recipes_for(prec, fp32):
        quantize_int8(fp32, dst, calib_x, recipe)
        g = gating.gate(prec.value, gating.outputs(dst, x_eval), fp32_out, y_eval)
        log.info("%s %s", recipe.describe(), g.line())
        if g.passed:
            return g, recipe
        tried.append((g.psnr_vs_fp32, recipe, g))
    base = max(tried, key=lambda t: t[0])[1]
    order = sensitivity(fp32, calib_x, base,
                        lambda p: gating.gate(prec.value, gating.outputs(p, x_eval), fp32_out, y_eval).psnr_vs_fp32)
    kept: list[str] = []
    for name, _ in order:
        kept.append(name)
        recipe = with_float(base, kept)
        quantize_int8(fp32, dst, calib_x, recipe)
        g = gating.gate(prec.value, gating.outputs(dst, x_eval), fp32_out, y_eval)
        log.info("%s float: %s", len(kept), g.line())
        if g.passed:
            return g, recipe
    raise GateError(f"accuracy gate failed for every recipe; last: {g.line()}")


def smoke_config(task: str) -> ExportConfig:
    return replace(SMOKE, task=task)
