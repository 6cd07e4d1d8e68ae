"""Roofline floor of a model: MACs and bytes per frame, and the least time they can take on a machine.

floor = max(sum over precisions of MACs_p / peak MAC rate_p, compulsory bytes / memory bandwidth).
Compulsory bytes: the weights + the input and output frames (each touched once). The activation
traffic (every conv output written and read back once) is reported beside it: on a CPU at 512x512
the activations do not fit in cache, so the real floor lies between the two.

Rates: the measured machine's come from ``cpu_peak`` (ONNX Runtime on this CPU); the Jetson rates
are published peaks (NVIDIA datasheets, dense = sparse / 2) and so are *estimates* -- small-channel
convs reach a fraction of a GPU's tensor-core peak, so a real engine is slower than its floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from ganrt.benchmarks.env import environment

_ELEM_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class ModelCost:
    macs: dict[str, int]  # by compute precision: fp32 | fp16 | int8
    weight_bytes: int
    io_bytes: int  # input + output frames
    activation_bytes: int  # every conv/matmul output written and read back once

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    @property
    def compulsory_bytes(self) -> int:
        return self.weight_bytes + self.io_bytes

    def to_dict(self) -> dict:
        return {"macs": dict(self.macs), "total_macs": self.total_macs, "weight_bytes": self.weight_bytes,
                "io_bytes": self.io_bytes, "activation_bytes": self.activation_bytes,
                "compulsory_bytes": self.compulsory_bytes}


@dataclass(frozen=True)
class DevicePeak:
    name: str
    mac_per_s: dict[str, float]  # fp32 | fp16 | int8
    bytes_per_s: float
    source: str
    estimate: bool = True
    runs: tuple[str, ...] = ("fp32", "fp16", "int8-trt")  # artifacts this device would run

    def to_dict(self) -> dict:
        return {"name": self.name, "gmac_per_s": {k: v / 1e9 for k, v in self.mac_per_s.items()},
                "memory_gb_per_s": self.bytes_per_s / 1e9, "source": self.source, "estimate": self.estimate}


# Published peaks, GPU only (DLA excluded). 1 MAC = 2 ops; dense = sparse / 2; FP16 tensor = INT8 / 2.
JETSON_PEAKS: tuple[DevicePeak, ...] = (
    DevicePeak("Jetson Orin Nano 8GB (15 W)", {"fp32": 0.64e12, "fp16": 5.0e12, "int8": 10.0e12}, 68e9,
               "NVIDIA datasheet: 40 sparse INT8 TOPS -> 20 dense; FP16 tensor 10 TFLOPS dense; FP32 1024 CUDA cores "
               "x 2 x 625 MHz = 1.28 TFLOPS; LPDDR5 68 GB/s (the 25 W 'Super' mode: 67 TOPS, 102 GB/s)"),
    DevicePeak("Jetson AGX Orin 64GB (MAXN)", {"fp32": 2.65e12, "fp16": 21.25e12, "int8": 42.5e12}, 204.8e9,
               "NVIDIA technical brief: GPU 170 sparse INT8 TOPS -> 85 dense; FP16 tensor 42.5 TFLOPS dense; FP32 "
               "5.3 TFLOPS (2048 CUDA cores x 1.3 GHz); LPDDR5 204.8 GB/s"),
)


def measured_peak(cpu: dict, name: str) -> DevicePeak:
    """This machine from ``cpu_peak.measure()``: fp16 convs at the fp32 rate (ORT's x86 CPU EP computes
    them in fp32), int8 at the u8 x s8 rate."""
    g = cpu["gmac_per_s"]
    return DevicePeak(name, {"fp32": g["fp32"] * 1e9, "fp16": g["fp32"] * 1e9, "int8": g["int8"] * 1e9},
                      cpu["memory_gb_per_s"] * 1e9, "measured here with ONNX Runtime (benchmarks/cpu_peak.py)",
                      estimate=False, runs=("fp32", "fp16", "int8-cpu", "int8-trt"))


# --- counting ---------------------------------------------------------------------------------------


def _dims(vi) -> list[int] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    d = [x.dim_value if x.HasField("dim_value") else None for x in t.shape.dim]
    return None if any(v is None for v in d) else d


def _fix_input(model: onnx.ModelProto, shape: tuple[int, ...]) -> None:
    inp = model.graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    for d, v in zip(dims, shape):
        d.Clear()
        d.dim_value = int(v)


@dataclass
class _Graph:
    shapes: dict[str, list[int]] = field(default_factory=dict)
    inits: dict[str, np.ndarray] = field(default_factory=dict)
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)


def _weight(g: _Graph, name: str) -> tuple[np.ndarray | None, bool]:
    """(weight array, stored as int8) for an initializer, directly or through DequantizeLinear/Cast."""
    if name in g.inits:
        return g.inits[name], g.inits[name].dtype in (np.int8, np.uint8)
    node = g.producer.get(name)
    if node is not None and node.op_type in ("DequantizeLinear", "Cast", "Identity") and node.input[0] in g.inits:
        w = g.inits[node.input[0]]
        return w, w.dtype in (np.int8, np.uint8)
    return None, False


def _quantized_input(g: _Graph, name: str) -> bool:
    node = g.producer.get(name)
    return node is not None and node.op_type == "DequantizeLinear"


def _folded(model_bytes: bytes) -> bytes:
    """The model after ONNX Runtime's basic (semantics-preserving) optimisations: constant folding turns
    computed pads (reflection padding exported as a chain of ops) into constants that shape inference sees."""
    import os
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as td:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = os.path.join(td, "folded.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
        with open(opts.optimized_model_filepath, "rb") as fh:
            return fh.read()


def model_cost(model_bytes: bytes, input_shape: tuple[int, int, int, int]) -> ModelCost:
    """MACs (by precision) and bytes per call of an ONNX model at a concrete input shape."""
    try:
        return _count(model_bytes, input_shape)
    except _Unsized:
        return _count(_folded(model_bytes), input_shape)


class _Unsized(ValueError):
    pass


def _count(model_bytes: bytes, input_shape: tuple[int, int, int, int]) -> ModelCost:
    model = onnx.load_from_string(model_bytes)
    _fix_input(model, input_shape)
    model = shape_inference.infer_shapes(model, data_prop=True)
    g = _Graph()
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        d = _dims(vi)
        if d is not None:
            g.shapes[vi.name] = d
    for init in model.graph.initializer:
        g.inits[init.name] = numpy_helper.to_array(init)
    for node in model.graph.node:
        for o in node.output:
            g.producer[o] = node
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    g.inits[node.output[0]] = numpy_helper.to_array(a.t)
    macs = {"fp32": 0, "fp16": 0, "int8": 0}
    act = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
            continue
        out = g.shapes.get(node.output[0])
        w, w_int8 = _weight(g, node.input[1])
        if out is None or w is None:
            raise _Unsized(f"cannot size {node.op_type} {node.name!r}: shapes not inferable at {input_shape}")
        if node.op_type == "Conv":
            n = int(np.prod(out)) * int(np.prod(w.shape[1:]))  # each output: Cin/groups x kh x kw MACs
        elif node.op_type == "ConvTranspose":
            inp = g.shapes[node.input[0]]
            n = int(np.prod(inp)) * int(np.prod(w.shape[1:]))
        else:
            n = int(np.prod(out)) * int(w.shape[0] if node.op_type == "MatMul" else w.shape[-1])
        prec = "int8" if w_int8 and _quantized_input(g, node.input[0]) else (
            "fp16" if w.dtype == np.float16 else "fp32")
        macs[prec] += n
        act += 2 * int(np.prod(out)) * _ELEM_BYTES[prec]
    weight_bytes = sum(int(a.nbytes) for k, a in g.inits.items() if a.size > 1)
    io = 0
    for vi in (model.graph.input[0], model.graph.output[0]):
        d = g.shapes.get(vi.name)
        elem = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).itemsize
        io += int(np.prod(d)) * elem if d else 0
    return ModelCost(macs, weight_bytes, io, act)


def floor_ms(cost: ModelCost, dev: DevicePeak) -> dict:
    compute = sum(cost.macs[p] / dev.mac_per_s[p] for p in cost.macs) * 1e3
    memory = cost.compulsory_bytes / dev.bytes_per_s * 1e3
    with_act = (cost.compulsory_bytes + cost.activation_bytes) / dev.bytes_per_s * 1e3
    return {"device": dev.name, "estimate": dev.estimate, "compute_ms": compute, "memory_ms": memory,
            "memory_with_activations_ms": with_act, "floor_ms": max(compute, memory),
            "bound": "compute" if compute >= memory else "memory"}


def report(models: list[tuple[str, str, bytes]], sizes: list[int], cpu: dict, machine: str,
           measured_ms: dict[tuple[str, int], float]) -> dict:
    """Roofline rows: each (name, precision, onnx bytes) at each size, floors on this machine (measured
    rates) and on the Jetsons (published peaks, estimates), next to the measured median where there is one."""
    here = measured_peak(cpu, machine)
    devices = (here, *JETSON_PEAKS)
    rows = []
    for name, precision, data in models:
        for hw in sizes:
            cost = model_cost(data, (1, 1, hw, hw))
            floors = []
            for dev in devices:
                if precision not in dev.runs:
                    continue
                f = floor_ms(cost, dev)
                if not dev.estimate and (name, hw) in measured_ms:
                    f["measured_median_ms"] = measured_ms[(name, hw)]
                    f["floor_over_measured"] = f["floor_ms"] / measured_ms[(name, hw)]
                floors.append(f)
            rows.append({"model": name, "precision": precision, "hw": [hw, hw], "cost": cost.to_dict(), "floors": floors})
    return {"what": "roofline floors: max(MACs / peak MAC rate, compulsory bytes / memory bandwidth) per frame",
            "devices": [d.to_dict() for d in devices], "cpu_peak": cpu, "rows": rows,
            "note": "Jetson rows are estimates from published peaks (never measured here); the measured-machine rates "
                    "come from cpu_peak on this CPU. fp16 on this CPU is counted at the fp32 rate.",
            "environment": environment()}


def to_markdown(r: dict) -> str:
    devs = [d["name"] for d in r["devices"]]
    lines = ["# Roofline floors per frame", "", r["note"], "",
             "| device | GMAC/s fp32 | fp16 | int8 | GB/s | source |", "|---|---|---|---|---|---|"]
    for d in r["devices"]:
        g = d["gmac_per_s"]
        lines.append(f"| {d['name']}{' (estimate)' if d['estimate'] else ''} | {g['fp32']:.1f} | {g['fp16']:.1f} | "
                     f"{g['int8']:.1f} | {d['memory_gb_per_s']:.1f} | {d['source']} |")
    lines += ["", "| model | size | GMAC (int8 share) | MB compulsory / +activations | " + " | ".join(
        f"floor ms {n}" for n in devs) + " | measured ms here |", "|" + "---|" * (4 + len(devs) + 1)]
    for row in r["rows"]:
        c = row["cost"]
        by = {f["device"]: f for f in row["floors"]}
        meas = next((f.get("measured_median_ms") for f in row["floors"] if "measured_median_ms" in f), None)
        cells = [f"{by[n]['floor_ms']:.2f}{'*' if by[n]['estimate'] else ''}" if n in by else "n/a" for n in devs]
        share = c["macs"]["int8"] / c["total_macs"] if c["total_macs"] else 0.0
        lines.append(f"| {row['model']} | {row['hw'][0]}² | {c['total_macs'] / 1e9:.2f} ({100 * share:.0f}%) | "
                     f"{c['compulsory_bytes'] / 1e6:.2f} / {(c['compulsory_bytes'] + c['activation_bytes']) / 1e6:.1f} | "
                     + " | ".join(cells) + f" | {'' if meas is None else f'{meas:.2f}'} |")
    lines += ["", "* estimate from published peaks. n/a: that artifact is not meant for that device."]
    return "\n".join(lines) + "\n"
