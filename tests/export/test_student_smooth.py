"""The student's gated chroma smoothing (StudentConfig.smooth): optional, nearly shut at start, colour
only (never brightness), exportable and quantizable under TensorRT's Q/DQ rules."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ganrt.export.archs import StudentConfig, StudentGenerator
from ganrt.export.onnx_export import export_onnx
from ganrt.export.quantize import QuantRecipe, quantize_int8
from ganrt.runtime.errors import ModelError
from ganrt.runtime.model.manifest import Precision

SMALL = dict(channels=3, width=8, n_blocks=1, down=2, context=4)
GRIDS = pytest.mark.parametrize("grid", ["output", "body"])


LUMA = [0.299, 0.587, 0.114]


def _open(s):
    """The gate set wide open by its bias alone (weights zero): sigmoid(30) is 1 to float precision."""
    torch.nn.init.zeros_(s.gate.weight)
    torch.nn.init.constant_(s.gate.bias, 30.0)
    torch.nn.init.zeros_(s.tail.weight)  # no learned residual: the output is the input plus the smoothing
    torch.nn.init.zeros_(s.tail.bias)
    return s.eval()


def test_older_manifests_have_none():
    cfg = StudentConfig.from_dict({"channels": 3, "width": 8})
    assert cfg.smooth == 0 and cfg.smooth_grid == "output"
    s = StudentGenerator(cfg)
    assert s.smooth is None and not any(k.startswith("gate") for k in s.state_dict())


def test_validation():
    assert StudentConfig.from_dict({"channels": 3, "smooth": 5}).smooth == 5
    for bad in (-1, 4, True, 1.5):
        with pytest.raises(ModelError, match="smooth"):
            StudentConfig.from_dict({"channels": 3, "smooth": bad})
    for cfg in (StudentConfig(channels=1, smooth=5), StudentConfig(channels=3, scale=2, smooth=5)):
        with pytest.raises(ModelError, match="smooth needs an RGB model"):
            StudentGenerator(cfg)
    assert StudentConfig.from_dict({"channels": 3, "smooth": 3, "smooth_grid": "body"}).smooth_grid == "body"
    with pytest.raises(ModelError, match="smooth_grid must be one of output, body"):
        StudentConfig.from_dict({"channels": 3, "smooth": 3, "smooth_grid": "half"})
    with pytest.raises(ModelError, match="use one of them"):
        StudentGenerator(StudentConfig(channels=3, smooth=3, smooth_grid="body", lowpass=5))


@GRIDS
def test_fresh_gates_are_nearly_shut(grid):
    """At sigmoid(-3) a fresh network moves a noisy frame by under 5 % of what full smoothing would."""
    torch.manual_seed(0)
    plain = StudentGenerator(StudentConfig(**SMALL)).eval()
    s = StudentGenerator(StudentConfig(**SMALL, smooth=5, smooth_grid=grid)).eval()
    s.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(1, 3, 32, 32)
    full = _open(StudentGenerator(StudentConfig(**SMALL, smooth=5, smooth_grid=grid)))
    with torch.no_grad():
        moved = (s(x) - plain(x)).abs().max()
        most = (full(x) - x).abs().max()
    assert 0 < moved < 0.05 * most


@GRIDS
def test_open_gate_removes_colour_noise_and_never_moves_brightness(grid):
    s = _open(StudentGenerator(StudentConfig(**SMALL, smooth=3, smooth_grid=grid)))
    rng = np.random.default_rng(1)
    grey = np.clip(0.5 + 0.1 * rng.standard_normal((1, 1, 32, 32)), 0, 1).repeat(3, axis=1).astype(np.float32)
    colour = np.clip(0.5 + 0.1 * rng.standard_normal((1, 3, 32, 32)), 0, 1).astype(np.float32)
    with torch.no_grad():
        g = s(torch.from_numpy(grey)).numpy()
        c = s(torch.from_numpy(colour)).numpy()
    np.testing.assert_allclose(g, grey, atol=1e-5)  # neutral noise has no chroma: left as it is

    def spread(a):  # channel differences: the colour noise
        return float(np.std(a[0] - a[0].mean(axis=0, keepdims=True)))

    assert spread(c) < 0.5 * spread(colour)
    np.testing.assert_allclose(np.tensordot(LUMA, c[0], axes=1), np.tensordot(LUMA, colour[0], axes=1), atol=1e-5)


@GRIDS
def test_onnx_matches_torch_and_int8_keeps_tensorrts_rules(tmp_path, grid):
    from ganrt.export.gate import lint_qdq_for_tensorrt
    from ganrt.export.qat import _convs
    from ganrt.export.quantize import conv_node_names, fixed_conv_names

    torch.manual_seed(3)
    s = StudentGenerator(StudentConfig(**SMALL, smooth=3, smooth_grid=grid)).eval()
    torch.nn.init.normal_(s.gate.weight, std=0.3)
    fp32 = export_onnx(s, tmp_path / "s.onnx", 3)
    g = onnx.load(str(fp32)).graph
    assert not {n.op_type for n in g.node} & {"Shape", "Gather", "Slice", "Split"}
    # module order is run order (qat pairs its ranges with the Conv nodes by position); the body grid's
    # three fixed convs are not learned and stay float
    nodes = conv_node_names(fp32)
    assert [n.split("/")[-2] for n in nodes][-2:] == ["tail", "gate"]
    assert len(nodes) == len(list(_convs(s)))
    assert len(fixed_conv_names(fp32)) == (3 if grid == "body" else 0)
    x = np.random.default_rng(0).random((1, 3, 40, 56), np.float32)
    got = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, s(torch.from_numpy(x)).numpy(), atol=1e-5)
    q = quantize_int8(fp32, tmp_path / "q.onnx", x, QuantRecipe(Precision.INT8_TRT, op_types=("Conv",)))
    assert lint_qdq_for_tensorrt(q) == []
    qg = onnx.load(str(q)).graph
    dequantized = {o for n in qg.node if n.op_type == "DequantizeLinear" for o in n.output}
    fixed = [n for n in qg.node if n.op_type == "Conv" and "/smooth/" in n.name]
    # their weights stay float (their input is the head's, which carries the head's int8 step)
    assert len(fixed) == len(fixed_conv_names(fp32)) and not any(n.input[1] in dequantized for n in fixed)


def test_body_grid_is_the_output_grid_smoothing_when_the_body_is_full_size():
    """down 1: the body grid is the frame, so both forms compute the same term (pooling and the chroma
    projection commute)."""
    torch.manual_seed(5)
    one = dict(SMALL, down=1, smooth=3)
    a = StudentGenerator(StudentConfig(**one)).eval()
    torch.nn.init.normal_(a.gate.weight, std=0.3)
    b = StudentGenerator(StudentConfig(**one, smooth_grid="body")).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        np.testing.assert_allclose(b(x).numpy(), a(x).numpy(), atol=1e-5)


def test_only_the_colour_task_smooths():
    from ganrt.export.tasks import get_task

    assert get_task("intraop-enhance").student.smooth > 0
    for name in ("us-enhance", "us-sr2x"):  # grey: no chroma to smooth
        assert get_task(name).student.smooth == 0
