"""Live capture: V4L2 format request/grant, reconnect with backoff, GStreamer paths (all with fakes)."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from fakes import FakeRunner, ManualClock, fake_manifest

from ganrt.runtime.errors import SourceError
from ganrt.runtime.frames import Outcome, Reason
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.records.record import Record
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.sinks.files import NullSink
from ganrt.runtime.sinks.overlay import for_display, to_bgr
from ganrt.runtime.sources import open_source
from ganrt.runtime.sources.camera import CameraRequest, CameraSource
from ganrt.runtime.sources.gst import frame_from_buffer, opencv_has_gstreamer
from ganrt.runtime.sources.live import SIGNAL_LOST, ReconnectPolicy, fourcc_str

HW = (24, 32)


def img(v: int, hw=HW) -> np.ndarray:
    return np.full((*hw, 3), v, np.uint8)


class FakeCapture:
    """A cv2.VideoCapture stand-in: ``reads`` is what each read() returns (an image or None =
    a failed read); after the list it fails forever. ``props`` answers get(); set() is logged."""

    def __init__(self, reads, props=None, opened=True) -> None:
        self.reads, self.props, self.opened = list(reads), dict(props or {}), opened
        self.sets: list[tuple[int, float]] = []
        self.released = False

    def isOpened(self) -> bool:
        return self.opened

    def read(self):
        if not self.reads:
            return False, None
        item = self.reads.pop(0)
        return (item is not None), item

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def set(self, prop, value):
        self.sets.append((prop, value))
        return True

    def release(self):
        self.released = True


class Opener:
    """Hands out captures in order (None = the device is not there: isOpened() False) and notes
    the clock at each call, so the backoff can be checked on a manual clock."""

    def __init__(self, captures, clock: ManualClock) -> None:
        self.captures, self.clock = list(captures), clock
        self.times: list[int] = []

    def __call__(self, device):
        self.times.append(self.clock.now_ns())
        cap = self.captures.pop(0) if self.captures else None
        return cap if cap is not None else FakeCapture([], opened=False)


def read_n(src, n):
    return [src.read() for _ in range(n)]


# --- request / grant ------------------------------------------------------------------------------
def test_request_parses_fourcc_size_fps_buffers():
    r = CameraRequest.parse("/dev/video2?fourcc=MJPG&size=1280x720&fps=60&buffers=1")
    assert (r.device, r.fourcc, r.size_hw, r.fps, r.buffers) == ("/dev/video2", "MJPG", (720, 1280), 60.0, 1)
    assert CameraRequest.parse("0").device == 0


@pytest.mark.parametrize("spec,fragment", [("/dev/video0?fourcc=MJPEG", "4 characters"),
                                           ("/dev/video0?size=720p", "WIDTHxHEIGHT"),
                                           ("/dev/video0?fps=fast", "numbers"),
                                           ("/dev/video0?zoom=2", "unknown option")])
def test_bad_camera_options_are_one_line_source_errors(spec, fragment):
    with pytest.raises(SourceError, match=fragment) as e:
        open_source(spec)
    assert "\n" not in str(e.value)


def test_granted_format_is_read_back_reported_and_stamped(caplog):
    clock = ManualClock()
    cap = FakeCapture([img(1), img(2)], props={cv2.CAP_PROP_FOURCC: cv2.VideoWriter_fourcc(*"YUYV"),
                                               cv2.CAP_PROP_FPS: 30.0})
    req = CameraRequest.parse("/dev/video0?fourcc=MJPG&size=1280x720&fps=60")
    with caplog.at_level(logging.INFO):
        src = CameraSource(req, opener=Opener([cap], clock), clock=clock)
    # FOURCC is requested before the size (drivers offer large sizes only in some formats)
    props = [p for p, _ in cap.sets]
    assert props.index(cv2.CAP_PROP_FOURCC) < props.index(cv2.CAP_PROP_FRAME_WIDTH)
    assert dict(cap.sets)[cv2.CAP_PROP_FPS] == 60
    line = src.describe()
    assert "requested MJPG 1280x720 @ 60 fps" in line and "granted YUYV 32x24 @ 30 fps" in line
    assert any("not what was requested" in r.message for r in caplog.records)
    info = src.info()
    assert info["granted"] == {"fourcc": "YUYV", "width": 32, "height": 24, "fps": 30.0}
    assert info["requested"]["fourcc"] == "MJPG" and info["requested"]["width"] == 1280
    f = src.read()
    assert f.meta.extra["granted"]["fourcc"] == "YUYV" and src.fps == 30.0
    src.close()
    assert cap.released


def test_fourcc_str():
    assert fourcc_str(cv2.VideoWriter_fourcc(*"MJPG")) == "MJPG"
    assert fourcc_str(0) == ""


def test_camera_absent_at_start_is_a_source_error():
    clock = ManualClock()
    with pytest.raises(SourceError, match="cannot open camera"):
        CameraSource(CameraRequest(3), opener=Opener([None], clock), clock=clock)


# --- reconnect ------------------------------------------------------------------------------------
def test_camera_that_vanishes_is_reopened_with_backoff_and_no_frame_is_unaccounted():
    clock = ManualClock()
    first = FakeCapture([img(10), img(11), img(12)], props={cv2.CAP_PROP_FPS: 25.0})  # then fails forever
    back = FakeCapture([img(20), img(21), img(22)], props={cv2.CAP_PROP_FPS: 25.0})
    opener = Opener([first, None, None, back], clock)  # two failed reopen attempts, then the camera is back
    policy = ReconnectPolicy(fail_reads=3, first_delay_s=0.5, max_delay_s=8.0, factor=2.0)
    src = CameraSource(CameraRequest(0), opener=opener, clock=clock, reconnect=policy)
    frames = []
    while len(frames) < 200:
        f = src.read()
        assert f is not None  # a lost signal never ends the stream
        frames.append(f)
        if f.pixels[0, 0, 0] == 22:
            break
    values = [int(f.pixels[0, 0, 0]) for f in frames if f.meta.extra.get("signal") != SIGNAL_LOST]
    assert values == [10, 11, 12, 20, 21, 22]
    cards = [f for f in frames if f.meta.extra.get("signal") == SIGNAL_LOST]
    assert cards and all(c.pixels.shape == (*HW, 3) and c.pixels.dtype == np.uint8 for c in cards)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert first.released
    # reopen attempts at +0.5 s, then +1 s, then +2 s (the clock moves only by the cards' pacing)
    lost_at = opener.times[1] - 500_000_000
    gaps = np.diff([lost_at] + opener.times[1:]).tolist()
    assert gaps[0] == 500_000_000
    assert gaps[1] >= 1_000_000_000 and gaps[2] >= 2_000_000_000
    assert gaps[1] < 1_000_000_000 + 40_000_001 and gaps[2] < 2_000_000_000 + 40_000_001  # within one 25 fps period
    info = src.info()
    assert info["outages"] == 1 and info["reconnects"] == 1 and info["failed_reads"] == 3
    assert info["no_signal_frames"] == len(cards) and not info["signal_lost_at_end"]
    assert info["frames_read"] == len(frames)
    # cards come one per frame period: the viewer's rate holds while the camera is away
    t_cards = [c.t_capture_ns for c in cards]
    assert set(np.diff(t_cards).tolist()) == {40_000_000}


def test_give_up_ends_the_stream_after_the_configured_outage():
    clock = ManualClock()
    opener = Opener([FakeCapture([img(1)])], clock)  # never comes back
    src = CameraSource(CameraRequest(0), opener=opener, clock=clock,
                       reconnect=ReconnectPolicy(fail_reads=1, first_delay_s=0.1, give_up_s=1.0))
    frames = list(iter(src.read, None))
    assert frames[0].meta.extra.get("signal") != SIGNAL_LOST
    assert all(f.meta.extra.get("signal") == SIGNAL_LOST for f in frames[1:])
    assert 20 <= len(frames) - 1 <= 31  # about 1 s of cards at the default 30 fps
    assert src.info()["signal_lost_at_end"]


def test_outage_through_the_pipeline_is_recorded_frame_by_frame():
    clock = ManualClock()
    first = FakeCapture([img(10), img(11)], props={cv2.CAP_PROP_FPS: 30.0})
    back = FakeCapture([img(20), img(21)], props={cv2.CAP_PROP_FPS: 30.0})
    src = CameraSource(CameraRequest(0), opener=Opener([first, back], clock), clock=clock, max_frames=20,
                       reconnect=ReconnectPolicy(fail_reads=2, first_delay_s=0.2))
    runner = FakeRunner(latency_ms=1.0, clock=clock)
    sink = _Collect()
    with runner:
        enh = Enhancer(runner, fake_manifest(channels=3), clock=clock)
        rep = run(src, enh, [sink], PipelineConfig.with_budget(1000.0, realtime=False, warmup=0), clock=clock)
    assert rep.frames_in == rep.frames_out == len(sink.frames)  # every frame slot reached the output
    lost = [f for f in sink.frames if f.meta.extra.get("signal") == SIGNAL_LOST]
    assert lost and len(lost) == rep.source["no_signal_frames"]
    assert rep.source["reconnects"] == 1 and rep.source["outages"] >= 1


def test_no_signal_frames_go_out_raw_and_marked_and_never_reach_the_model():
    clock = ManualClock()
    first = FakeCapture([img(10), img(11), img(12)], props={cv2.CAP_PROP_FPS: 30.0})
    back = FakeCapture([img(20), img(21)], props={cv2.CAP_PROP_FPS: 30.0})
    src = CameraSource(CameraRequest(0), opener=Opener([first, None, back], clock), clock=clock, max_frames=40,
                       reconnect=ReconnectPolicy(fail_reads=2, first_delay_s=0.2))
    seen = []  # what the model was given (luminance of the frame, in [0, 1])
    runner = FakeRunner(latency_ms=1.0, clock=clock, fn=lambda x: (seen.append(float(x.flat[0])), x.copy())[1])
    sink = _Collect()
    with runner:
        enh = Enhancer(runner, fake_manifest(channels=3), clock=clock)
        record = Record.for_enhancer(enh)
        rep = run(src, enh, [sink], PipelineConfig.with_budget(1000.0, realtime=False, warmup=1), clock=clock,
                  record=record)
    cards = [i for i, f in enumerate(sink.frames) if f.meta.extra.get("signal") == SIGNAL_LOST]
    assert len(cards) == rep.source["no_signal_frames"] >= 2
    rows = {r.index: r for r in record.rows}
    assert [i for i, r in rows.items() if r.reason is Reason.NO_SIGNAL] == cards
    assert all(rows[i].outcome is Outcome.PASSTHROUGH for i in cards)
    assert all(rows[i].outcome is Outcome.ENHANCED for i in rows if i not in cards)
    # the model saw the warm-up (at full and at the reduced tier's size) and the five real frames only, never a card
    assert [round(v * 255) for v in seen] == [10, 10, 10, 11, 12, 20, 21]
    for i in cards:  # shown as the source drew it; display sinks mark it raw
        r = sink.results[i]
        np.testing.assert_array_equal(r.pixels, sink.frames[i].pixels)
        assert not np.array_equal(for_display(r.pixels, r, overlay=True), to_bgr(r.pixels))


class _Collect(NullSink):
    def __init__(self) -> None:
        super().__init__()
        self.frames = []
        self.results = []

    def write(self, frame, result) -> None:
        self.frames.append(frame)
        self.results.append(result)


# --- GStreamer --------------------------------------------------------------------------------------
def test_gst_without_support_is_one_clear_line():
    from ganrt.runtime.sources.gst import _pygobject

    if opencv_has_gstreamer() or _pygobject()[0] is not None:
        pytest.skip("GStreamer is available here")
    with pytest.raises(SourceError) as e:
        open_source("gst:videotestsrc ! videoconvert ! video/x-raw,format=BGR ! appsink")
    msg = str(e.value)
    assert "\n" not in msg and "GStreamer: NO" in msg and "PyGObject" in msg


def test_appsink_buffers_with_row_padding_and_formats():
    w, h = 5, 3  # BGR rows of 15 bytes padded to 16
    rows = np.arange(h * 16, dtype=np.uint8).reshape(h, 16)
    out = frame_from_buffer(rows.tobytes(), "BGR", w, h)
    np.testing.assert_array_equal(out, rows[:, :15].reshape(h, w, 3))
    rgb = np.dstack([np.full((2, 2), 1, np.uint8), np.full((2, 2), 2, np.uint8), np.full((2, 2), 3, np.uint8)])
    assert frame_from_buffer(rgb.tobytes(), "RGB", 2, 2)[0, 0].tolist() == [3, 2, 1]
    g16 = np.array([[1, 65535], [256, 2]], "<u2")
    np.testing.assert_array_equal(frame_from_buffer(g16.tobytes(), "GRAY16_LE", 2, 2), g16)
    with pytest.raises(SourceError, match="videoconvert"):
        frame_from_buffer(b"\0" * 12, "NV12", 4, 2)
    with pytest.raises(SourceError, match="too small"):
        frame_from_buffer(b"\0" * 10, "BGR", 4, 2)
