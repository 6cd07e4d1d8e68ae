"""What this CPU actually sustains, measured with ONNX Runtime rather than taken from a datasheet:
dense 3x3 conv and matmul in fp32 and int8 (u8 activations x s8 weights, ORT CPU's fast form),
and memory copy bandwidth. The roofline divides a model's MACs and bytes by these rates.

    python -m ganrt.benchmarks.cpu_peak
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ganrt.benchmarks.env import environment
from ganrt.runtime.records.stats import summarize


@dataclass(frozen=True)
class PeakConfig:
    convs: tuple[tuple[int, int], ...] = ((32, 256), (64, 128))  # (channels, H=W) of dense 3x3 conv chains
    depth: int = 6  # chained convs per model (0.6-1.6 GMAC per call)
    matmul: int = 1024
    iterations: int = 12
    warmup: int = 3
    threads: int = 0  # 0: ORT's default (all cores)
    copy_mib: int = 256


def _model(nodes, inputs, outputs, inits, opset: int = 17) -> bytes:
    g = helper.make_graph(nodes, "peak", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m.SerializeToString()


def conv_fp32(c: int, depth: int = 1) -> bytes:
    """``depth`` chained c->c 3x3 convs with ReLU between: a network body, so ORT's layout reorders
    at the ends are paid once, as in a real model, not once per conv."""
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for k in range(depth):
        w = (rng.standard_normal((c, c, 3, 3)) * (0.5 / c)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{k}"))
        y = "y" if k == depth - 1 else f"a{k}"
        nodes.append(helper.make_node("Conv", [x, f"w{k}"], [y if k == depth - 1 else f"c{k}"], pads=[1, 1, 1, 1]))
        if k < depth - 1:
            nodes.append(helper.make_node("Relu", [f"c{k}"], [y]))
        x = y
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, "H", "W"])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, "H", "W"])], inits)


def conv_int8(c: int, depth: int = 1) -> bytes:
    """``depth`` chained QLinearConvs, u8 activations (zero point 128) x s8 per-channel weights -> u8."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz"),
             numpy_helper.from_array(np.full(c, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(c, np.int8), "wz")]
    nodes, x = [], "x"
    for k in range(depth):
        inits.append(numpy_helper.from_array(rng.integers(-127, 128, (c, c, 3, 3), dtype=np.int8), f"w{k}"))
        y = "y" if k == depth - 1 else f"a{k}"
        nodes.append(helper.make_node("QLinearConv", [x, "xs", "xz", f"w{k}", "ws", "wz", "xs", "xz"], [y],
                                      pads=[1, 1, 1, 1]))
        x = y
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, c, "H", "W"])],
                  [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, c, "H", "W"])], inits)


def matmul_fp32(n: int) -> bytes:
    rng = np.random.default_rng(0)
    b = rng.standard_normal((n, n)).astype(np.float32)
    return _model([helper.make_node("MatMul", ["x", "b"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], [numpy_helper.from_array(b, "b")])


def matmul_int8(n: int) -> bytes:
    rng = np.random.default_rng(0)
    b = rng.integers(-127, 128, (n, n), dtype=np.int8)
    return _model([helper.make_node("MatMulInteger", ["x", "b", "xz"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.UINT8, [n, n])],
                  [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
                  [numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.array(128, np.uint8), "xz")])


def _time(model: bytes, feed: np.ndarray, cfg: PeakConfig) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cfg.threads
    opts.log_severity_level = 3
    s = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    for _ in range(cfg.warmup):
        s.run(None, {name: feed})
    times = []
    for _ in range(cfg.iterations):
        t0 = time.perf_counter_ns()
        s.run(None, {name: feed})
        times.append((time.perf_counter_ns() - t0) / 1e9)
    return summarize(times).to_dict()


def memory_bandwidth(mib: int, repeats: int = 5) -> float:
    """Bytes per second of a large numpy copy (read + write counted)."""
    n = mib * 2**20 // 8
    src = np.random.default_rng(0).random(n)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best.append(time.perf_counter() - t0)
    return 2 * src.nbytes / float(np.median(best))


def measure(cfg: PeakConfig = PeakConfig()) -> dict:
    """Rates of each dense op; the peak per precision is the best dense 3x3 conv (the student is 3x3 convs),
    with the matmuls as a cross-check."""
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    runs: dict[str, tuple[dict, int]] = {}
    for c, hw in cfg.convs:
        macs = hw * hw * c * c * 9 * cfg.depth
        runs[f"conv3x3_fp32_c{c}_{hw}"] = (
            _time(conv_fp32(c, cfg.depth), rng.random((1, c, hw, hw), dtype=np.float32), cfg), macs)
        runs[f"conv3x3_int8_u8s8_c{c}_{hw}"] = (
            _time(conv_int8(c, cfg.depth), rng.integers(0, 256, (1, c, hw, hw), dtype=np.uint8), cfg), macs)
    n = cfg.matmul
    runs["matmul_fp32"] = (_time(matmul_fp32(n), rng.random((n, n), dtype=np.float32), cfg), n ** 3)
    runs["matmul_int8_u8s8"] = (_time(matmul_int8(n), rng.integers(0, 256, (n, n), dtype=np.uint8), cfg), n ** 3)
    detail = {k: {"macs": m, "median_s": s["median"], "gmac_per_s": m / s["median"] / 1e9, "cv": s["cv"]}
              for k, (s, m) in runs.items()}
    best = lambda tag: max(v["gmac_per_s"] for k, v in detail.items() if k.startswith(tag))  # noqa: E731
    return {
        "what": "sustained CPU rates measured with ONNX Runtime (CPU EP); the roofline's measured-machine peaks",
        "config": asdict(cfg),
        "onnxruntime": ort.__version__,
        "runs": detail,
        "gmac_per_s": {"fp32": best("conv3x3_fp32"), "int8": best("conv3x3_int8")},
        "peak_rule": "best chain of dense 3x3 convs of each precision (median of its timed runs)",
        "memory_gb_per_s": memory_bandwidth(cfg.copy_mib) / 1e9,
        "memory_note": "single-thread numpy copy of a large array, read + write bytes counted",
        "environment": environment({"intra_op": cfg.threads}),
    }


def main(argv=None) -> int:
    print(json.dumps(measure(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
