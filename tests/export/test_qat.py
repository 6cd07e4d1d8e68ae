"""Quantization-aware fine-tuning pieces, the lesion-contrast loss and the learned-range overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

torch = pytest.importorskip("torch")

from ganrt.export import qat  # noqa: E402
from ganrt.export.archs import StudentConfig, StudentGenerator  # noqa: E402
from ganrt.export.data.pairs import PairBank  # noqa: E402
from ganrt.export.data.simulator import gcnr  # noqa: E402
from ganrt.export.losses import contrast_shortfall, soft_gcnr  # noqa: E402
from ganrt.export.onnx_export import export_onnx  # noqa: E402
from ganrt.export.quantize import CalibMethod, QuantRecipe, quantize_int8  # noqa: E402
from ganrt.runtime.model.manifest import Precision  # noqa: E402


def _two_region_image(rng, mean_a: float, mean_b: float, std: float, n: int = 64):
    img = np.empty((n, n), np.float32)
    a = np.zeros((n, n), bool)
    a[:, : n // 2] = True
    img[a] = rng.normal(mean_a, std, a.sum())
    img[~a] = rng.normal(mean_b, std, (~a).sum())
    return np.clip(img, 0, 1), a, ~a


@pytest.mark.parametrize("mean_b,std", [(0.3, 0.05), (0.5, 0.1), (0.8, 0.05), (0.35, 0.2)])
def test_soft_gcnr_tracks_the_metric(mean_b: float, std: float):
    img, a, b = _two_region_image(np.random.default_rng(0), 0.3, mean_b, std)
    t = lambda v: torch.from_numpy(np.ascontiguousarray(v, np.float32))[None, None]  # noqa: E731
    soft = float(soft_gcnr(t(img), t(a), t(b))[0])
    assert soft == pytest.approx(gcnr(img, a, b), abs=0.12)


def test_contrast_shortfall_is_one_sided():
    rng = np.random.default_rng(1)
    tgt, a, b = _two_region_image(rng, 0.3, 0.6, 0.05)
    flat, _, _ = _two_region_image(rng, 0.45, 0.45, 0.05)
    more, _, _ = _two_region_image(rng, 0.1, 0.9, 0.02)
    t = lambda v: torch.from_numpy(np.ascontiguousarray(v, np.float32))[None, None]  # noqa: E731
    assert float(contrast_shortfall(t(flat), t(tgt), t(a), t(b))) > 0.5  # lost the lesion
    assert float(contrast_shortfall(t(tgt), t(tgt), t(a), t(b))) == 0.0
    assert float(contrast_shortfall(t(more), t(tgt), t(a), t(b))) == 0.0  # more contrast is not rewarded
    x = t(flat).requires_grad_(True)
    contrast_shortfall(x, t(tgt), t(a), t(b)).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_fake_quant_grid_clamp_and_gradients():
    x = torch.linspace(-3, 3, 101, requires_grad=True)
    s = torch.tensor(1.0 / qat.QMAX, requires_grad=True)  # range 1.0
    y = qat.fake_quant(x, s)
    codes = (y / s).detach()
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert float(y.detach().max()) == pytest.approx(1.0) and float(y.detach().min()) == pytest.approx(-1.0)
    y.sum().backward()
    assert float(x.grad[50]) == 1.0 and float(x.grad[0]) == 0.0  # straight through inside, zero when clipped
    assert float(s.grad) != 0.0  # the range learns


def test_prepare_qat_is_exact_when_off_and_strips_back():
    torch.manual_seed(0)
    cfg = StudentConfig(width=8, n_blocks=2)
    s = StudentGenerator(cfg).eval()
    x = torch.rand(2, 1, 32, 32)
    q = qat.prepare_qat(s, [x])
    qat.set_quantize(q, False)
    with torch.no_grad():
        assert torch.equal(q(x), s(x))
        qat.set_quantize(q, True)
        diff = (q(x) - s(x)).abs().max()
    assert 0 < float(diff) < 0.2  # quantization changes the output, a little
    ranges = qat.conv_ranges(q)
    assert len(ranges) == 2 + 2 * cfg.n_blocks and all(r.in_max > 0 and r.out_max > 0 for r in ranges)
    back = qat.strip_qat(q, StudentGenerator(cfg).eval())
    with torch.no_grad():
        assert torch.equal(back(x), s(x))


def _scale_of(model: onnx.ModelProto, tensor: str) -> float:
    init = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] == tensor:
            return float(numpy_helper.to_array(init[node.input[1]]))
    raise AssertionError(f"no QuantizeLinear on {tensor}")


def test_learned_ranges_become_the_int8_scales(tmp_path: Path):
    torch.manual_seed(0)
    s = StudentGenerator(StudentConfig(width=8, n_blocks=1)).eval()
    fp32 = export_onnx(s, tmp_path / "s.onnx", 1)
    n_conv = sum(n.op_type == "Conv" for n in onnx.load(str(fp32)).graph.node)
    ranges = tuple((0.0, 0.5 + i, -(1.0 + i), 1.0 + i) for i in range(n_conv))
    frames = np.random.default_rng(0).random((4, 1, 32, 32), dtype=np.float32)
    dst = quantize_int8(fp32, tmp_path / "q.onnx", frames,
                        QuantRecipe(Precision.INT8_TRT, CalibMethod.MINMAX, op_types=("Conv",), ranges=ranges))
    m = onnx.load(str(dst))
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    first_in = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == convs[0].input[0]]
    assert first_in, "the first conv's input is quantized"
    q_in = next(n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.output[0] == first_in[0].input[0])
    assert _scale_of(m, q_in.input[0]) == pytest.approx(0.5 / 127.5, rel=0.02)  # symmetric: rmax / ~127
    with pytest.raises(ValueError, match="learned ranges"):
        quantize_int8(fp32, tmp_path / "bad.onnx", frames,
                      QuantRecipe(Precision.INT8_TRT, op_types=("Conv",), ranges=ranges[:-1]))


def test_lesion_batch_crops_hold_both_regions():
    rng = np.random.default_rng(0)
    n, h = 3, 64
    x = rng.random((n, h, h), dtype=np.float32)
    lesion = np.zeros((n, h, h), bool)
    lesion[:, 20:30, 20:30] = True
    ring = np.zeros((n, h, h), bool)
    ring[:, 14:36, 14:36] = True
    ring &= ~lesion
    bank = PairBank(x, x, None, lesion, ring)
    xb, yb, ml, mb = bank.lesion_batch(rng, 5, 32, min_px=20)
    assert xb.shape == (5, 1, 32, 32) and ml.shape == xb.shape
    assert (ml.sum(axis=(1, 2, 3)) >= 20).all() and (mb.sum(axis=(1, 2, 3)) >= 20).all()
    assert PairBank(x, x).lesion_batch(rng, 2, 32) is None
