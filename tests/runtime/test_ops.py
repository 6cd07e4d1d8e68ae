"""Pre/post-processing, the deadline policy, the queue, the overlay and the record."""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest
from fakes import FakeRunner, ManualClock, fake_manifest, make_frames

from ganrt.runtime.errors import ConfigError
from ganrt.runtime.frames import Frame, FrameResult, Outcome, Reason
from ganrt.runtime.model.ops import (
    BadOutput,
    Enhancer,
    IncompatibleFrame,
    Postprocessor,
    Preprocessor,
    StageTimes,
    to_uint8,
)
from ganrt.runtime.records.record import Record
from ganrt.runtime.serve.handover import CaptureThread, LatestFrameQueue
from ganrt.runtime.serve.policy import DeadlinePolicy, PolicyConfig
from ganrt.runtime.serve.tiers import TierConfig
from ganrt.runtime.sinks.overlay import label


def _roundtrip(manifest, pixels, bits=16, fn=lambda x: x):
    pre, post = Preprocessor.from_manifest(manifest, bits=bits), Postprocessor.from_manifest(manifest, bits=bits)
    x, undo = pre(pixels)
    return x, post(fn(x), undo)


# --- pre/post ------------------------------------------------------------------------------------

@pytest.mark.parametrize("hw", [(333, 517), (2, 3), (64, 64), (5, 1000)])
def test_odd_sizes_pad_and_crop_back_exactly(hw):
    img = make_frames(1, hw)[0]
    x, out = _roundtrip(fake_manifest(1, size_multiple=8), img)
    assert x.shape == (1, 1, -(-hw[0] // 8) * 8, -(-hw[1] // 8) * 8) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert out.shape == hw and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


def test_uint16_scaled_by_bit_depth():
    img = np.array([[0, 4095], [2048, 65535]], np.uint16)
    x12, _ = _roundtrip(fake_manifest(1, size_multiple=1), np.minimum(img, 4095), bits=12)
    assert x12[0, 0, 0, 1] == pytest.approx(1.0) and x12[0, 0, 1, 0] == pytest.approx(2048 / 4095)
    x16, out = _roundtrip(fake_manifest(1, size_multiple=1), img)
    assert x16[0, 0, 1, 1] == pytest.approx(1.0)
    np.testing.assert_array_equal(out, to_uint8(img))
    assert out.dtype == np.uint8 and out[1, 1] == 255


def test_bgr_into_gray_model_keeps_colour_and_enhances_luma():
    img = make_frames(1, (31, 45), channels=3)[0]
    x, out = _roundtrip(fake_manifest(1), img)
    assert x.shape == (1, 1, 32, 48)
    np.testing.assert_allclose(x[0, 0, :31, :45] * 255, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), atol=0.51)
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img).max() <= 3  # YCrCb round trip of an identity model
    _, brighter = _roundtrip(fake_manifest(1), img, fn=lambda t: np.clip(t + 0.2, 0, 1))
    y = lambda a: cv2.cvtColor(a, cv2.COLOR_BGR2YCrCb)[..., 0].astype(int)  # noqa: E731
    assert (y(brighter) - y(img)).mean() > 40  # the luminance moved, colour kept


def test_gray_into_rgb_model_and_back_to_gray():
    img = make_frames(1, (16, 20))[0]
    x, out = _roundtrip(fake_manifest(3, color_order="rgb"), img)
    assert x.shape == (1, 3, 16, 20)
    assert out.shape == img.shape
    np.testing.assert_array_equal(out, img)


def test_rgb_model_swaps_channels():
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = 200  # blue
    x, out = _roundtrip(fake_manifest(3, color_order="rgb"), img)
    assert x[0, 2].max() == pytest.approx(200 / 255) and x[0, 0].max() == 0  # blue is the last plane in RGB
    np.testing.assert_array_equal(out, img)


def test_value_range_minus_one_to_one():
    img = np.array([[0, 255], [128, 64]], np.uint8)
    x, out = _roundtrip(fake_manifest(1, size_multiple=1, value_range=(-1.0, 1.0)), img)
    assert x.min() == pytest.approx(-1.0) and x.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(out, img)


def test_scale_two_model_and_colour_frames():
    m = fake_manifest(1, size_multiple=1)
    pre, post = Preprocessor.from_manifest(m), Postprocessor(m.output, scale=2)
    img = make_frames(1, (9, 7), channels=3)[0]
    x, undo = pre(img)
    out = post(np.repeat(np.repeat(x, 2, axis=2), 2, axis=3), undo)
    assert out.shape == (18, 14, 3) and out.dtype == np.uint8


def test_bad_outputs_are_refused():
    m = fake_manifest(1, size_multiple=1)
    pre, post = Preprocessor.from_manifest(m), Postprocessor.from_manifest(m)
    x, undo = pre(make_frames(1, (10, 10))[0])
    bad = x.copy()
    bad[0, 0, 3, 3] = np.inf
    with pytest.raises(BadOutput, match="non-finite"):
        post(bad, undo)
    with pytest.raises(BadOutput, match="outside"):
        post(x + 0.5, undo)
    with pytest.raises(BadOutput, match="shape"):
        post(x[:, :, :5], undo)
    slightly = np.clip(x, 0, 1) * 1.04  # within the 5% margin: clamped, shown
    assert post(slightly, undo).dtype == np.uint8
    few = x.copy()
    few[0, 0, 0, :4] = 7.0  # 4% of pixels far out: tolerated and clamped
    assert post(few, undo)[0, :4].tolist() == [255] * 4


def test_incompatible_frames():
    pre = Preprocessor(fake_manifest(1).input, 4, max_hw=(100, 100))
    for bad in (np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8), np.float32), np.zeros((1, 8), np.uint8),
                np.zeros((101, 50), np.uint8), np.zeros((8, 8, 2), np.uint8)):
        with pytest.raises(IncompatibleFrame):
            pre.check(bad)
    pre.check(np.zeros((8, 8, 1), np.uint8))  # HxWx1 is gray


def test_enhancer_times_stages_and_casts_fp16():
    clock = ManualClock()
    runner = FakeRunner(latency_ms=7.0, clock=clock, input_dtype=np.float16)
    with runner:
        enh = Enhancer(runner, fake_manifest(1), clock=clock)
        times = StageTimes()
        img = make_frames(1, (13, 17))[0]
        out = enh.enhance(Frame(0, clock.now_ns(), img), times)
    assert times.infer_ms == pytest.approx(7.0) and times.pre_ms == 0.0 and times.post_ms == 0.0
    assert out.shape == img.shape and np.abs(out.astype(int) - img).max() <= 1  # fp16 rounding


def test_enhancer_needs_an_active_runner():
    with pytest.raises(ConfigError, match="activated"):
        Enhancer(FakeRunner(), fake_manifest(1))


# --- policy --------------------------------------------------------------------------------------

MS = 1_000_000


def test_policy_predicts_misses_and_probes():
    p = DeadlinePolicy(PolicyConfig(budget_ms=30, probe_every=5, tiers=TierConfig(enabled=False)))
    assert p.decide(0, 0) is None  # nothing learned: try
    p.succeeded(50.0)
    decisions = [p.decide(0, 0) for _ in range(10)]
    assert decisions.count(None) == 2 and decisions[4] is None and decisions[9] is None
    assert all(d is Reason.PREDICTED_MISS for i, d in enumerate(decisions) if i not in (4, 9))
    # a fast probe means the machine calmed down: history resets, enhancement resumes
    for _ in range(4):
        assert p.decide(0, 0) is Reason.PREDICTED_MISS
    assert p.decide(0, 0) is None
    p.succeeded(10.0)
    assert p.decide(0, 0) is None and p.predicted_ms() == pytest.approx(10.0)


def test_policy_counts_time_already_spent_and_output_time():
    p = DeadlinePolicy(PolicyConfig(budget_ms=30, tiers=TierConfig(enabled=False)))
    p.succeeded(10.0)
    assert p.decide(0, 15 * MS) is None
    assert p.decide(0, 25 * MS) is Reason.PREDICTED_MISS  # waited 25 ms already
    p.observe_output(8.0)
    # 10 ms of model + 8 ms of output fit from 12 ms on, but the wait keeps RAW_MARGIN_MS (1 ms) more to show
    # the raw frame on time: a call started after 11 ms would end in a timeout, so it is a predicted miss
    assert p.decide(0, 11 * MS) is None and p.decide(0, 12 * MS) is Reason.PREDICTED_MISS
    assert p.is_late(0, 31 * MS) and not p.is_late(0, 30 * MS)


def test_policy_backoff_grows_caps_and_resets():
    # without tiers a timeout is a failure like the others (with tiers: test_tiers)
    p = DeadlinePolicy(PolicyConfig(budget_ms=30, fail_threshold=3, backoff_frames=2, backoff_max_frames=5,
                                    tiers=TierConfig(enabled=False)))

    def skipped() -> int:
        n = 0
        while p.decide(0, 0) is Reason.BACKOFF:
            n += 1
        return n

    for _ in range(2):
        p.failed(Reason.BACKEND_ERROR)
        assert p.decide(0, 0) is None  # below the threshold: keep trying
    p.failed(Reason.BACKEND_ERROR)
    assert skipped() == 2
    p.failed(Reason.BACKEND_ERROR)  # (a TIMEOUT is learned as slowness, not counted: see below)
    assert skipped() == 4
    p.failed(Reason.BAD_OUTPUT)
    assert skipped() == 5  # capped
    p.succeeded(1.0)
    p.failed(Reason.BACKEND_ERROR)
    assert p.decide(0, 0) is None  # success reset the failure count
    assert p.decide(0, 0, busy=True) is Reason.BACKOFF


def test_a_deadline_timeout_is_not_counted_as_a_failure():
    """A call still computing at its frame's deadline is a slow call on a busy machine, not a broken
    backend: never backed off for 8..256 frames (the single-tier policy; with tiers the ladder steps
    down, tests/runtime/test_tiers.py). A machine that stays slow shows it in the calls that return."""
    p = DeadlinePolicy(PolicyConfig(budget_ms=30, fail_threshold=3, backoff_frames=8, probe_every=4,
                                    tiers=TierConfig(enabled=False)))
    for _ in range(5):
        p.failed(Reason.TIMEOUT, 28.0)
    assert [p.decide(0, 5 * MS) for _ in range(8)] == [None] * 8 and p.backoffs == 0
    p.succeeded(28.0)  # a slow call that returned: now the predictor knows
    assert p.decide(0, 5 * MS) is Reason.PREDICTED_MISS


def test_policy_waits_for_inference_until_the_deadline_only():
    from ganrt.runtime.serve.policy import MIN_RAW_SAMPLES, RAW_MARGIN_MS

    margin = RAW_MARGIN_MS / 1e3
    assert PolicyConfig(budget_ms=33).timeout_s == pytest.approx(0.033)
    assert PolicyConfig(budget_ms=100, timeout_ms=40).timeout_s == pytest.approx(0.04)
    assert PolicyConfig(budget_ms=10, timeout_ms=40).timeout_s == pytest.approx(0.01)  # never past the budget
    p = DeadlinePolicy(PolicyConfig(budget_ms=33))
    assert p.wait_s(0, 0) == pytest.approx(0.033 - margin)
    assert p.wait_s(0, 20_000_000) == pytest.approx(0.013 - margin)  # what is left of this frame's budget
    assert p.wait_s(0, 40_000_000) == 0.0
    p.observe_output(2.0)  # the raw frame must still go out by the deadline: its output time is kept free
    p.observe_wake(1.0)  # and a timed wait here wakes up about 1 ms late
    assert p.wait_s(0, 0) == pytest.approx(0.030 - margin)
    p.observe_raw(30.0)  # one raw frame that paid a one-off cost: not yet a bound
    assert p.wait_s(0, 0) == pytest.approx(0.030 - margin)
    for _ in range(MIN_RAW_SAMPLES - 1):
        p.observe_raw(3.0)  # once enough raw frames are seen, their whole cost replaces the sinks' share
    assert p.wait_s(0, 0) == pytest.approx(0.033 - np.percentile([30.0] + [3.0] * 4, 95) / 1e3 - 0.001 - margin)
    for _ in range(40):
        p.observe_raw(3.0)
    assert p.wait_s(0, 0) == pytest.approx(0.029 - margin)
    for bad in (0, -1, float("inf"), float("nan"), 1e300):
        with pytest.raises(ConfigError):
            PolicyConfig(budget_ms=bad)


# --- queue ---------------------------------------------------------------------------------------

def _frame(i: int) -> Frame:
    return Frame(i, i, np.zeros((2, 2), np.uint8))


def test_latest_frame_queue_newest_wins_and_reports_drops():
    q = LatestFrameQueue(depth=1)
    for i in range(3):
        assert q.put(_frame(i))
    assert [f.index for f in q.dropped] == [0, 1]
    assert q.get().index == 2
    q.put(_frame(3))
    q.end()
    assert [f.index for f in q] == [3]
    assert not q.put(_frame(4)) and q.get() is None


def test_dropped_frames_reach_the_record():
    rec = Record()
    q = LatestFrameQueue(depth=2, on_drop=rec.add_dropped)
    for i in range(5):
        q.put(_frame(i))
    q.end()
    for f in q:
        rec.add(f, FrameResult(f.index, Outcome.PASSTHROUGH, t_output_ns=f.t_capture_ns))
    rec.close()
    assert [(r.index, r.outcome, r.reason) for r in rec.rows] == [
        (0, Outcome.DROPPED, Reason.OVERTAKEN), (1, Outcome.DROPPED, Reason.OVERTAKEN),
        (2, Outcome.DROPPED, Reason.OVERTAKEN), (3, Outcome.PASSTHROUGH, Reason.NONE),
        (4, Outcome.PASSTHROUGH, Reason.NONE)]


def test_blocking_queue_never_drops():
    q = LatestFrameQueue(depth=1, drop=False)

    def produce():
        for i in range(50):
            q.put(_frame(i))
        q.end()

    t = threading.Thread(target=produce)
    t.start()
    assert [f.index for f in q] == list(range(50))
    t.join()
    assert q.dropped == []


def test_capture_thread_survives_a_failing_source():
    class Broken:
        source_id = "broken"

        def __init__(self):
            self.i = 0

        def read(self):
            self.i += 1
            if self.i == 3:
                raise OSError("device unplugged")
            return _frame(self.i - 1)

    q = LatestFrameQueue(depth=8, drop=False)
    cap = CaptureThread(Broken(), q)
    cap.start()
    assert [f.index for f in q] == [0, 1]
    cap.join()
    assert cap.errors == 1


# --- overlay -------------------------------------------------------------------------------------

def test_overlay_labels_a_copy_gray_and_bgr():
    for img in (np.full((120, 160), 90, np.uint8), np.full((120, 160, 3), 90, np.uint8)):
        before = img.copy()
        enhanced = label(img, FrameResult(0, Outcome.ENHANCED))
        raw = label(img, FrameResult(0, Outcome.PASSTHROUGH, Reason.PREDICTED_MISS))
        np.testing.assert_array_equal(img, before)
        assert enhanced.shape == raw.shape == (120, 160, 3)
        assert not np.array_equal(enhanced, raw)
        # the raw label is loud (amber: red channel well above blue), the enhanced one is not
        assert (raw[..., 2].astype(int) - raw[..., 0]).max() > 100
        assert (enhanced[..., 2].astype(int) - enhanced[..., 0]).max() < 30


# --- record --------------------------------------------------------------------------------------

def test_record_sorted_once_each_jsonl_and_csv(tmp_path):
    for fmt in ("jsonl", "csv"):
        path = tmp_path / f"rec.{fmt}"
        rec = Record(path, fmt=fmt, model_sha="abc", backend="fake", precision="fp32", artifact="m.onnx")
        for i in (2, 0, 1):
            rec.add(_frame(i), FrameResult(i, Outcome.ENHANCED, pre_ms=1.0, t_output_ns=i + 5_000_000))
        with pytest.raises(ValueError, match="twice"):
            rec.add(_frame(1), FrameResult(1, Outcome.ENHANCED))
        assert path.with_name(path.name + ".partial").exists()
        rec.close()
        assert not path.with_name(path.name + ".partial").exists()
        text = path.read_text().splitlines()
        if fmt == "jsonl":
            rows = [json.loads(t) for t in text]
            assert [r["index"] for r in rows] == [0, 1, 2]
            assert rows[0]["capture_to_output_ms"] == pytest.approx(5.0) and rows[0]["infer_ms"] is None
            assert rows[0]["model_sha"] == "abc" and rows[0]["outcome"] == "enhanced"
        else:
            assert text[0].startswith("index,t_capture_ns,outcome") and [t.split(",")[0] for t in text[1:]] == [
                "0", "1", "2"]
