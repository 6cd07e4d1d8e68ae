"""Tone-neutral, domain-randomised ultrasound pairs and the structure-preserving networks."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from ganrt.export.archs import ResnetGenerator, StudentConfig, StudentGenerator, TeacherConfig, icnr_
from ganrt.export.data.simulator import SimConfig, render_pair
from ganrt.export.data.us_domain import DomainConfig, render_domain_pair, scanner
from ganrt.export.onnx_export import export_onnx
from ganrt.export.quantize import QuantRecipe, quantize_int8
from ganrt.export.tasks import get_task
from ganrt.runtime.errors import ModelError
from ganrt.runtime.model.manifest import Precision

HW = (128, 128)
PLAIN = DomainConfig(text_prob=0.0, jpeg_prob=0.0, chamber_prob=0.0, smooth_prob=0.0)


def _inside(s, margin: int = 8) -> np.ndarray:
    """The sector away from its edge (where the box means mix in the black surround)."""
    import cv2

    return cv2.erode(s.sector.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0


def test_tone_neutral_target_follows_the_input_gain():
    """The same scene at +-8 dB: with tone-neutral pairs input and target move together."""
    from dataclasses import replace

    base = SimConfig(out_hw=HW, tone_neutral=True)
    means = []
    for g in (-8.0, 8.0):
        cfg = replace(base, probe_poc=replace(base.probe_poc, gain_db=g, gain_jitter_db=0.0))
        s = render_pair(3, cfg)
        m = _inside(s)
        means.append((float(s.input[m].mean()), float(s.target[m].mean())))
    d_in, d_tg = means[1][0] - means[0][0], means[1][1] - means[0][1]
    assert d_in > 0.1 and abs(d_tg - d_in) < 0.25 * d_in, means


def _local_shift(s, m) -> float:
    """Median |local mean (Gaussian sigma 6 px) of target - of input| in grey levels."""
    import cv2

    g = lambda a: cv2.GaussianBlur(a, (0, 0), 6)  # noqa: E731
    return float(np.median(np.abs(g(s.target) - g(s.input))[m]) * 255)


def test_domain_pairs_share_the_local_mean_and_vary_the_scanner():
    shifts, levels, scales = [], [], []
    for seed in range(6):
        s = render_domain_pair(seed, SimConfig(out_hw=HW), dom=PLAIN)
        m = _inside(s)
        shifts.append(_local_shift(s, m))
        if seed == 0:  # the original pairs mixed a tone map into the enhancement: tens of grey levels
            assert _local_shift(render_pair(seed, SimConfig(out_hw=HW)), m) > 20
        levels.append(float(s.input[m].mean()))
        scales.append(scanner(np.random.default_rng(np.random.SeedSequence([seed, 7])), SimConfig(out_hw=HW)).psf_scale)
        assert np.abs(s.target - s.input)[m].mean() > 0.02  # the detail still differs
    assert max(shifts) < 1.5, shifts  # grey levels: what is left to learn is never brightness
    assert max(levels) - min(levels) > 0.08, levels  # gain / dynamic range drawn per scanner
    assert max(scales) / min(scales) > 1.9, scales  # speckle grain drawn per scanner


def test_burned_in_marks_are_identical_and_jpeg_only_in_the_input():
    dom = DomainConfig(text_prob=1.0, jpeg_prob=1.0, chamber_prob=1.0)
    s = render_domain_pair(2, SimConfig(out_hw=HW), dom=dom)
    outside = ~s.sector
    assert s.target[outside].max() > 0.5  # text in the black surround ...
    np.testing.assert_array_less(np.abs(s.input[outside] - s.target[outside]).mean(), 0.02)  # ... in both
    assert s.input.shape == s.target.shape == HW
    sr = render_domain_pair(2, SimConfig(out_hw=HW), factor=2, dom=dom)
    assert sr.input.shape == (HW[0] // 2, HW[1] // 2) and sr.target.shape == HW


def test_students_residual_cannot_move_the_local_mean():
    """A constant residual (only the tail's bias) is a pure brightness change: removed entirely."""
    for scale, down in ((1, 4), (2, 2)):
        s = StudentGenerator(StudentConfig(width=8, n_blocks=1, down=down, scale=scale, lowpass=7)).eval()
        with torch.no_grad():
            s.tail.weight.zero_()
            s.tail.bias.fill_(0.2)
            x = 0.2 + 0.6 * torch.rand(1, 1, 32, 48)
            y = s(x)
        base = x if scale == 1 else torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear",
                                                                    align_corners=False)
        torch.testing.assert_close(y, base, atol=1e-5, rtol=0)


def test_teacher_resize_conv_and_structure_preserving_output():
    t = ResnetGenerator(TeacherConfig(ngf=8, n_blocks=1, feature_blocks=(0,), upsample="resize", lowpass=7)).eval()
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in t.modules())
    with torch.no_grad():
        t.up[-2].weight.zero_()
        t.up[-2].bias.fill_(0.3)  # tanh(0.3): a constant residual
        x = 0.2 + 0.6 * torch.rand(1, 1, 32, 32)
        torch.testing.assert_close(t(x), x, atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        TeacherConfig(upsample="deconv")


def test_icnr_starts_without_a_subpixel_grid():
    s = StudentGenerator(StudentConfig(width=8, n_blocks=1, down=4))
    icnr_(s.tail, 4)
    with torch.no_grad():
        r = s.shuffle(s.tail(torch.rand(1, 8, 6, 6)))  # (1, 1, 24, 24): every 4x4 block constant
    blocks = r.reshape(6, 4, 6, 4).permute(0, 2, 1, 3).reshape(36, 16)
    assert float((blocks.max(1).values - blocks.min(1).values).max()) < 1e-6


def test_student_config_lowpass_validation():
    assert StudentConfig.from_dict({"lowpass": 7}).lowpass == 7
    assert StudentConfig.from_dict({"width": 8}).lowpass == 0  # older manifests
    for bad in (4, -1, True):
        with pytest.raises(ModelError):
            StudentConfig.from_dict({"lowpass": bad})


def test_us_tasks_are_structure_preserving():
    for name in ("us-enhance", "us-sr2x"):
        t = get_task(name)
        assert t.student.lowpass == t.teacher.lowpass == 7 and t.teacher.upsample == "resize"
    assert get_task("intraop-enhance").student.lowpass == 0


def test_int8_leaves_the_lowpass_in_float(tmp_path):
    """The fixed low-pass (AveragePool) has no weights: Q/DQ only around the convs."""
    s = StudentGenerator(StudentConfig(width=8, n_blocks=1, lowpass=7)).eval()
    fp32 = export_onnx(s, tmp_path / "s.onnx", 1)
    frames = np.random.default_rng(0).random((2, 1, 32, 32), np.float32)
    q = quantize_int8(fp32, tmp_path / "q.onnx", frames,
                      QuantRecipe(Precision.INT8_TRT, op_types=("Conv",)))
    g = onnx.load(str(q)).graph
    producers = {o: n.op_type for n in g.node for o in n.output}
    pools = [n for n in g.node if n.op_type == "AveragePool"]
    assert len(pools) == 2
    assert all(producers.get(n.input[0]) != "DequantizeLinear" for n in pools)
