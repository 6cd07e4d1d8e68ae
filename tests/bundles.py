"""Tiny ONNX bundles built inside tests (no training, no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ganrt.runtime.model.manifest import FORMAT, MANIFEST_NAME, sha256_file


def blur_model(channels: int = 1, offset: float = 0.0, batch: int | str = 1) -> onnx.ModelProto:
    """A 3x3 box blur (+offset) with dynamic H/W: output differs from input, stays in range.
    ``batch="N"`` makes the batch dimension dynamic too."""
    w = np.zeros((channels, channels, 3, 3), np.float32)
    for c in range(channels):
        w[c, c] = 1.0 / 9.0
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["conv", "off"], ["shifted"]),
        helper.make_node("Clip", ["shifted", "lo", "hi"], ["output"]),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(offset, np.float32), "off"),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(1.0, np.float32), "hi")]
    g = helper.make_graph(
        nodes, "blur",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, channels, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, channels, "H", "W"])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def make_bundle(root: Path, channels: int = 1, model: onnx.ModelProto | None = None,
                precisions: tuple[str, ...] = ("fp32", "int8-cpu")) -> Path:
    """Write a bundle whose artifacts are all the same tiny model (enough for runtime tests)."""
    root.mkdir(parents=True, exist_ok=True)
    model = model or blur_model(channels)
    artifacts = {}
    for p in precisions:
        f = root / f"tiny_{p}.onnx"
        onnx.save(model, str(f))
        artifacts[p] = {"file": f.name, "precision": p, "sha256": sha256_file(f)}
    spec = {"channels": channels, "dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0],
            "color_order": "gray" if channels == 1 else "bgr"}
    manifest = {
        "format": FORMAT, "task": "us-enhance",
        "io": {"input": {"name": "input", **spec}, "output": {"name": "output", **spec}, "size_multiple": 4, "scale": 1},
        "artifacts": artifacts,
    }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    return root
