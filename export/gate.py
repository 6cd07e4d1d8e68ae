"""Accuracy gate for exported artifacts, plus a Q/DQ lint for the TensorRT artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ganrt.runtime.errors import GateError

from .onnx_export import ort_session, psnr, run_onnx

MIN_PSNR_VS_FP32 = 40.0
MAX_TASK_DROP_DB = 0.3


@dataclass(frozen=True)
class GateResult:
    artifact: str
    psnr_vs_fp32: float  # over the whole held-out set (pooled MSE)
    worst_frame_psnr_vs_fp32: float
    task_psnr: float
    task_drop_db: float  # fp32 task PSNR minus this artifact's
    passed: bool
    semantics: str = "onnxruntime-cpu-kernels"  # Semantics value the outputs were computed with

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return (f"{self.artifact}: {verdict} — vs fp32 {self.psnr_vs_fp32:.1f} dB (worst frame "
                f"{self.worst_frame_psnr_vs_fp32:.1f}, need >= {MIN_PSNR_VS_FP32:.0f}); task PSNR "
                f"{self.task_psnr:.2f} dB, drop {self.task_drop_db:+.3f} dB (need <= {MAX_TASK_DROP_DB})")


class Semantics(Enum):
    """How an artifact's outputs are computed for the gate.

    KERNELS: ORT's optimized CPU kernels — what the CPU artifact really runs.
    QDQ_REFERENCE: the Q/DQ graph as written (ORT with graph optimizations off): int8 products
    accumulated exactly, which is what TensorRT computes (int32 accumulation). ORT's fused x86
    u8s8 kernels on AVX2 without VNNI add 16-bit saturation that TensorRT does not have; signed
    int8 activations (shifted to u8 inside ORT) saturate far more often, so gating the TensorRT
    artifact on those kernels would measure this CPU, not the artifact.
    """

    KERNELS = "onnxruntime-cpu-kernels"
    QDQ_REFERENCE = "qdq-reference"


def outputs(path: Path, frames: np.ndarray, semantics: Semantics = Semantics.KERNELS) -> np.ndarray:
    sess = ort_session(path, reference=semantics is Semantics.QDQ_REFERENCE)
    return np.concatenate([run_onnx(sess, frames[i : i + 1]) for i in range(frames.shape[0])])


def gate(name: str, art_out: np.ndarray, fp32_out: np.ndarray, targets: np.ndarray,
         semantics: Semantics = Semantics.KERNELS) -> GateResult:
    vs = psnr(art_out, fp32_out)
    worst = min(psnr(a, b) for a, b in zip(art_out, fp32_out))
    task_fp32, task = psnr(fp32_out, targets), psnr(art_out, targets)
    drop = task_fp32 - task
    ok = vs >= MIN_PSNR_VS_FP32 and drop <= MAX_TASK_DROP_DB
    return GateResult(name, vs, worst, task, drop, ok, semantics.value)


def require(result: GateResult) -> None:
    if not result.passed:
        raise GateError("accuracy gate failed for " + result.line())


# --- Q/DQ lint (TensorRT explicit quantization rules) -------------------------------------------

TRT_INT8_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Relu", "Clip", "MaxPool",
                          "AveragePool", "Concat", "Reshape", "Transpose", "DepthToSpace", "SpaceToDepth",
                          "Sigmoid", "Mul", "Resize", "Squeeze", "Unsqueeze", "Identity"})


def lint_qdq_for_tensorrt(path: Path) -> list[str]:
    """Problems that would make TensorRT reject or mis-handle the Q/DQ model (empty list = clean)."""
    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    problems: list[str] = []
    for n in m.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = inits.get(n.input[1])
        zp = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if scale is None:
            problems.append(f"{n.name}: scale is not a constant initializer")
            continue
        if np.any(scale <= 0):
            problems.append(f"{n.name}: non-positive scale")
        if zp is not None:
            if zp.dtype != np.int8:
                problems.append(f"{n.name}: zero point dtype {zp.dtype} (TensorRT needs int8)")
            if np.any(zp != 0):
                problems.append(f"{n.name}: non-zero zero point (TensorRT needs symmetric)")
    # per-channel weight axes: Conv weight axis 0, ConvTranspose axis 1
    for n in m.graph.node:
        if n.op_type not in ("Conv", "ConvTranspose") or len(n.input) < 2:
            continue
        dq = producers.get(n.input[1])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        scale = inits.get(dq.input[1])
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        want = 0 if n.op_type == "Conv" else 1
        if scale is not None and scale.size > 1 and axis != want:
            problems.append(f"{n.name}: per-channel weight axis {axis}, TensorRT needs {want} for {n.op_type}")
        if len(n.input) > 2 and n.input[2] in producers and producers[n.input[2]].op_type == "DequantizeLinear":
            problems.append(f"{n.name}: quantized (int32) bias; TensorRT takes float bias")
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear":
            continue
        feeds_from_dq = any(i in producers and producers[i].op_type == "DequantizeLinear" for i in n.input)
        if feeds_from_dq and n.op_type not in TRT_INT8_OPS and n.op_type != "QuantizeLinear":
            problems.append(f"{n.name}: {n.op_type} consumes int8 data; TensorRT has no INT8 kernel for it")
    return problems
