"""The whole export chain in one call: data -> teacher -> student -> ONNX -> FP16/INT8 -> gate -> bundle."""

from __future__ import annotations

import json
import logging
import math
import platform
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ganrt.runtime.errors import ConfigError, GateError
from ganrt.runtime.model.manifest import FORMAT, MANIFEST_NAME, Precision, sha256_file

from . import gate as gating
from . import guard_cal
from .archs import StudentConfig, TeacherConfig, count_macs, count_params
from .arrays import to_images, to_nchw
from .checkpoint import save_weights
from .data.pairs import PairBank
from .distill import DistillConfig, distill_student
from .evaluate import gain_ratio, quality
from .fidelity_cal import calibrate_bundle
from .finetune import FinetuneConfig, finetune_student
from .onnx_export import INPUT, OUTPUT, export_onnx, parity_db
from .quantize import QuantRecipe, quantize_int8, recipes_for, sensitivity, to_fp16, with_float
from .report import model_card, side_by_side
from .tasks import PairSet, Task, get_task
from .train import TeacherTrainConfig, train_teacher

log = logging.getLogger(__name__)

# Disjoint seed ranges: held-out scenes are never seen in training or calibration.
TRAIN_SEED0, CALIB_SEED0, EVAL_SEED0 = 0, 100_000, 900_000
REPLAY_EVERY, REPLAY_SEED0 = 3, 50_000  # the pretraining stage's pairs replayed in the training bank (_simulate)
# What each int8 artifact is gated on (see gate.Semantics): the CPU artifact on the kernels that
# will run it, the TensorRT artifact on exact Q/DQ arithmetic as TensorRT computes it.
GATE_SEMANTICS = {Precision.INT8_CPU: gating.Semantics.KERNELS, Precision.INT8_TRT: gating.Semantics.QDQ_REFERENCE}
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
    train_hw: tuple[int, int] = (256, 256)  # target (output) size of the pairs; inputs are 1/scale of it
    calib_frames: int = 128
    eval_frames: int = 64  # per-frame gCNR swings by +-0.3 between scenes: fewer frames make the gates noisy
    teacher_arch: TeacherConfig | None = None  # None = the task's
    student_arch: StudentConfig | None = None
    teacher_train: TeacherTrainConfig | None = None  # None = the task's budget
    distill: DistillConfig | None = None
    pretrain: DistillConfig | None = None  # an optional first student stage (a task with make_pretrain_pairs)
    finetune: FinetuneConfig | None = None
    threads: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def resolved(self) -> ExportConfig:
        """Every None filled in from the task: what a run uses and its manifest records."""
        t = get_task(self.task)
        return replace(self, teacher_arch=self.teacher_arch or t.teacher, student_arch=self.student_arch or t.student,
                       teacher_train=self.teacher_train or t.teacher_train, distill=self.distill or t.distill,
                       finetune=self.finetune or t.finetune)


SMOKE = ExportConfig(
    train_pairs=8,
    train_hw=(128, 128),
    calib_frames=8,
    eval_frames=3,
    teacher_arch=TeacherConfig(ngf=8, n_blocks=2, feature_blocks=(0, 1)),
    student_arch=StudentConfig(width=16, n_blocks=2),
    teacher_train=TeacherTrainConfig(steps=6, batch=2, patch=64, warmup_l1_steps=3, checkpoint_every=3),
    distill=DistillConfig(steps=8, adv_steps=3, batch=4, patch=64, checkpoint_every=4),
    finetune=FinetuneConfig(steps=6, qat_start=3, batch=2, patch=64, lesion_batch=2, checkpoint_every=3),
)


def _tool_versions() -> dict[str, str]:
    import cv2
    import onnx
    import onnxruntime

    return {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "opencv": cv2.__version__}


def _torch_out(model: torch.nn.Module, frames: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(frames[i : i + 1])).numpy() for i in range(len(frames))])


def _upsample(nchw: np.ndarray, scale: int, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """Each frame and channel resized by ``scale`` (OpenCV), clipped to [0, 1]: the plain upsampling
    a super-resolution model has to beat (bicubic) or a display of the input (nearest)."""
    if scale == 1:
        return nchw
    n, c, h, w = nchw.shape
    out = np.empty((n, c, h * scale, w * scale), np.float32)
    for i in range(n):
        for k in range(c):
            out[i, k] = cv2.resize(nchw[i, k], (w * scale, h * scale), interpolation=interpolation)
    return np.clip(out, 0.0, 1.0)


def _check_archs(task: Task, t_arch: TeacherConfig, s_arch: StudentConfig, cfg: ExportConfig) -> None:
    for who, arch in (("teacher", t_arch), ("student", s_arch)):
        if arch.channels != task.channels or arch.scale != task.scale:
            raise ConfigError(f"{who} architecture has {arch.channels} channel(s), scale {arch.scale}; task "
                              f"{task.name} needs {task.channels}, scale {task.scale}")
    task.check_hw(cfg.train_hw)
    if cfg.pretrain is not None and task.make_pretrain_pairs is None:
        raise ConfigError(f"task {task.name} has no pretraining pairs: drop the pretraining stage (pretrain)")
    stages = [("teacher_train", cfg.teacher_train.patch), ("distill", cfg.distill.patch), ("finetune", cfg.finetune.patch)]
    for name, patch in stages + ([("pretrain", cfg.pretrain.patch)] if cfg.pretrain else []):
        m = math.lcm(4, s_arch.size_multiple)  # the teacher halves twice; the student unshuffles (and pools)
        if patch % m or patch * task.scale > min(cfg.train_hw):
            raise ConfigError(f"{name}.patch {patch} must be a multiple of {m} and fit the "
                              f"{cfg.train_hw[0]}x{cfg.train_hw[1]} targets at scale {task.scale}")


@dataclass(frozen=True)
class _Banks:
    train: PairBank
    pretrain: PairBank | None  # the student's first stage (Task.make_pretrain_pairs)


@dataclass(frozen=True)
class _Trained:
    """The trained networks, the QAT ranges the int8 recipes start from, and what the manifest
    records of their training."""

    teacher: torch.nn.Module
    student: torch.nn.Module
    ranges: list[tuple[float, float, float, float]] | None
    summaries: dict[str, dict]  # teacher / student / finetune
    teacher_sha: str
    student_sha: str


@dataclass(frozen=True)
class _Gated:
    """Every artifact written into staging and gated: the fp32 reference outputs on the held-out
    set, ONNX parity, and per precision its gate result and recipe."""

    fp32_out: np.ndarray
    parity: dict[str, float]  # student / teacher
    results: dict[str, dict]
    recipes: dict[str, dict]


def _prepare(task: Task, cfg: ExportConfig, out_dir: Path, run_dir: Path) -> Path:
    """Refuse a bad config before any work, then an empty staging folder next to ``out_dir``."""
    _check_archs(task, cfg.teacher_arch, cfg.student_arch, cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(out_dir.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _bank(p: PairSet) -> PairBank:
    return PairBank(p.inputs, p.targets, p.sector, p.lesion, p.background)


def _simulate(task: Task, cfg: ExportConfig) -> tuple[_Banks, PairSet, PairSet]:
    """Training bank (and the pretraining stage's), calibration and held-out pairs from disjoint seed ranges.
    With a pretraining stage, every REPLAY_EVERY-th seed adds one more pretraining-kind pair (seed +
    REPLAY_SEED0) to the training bank: without it the mixed pairs washed most of the first stage's skill out
    (intraop-enhance: low light on the tuning photographs back to the input's a*b* error)."""
    log.info("simulating %d training, %d calibration, %d held-out pairs", cfg.train_pairs, cfg.calib_frames, cfg.eval_frames)
    seeds = range(TRAIN_SEED0, TRAIN_SEED0 + cfg.train_pairs)
    train = (task.make_train_pairs or task.make_pairs)(seeds, cfg.train_hw)
    pre = None
    if cfg.pretrain is not None and task.make_pretrain_pairs is not None:
        pre = task.make_pretrain_pairs(seeds, cfg.train_hw)
        replay = task.make_pretrain_pairs([REPLAY_SEED0 + s for s in seeds if not s % REPLAY_EVERY], cfg.train_hw)
        train = PairSet.concat(train, replay)
    calib = task.make_pairs(range(CALIB_SEED0, CALIB_SEED0 + cfg.calib_frames), cfg.train_hw)
    held: PairSet = task.make_pairs(range(EVAL_SEED0, EVAL_SEED0 + cfg.eval_frames), cfg.train_hw)
    return _Banks(_bank(train), _bank(pre) if pre is not None else None), calib, held


def _train(cfg: ExportConfig, banks: _Banks, run_dir: Path, staging: Path, resume: bool, progress: bool) -> _Trained:
    """Teacher, then the student (after its pretraining stage when the config has one), then
    quantization-aware finetuning (each resumable in ``run_dir``); the teacher's weights stay in
    ``run_dir``, the student's go into the bundle."""
    t_arch, s_arch, bank = cfg.teacher_arch, cfg.student_arch, banks.train
    teacher, disc, t_summary = train_teacher(bank, run_dir, t_arch, cfg.teacher_train, resume, progress)
    teacher_sha = save_weights(teacher, run_dir / "teacher.safetensors", {"arch": json.dumps(t_arch.to_dict())})
    summaries = {"teacher": t_summary}
    init = None
    if banks.pretrain is not None and cfg.pretrain is not None:
        pre, summaries["pretrain"] = distill_student(banks.pretrain, teacher, disc, run_dir / "pretrain", s_arch,
                                                     cfg.pretrain, resume, progress)
        init = pre.state_dict()
    student, summaries["student"] = distill_student(bank, teacher, disc, run_dir, s_arch, cfg.distill, resume,
                                                    progress, init)
    student, qat_ranges, summaries["finetune"] = finetune_student(bank, teacher, student, run_dir, s_arch,
                                                                  cfg.finetune, resume, progress)
    ranges = [(r.in_min, r.in_max, r.out_min, r.out_max) for r in qat_ranges] if qat_ranges else None
    student_sha = save_weights(student, staging / "student.safetensors", {"arch": json.dumps(s_arch.to_dict())})
    return _Trained(teacher, student, ranges, summaries, teacher_sha, student_sha)


def _export_and_gate(task: Task, nets: _Trained, staging: Path, run_dir: Path, calib_x: np.ndarray,
                     x_eval: np.ndarray, y_eval: np.ndarray) -> _Gated:
    """ONNX export with parity checks, then the fp16 and int8 artifacts, each gated on the held-out set."""
    fp32 = export_onnx(nets.student, staging / ARTIFACT_FILES[Precision.FP32], task.channels, scale=task.scale)
    parity = parity_db(nets.student, fp32, x_eval[: min(4, len(x_eval))])
    teacher_onnx = export_onnx(nets.teacher, run_dir / "teacher_fp32.onnx", task.channels, scale=task.scale)
    teacher_parity = parity_db(nets.teacher, teacher_onnx, x_eval[:1])

    fp32_out = gating.outputs(fp32, x_eval)
    results: dict[str, dict] = {}
    recipes: dict[str, dict] = {}
    to_fp16(fp32, staging / ARTIFACT_FILES[Precision.FP16])
    g16 = gating.gate("fp16", gating.outputs(staging / ARTIFACT_FILES[Precision.FP16], x_eval), fp32_out, y_eval)
    gating.require(g16)
    results["fp16"], recipes["fp16"] = g16.to_dict(), {"precision": "fp16", "io": "float32"}
    for prec in (Precision.INT8_TRT, Precision.INT8_CPU):
        g, recipe = _quantize_gated(fp32, staging / ARTIFACT_FILES[prec], prec, calib_x, x_eval, fp32_out, y_eval,
                                    nets.ranges)
        results[prec.value], recipes[prec.value] = g.to_dict(), recipe.describe()
    # For the record: the TensorRT artifact run on this CPU's fused ORT kernels (not what it is gated on).
    trt_on_cpu = gating.gate(Precision.INT8_TRT.value, gating.outputs(staging / ARTIFACT_FILES[Precision.INT8_TRT], x_eval),
                             fp32_out, y_eval)
    results[Precision.INT8_TRT.value]["onnxruntime_cpu_kernels_psnr_vs_fp32"] = trt_on_cpu.psnr_vs_fp32
    lint = gating.lint_qdq_for_tensorrt(staging / ARTIFACT_FILES[Precision.INT8_TRT])
    if lint:
        raise GateError("int8-trt artifact breaks TensorRT Q/DQ rules: " + "; ".join(lint[:3]))
    return _Gated(fp32_out, {"student": parity, "teacher": teacher_parity}, results, recipes)


def _held_out_outputs(task: Task, teacher: torch.nn.Module, staging: Path, fp32_out: np.ndarray,
                      x_eval: np.ndarray) -> dict[str, np.ndarray]:
    """Each row's outputs on the held-out inputs: input, teacher and every student artifact (int8 on
    its gate semantics). For super-resolution the "input" row is the bicubic upsample (the honest
    baseline for SR)."""
    outs = {"input": _upsample(x_eval, task.scale), "teacher": _torch_out(teacher, x_eval), "student_fp32": fp32_out}
    for prec in (Precision.FP16, Precision.INT8_TRT, Precision.INT8_CPU):
        outs[f"student_{prec.value}"] = gating.outputs(staging / ARTIFACT_FILES[prec], x_eval,
                                                       GATE_SEMANTICS.get(prec, gating.Semantics.KERNELS))
    return outs


def _cost(task: Task, teacher: torch.nn.Module, student: torch.nn.Module) -> dict:
    """Parameters and MACs per 512x512 *output* frame of teacher and student."""
    in512 = (512 // task.scale, 512 // task.scale)
    cost = {
        "teacher": {"params": count_params(teacher), "macs_512": count_macs(teacher, in512, task.channels)},
        "student": {"params": count_params(student), "macs_512": count_macs(student, in512, task.channels)},
    }
    cost["mac_ratio_teacher_over_student"] = cost["teacher"]["macs_512"] / cost["student"]["macs_512"]
    if task.scale != 1:
        cost["input_hw_for_512_output"] = list(in512)
    return cost


def _artifacts(staging: Path, gated: _Gated) -> dict[str, dict]:
    """The manifest's artifact table: file, hash, size, recipe and gate of every precision."""
    artifacts = {}
    for prec, fname in ARTIFACT_FILES.items():
        artifacts[prec.value] = {
            "file": fname, "precision": prec.value, "sha256": sha256_file(staging / fname),
            "bytes": (staging / fname).stat().st_size,
            "recipe": gated.recipes.get(prec.value, {"precision": "fp32"}),
            "gate": gated.results.get(prec.value),
        }
    return artifacts


def _io_block(task: Task, s_arch: StudentConfig) -> dict:
    """The I/O contract the runtime checks frames against."""
    return {
        "input": {"name": INPUT, "channels": task.channels, "dtype": "float32", "layout": "NCHW",
                  "range": [0.0, 1.0], "color_order": task.color_order},
        "output": {"name": OUTPUT, "channels": task.channels, "dtype": "float32", "layout": "NCHW",
                   "range": [0.0, 1.0], "color_order": task.color_order},
        "size_multiple": math.lcm(task.size_multiple, s_arch.size_multiple),
        "scale": task.scale,
        "dynamic_hw": True,
        "dynamic_batch": True,  # the ONNX batch axis is dynamic (onnx_export): TensorRT profiles may batch
    }


def _manifest(cfg: ExportConfig, task: Task, nets: _Trained, gated: _Gated, q: dict, staging: Path) -> dict:
    """The bundle's manifest before the runtime calibrations are added to it."""
    t_arch, s_arch = cfg.teacher_arch, cfg.student_arch
    ratios = {k: gain_ratio(q["student_fp32"], q["teacher"], q["input"], k) for k in ("psnr", "ssim")}
    cost = _cost(task, nets.teacher, nets.student)
    return {
        "format": FORMAT,
        "task": task.name,
        "description": task.description,
        "io": _io_block(task, s_arch),
        "artifacts": _artifacts(staging, gated),
        "default_artifact": {"cpu": "int8-cpu", "gpu": "fp16", "tensorrt": "int8-trt"},
        "weights": {"file": "student.safetensors", "sha256": sha256_file(staging / "student.safetensors"),
                    "arch": "StudentGenerator", "config": s_arch.to_dict()},
        "source_checkpoint": {"teacher_sha256": nets.teacher_sha, "student_sha256": nets.student_sha,
                              "teacher_arch": t_arch.to_dict()},
        "metrics": {
            "held_out": {"frames": cfg.eval_frames, "hw": list(cfg.train_hw), "seed0": EVAL_SEED0, **q},
            "student_gain_ratio_vs_teacher": ratios,
            **({"input_row": f"bicubic x{task.scale} upsample of the input"} if task.scale != 1 else {}),
            "gates": gated.results,
            "onnx_parity_db": gated.parity,
        },
        "cost": cost,
        "calibration": {"frames": cfg.calib_frames, "source": f"simulated {task.name} pairs, seeds "
                        f"{CALIB_SEED0}..{CALIB_SEED0 + cfg.calib_frames - 1}, {cfg.train_hw[0]}x{cfg.train_hw[1]}"},
        "training": {"config": cfg.to_dict(), **nets.summaries},
        "tools": _tool_versions(),
        "opset": 18,
    }


def _write_calibrated(staging: Path, manifest: dict) -> dict:
    """Write the manifest, then the runtime's fidelity threshold for this model (fidelity_cal: every
    artifact on the held-out pairs as the runtime scores them) and its local-mean check and input
    domain (guard_cal, the real tuning scans as negatives); both land in the manifest on disk,
    which is read back."""
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    fidelity = calibrate_bundle(staging)
    manifest["fidelity"], manifest["metrics"]["fidelity_calibration"] = fidelity.manifest_block(), fidelity.to_dict()
    guard_cal.calibrate_bundle(staging)
    return json.loads((staging / MANIFEST_NAME).read_text())


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` with the finished bundle only now: a failed export never leaves half a bundle."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)


def run_export(cfg: ExportConfig, out_dir: Path, run_dir: Path, resume: bool = True, progress: bool = True) -> dict:
    """Build a gated bundle in ``out_dir``; training state and the teacher stay in ``run_dir``."""
    t_start = time.perf_counter()
    cfg = cfg.resolved()
    task: Task = get_task(cfg.task)
    staging = _prepare(task, cfg, out_dir, run_dir)
    banks, calib, held = _simulate(task, cfg)
    nets = _train(cfg, banks, run_dir, staging, resume, progress)
    x_eval, y_eval = to_nchw(held.inputs), to_nchw(held.targets)
    gated = _export_and_gate(task, nets, staging, run_dir, to_nchw(calib.inputs), x_eval, y_eval)

    # Quality on held-out scenes: each row vs the clean target.
    outs = _held_out_outputs(task, nets.teacher, staging, gated.fp32_out, x_eval)
    q = {k: quality(to_images(v), held) for k, v in outs.items()}
    q["target"] = quality(to_images(y_eval), held)
    manifest = _write_calibrated(staging, _manifest(cfg, task, nets, gated, q, staging))
    (staging / "MODEL_CARD.md").write_text(model_card(manifest, task.data_note))
    shown = to_images(_upsample(x_eval[:2], task.scale, cv2.INTER_NEAREST))  # the input's own pixels, enlarged
    side_by_side(shown, to_images(outs["student_fp32"][:2]), to_images(outs["teacher"][:2]), held.targets[:2],
                 run_dir / "side_by_side.png")
    _swap_into_place(staging, out_dir)
    manifest["wall_seconds"] = time.perf_counter() - t_start
    (run_dir / "export_report.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return manifest


def _quantize_gated(fp32: Path, dst: Path, prec: Precision, calib_x: np.ndarray, x_eval: np.ndarray,
                    fp32_out: np.ndarray, y_eval: np.ndarray, ranges=None) -> tuple[gating.GateResult, QuantRecipe]:
    """Fully quantized first (both calibrations); if the gate fails, keep the convs int8 hurts most
    in float, most sensitive first, until it passes (docs/bundle-and-export.md, Quantization recipes)."""
    sem = GATE_SEMANTICS[prec]
    tried: list[tuple[float, QuantRecipe, gating.GateResult]] = []
    for recipe in recipes_for(prec, fp32, ranges):
        quantize_int8(fp32, dst, calib_x, recipe)
        g = gating.gate(prec.value, gating.outputs(dst, x_eval, sem), fp32_out, y_eval, sem)
        log.info("%s %s", recipe.describe(), g.line())
        if g.passed:
            return g, recipe
        tried.append((g.psnr_vs_fp32, recipe, g))
    base = max(tried, key=lambda t: t[0])[1]
    order = sensitivity(fp32, calib_x, base,
                        lambda p: gating.gate(prec.value, gating.outputs(p, x_eval, sem), fp32_out, y_eval, sem).psnr_vs_fp32)
    kept: list[str] = []
    for name, _ in order:
        kept.append(name)
        recipe = with_float(base, kept)
        quantize_int8(fp32, dst, calib_x, recipe)
        g = gating.gate(prec.value, gating.outputs(dst, x_eval, sem), fp32_out, y_eval, sem)
        log.info("%s float: %s", len(kept), g.line())
        if g.passed:
            return g, recipe
    raise GateError(f"accuracy gate failed for every recipe; last: {g.line()}")


def smoke_config(task: str) -> ExportConfig:
    """Tiny models and data (tests, a first try): the task's architectures narrowed, patches
    covering the same target area whatever the scale (SMOKE itself is us-enhance's)."""
    t = get_task(task)
    s = t.scale
    return replace(
        SMOKE, task=task,
        teacher_arch=replace(t.teacher, ngf=SMOKE.teacher_arch.ngf, n_blocks=SMOKE.teacher_arch.n_blocks,
                             feature_blocks=SMOKE.teacher_arch.feature_blocks),
        student_arch=replace(t.student, width=SMOKE.student_arch.width, n_blocks=SMOKE.student_arch.n_blocks),
        teacher_train=replace(SMOKE.teacher_train, patch=SMOKE.teacher_train.patch // s),
        distill=replace(SMOKE.distill, patch=SMOKE.distill.patch // s),
        finetune=replace(SMOKE.finetune, patch=SMOKE.finetune.patch // s),
    )
