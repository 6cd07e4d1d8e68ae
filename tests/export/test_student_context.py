"""The student's frame-level context and coarse branches: optional, zero-started, exportable, quantizable."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ganrt.export.archs import StudentConfig, StudentGenerator, count_macs
from ganrt.export.onnx_export import export_onnx
from ganrt.export.quantize import QuantRecipe, quantize_int8
from ganrt.export.tasks import get_task
from ganrt.runtime.errors import ModelError
from ganrt.runtime.model.manifest import Precision

SMALL = dict(channels=3, width=8, n_blocks=1, down=2)


def test_older_manifests_have_neither_branch():
    cfg = StudentConfig.from_dict({"channels": 3, "width": 8})
    assert cfg.context == cfg.coarse == 0
    s = StudentGenerator(cfg)
    assert s.context is None and s.coarse is None
    assert not any(k.startswith(("context", "coarse")) for k in s.state_dict())


@pytest.mark.parametrize("key", ["context", "coarse"])
def test_branch_validation(key):
    assert getattr(StudentConfig.from_dict({key: 4}), key) == 4
    for bad in (-1, True, 1.5):
        with pytest.raises(ModelError, match=key):
            StudentConfig.from_dict({key: bad})


def test_fresh_branches_add_nothing():
    """Zero-initialised last convs: with the same body weights the output is the plain network's."""
    torch.manual_seed(0)
    plain = StudentGenerator(StudentConfig(**SMALL)).eval()
    both = StudentGenerator(StudentConfig(**SMALL, context=4, coarse=1)).eval()
    both.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(plain(x), both(x))


def test_context_sees_the_whole_frame():
    """A change far outside the body's receptive field reaches every output pixel through the context branch."""
    torch.manual_seed(1)
    s = StudentGenerator(StudentConfig(**SMALL, context=4)).eval()
    torch.nn.init.normal_(s.context[-1].weight, std=0.5)
    torch.nn.init.constant_(s.context[1].bias, 1.0)  # hidden units on
    x = torch.full((1, 3, 64, 64), 0.5)
    y = x.clone()
    y[..., 48:, 48:] = 0.9  # bottom-right corner only
    with torch.no_grad():
        d = (s(x) - s(y)).abs()[0, :, :8, :8]  # top-left corner: 40+ px away
    assert float(d.max()) > 1e-4


def test_coarse_branch_is_cheap():
    """Two coarse blocks cost under 5 % of the plain network's MACs (1/16 of a body block each)."""
    base = count_macs(StudentGenerator(StudentConfig(channels=3, width=24, n_blocks=4, down=2)), (256, 256), 3)
    more = count_macs(StudentGenerator(StudentConfig(channels=3, width=24, n_blocks=4, down=2, context=16, coarse=2)),
                      (256, 256), 3)
    assert base < more < 1.05 * base


def test_size_multiple_covers_the_coarse_pool():
    assert StudentConfig(**SMALL).size_multiple == 2
    assert StudentConfig(**SMALL, context=4).size_multiple == 2
    assert StudentConfig(**SMALL, coarse=1).size_multiple == 8
    assert StudentConfig(channels=1, down=4, coarse=2).size_multiple == 16


@pytest.mark.parametrize("hw", [(64, 64), (40, 56)])  # the second: a coarse grid of 5 x 7
def test_onnx_matches_torch(tmp_path, hw):
    torch.manual_seed(2)
    s = StudentGenerator(StudentConfig(**SMALL, context=4, coarse=1)).eval()
    for m in (s.context[-1], s.coarse[-1]):
        torch.nn.init.normal_(m.weight, std=0.3)
    path = export_onnx(s, tmp_path / "s.onnx", 3)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "GlobalAveragePool" in ops or "ReduceMean" in ops
    x = np.random.default_rng(0).random((1, 3, *hw), np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        want = s(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_int8_trt_artifact_keeps_tensorrts_qdq_rules(tmp_path):
    """No shape-reading node on quantized data (an upsample to ``h.shape`` put one there)."""
    from ganrt.export.gate import lint_qdq_for_tensorrt

    s = StudentGenerator(StudentConfig(**SMALL, context=4, coarse=1)).eval()
    fp32 = export_onnx(s, tmp_path / "s.onnx", 3)
    assert not {n.op_type for n in onnx.load(str(fp32)).graph.node} & {"Shape", "Gather", "Slice"}
    frames = np.random.default_rng(0).random((2, 3, 32, 32), np.float32)
    q = quantize_int8(fp32, tmp_path / "q.onnx", frames, QuantRecipe(Precision.INT8_TRT, op_types=("Conv",)))
    assert lint_qdq_for_tensorrt(q) == []


def test_int8_quantizes_the_branch_convs(tmp_path):
    s = StudentGenerator(StudentConfig(**SMALL, context=4, coarse=1)).eval()
    fp32 = export_onnx(s, tmp_path / "s.onnx", 3)
    frames = np.random.default_rng(0).random((2, 3, 32, 32), np.float32)
    q = quantize_int8(fp32, tmp_path / "q.onnx", frames, QuantRecipe(Precision.INT8_TRT, op_types=("Conv",)))
    g = onnx.load(str(q)).graph
    producers = {o: n.op_type for n in g.node for o in n.output}
    convs = [n for n in g.node if n.op_type == "Conv"]
    assert len(convs) == 2 + 2 * 1 + 2 + 2 + 1  # head, block, context (2), coarse block (2) + its 1x1, tail
    assert all(producers.get(n.input[1]) == "DequantizeLinear" for n in convs)


def test_intraop_student_has_frame_context():
    cfg = get_task("intraop-enhance").student
    assert cfg.context > 0 and cfg.coarse == 0
    for name in ("us-enhance", "us-sr2x"):  # the structure-preserving models are unchanged
        assert get_task(name).student.context == get_task(name).student.coarse == 0


def test_qat_ranges_follow_the_graphs_conv_order(tmp_path):
    """qat.conv_ranges pairs convs with the ONNX Conv nodes by position: module order must be run order."""
    from ganrt.export.qat import _convs

    s = StudentGenerator(StudentConfig(**SMALL, context=4, coarse=1)).eval()
    nodes = [n.name for n in onnx.load(str(export_onnx(s, tmp_path / "s.onnx", 3))).graph.node if n.op_type == "Conv"]
    mods = [name for name, _ in _convs(s)]
    assert len(nodes) == len(mods)
    for node, mod in zip(nodes, mods):
        # "/coarse/coarse.1/c1/Conv" is module coarse.1.c1
        assert node.replace(".", "/").endswith("/" + mod.replace(".", "/") + "/Conv"), (node, mod)
