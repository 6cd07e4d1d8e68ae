"""The streaming loop, pinned by the per-frame record (fakes + a manual clock; no timing asserts)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from bundles import make_bundle
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest, make_frames

from ganrt.runtime.errors import ConfigError
from ganrt.runtime.frames import Outcome, Reason
from ganrt.runtime.model.ops import Enhancer, to_uint8
from ganrt.runtime.records.record import Record
from ganrt.runtime.serve.clock import SYSTEM_CLOCK
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import PolicyConfig
from ganrt.runtime.serve.tiers import TierConfig
from ganrt.runtime.sinks import files as sinks_mod
from ganrt.runtime.sinks.files import DisplaySink, NullSink, PngSink, SideBySideSink, SinkBase, VideoSink

MS = 1_000_000
SINGLE = TierConfig(enabled=False)  # full resolution or raw: the single-tier probing these tests pin
E, P, D = Outcome.ENHANCED, Outcome.PASSTHROUGH, Outcome.DROPPED


class KeepSink(SinkBase):
    """Keeps what it was given (the pixels a viewer would see)."""

    def __init__(self):
        self.seen = []

    def write(self, frame, result):
        self.seen.append((frame.index, result.outcome, result.pixels.copy()))


def stream(frames=None, n=20, runner_kw=None, budget_ms=33.0, sinks=(), manifest=None, policy_kw=None,
           interval_ms=33.0, source_kw=None, record=None, warmup=0):
    clock = ManualClock()
    runner = FakeRunner(clock=clock, **(runner_kw or {}))
    src = FakeSource(frames, n=n, clock=clock, interval_ns=int(interval_ms * MS), **(source_kw or {}))
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=budget_ms, **(policy_kw or {})), warmup=warmup)
    try:
        with runner:
            enh = Enhancer(runner, manifest or fake_manifest(1), clock=clock)
            rec = record or Record.for_enhancer(enh)
            report = run(src, enh, list(sinks), cfg, clock=clock, record=rec)
    finally:
        runner.release.set()
    return report, rec, runner


def outcomes(rec):
    return [(r.outcome, r.reason) for r in rec.rows]


def check_complete(report, rec, n):
    assert [r.index for r in rec.rows] == list(range(n))  # every frame exactly once, in order
    assert report.frames_in == n == report.enhanced + report.passthrough_total + report.dropped_total
    assert report.frames_out == report.enhanced + report.passthrough_total


def test_fast_model_enhances_every_frame():
    report, rec, _ = stream(n=12, runner_kw=dict(latency_ms=5.0))
    check_complete(report, rec, 12)
    assert outcomes(rec) == [(E, Reason.NONE)] * 12
    assert report.late == 0 and report.deadline_miss_rate == 0.0
    assert report.latency["infer_ms"].median == pytest.approx(5.0)
    assert report.latency["capture_to_output_ms"].max == pytest.approx(5.0)
    d = report.to_dict()
    assert d["enhanced"] == 12 and d["latency_ms"]["infer_ms"]["p99"] == pytest.approx(5.0)
    assert "enhanced 12" in report.format_table()
    json.dumps(d, allow_nan=False)  # --json output is strict JSON


def test_warmup_is_not_recorded_and_does_not_teach_the_predictor():
    slow_first = lambda i: 80.0 if i == 0 else 5.0  # noqa: E731 - the first call allocates
    report, rec, runner = stream(n=10, runner_kw=dict(latency_ms=slow_first), warmup=2)
    check_complete(report, rec, 10)
    assert runner.calls == 13 and report.enhanced == 10 and report.late == 0  # one more at the reduced size
    assert rec.rows[0].wait_ms == pytest.approx(90.0)  # the first frame waited for the warm-up (80 + 2 x 5 ms)


def test_slow_model_goes_raw_after_the_predictor_learns_and_keeps_probing():
    report, rec, runner = stream(n=40, runner_kw=dict(latency_ms=50.0), budget_ms=33.0, policy_kw=dict(tiers=SINGLE))
    check_complete(report, rec, 40)
    o = outcomes(rec)
    # the result came after the deadline: never shown, but the predictor learns the model's time from it
    assert o[0] == (P, Reason.LATE) and rec.rows[0].late
    probes = [i for i, (_, why) in enumerate(o) if why is Reason.LATE]
    assert probes == [0, 15, 30]  # every 15th predicted miss still runs inference
    assert all(o[i] == (P, Reason.PREDICTED_MISS) for i in range(40) if i not in probes)
    assert runner.calls == 3 and report.enhanced == 0
    assert report.passthrough == {"late": 3, "predicted-miss": 37} and report.late == 3


def test_prediction_recovers_when_the_machine_calms_down():
    slow = lambda i: 50.0 if i < 2 else 5.0  # noqa: E731 - the first two inference calls are slow
    report, rec, _ = stream(n=40, runner_kw=dict(latency_ms=slow), budget_ms=33.0, policy_kw=dict(tiers=SINGLE))
    check_complete(report, rec, 40)
    o = outcomes(rec)
    assert o[0] == (P, Reason.LATE) and o[1:15] == [(P, Reason.PREDICTED_MISS)] * 14
    assert o[15] == (P, Reason.LATE)  # probe 1: still slow, its late result is not shown
    assert [out for out, _ in o[16:30]] == [P] * 14 and [out for out, _ in o[30:]] == [E] * 10  # probe 2 was fast


def test_raising_runner_falls_back_then_backs_off_then_recovers():
    report, rec, _ = stream(n=30, runner_kw=dict(latency_ms=1.0, fail_on={2, 3, 4}),
                            policy_kw=dict(fail_threshold=3, backoff_frames=8))
    check_complete(report, rec, 30)
    o = outcomes(rec)
    assert o[:2] == [(E, Reason.NONE)] * 2
    assert o[2:5] == [(P, Reason.BACKEND_ERROR)] * 3
    assert o[5:13] == [(P, Reason.BACKOFF)] * 8
    assert o[13:] == [(E, Reason.NONE)] * 17
    assert report.passthrough == {"backend-error": 3, "backoff": 8}


def test_nan_output_is_never_shown():
    keep = KeepSink()
    frames = make_frames(6, (20, 24))
    report, rec, _ = stream(frames, runner_kw=dict(latency_ms=1.0, nan_on={2}), sinks=[keep])
    check_complete(report, rec, 6)
    assert outcomes(rec)[2] == (P, Reason.BAD_OUTPUT) and outcomes(rec)[3] == (E, Reason.NONE)
    np.testing.assert_array_equal(keep.seen[2][2], frames[2])  # the raw frame went out instead


def test_hanging_runner_times_out_stream_continues_then_recovers():
    frames = make_frames(30, (16, 16))
    runner_box = {}

    def unstick(i):  # before frame 10: the stuck call returns (a driver hiccup ends)
        if i == 10:
            runner = runner_box["r"]
            runner.release.set()
            assert runner.returned.wait(5)
            time.sleep(0.05)  # let the worker thread hand its (discarded) result over

    clock = ManualClock()
    runner = FakeRunner(latency_ms=1.0, clock=clock, hang_on={1})
    runner_box["r"] = runner
    src = FakeSource(frames, clock=clock, interval_ns=33 * MS, on_read=unstick)
    try:
        with runner:
            enh = Enhancer(runner, fake_manifest(1), clock=clock)
            rec = Record.for_enhancer(enh)
            report = run(src, enh, [NullSink()],
                         PipelineConfig(policy=PolicyConfig(budget_ms=33, timeout_ms=50), warmup=0),
                         clock=clock, record=rec)
    finally:
        runner.release.set()
    check_complete(report, rec, 30)
    o = outcomes(rec)
    assert o[0] == (E, Reason.NONE) and o[1] == (P, Reason.TIMEOUT)
    assert o[2:10] == [(P, Reason.BACKOFF)] * 8  # still stuck: raw frames, no new calls
    assert o[11:] == [(E, Reason.NONE)] * 19


def test_overlay_never_reaches_png_data(tmp_path):
    frames = make_frames(8, (64, 80))
    report, rec, _ = stream(frames, runner_kw=dict(latency_ms=1.0, fail_on={3}, fn=lambda x: 1.0 - x),
                            sinks=[PngSink(tmp_path / "png", inputs=True),
                                   VideoSink(tmp_path / "out.mp4", overlay=True)])
    check_complete(report, rec, 8)
    for i, f in enumerate(frames):
        got = cv2.imread(str(tmp_path / "png" / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        expected = f if i == 3 else 255 - f  # passthrough (raw) vs the inverting 'model'
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / "png" / f"input_{i:06d}.png"),
                                                 cv2.IMREAD_UNCHANGED), f)
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8


def test_labelled_copy_only_for_display_sinks(tmp_path):
    keep, frames = KeepSink(), make_frames(3, (120, 160))
    stream(frames, runner_kw=dict(latency_ms=1.0), sinks=[keep, SideBySideSink(tmp_path / "sbs.avi")])
    for i, _, px in keep.seen:
        np.testing.assert_array_equal(px, frames[i])  # result.pixels stay clean for every sink
    cap = cv2.VideoCapture(str(tmp_path / "sbs.avi"))
    ok, img = cap.read()
    assert ok and img.shape == (120, 320, 3)


def test_odd_sizes_and_size_changes_mid_stream(tmp_path):
    frames = [make_frames(1, hw, seed=i)[0] for i, hw in enumerate([(333, 517), (64, 64), (333, 517), (37, 100)])]
    keep = KeepSink()
    report, rec, _ = stream(frames, runner_kw=dict(latency_ms=1.0),
                            sinks=[keep, VideoSink(tmp_path / "v.mkv"), SideBySideSink(tmp_path / "s.mp4")])
    check_complete(report, rec, 4)
    assert outcomes(rec) == [(E, Reason.NONE)] * 4
    for (_i, _, px), f in zip(keep.seen, frames):
        np.testing.assert_array_equal(px, f)
    cap = cv2.VideoCapture(str(tmp_path / "v.mkv"))
    assert cap.isOpened()
    assert (cap.get(cv2.CAP_PROP_FRAME_HEIGHT), cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == (334, 518)  # padded to even
    ok, img = cap.read()
    np.testing.assert_array_equal(img[100:333, :517, 0], frames[0][100:])  # FFV1 is lossless (below the label)


def test_uint16_and_bgr_frames_into_a_gray_model():
    f16 = make_frames(3, (30, 40), dtype=np.uint16)
    fbgr = make_frames(3, (30, 40), channels=3, seed=1)
    keep = KeepSink()
    report, rec, _ = stream(f16 + fbgr, runner_kw=dict(latency_ms=1.0), sinks=[keep])
    check_complete(report, rec, 6)
    assert report.enhanced == 6
    for (_i, _, px), f in zip(keep.seen, f16 + fbgr):
        assert px.dtype == np.uint8 and px.shape == f.shape
        assert np.abs(px.astype(int) - to_uint8(f)).max() <= 3


def test_incompatible_frames_pass_through():
    frames = [np.zeros((20, 20, 4), np.uint8), make_frames(1, (20, 20))[0], np.zeros((1, 20), np.uint8)]
    report, rec, runner = stream(frames, runner_kw=dict(latency_ms=1.0), sinks=[KeepSink()])
    check_complete(report, rec, 3)
    assert outcomes(rec) == [(P, Reason.INCOMPATIBLE), (E, Reason.NONE), (P, Reason.INCOMPATIBLE)]
    assert runner.calls == 1


def test_record_file_and_interrupt(tmp_path):
    def interrupt(i):
        if i == 5:
            raise KeyboardInterrupt

    path = tmp_path / "rec.jsonl"
    report, rec, _ = stream(n=10, runner_kw=dict(latency_ms=1.0), source_kw=dict(on_read=interrupt),
                            record=Record(path, model_sha="abc", backend="fake", precision="fp32", artifact="x"))
    assert report.interrupted and report.frames_in == 5
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(5)) and rows[0]["backend"] == "fake"


def test_live_threaded_mode_records_every_frame():
    """Real threads and the system clock: which frames drop is up to the scheduler, so only
    the invariants are asserted."""
    src = FakeSource(n=200, hw=(16, 16), live=True, clock=SYSTEM_CLOCK)
    runner = FakeRunner(latency_ms=0.0)
    with runner:
        enh = Enhancer(runner, fake_manifest(1))
        rec = Record.for_enhancer(enh)
        report = run(src, enh, [NullSink()], PipelineConfig.with_budget(1000.0), record=rec)
    check_complete(report, rec, 200)
    assert report.source["live"] and all(r.reason is Reason.OVERTAKEN for r in rec.rows if r.outcome is D)
    assert report.enhanced >= 1


def test_offline_prefetch_processes_everything():
    src = FakeSource(n=50, hw=(16, 16))
    runner = FakeRunner(latency_ms=0.0)
    with runner:
        enh = Enhancer(runner, fake_manifest(1))
        report = run(src, enh, [], PipelineConfig(prefetch=4))
    assert report.frames_in == 50 and report.enhanced == 50 and report.dropped_total == 0


def test_real_onnx_model_end_to_end(tmp_path):
    """A tiny blur ONNX model through onnxruntime: video file in, PNGs + JSONL record out."""
    from test_sources import make_video

    from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner
    from ganrt.runtime.model.manifest import Manifest
    from ganrt.runtime.sources import open_source

    manifest = Manifest.load(make_bundle(tmp_path / "bundle", channels=1))
    video = make_video(tmp_path / "in.mp4", n=6, hw=(46, 62))
    art = manifest.artifact("fp32")
    with OnnxRuntimeRunner(art) as runner:
        enh = Enhancer(runner, manifest, artifact=art)
        rec = Record.for_enhancer(enh, tmp_path / "rec.jsonl")
        report = run(open_source(str(video)), enh, [PngSink(tmp_path / "png")],
                     PipelineConfig.with_budget(10_000.0), record=rec)
    assert report.frames_in == 6 and report.enhanced == 6, report.format_table()
    rows = [json.loads(line) for line in (tmp_path / "rec.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(6))
    assert rows[0]["model_sha"] == manifest.model_id and rows[0]["precision"] == "fp32"
    assert rows[0]["backend"] == "onnxruntime" and rows[0]["infer_ms"] > 0
    out = cv2.imread(str(tmp_path / "png" / "frame_000000.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (46, 62, 3) and out.dtype == np.uint8  # BGR video in -> BGR out (luma enhanced)
    assert Path(tmp_path / "png").exists()


def test_a_failing_sink_is_disabled_and_the_stream_goes_on():
    class Full(SinkBase):
        def write(self, frame, result):
            if frame.index >= 2:
                raise OSError("No space left on device")

    null = NullSink()
    report, rec, _ = stream(n=6, runner_kw=dict(latency_ms=1.0), sinks=[Full(), null])
    check_complete(report, rec, 6)
    assert null.count == 6 and report.sink_errors == 1 and report.enhanced == 6


def test_video_codec_falls_back_when_one_does_not_open(tmp_path, monkeypatch):
    real = cv2.VideoWriter

    def no_ffv1(path, fourcc, *a):
        return real(path if fourcc != cv2.VideoWriter_fourcc(*"FFV1") else "/nonexistent/x.mkv", fourcc, *a)

    monkeypatch.setattr(sinks_mod.cv2, "VideoWriter", no_ffv1)
    sink = VideoSink(tmp_path / "out.mkv")
    stream(n=3, runner_kw=dict(latency_ms=1.0), sinks=[sink])
    assert sink.path == tmp_path / "out.mp4" and sink.path.exists()


def test_display_sink_refuses_without_a_screen(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ConfigError, match="needs a screen"):
        DisplaySink()
    if not sinks_mod.has_screen():
        monkeypatch.setenv("DISPLAY", ":99")
        with pytest.raises(ConfigError, match="display sink"):
            DisplaySink()


def test_a_user_error_in_a_sink_ends_the_run_with_the_record_complete(tmp_path):
    class Unwritable(SinkBase):
        def write(self, frame, result):
            if frame.index == 3:
                raise ConfigError("cannot write video /readonly/out.mp4")

    path = tmp_path / "rec.jsonl"
    with pytest.raises(ConfigError, match="cannot write"):
        stream(n=8, runner_kw=dict(latency_ms=1.0), sinks=[Unwritable()], record=Record(path))
    assert [json.loads(line)["index"] for line in path.read_text().splitlines()] == [0, 1, 2, 3]


def test_a_sinks_slow_first_write_does_not_turn_the_next_frames_raw():
    """Sinks open their files on the first write (a DICOM writer, a container header); the deadline
    policy must not predict every later frame's output from that one."""
    clock = ManualClock()

    class OpensSlowly(SinkBase):
        def __init__(self) -> None:
            self.n = 0

        def write(self, frame, result) -> None:
            clock.advance(int((40.0 if self.n == 0 else 1.0) * MS))
            self.n += 1

    runner = FakeRunner(clock=clock, latency_ms=5.0)
    src = FakeSource(n=6, clock=clock, interval_ns=33 * MS)
    try:
        with runner:
            enh = Enhancer(runner, fake_manifest(1), clock=clock)
            rec = Record.for_enhancer(enh)
            run(src, enh, [OpensSlowly()], PipelineConfig(policy=PolicyConfig(budget_ms=33.0), warmup=0), clock=clock,
                record=rec)
    finally:
        runner.release.set()
    assert outcomes(rec) == [(Outcome.ENHANCED, Reason.NONE)] * 6
