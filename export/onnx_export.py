"""ONNX export of a generator: opset 18, dynamic batch, H and W, weights embedded, checked."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from ganrt.runtime.errors import ModelError

OPSET = 18
INPUT, OUTPUT = "input", "output"


def export_onnx(model: torch.nn.Module, path: Path, channels: int, probe_hw: tuple[int, int] = (64, 64),
                scale: int = 1) -> Path:
    """Export with the TorchScript-based exporter (stable for dynamic H/W conv nets). A
    super-resolution model (``scale`` > 1) gets its own output dimension names: the same name
    on input and output would declare them equal."""
    model = model.eval()
    x = torch.rand(1, channels, *probe_hw)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Batch is dynamic too: the runtime's shared runner batches several streams' frames into one call.
    out_axes = {0: "batch", 2: "height", 3: "width"} if scale == 1 else {0: "batch", 2: f"height_x{scale}", 3: f"width_x{scale}"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), input_names=[INPUT], output_names=[OUTPUT], opset_version=OPSET,
            dynamic_axes={INPUT: {0: "batch", 2: "height", 3: "width"}, OUTPUT: out_axes},
            dynamo=False, do_constant_folding=True,
        )
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    return path


def ort_session(path_or_bytes: Path | bytes, threads: int = 0, reference: bool = False):
    """CPU session. ``reference``: graph optimizations off, so Q/DQ pairs run as written (quantize,
    dequantize, float conv) instead of being fused into ORT's integer kernels."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    if reference:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(sess, x: np.ndarray) -> np.ndarray:
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def parity_db(model: torch.nn.Module, onnx_path: Path, frames: np.ndarray) -> float:
    """Worst-frame PSNR of ORT output against torch output (NCHW frames); must be >= 60 dB."""
    sess = ort_session(onnx_path)
    worst = float("inf")
    with torch.no_grad():
        for i in range(frames.shape[0]):
            x = frames[i : i + 1]
            worst = min(worst, psnr(run_onnx(sess, x), model(torch.from_numpy(x)).numpy()))
    if worst < 60.0:
        raise ModelError(f"ONNX parity failed: ORT vs torch PSNR {worst:.1f} dB < 60 dB ({onnx_path.name})")
    return worst
