"""MAC and byte counting of ONNX models, and the floor arithmetic."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from bundles import blur_model
from onnx import TensorProto, helper, numpy_helper

from ganrt.benchmarks.roofline import JETSON_PEAKS, DevicePeak, ModelCost, floor_ms, measured_peak, model_cost
from ganrt.runtime.model.manifest import Manifest, bundled_model_dir


def test_conv_macs_and_bytes_are_exact():
    c = model_cost(blur_model().SerializeToString(), (1, 1, 40, 24))
    assert c.macs == {"fp32": 40 * 24 * 9, "fp16": 0, "int8": 0}
    assert c.weight_bytes == 9 * 4  # the 3x3 kernel; scalars (offset, clip bounds) are not weights
    assert c.io_bytes == 2 * 40 * 24 * 4
    assert c.activation_bytes == 2 * 40 * 24 * 4


def _qdq_conv(cin: int = 4, cout: int = 8) -> bytes:
    """input -> Q -> DQ -> Conv(DQ(int8 weight)) -> output: an int8 conv the way the Q/DQ artifacts spell it."""
    w = np.ones((cout, cin, 3, 3), np.int8)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(w, "wq"), numpy_helper.from_array(np.full(cout, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(cout, np.int8), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["x"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
             helper.make_node("Conv", ["x", "w"], ["output"], pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, cin, "H", "W"])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, cout, "H", "W"])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m.SerializeToString()


def test_qdq_conv_counts_as_int8():
    c = model_cost(_qdq_conv(), (1, 4, 16, 16))
    assert c.macs == {"fp32": 0, "fp16": 0, "int8": 16 * 16 * 8 * 4 * 9}
    assert c.activation_bytes == 2 * 16 * 16 * 8  # int8 activations: 1 byte


def test_floor_is_the_slower_of_compute_and_memory():
    cost = ModelCost({"fp32": 2_000_000_000, "fp16": 0, "int8": 1_000_000_000}, weight_bytes=1_000_000,
                     io_bytes=1_000_000, activation_bytes=8_000_000)
    dev = DevicePeak("x", {"fp32": 100e9, "fp16": 200e9, "int8": 400e9}, 10e9, "test")
    f = floor_ms(cost, dev)
    assert f["compute_ms"] == pytest.approx(20.0 + 2.5)
    assert f["memory_ms"] == pytest.approx(0.2) and f["memory_with_activations_ms"] == pytest.approx(1.0)
    assert f["floor_ms"] == pytest.approx(22.5) and f["bound"] == "compute"
    slow_mem = DevicePeak("y", {"fp32": 1e15, "fp16": 1e15, "int8": 1e15}, 1e9, "test")
    assert floor_ms(cost, slow_mem)["bound"] == "memory"


def test_measured_peak_and_published_peaks_are_consistent():
    d = measured_peak({"gmac_per_s": {"fp32": 50.0, "int8": 80.0}, "memory_gb_per_s": 20.0}, "cpu")
    assert d.mac_per_s == {"fp32": 50e9, "fp16": 50e9, "int8": 80e9} and not d.estimate
    for j in JETSON_PEAKS:
        assert j.estimate and j.mac_per_s["int8"] == 2 * j.mac_per_s["fp16"]  # tensor cores: int8 = 2 x fp16


def test_bundled_student_macs_match_its_manifest():
    m = Manifest.load(bundled_model_dir())
    expected = m.raw.get("cost", {}).get("student", {}).get("macs_512")
    if expected is None:
        pytest.skip("the bundled manifest records no MAC count")
    assert model_cost(m.artifacts["fp32"].verified_bytes(), (1, 1, 512, 512)).total_macs == expected
