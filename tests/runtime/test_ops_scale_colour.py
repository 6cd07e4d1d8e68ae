"""Super-resolution (scale 2) and RGB bundles in the runtime: pre/post round trips, passthrough
size, and the streaming loop with a real (tiny) upsampling ONNX model. No torch."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest, make_frames
from onnx import TensorProto, helper, numpy_helper

from ganrt.runtime.frames import Frame, FrameResult, Outcome
from ganrt.runtime.model.manifest import FORMAT, MANIFEST_NAME, Manifest, sha256_file
from ganrt.runtime.model.ops import BadOutput, Enhancer, Postprocessor, Preprocessor
from ganrt.runtime.records.record import Record
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import PolicyConfig
from ganrt.runtime.sinks.files import PngSink, SideBySideSink, SinkBase, VideoSink


def up2(x: np.ndarray) -> np.ndarray:
    """What a perfect 'nearest' 2x model returns (NCHW)."""
    return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)


def nearest2(img: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)


def sr_manifest(channels: int = 1, size_multiple: int = 4, color_order: str | None = None) -> Manifest:
    return replace(fake_manifest(channels, size_multiple=size_multiple, color_order=color_order), scale=2)


def roundtrip(manifest: Manifest, pixels: np.ndarray, fn=up2, bits: int = 16):
    pre, post = Preprocessor.from_manifest(manifest, bits=bits), Postprocessor.from_manifest(manifest, bits=bits)
    x, undo = pre(pixels)
    return x, post(fn(x), undo)


@pytest.mark.parametrize("hw", [(37, 50), (2, 3), (64, 64)])
def test_scale_two_pads_at_input_and_crops_at_output(hw):
    img = make_frames(1, hw)[0]
    x, out = roundtrip(sr_manifest(1, size_multiple=4), img)
    assert x.shape == (1, 1, -(-hw[0] // 4) * 4, -(-hw[1] // 4) * 4)
    assert out.shape == (2 * hw[0], 2 * hw[1]) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, nearest2(img))  # padding removed at output scale, nothing shifted


def test_scale_two_uint16_frames():
    img = (make_frames(1, (9, 11), dtype=np.uint16)[0] >> 4).astype(np.uint16)  # 12-bit data
    _, out = roundtrip(sr_manifest(1), img, bits=12)
    np.testing.assert_array_equal(out, nearest2(cv2.convertScaleAbs(img, alpha=255.0 / 4095)))


def test_rgb_sr_model_gets_rgb_planes_and_returns_bgr():
    img = make_frames(1, (13, 10), channels=3)[0]  # BGR, as OpenCV sources deliver
    m = sr_manifest(3, color_order="rgb")
    x, out = roundtrip(m, img)
    np.testing.assert_allclose(x[0, 0, :13, :10] * 255, img[..., 2], atol=1e-3)  # plane 0 is red
    np.testing.assert_array_equal(out, nearest2(img))

    def no_red(t):
        t = up2(t)
        t[:, 0] = 0.0
        return t

    _, out = roundtrip(m, img, fn=no_red)
    assert out[..., 2].max() == 0  # red is the last BGR channel
    np.testing.assert_array_equal(out[..., :2], nearest2(img)[..., :2])


def test_bgr_model_keeps_opencv_order():
    img = make_frames(1, (8, 8), channels=3)[0]
    x, out = roundtrip(sr_manifest(3, color_order="bgr"), img)
    np.testing.assert_allclose(x[0, 0, :8, :8] * 255, img[..., 0], atol=1e-3)
    np.testing.assert_array_equal(out, nearest2(img))


def test_colour_frame_through_a_gray_sr_model_keeps_its_chroma():
    img = make_frames(1, (12, 16), channels=3)[0]
    _, out = roundtrip(sr_manifest(1), img)
    assert out.shape == (24, 32, 3)
    y = lambda a: cv2.cvtColor(a, cv2.COLOR_BGR2YCrCb)[..., 0].astype(int)  # noqa: E731
    # the model's luma (out-of-gamut chroma on random pixels clips a few values in the merge)
    assert np.abs(y(out) - nearest2(y(img))).mean() < 2.0
    flat = np.zeros((12, 16, 3), np.uint8)
    flat[:] = (40, 90, 200)  # one colour: its chroma must survive the resize and merge
    _, out = roundtrip(sr_manifest(1), flat)
    assert np.abs(out.astype(int) - nearest2(flat)).max() <= 3


def test_a_scale_two_model_that_returns_the_input_size_is_refused():
    m = sr_manifest(1)
    pre, post = Preprocessor.from_manifest(m), Postprocessor.from_manifest(m)
    x, undo = pre(make_frames(1, (16, 16))[0])
    with pytest.raises(BadOutput, match="shape"):
        post(x, undo)


def test_passthrough_matches_the_enhanced_size():
    clock = ManualClock()
    img = make_frames(1, (10, 14), channels=3)[0]
    with FakeRunner(clock=clock, fn=up2) as runner:
        enh = Enhancer(runner, sr_manifest(3, color_order="rgb"), clock=clock)
        raw = enh.passthrough(Frame(0, 0, img))
        assert raw.shape == (20, 28, 3)
        np.testing.assert_array_equal(raw, cv2.resize(img, (28, 20), interpolation=cv2.INTER_LINEAR))  # plain enlargement
        assert enh.enhance(Frame(1, 0, img)).shape == raw.shape
    with FakeRunner(clock=clock) as runner:
        same = Enhancer(runner, fake_manifest(1), clock=clock).passthrough(Frame(0, 0, img[..., 0]))
        assert same.shape == (10, 14)


class Keep(SinkBase):
    def __init__(self):
        self.seen = []

    def write(self, frame, result):
        self.seen.append((frame.index, result.outcome, result.pixels.shape))


def test_stream_with_fake_sr_runner_every_shown_frame_is_twice_the_size():
    clock = ManualClock()
    keep = Keep()
    frames = make_frames(6, (20, 30), channels=3)
    with FakeRunner(clock=clock, fn=up2, fail_on=(2,), latency_ms=1.0) as runner:
        enh = Enhancer(runner, sr_manifest(3, color_order="rgb"), clock=clock)
        report = run(FakeSource(frames, clock=clock), enh, [keep],
                     PipelineConfig(policy=PolicyConfig(budget_ms=50), warmup=0), clock=clock,
                     record=Record.for_enhancer(enh))
    assert report.enhanced == 5 and report.passthrough_total == 1
    assert [o for _, o, _ in keep.seen].count(Outcome.PASSTHROUGH) == 1
    assert {s for _, _, s in keep.seen} == {(40, 60, 3)}


def resize2_model(channels: int = 1) -> onnx.ModelProto:
    """A 2x nearest-neighbour upsampler with dynamic H/W: the smallest super-resolution 'model'."""
    nodes = [helper.make_node("Resize", ["input", "", "scales"], ["output"], mode="nearest")]
    g = helper.make_graph(
        nodes, "up2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, channels, "H2", "W2"])],
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def sr_bundle(root: Path, channels: int = 1) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    f = root / "up2.onnx"
    onnx.save(resize2_model(channels), str(f))
    spec = {"channels": channels, "dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0],
            "color_order": "gray" if channels == 1 else "rgb"}
    (root / MANIFEST_NAME).write_text(json.dumps({
        "format": FORMAT, "task": "us-sr2x",
        "io": {"input": {"name": "input", **spec}, "output": {"name": "output", **spec}, "size_multiple": 2,
               "scale": 2},
        "artifacts": {"fp32": {"file": f.name, "precision": "fp32", "sha256": sha256_file(f)}},
    }))
    return root


@pytest.mark.parametrize("channels", [1, 3])
def test_real_sr_onnx_model_through_the_streaming_loop(tmp_path, channels):
    from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner

    manifest = Manifest.load(sr_bundle(tmp_path / "bundle", channels))
    assert manifest.scale == 2
    frames = make_frames(5, (23, 31), channels=channels)  # odd: padded to 24x32, cropped to 46x62
    art = manifest.artifact("fp32")
    with OnnxRuntimeRunner(art) as runner:
        enh = Enhancer(runner, manifest, artifact=art)
        sinks = [PngSink(tmp_path / "png"), VideoSink(tmp_path / "out.avi"),
                 SideBySideSink(tmp_path / "sbs.avi")]
        report = run(FakeSource(frames), enh, sinks, PipelineConfig.with_budget(10_000.0, warmup=0),
                     record=Record.for_enhancer(enh))
    assert report.enhanced == 5, report.format_table()
    for i, f in enumerate(frames):
        out = cv2.imread(str(tmp_path / "png" / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(out, nearest2(f))  # exact: the colour order round-trips too
    for name in ("out.avi", "sbs.avi"):
        cap = cv2.VideoCapture(str(tmp_path / name))
        ok, first = cap.read()
        cap.release()
        assert ok, name
        if name == "out.avi":
            assert first.shape[:2] == (46, 62)


def test_side_by_side_keeps_the_super_resolution_and_enlarges_the_input_half(tmp_path):
    class Keep:  # stands in for the video writer: keeps the composed frame
        def write(self, bgr):
            self.bgr = bgr

        def close(self):
            pass

    img = make_frames(1, (6, 10))[0]
    enhanced = make_frames(1, (12, 20), seed=1)[0]  # what a 2x model returned
    sink = SideBySideSink(tmp_path / "sbs.avi", overlay=False)
    sink._out = Keep()
    sink.write(Frame(0, 0, img), FrameResult(0, Outcome.ENHANCED, pixels=enhanced))
    out = sink._out.bgr
    assert out.shape == (12, 40, 3)  # output at the model's resolution, not shrunk to the input's
    np.testing.assert_array_equal(out[:, 20:, 0], enhanced)  # every enhanced pixel kept
    np.testing.assert_array_equal(out[:, :20, 0], nearest2(img))  # input pixels shown big, not smoothed
