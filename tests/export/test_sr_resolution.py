"""us-sr2x as a resolution task: resolution-only simulated pairs, real tuning-scan pairs, and the
bicubic base of the super-resolution networks (torch, ONNX, int8)."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
import torch

from ganrt.export.archs import ResnetGenerator, StudentConfig, StudentGenerator, TeacherConfig
from ganrt.export.data.real_sr_pairs import SURROUND_MAX, RealSrConfig, render_real_sr_pair
from ganrt.export.data.simulator import SimConfig
from ganrt.export.data.us_domain import DomainConfig, render_domain_pair
from ganrt.export.onnx_export import export_onnx, parity_db
from ganrt.export.quantize import QuantRecipe, quantize_int8
from ganrt.export.tasks import get_task
from ganrt.runtime.errors import ModelError
from ganrt.runtime.model.manifest import Precision

HW = (128, 128)


def _area2(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


def test_resolution_only_pairs_differ_only_in_resolution():
    dom = DomainConfig(text_prob=1.0, jpeg_prob=1.0, smooth_prob=0.0)
    s = render_domain_pair(4, SimConfig(out_hw=HW), factor=2, dom=dom, resolution_only=True)
    assert s.input.shape == (64, 64) and s.target.shape == HW
    np.testing.assert_array_equal(s.input, _area2(s.target))  # no JPEG in either: resolution alone
    again = render_domain_pair(4, SimConfig(out_hw=HW), factor=2, dom=dom, resolution_only=True)
    np.testing.assert_allclose(again.target, s.target, rtol=0, atol=1e-5)  # threaded DFT: float32 rounding
    # the restoration pair of the same seed asks for more than resolution: its input is not the target's
    restore = render_domain_pair(4, SimConfig(out_hw=HW), factor=2, dom=dom)
    assert np.abs(restore.input - _area2(restore.target)).mean() > 0.01


def _echo_like(seed: int, hw=(150, 200)) -> np.ndarray:
    """A grey frame with a black surround and speckle-like texture inside a disc."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(30, 220, hw, dtype=np.uint8), (0, 0), 1.5)
    mask = np.zeros(hw, np.uint8)
    cv2.circle(mask, (hw[1] // 2, 0), int(hw[0] * 0.9), 1, -1)
    return img * mask


def test_real_pairs_are_a_tile_and_its_area_reduction():
    frames = [_echo_like(0), _echo_like(1)]
    cfg = RealSrConfig(out_hw=(64, 96))
    seen_scales = set()
    for seed in range(6):
        p = render_real_sr_pair(seed, frames, cfg)
        assert p.target.shape == (64, 96) and p.input.shape == (32, 48)
        assert p.input.dtype == p.target.dtype == np.float32
        np.testing.assert_array_equal(p.input, _area2(p.target))
        # the surround (black) is not training area; tissue is
        t8 = (p.target * 255).round().astype(np.uint8)
        assert not p.sector[cv2.blur(t8, (5, 5)) <= SURROUND_MAX].any()
        assert not p.lesion.any() and not p.background.any()
        seen_scales.add(round(float(p.target.mean()), 3))
    np.testing.assert_array_equal(render_real_sr_pair(3, frames, cfg).target, render_real_sr_pair(3, frames, cfg).target)
    assert len(seen_scales) > 3  # seeds draw different frames, scales and tiles


def test_real_pairs_pad_a_frame_smaller_than_the_tile():
    p = render_real_sr_pair(0, [_echo_like(2, hw=(40, 50))], RealSrConfig(out_hw=(96, 96), rescale=(1.0, 1.0)))
    assert p.target.shape == (96, 96)
    assert p.target[60:, :].max() == 0 and not p.sector[60:, :].any()  # padding is black surround


def test_us_sr2x_trains_on_real_tuning_tiles_and_simulated_resolution_pairs():
    pytest.importorskip("pydicom", reason="the tuning cine ships with pydicom (ganrt[dicom])")
    task = get_task("us-sr2x")
    ps = task.make_train_pairs(range(0, 6), (128, 128))
    assert ps.inputs.shape == (6, 64, 64) and ps.targets.shape == (6, 128, 128)
    for x, y in zip(ps.inputs, ps.targets):
        np.testing.assert_array_equal(x, _area2(y))
    # odd seeds simulated (lesion masks), even seeds real (none)
    assert [bool(m.any()) for m in ps.lesion[3:]] == [False] * 3
    held = task.make_pairs(range(900_000, 900_002), (128, 128))
    np.testing.assert_array_equal(held.inputs[0], _area2(held.targets[0]))


def test_base_config_validation_and_older_manifests():
    assert StudentConfig.from_dict({"base": "bicubic"}).base == "bicubic"
    assert StudentConfig.from_dict({"width": 8}).base == "bilinear"  # manifests from before the field
    for bad in ("nearest", 3, None):
        with pytest.raises(ModelError):
            StudentConfig.from_dict({"base": bad})
    with pytest.raises(ValueError):
        TeacherConfig(scale=2, base="area")
    t = get_task("us-sr2x")
    assert t.student.base == t.teacher.base == "bicubic"


def test_bicubic_base_is_the_starting_point_of_both_networks():
    x = 0.2 + 0.6 * torch.rand(1, 1, 24, 32)
    s = StudentGenerator(StudentConfig(width=8, n_blocks=1, down=2, scale=2, lowpass=7, base="bicubic")).eval()
    t = ResnetGenerator(TeacherConfig(ngf=8, n_blocks=1, feature_blocks=(0,), scale=2, upsample="resize",
                                      lowpass=7, base="bicubic")).eval()
    with torch.no_grad():
        s.tail.weight.zero_()
        s.tail.bias.zero_()
        t.up[-2].weight.zero_()
        t.up[-2].bias.zero_()
        want = torch.clamp(_bicubic(x), 0, 1)
        torch.testing.assert_close(s(x), want, atol=1e-6, rtol=0)
        torch.testing.assert_close(t(x), want, atol=1e-6, rtol=0)


def test_bicubic_base_is_a_fixed_conv_equal_to_interpolate():
    s = StudentGenerator(StudentConfig(width=8, n_blocks=1, down=2, scale=2, lowpass=7, base="bicubic")).eval()
    assert s.bicubic is not None and not list(s.bicubic.parameters())
    assert not any("bicubic" in k for k in s.state_dict())  # nothing new in student.safetensors
    for shape in ((1, 1, 24, 32), (2, 1, 5, 7)):  # also frames narrower than the padding reaches
        x = torch.rand(*shape)
        torch.testing.assert_close(s.bicubic(x), _bicubic(x), atol=1e-6, rtol=0)


def test_bicubic_base_exports_as_a_float_conv_the_quantizers_leave_alone(tmp_path):
    from ganrt.export.gate import lint_qdq_for_tensorrt
    from ganrt.export.quantize import conv_node_names, fixed_conv_names

    s = StudentGenerator(StudentConfig(width=8, n_blocks=1, down=2, scale=2, lowpass=7, base="bicubic")).eval()
    fp32 = export_onnx(s, tmp_path / "s.onnx", 1, scale=2)
    nodes = onnx.load(str(fp32)).graph.node
    assert not [n for n in nodes if n.op_type == "Resize"]  # ONNX Runtime's cubic Resize is the slow path
    assert fixed_conv_names(fp32) == ["/bicubic/Conv"] and "/bicubic/Conv" not in conv_node_names(fp32)
    frames = np.random.default_rng(0).random((2, 1, 24, 40), np.float32)
    assert parity_db(s, fp32, frames) > 60
    learned = len(conv_node_names(fp32))
    for prec in (Precision.INT8_TRT, Precision.INT8_CPU):
        # learned ranges are one per trained conv: the fixed conv takes none
        q = quantize_int8(fp32, tmp_path / f"q_{prec.value}.onnx", frames,
                          QuantRecipe(prec, op_types=("Conv",), ranges=((0.0, 1.0, -1.0, 1.0),) * learned))
        g = onnx.load(str(q)).graph
        producers = {o: n.op_type for n in g.node for o in n.output}
        weights_from = {n.name: producers.get(n.input[1], "initializer") for n in g.node if n.op_type == "Conv"}
        assert weights_from.pop("/bicubic/Conv") == "initializer"  # float weights, float input
        assert set(weights_from.values()) == {"DequantizeLinear"}  # every trained conv is int8
        if prec is Precision.INT8_TRT:
            assert lint_qdq_for_tensorrt(q) == []


def test_unweighted_teacher_is_not_run_and_mse_counts():
    from ganrt.export.distill import DistillConfig, _teacher_terms
    from ganrt.export.finetune import FinetuneConfig, _task_loss

    class Exploding(torch.nn.Module):
        def forward_features(self, x):
            raise AssertionError("the teacher ran")

    x, out = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 16, 16)
    l_tch, l_feat = _teacher_terms(Exploding(), torch.nn.ModuleList(), x, out, [], DistillConfig(w_teacher=0.0, w_feat=0.0))
    assert float(l_tch) == float(l_feat) == 0.0
    with pytest.raises(AssertionError, match="teacher ran"):
        _teacher_terms(Exploding(), torch.nn.ModuleList(), x, out, [], DistillConfig(w_teacher=0.1, w_feat=0.0))
    y = torch.rand(2, 1, 16, 16)
    plain = float(_task_loss(out, y, None, FinetuneConfig(w_teacher=0.0)))
    with_mse = float(_task_loss(out, y, None, FinetuneConfig(w_teacher=0.0, w_mse=10.0)))
    assert with_mse == pytest.approx(plain + 10.0 * float(torch.nn.functional.mse_loss(out, y)), rel=1e-5)
    assert float(_task_loss(out, y, out, FinetuneConfig(w_teacher=1.0))) == pytest.approx(plain, rel=1e-5)
