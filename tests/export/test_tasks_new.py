"""The us-sr2x and intraop-enhance tasks: data generators, architectures, smoke exports, runtime."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ganrt.export.archs import (  # noqa: E402
    PatchDiscriminator,
    ResnetGenerator,
    StudentConfig,
    StudentGenerator,
    TeacherConfig,
    count_macs,
)
from ganrt.export.checkpoint import load_weights  # noqa: E402
from ganrt.export.data import endoscopy  # noqa: E402
from ganrt.export.data.pairs import PairBank  # noqa: E402
from ganrt.export.data.simulator import SimConfig, gcnr, render_pair  # noqa: E402
from ganrt.export.data.us_sr import downsample, render_sr_pair  # noqa: E402
from ganrt.export.gate import lint_qdq_for_tensorrt  # noqa: E402
from ganrt.export.onnx_export import psnr  # noqa: E402
from ganrt.export.pipeline import ExportConfig, run_export, smoke_config  # noqa: E402
from ganrt.export.tasks import TASKS, get_task  # noqa: E402
from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from ganrt.runtime.errors import ConfigError  # noqa: E402
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))  # the runtime tests' fakes
from fakes import FakeSource  # noqa: E402

NEW = ("us-sr2x", "intraop-enhance")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# --- endoscopy generator ---------------------------------------------------------------------------

def test_endoscopy_is_deterministic_by_seed():
    a, b, c = endoscopy.render_pair(3), endoscopy.render_pair(3), endoscopy.render_pair(4)
    for f in ("input", "target", "sector", "lesion", "background", "homogeneous"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.target, c.target) and not np.array_equal(a.input, c.input)


@pytest.mark.parametrize("hw", [(256, 256), (96, 128)])
def test_endoscopy_shapes_masks_and_scope(hw):
    for seed in range(3):
        s = endoscopy.render_pair(seed, endoscopy.EndoConfig(out_hw=hw))
        assert s.input.shape == s.target.shape == (*hw, 3)
        assert s.input.dtype == s.target.dtype == np.float32
        for img in (s.input, s.target):
            assert img.min() >= 0.0 and img.max() <= 1.0
            np.testing.assert_allclose(img * 255, np.round(img * 255), atol=1e-3)  # 8-bit levels, as a camera gives
        for m in ("sector", "lesion", "background", "homogeneous"):
            mask = getattr(s, m)
            assert mask.shape == hw and mask.dtype == bool and mask.sum() > 20, (m, seed)
            assert not (mask & ~s.sector).any()
        assert not (s.lesion & s.background).any() and not (s.lesion & s.homogeneous).any()
        outside = ~cv2.dilate(s.sector.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert outside.any() and s.target[outside].max() == 0.0  # black surround
        assert s.input[outside].mean() < 0.01  # blanked too (JPEG may ring at the rim)


def test_endoscopy_looks_like_mucosa_with_highlights():
    for seed in range(4):
        s = endoscopy.render_pair(seed)
        r, g, b = (s.target[..., k][s.sector].mean() for k in range(3))
        assert r > g > b, (seed, r, g, b)  # reddish / pink tissue
        assert s.target.max() >= 0.99  # specular highlights saturate
        assert s.vessels.max() > 0.5  # vessels drawn


def test_endoscopy_input_is_worse_but_correlated():
    p_in, corr, g_t, g_i, snr_t, snr_i = [], [], [], [], [], []
    for seed in range(6):
        s = endoscopy.render_pair(seed)
        yt, yi = endoscopy.luma(s.target), endoscopy.luma(s.input)
        p_in.append(psnr(s.input, s.target))
        corr.append(_corr(yi[s.sector], yt[s.sector]))
        g_t.append(gcnr(yt, s.lesion, s.background))
        g_i.append(gcnr(yi, s.lesion, s.background))
        # local noise: high-pass energy in the plain-mucosa disc
        hp = lambda y, s=s: (y - cv2.GaussianBlur(y, (0, 0), 2.0))[s.homogeneous].std()  # noqa: E731
        snr_t.append(hp(yt))
        snr_i.append(hp(yi))
    assert 12.0 < np.mean(p_in) < 24.0, p_in
    assert np.mean(corr) > 0.6 and min(corr) > 0.3, corr
    assert np.mean(g_i) < np.mean(g_t), (g_i, g_t)  # the polyp stands out less in the degraded frame
    assert np.mean(snr_i) > 1.5 * np.mean(snr_t), (snr_i, snr_t)  # sensor noise


def test_endoscopy_cine_pans_under_a_fixed_scope():
    frames = list(endoscopy.cine(5, 4, endoscopy.EndoConfig(out_hw=(96, 96)), fps=10.0, drift_px_s=20.0))
    assert len(frames) == 4
    for f in frames[1:]:
        np.testing.assert_array_equal(f.sector, frames[0].sector)  # the circle is part of the scope
    step = np.abs(frames[1].target - frames[0].target).mean()
    other = np.abs(endoscopy.render_pair(6, endoscopy.EndoConfig(out_hw=(96, 96))).target - frames[0].target).mean()
    assert 0 < step < 0.5 * other  # a small pan, not a new scene


# --- ultrasound super-resolution pairs ---------------------------------------------------------------

def test_sr_pairs_are_the_area_downsampled_point_of_care_frame():
    cfg = SimConfig(out_hw=(128, 128))
    full, sr = render_pair(2, cfg), render_sr_pair(2, cfg, 2)
    assert sr.input.shape == (64, 64) and sr.target.shape == (128, 128)
    np.testing.assert_array_equal(sr.target, full.target)
    np.testing.assert_allclose(sr.input, full.input.reshape(64, 2, 64, 2).mean((1, 3)), atol=1e-6)
    np.testing.assert_array_equal(sr.lesion, full.lesion)  # masks at target resolution


def test_sr_task_pairs_shapes_determinism_and_baseline():
    task = get_task("us-sr2x")
    ps = task.make_pairs(range(4), (128, 128))
    again = task.make_pairs(range(4), (128, 128))
    # OpenCV's threaded DFT may sum in a schedule-dependent order (see test_simulator): equal up to float32 rounding
    np.testing.assert_allclose(ps.inputs, again.inputs, rtol=0, atol=1e-5)
    assert ps.inputs.shape == (4, 64, 64) and ps.targets.shape == (4, 128, 128)
    for m in (ps.sector, ps.lesion, ps.background, ps.homogeneous):
        assert m.shape == (4, 128, 128) and m.dtype == bool
    # a large anechoic chamber (us_domain) may cover a scene's homogeneous disk; most scenes keep it
    assert ps.sector.all(axis=0).any() and ps.homogeneous.any(axis=(1, 2)).sum() >= 3
    assert ps.lesion.any() and ps.background.any()
    bicubic = np.stack([cv2.resize(x, (128, 128), interpolation=cv2.INTER_CUBIC) for x in ps.inputs])
    p = [psnr(np.clip(b, 0, 1), t) for b, t in zip(bicubic, ps.targets)]
    # resolution-only pairs: the input is the target reduced 2x, so bicubic recovers the anatomy (smoothed at
    # ~3 px) almost exactly but not the finest speckle, which is what is left to learn (26-35 dB here)
    sm = lambda a: cv2.GaussianBlur(a, (0, 0), 3.0)  # noqa: E731
    c = [_corr(sm(b)[s], sm(t)[s]) for b, t, s in zip(bicubic, ps.targets, ps.sector)]
    assert 20.0 < min(p) and max(p) < 40.0 and min(c) > 0.99, (p, c)
    with pytest.raises(ConfigError, match="multiple of 4"):
        task.make_pairs([0], (130, 128))
    with pytest.raises(ValueError, match="multiple"):
        downsample(np.zeros((5, 4), np.float32), 2)


# --- PairBank at two resolutions ----------------------------------------------------------------------

def _sr_bank(n=3, hw=(64, 48), seed=0) -> PairBank:
    rng = np.random.default_rng(seed)
    y = rng.random((n, *hw), dtype=np.float32)
    x = y.reshape(n, hw[0] // 2, 2, hw[1] // 2, 2).mean((2, 4))
    lesion = np.zeros((n, *hw), bool)
    lesion[:, 20:36, 10:26] = True
    ring = np.zeros_like(lesion)
    ring[:, 12:44, 4:32] = True
    ring &= ~lesion
    return PairBank(x, y, np.ones_like(lesion), lesion, ring)


def test_pair_bank_crops_the_same_place_at_both_resolutions():
    bank = _sr_bank()
    assert bank.scale == 2
    x, y = bank.batch(np.random.default_rng(1), 16, 8)
    assert x.shape == (16, 1, 8, 8) and y.shape == (16, 1, 16, 16)
    np.testing.assert_allclose(y.reshape(16, 1, 8, 2, 8, 2).mean((3, 5)), x, atol=1e-6)  # mirrors included
    lb = bank.lesion_batch(np.random.default_rng(2), 4, 12, min_px=16)
    assert lb is not None
    xl, yl, ml, mb = lb
    assert xl.shape == (4, 1, 12, 12) and yl.shape == ml.shape == mb.shape == (4, 1, 24, 24)
    assert (ml.sum((1, 2, 3)) >= 16).all() and (mb.sum((1, 2, 3)) >= 16).all()
    np.testing.assert_allclose(yl.reshape(4, 1, 12, 2, 12, 2).mean((3, 5)), xl, atol=1e-6)


def test_pair_bank_rejects_mismatched_sizes():
    y = np.zeros((2, 32, 32), np.float32)
    with pytest.raises(ValueError, match="integer scale"):
        PairBank(np.zeros((2, 15, 16), np.float32), y)
    with pytest.raises(ValueError, match="mask"):
        PairBank(np.zeros((2, 16, 16), np.float32), y, np.ones((2, 16, 16), bool))
    rgb = PairBank(np.zeros((2, 16, 16, 3), np.float32), np.zeros((2, 16, 16, 3), np.float32))
    x, t = rgb.batch(np.random.default_rng(0), 2, 8)
    assert x.shape == t.shape == (2, 3, 8, 8)


# --- architectures ------------------------------------------------------------------------------------

def test_sr_student_is_a_learned_residual_over_bilinear():
    s = StudentGenerator(StudentConfig(width=8, n_blocks=1, down=2, scale=2)).eval()
    with torch.no_grad():
        s.tail.weight.zero_()
        s.tail.bias.zero_()
        x = torch.rand(1, 1, 12, 20)
        y = s(x)
    assert y.shape == (1, 1, 24, 40)
    ref = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(y, ref.clamp(0, 1))


def test_rgb_and_sr_networks_shapes_and_features():
    for c, s in ((3, 1), (1, 2)):
        t = ResnetGenerator(TeacherConfig(channels=c, ngf=8, n_blocks=2, feature_blocks=(0, 1), scale=s)).eval()
        st = StudentGenerator(StudentConfig(channels=c, width=8, n_blocks=2, down=4 // s, scale=s)).eval()
        x = torch.rand(2, c, 32, 48)
        with torch.no_grad():
            yt, ft = t.forward_features(x)
            ys, fs = st.forward_features(x)
        assert yt.shape == ys.shape == (2, c, 32 * s, 48 * s)
        assert ft[0].shape[-2:] == (8, 12)
        assert fs[0].shape[-2:] == (8 * s, 12 * s)  # an SR student's body at 1/2: pooled in distillation
        d = PatchDiscriminator(c, ndf=8)
        assert d(x, yt).shape[0] == 2  # input upsampled to the output's size before pairing
    with pytest.raises(ValueError):
        TeacherConfig(scale=3)


def test_same_size_teacher_keeps_its_parameter_names():
    """Checkpoints of same-size teachers (us-enhance) must keep loading: the SR stage goes in
    before the output conv only when scale > 1."""
    keys = set(ResnetGenerator(TeacherConfig(ngf=8, n_blocks=1)).state_dict())
    assert {"up.0.weight", "up.3.weight", "up.7.weight", "up.7.bias"} <= keys and not any(
        k.startswith("up.10") for k in keys)
    sr = set(ResnetGenerator(TeacherConfig(ngf=8, n_blocks=1, scale=2)).state_dict())
    assert {"up.6.weight", "up.10.weight", "up.10.bias"} <= sr


# intraop-enhance runs its body at 1/2 resolution (RGB detail needs it, see export/tasks.py): 3.1 GMAC
@pytest.mark.parametrize("name,budget", [("us-sr2x", 2.0e9), ("intraop-enhance", 3.5e9)])
def test_default_students_fit_their_mac_budget(name, budget):
    task = get_task(name)
    s = StudentGenerator(task.student)
    macs = count_macs(s, (512 // task.scale, 512 // task.scale), task.channels)
    assert 0.5e9 < macs <= budget, macs
    assert task.student.channels == task.teacher.channels == task.channels
    assert task.student.scale == task.teacher.scale == task.scale


def test_student_config_without_scale_is_the_committed_bundle():
    """Manifests written before super-resolution have no ``scale`` in weights.config: it means 1."""
    man = Manifest.load(bundled_model_dir("us-enhance"))
    raw = {k: v for k, v in man.raw["weights"]["config"].items() if k != "scale"}
    cfg = StudentConfig.from_dict(raw)
    assert cfg.scale == 1
    load_weights(StudentGenerator(cfg), man.root / man.raw["weights"]["file"])  # strict: same parameters
    assert StudentConfig.from_dict({**raw, "scale": 2}).scale == 2


def test_task_budgets_and_resolution():
    us = ExportConfig().resolved()
    assert us.teacher_train == get_task("us-enhance").teacher_train  # us-enhance's budgets are the task's
    assert us.teacher_train.steps == 100 and us.distill.steps == 120 and us.finetune.steps == 40
    for name in NEW:
        cfg = ExportConfig(task=name).resolved()
        task = TASKS[name]
        assert cfg.student_arch == task.student and cfg.finetune == task.finetune
        assert cfg.teacher_train.patch * task.scale <= min(cfg.train_hw)
    smoke = smoke_config("us-enhance")
    assert smoke.student_arch == StudentConfig(width=16, n_blocks=2, lowpass=7)  # the task's formulation, narrowed
    sr = smoke_config("us-sr2x")
    assert sr.student_arch.scale == 2 and sr.teacher_arch.scale == 2 and sr.distill.patch == 32


def test_mismatched_architecture_is_refused_before_training(tmp_path):
    cfg = replace(smoke_config("us-sr2x"), student_arch=StudentConfig(width=8, n_blocks=1))
    with pytest.raises(ConfigError, match="scale 1; task us-sr2x needs 1, scale 2"):
        run_export(cfg, tmp_path / "b", tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "teacher_state.pt").exists()


# --- smoke exports ------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=NEW)
def exported(request, tmp_path_factory):
    name = request.param
    root = tmp_path_factory.mktemp(name)
    threads = torch.get_num_threads()
    try:  # tiny models: one thread is fastest and does not fight other work for the cores
        m = run_export(replace(smoke_config(name), threads=1), root / "bundle", root / "run", progress=False)
    finally:
        torch.set_num_threads(threads)
    return name, root / "bundle", root / "run", m


def test_smoke_bundle_contract(exported):
    name, out, run, m = exported
    task = get_task(name)
    man = Manifest.load(out)
    assert man.task == name and man.scale == task.scale
    assert man.input.channels == man.output.channels == task.channels
    assert man.input.color_order == task.color_order
    assert man.size_multiple == math.lcm(task.size_multiple, task.student.size_multiple)  # coarse: its pooling
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["weights"]["config"]["scale"] == task.scale
    assert raw["weights"]["config"]["channels"] == task.channels
    for prec in ("int8-trt", "int8-cpu", "fp16"):
        g = raw["metrics"]["gates"][prec]
        assert g["passed"] and g["psnr_vs_fp32"] >= 40 and g["task_drop_db"] <= 0.3, (prec, g)
    assert raw["metrics"]["onnx_parity_db"]["student"] >= 60
    assert lint_qdq_for_tensorrt(out / "student_int8_trt.onnx") == []
    q = raw["metrics"]["held_out"]
    assert set(q) >= {"input", "teacher", "student_fp32", "student_int8-cpu", "target"}
    assert q["target"]["psnr"] == float("inf") and np.isfinite(q["input"]["psnr"])
    card = (out / "MODEL_CARD.md").read_text()
    assert f"--task {name}" in card
    png = cv2.imread(str(run / "side_by_side.png"))
    hw = smoke_config(name).train_hw
    assert png.shape == (2 * hw[0], 4 * hw[1], 3)  # every tile at target size
    if task.scale == 2:
        assert raw["metrics"]["input_row"].startswith("bicubic x2")
        assert raw["cost"]["input_hw_for_512_output"] == [256, 256] and "super-resolution" in card
    else:
        assert "synthesised endoscopic" in card
    # the optional pretraining stage is off by default (tests/export/test_pretrain_stage.py runs it)
    assert "pretrain" not in raw["training"] and raw["training"]["config"]["pretrain"] is None
    assert not (run / "pretrain").exists()


def test_smoke_bundle_runs_in_the_runtime(exported):
    name, out, _, _ = exported
    task = get_task(name)
    man = Manifest.load(out)
    rng = np.random.default_rng(0)
    x = rng.random((1, task.channels, 40, 56), dtype=np.float32)  # a multiple of every task's size_multiple
    for prec in Precision:
        with OnnxRuntimeRunner(man.artifact_for(prec)) as r:
            y = r.infer({r.io.input_name: x})[r.io.output_name]
        assert y.shape == (1, task.channels, 40 * task.scale, 56 * task.scale), prec
        assert np.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


def test_int8_artifacts_leave_the_sr_upsample_in_float(exported):
    import onnx

    name, out, _, _ = exported
    for f in ("student_int8_trt.onnx", "student_int8_cpu.onnx"):
        g = onnx.load(str(out / f)).graph
        producers = {o: n.op_type for n in g.node for o in n.output}
        resize = [n for n in g.node if n.op_type == "Resize"]
        if get_task(name).scale == 1:  # a same-size student's residual is the input itself
            # the one Resize allowed: the coarse branch's upsample, on its own features
            assert len(resize) == (1 if get_task(name).student.coarse else 0), f
            assert all(n.input[0] != g.input[0].name for n in resize), f
            continue
        if get_task(name).student.base == "bicubic":  # the fixed conv (Bicubic2x) in place of a Resize
            assert resize == [], f
            nodes = {n.name: n for n in g.node}
            pad, conv, shuffle = nodes["/bicubic/Pad"], nodes["/bicubic/Conv"], nodes["/bicubic/DepthToSpace"]
            assert pad.input[0] == g.input[0].name, f  # fed by the float input
            assert all(producers.get(i) != "DequantizeLinear" for i in conv.input if i), f
            up_out = shuffle.output[0]
        else:
            assert len(resize) == 1 and resize[0].input[0] == g.input[0].name, f  # fed by the float input
            assert all(producers.get(i) != "DequantizeLinear" for i in resize[0].input if i)
            up_out = resize[0].output[0]
        consumers = [n.op_type for n in g.node if up_out in n.input]
        assert consumers == ["Add"], (f, consumers)  # straight into the float residual add, no Q/DQ


def test_torch_runner_matches_onnx_for_the_new_tasks(exported):
    from ganrt.runtime.backends.torch.runner import TorchRunner

    name, out, _, _ = exported
    task = get_task(name)
    man = Manifest.load(out)
    x = np.random.default_rng(1).random((1, task.channels, 32, 48), dtype=np.float32)
    with TorchRunner(man, Precision.FP32, device="cpu", cuda_graphs=False) as r:
        y = r.infer({r.io.input_name: x})[r.io.output_name]
    with OnnxRuntimeRunner(man.artifact_for(Precision.FP32)) as o:
        ref = o.infer({o.io.input_name: x})[o.io.output_name]
    assert y.shape == ref.shape == (1, task.channels, 32 * task.scale, 48 * task.scale)
    np.testing.assert_allclose(y, ref, atol=1e-4)


def test_streaming_runtime_runs_the_smoke_bundle(exported, tmp_path):
    """Through ganrt.runtime.serve.pipeline.run: BGR camera-like frames in, every shown frame (enhanced or
    raw) at the model's output size; the RGB model gets RGB planes."""
    from ganrt.runtime.model.ops import Enhancer, Preprocessor
    from ganrt.runtime.records.record import Record
    from ganrt.runtime.serve.pipeline import PipelineConfig, run
    from ganrt.runtime.sinks.files import SinkBase, VideoSink

    name, out, _, _ = exported
    task = get_task(name)
    man = Manifest.load(out)
    art = man.artifact_for(Precision.INT8_CPU)
    rng = np.random.default_rng(3)
    shape = (30, 42, 3) if task.channels == 3 else (30, 42)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(4)]
    frames[2] = frames[2][:1]  # too small for the model: shown raw

    class Keep(SinkBase):
        def __init__(self):
            self.seen = []

        def write(self, frame, result):
            self.seen.append((result.outcome.value, result.pixels.shape))

    keep = Keep()
    with OnnxRuntimeRunner(art) as runner:
        enh = Enhancer(runner, man, artifact=art)
        report = run(FakeSource(frames), enh, [keep, VideoSink(tmp_path / "out.avi")],
                     PipelineConfig.with_budget(10_000.0, warmup=0), record=Record.for_enhancer(enh))
        s = task.scale
        assert report.frames_in == 4 and report.enhanced == 3, report.format_table()
        assert [shp for _, shp in keep.seen] == [(30 * s, 42 * s, *shape[2:])] * 2 + [(1 * s, 42 * s, *shape[2:])] + \
            [(30 * s, 42 * s, *shape[2:])]
        if task.channels == 3:  # BGR frame -> RGB planes -> model -> back to BGR
            x, undo = Preprocessor.from_manifest(man)(frames[0])
            np.testing.assert_allclose(x[0, :, :30, :42].transpose(1, 2, 0) * 255, frames[0][..., ::-1], atol=1e-3)
            y = runner.infer({runner.io.input_name: x})[runner.io.output_name]
            got = enh.enhance(FakeSource([frames[0]]).read())
            ref = np.clip(y[0, :, :30, :42].transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8)[..., ::-1]
            np.testing.assert_array_equal(got, ref)
    cap = cv2.VideoCapture(str(tmp_path / "out.avi"))
    ok, first = cap.read()
    cap.release()
    assert ok and first.shape[:2] == (30 * task.scale, 42 * task.scale)


def test_simulate_writes_the_new_tasks_frames(tmp_path):
    import argparse

    from ganrt.export.cli import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers())
    for name, which, shape in (("us-sr2x", "input", (32, 32)), ("us-sr2x", "target", (64, 64)),
                               ("intraop-enhance", "input", (64, 64, 3)), ("intraop-enhance", "target", (64, 64, 3))):
        args = parser.parse_args(["simulate", "--task", name, "--which", which, "--out", str(tmp_path / name),
                                  "--frames", "2", "--size", "64", "--format", "png"])
        assert args.func(args) == 0
        pngs = sorted((tmp_path / name).glob(f"sim_{name}_{which}_*.png"))
        assert len(pngs) == 2
        img = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
        assert img.shape == shape and img.dtype == np.uint8
        if name == "intraop-enhance" and which == "target":
            inside = img[16:48, 16:48].reshape(-1, 3).mean(0)
            assert inside[2] > inside[0]  # written BGR: the red channel is last and strongest
    bad = parser.parse_args(["simulate", "--task", "intraop-enhance", "--out", str(tmp_path / "x"), "--frames", "1",
                             "--size", "64", "--format", "dcm"])
    with pytest.raises(ConfigError, match="gray frames only"):
        bad.func(bad)


def test_student_vs_teacher_bench_handles_colour_and_super_resolution(exported):
    from ganrt.benchmarks.student_vs_teacher import run, to_markdown

    name, out, run_dir, _ = exported
    r = run(out, run_dir / "teacher_fp32.onnx", frames=2, hw=64, rounds=1, threads=1)
    assert {"input", "target", "teacher_fp32", "student_fp32", "student_int8-cpu"} <= set(r["quality"])
    assert np.isfinite(r["quality"]["student_fp32"]["psnr"])
    assert (r.get("input_row") is not None) == (get_task(name).scale > 1)  # SR: the bicubic baseline
    assert "student_fp32" in r["latency_ms_512"] and "| teacher_fp32 |" in to_markdown(r)
