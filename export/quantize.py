"""FP16 and explicit-Q/DQ INT8 artifacts from the fp32 ONNX (recipes in docs/bundle-and-export.md).

- fp16: weights and compute in half, I/O kept float32 (TensorRT strongly typed path).
- int8-trt: symmetric s8 activations, per-channel symmetric s8 weights, zero points 0,
  float biases (TensorRT's parser takes int8 Q/DQ, not ORT's int32 bias Q/DQ).
- int8-cpu: asymmetric u8 activations, per-channel s8 weights (ORT CPU's fast kernels).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import onnx

from ganrt.runtime.backends.torch.models import FIXED_CONV_SCOPES
from ganrt.runtime.model.manifest import Precision

log = logging.getLogger(__name__)


class CalibMethod(Enum):
    MINMAX = "minmax"
    PERCENTILE = "percentile"


@dataclass(frozen=True)
class QuantRecipe:
    precision: Precision
    calib: CalibMethod = CalibMethod.MINMAX
    percentile: float = 99.999
    keep_float: tuple[str, ...] = ()  # node names left in float (first/last conv when the gate asks)
    op_types: tuple[str, ...] | None = None  # None: every op ORT can quantize; ("Conv",): convs only
    # Learned clipping ranges from quantization-aware fine-tuning, one per Conv in graph order
    # (in_min, in_max, out_min, out_max); they override the calibrator for those tensors.
    ranges: tuple[tuple[float, float, float, float], ...] | None = None

    def describe(self) -> dict:
        return {
            "precision": self.precision.value,
            "calibration": self.calib.value,
            "percentile": self.percentile if self.calib is CalibMethod.PERCENTILE else None,
            "kept_float": list(self.keep_float),
            "op_types": list(self.op_types) if self.op_types else "all",
            "ranges": "learned in quantization-aware fine-tuning" if self.ranges else "calibrated",
        }


class _Reader:
    """ORT CalibrationDataReader over NCHW float32 frames."""

    def __init__(self, name: str, frames: np.ndarray) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = iter({name: frames[i : i + 1]} for i in range(frames.shape[0]))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # newer ORT calls it; a single pass suffices
        pass


def to_fp16(src: Path, dst: Path) -> Path:
    import onnx_ir as ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    m = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    g = ir.from_proto(m)  # the converter appends its I/O casts last; the ONNX checker wants topological order
    g.graph.sort()
    m = ir.to_proto(g)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return dst


def _learned(node) -> bool:
    """A conv with trained weights (quantizable); the fixed convs (bicubic base, body-grid smoothing) stay float."""
    return node.op_type in ("Conv", "ConvTranspose") and not _fixed(node)


def _fixed(node) -> bool:
    return node.op_type == "Conv" and any(scope in node.name for scope in FIXED_CONV_SCOPES)


def conv_node_names(path: Path) -> list[str]:
    return [n.name for n in onnx.load(str(path)).graph.node if _learned(n)]


def fixed_conv_names(path: Path) -> list[str]:
    return [n.name for n in onnx.load(str(path)).graph.node if _fixed(n)]


def quantize_int8(src: Path, dst: Path, frames: np.ndarray, recipe: QuantRecipe) -> Path:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    trt = recipe.precision is Precision.INT8_TRT
    with tempfile.TemporaryDirectory() as td:
        pre = Path(td) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        name = onnx.load(str(pre)).graph.input[0].name
        extra = {
            "ActivationSymmetric": trt,
            "WeightSymmetric": True,
            "QuantizeBias": not trt,
        }
        if recipe.calib is CalibMethod.PERCENTILE:
            extra["CalibPercentile"] = recipe.percentile
        if recipe.ranges:
            extra["TensorQuantOverrides"] = _range_overrides(pre, recipe.ranges)
        quantize_static(
            str(pre), str(dst), _Reader(name, frames),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8 if trt else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.Percentile if recipe.calib is CalibMethod.PERCENTILE else CalibrationMethod.MinMax,
            nodes_to_exclude=list(recipe.keep_float) + fixed_conv_names(pre),
            op_types_to_quantize=list(recipe.op_types) if recipe.op_types else None,
            extra_options=extra,
        )
    onnx.checker.check_model(onnx.load(str(dst)))
    return dst


def _range_overrides(model_path: Path, ranges) -> dict[str, list[dict]]:
    """ORT tensor overrides: each conv's input and output tensor gets its learned [rmin, rmax]."""
    convs = [n for n in onnx.load(str(model_path)).graph.node if n.op_type == "Conv" and _learned(n)]
    if len(convs) != len(ranges):
        raise ValueError(f"{len(ranges)} learned ranges for {len(convs)} Conv nodes: the model and ranges differ")
    out: dict[str, list[dict]] = {}
    for node, (in_min, in_max, out_min, out_max) in zip(convs, ranges):
        out[node.input[0]] = [{"rmin": np.float32(in_min), "rmax": np.float32(in_max)}]
        out[node.output[0]] = [{"rmin": np.float32(out_min), "rmax": np.float32(out_max)}]
    return out


def first_last_convs(path: Path) -> tuple[str, ...]:
    names = conv_node_names(path)
    return (names[0], names[-1]) if len(names) >= 2 else tuple(names)


def recipes_for(precision: Precision, fp32_path: Path, ranges=None) -> Sequence[QuantRecipe]:
    """Fixed recipes tried first (learned QAT ranges when there are some); the pipeline then
    escalates by per-conv sensitivity."""
    edge = first_last_convs(fp32_path)
    conv = ("Conv",)  # Q/DQ on conv inputs/weights; adds, clamp and shuffles stay float (TensorRT fuses)
    learned = (QuantRecipe(precision, CalibMethod.MINMAX, op_types=conv, ranges=tuple(ranges)),) if ranges else ()
    return learned + (
        QuantRecipe(precision, CalibMethod.MINMAX, op_types=conv),
        QuantRecipe(precision, CalibMethod.PERCENTILE, 99.999, op_types=conv),
        QuantRecipe(precision, CalibMethod.MINMAX, keep_float=edge, op_types=conv),
    )


def with_float(recipe: QuantRecipe, names: Sequence[str]) -> QuantRecipe:
    from dataclasses import replace

    return replace(recipe, keep_float=tuple(names))


def sensitivity(src: Path, frames: np.ndarray, recipe: QuantRecipe, score) -> list[tuple[str, float]]:
    """Convs ordered by how much keeping each one alone in float improves ``score`` (higher is better).

    One quantization per conv: cheap for a student (about a dozen convs) and it finds the
    layers whose activations int8 cannot hold (wide residual streams, the output head).
    """
    out = []
    with tempfile.TemporaryDirectory() as td:
        dst = Path(td) / "q.onnx"
        for name in conv_node_names(src):
            quantize_int8(src, dst, frames, with_float(recipe, [name]))
            out.append((name, float(score(dst))))
    return sorted(out, key=lambda kv: -kv[1])
