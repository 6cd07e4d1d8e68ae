"""Faults inside a running stream: a full disk, a failing sink close, a model slower than the budget."""

from __future__ import annotations

import errno
import json
from collections import namedtuple

import numpy as np
import pytest
from bundles import make_bundle
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest

from ganrt.runtime.cli import main
from ganrt.runtime.frames import Outcome, Reason
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.records.record import Record
from ganrt.runtime.serve import pipeline as pipeline_mod
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import PolicyConfig
from ganrt.runtime.serve.tiers import TierConfig
from ganrt.runtime.sinks import files as sinks_mod
from ganrt.runtime.sinks.files import NullSink, SinkBase, VideoSink

MS = 1_000_000


def _stream(n, sinks=(), record=None, latency=1.0, budget_ms=33.0):
    clock = ManualClock()
    runner = FakeRunner(latency_ms=latency, clock=clock)
    src = FakeSource(n=n, clock=clock, interval_ns=33 * MS)
    with runner:
        enh = Enhancer(runner, fake_manifest(1), clock=clock)
        rec = record or Record.for_enhancer(enh)
        report = run(src, enh, list(sinks), PipelineConfig(policy=PolicyConfig(budget_ms=budget_ms), warmup=0),
                     clock=clock, record=rec)
    return report, rec


class _FullAfter:
    """A file object that takes ``n`` writes, then fails as a full disk does."""

    def __init__(self, fh, n):
        self.fh, self.left = fh, n

    def write(self, data):
        if self.left <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.left -= 1
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)


def _disk_full_from(monkeypatch, rows: int) -> None:
    """The record's file fills up after ``rows`` rows."""
    real_init = Record.__init__

    def init(self, *a, **kw):
        real_init(self, *a, **kw)
        if self._partial is not None:
            self._partial = _FullAfter(self._partial, rows)

    monkeypatch.setattr(Record, "__init__", init)


def test_record_keeps_every_row_written_before_the_disk_filled(tmp_path, monkeypatch):
    _disk_full_from(monkeypatch, 4)
    rec = Record(tmp_path / "record.jsonl")
    report, _ = _stream(10, [NullSink()], record=rec)
    assert report.frames_in == 10 and report.frames_out == 10  # the run went on
    kept = [json.loads(ln)["index"] for ln in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert kept == [0, 1, 2, 3] and "No space left" in rec.write_error
    assert not (tmp_path / "record.jsonl.partial").exists()


def test_full_disk_ends_the_command_with_a_report_and_exit_8(tmp_path, monkeypatch, capsys):
    import cv2

    src = tmp_path / "in.avi"
    vw = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (32, 24))
    for i in range(6):
        vw.write(np.full((24, 32, 3), 30 * i, np.uint8))
    vw.release()
    _disk_full_from(monkeypatch, 2)
    out = tmp_path / "o"
    rc = main(["run", "--source", str(src), "--model", str(make_bundle(tmp_path / "b")), "--out", str(out),
               "--sink", "null"])
    err = capsys.readouterr().err
    assert rc == 8 and err.strip().splitlines()[-1].startswith("ganrt: error: the record is incomplete")
    assert json.loads((out / "report.json").read_text())["frames_in"] == 6
    assert len((out / "record.jsonl").read_text().splitlines()) == 2


def test_video_sink_on_a_full_disk_is_disabled_and_counted(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(sinks_mod.shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 0))
    keep = NullSink()
    report, rec = _stream(5, [VideoSink(tmp_path / "v.mp4"), keep])
    assert report.sink_errors == 1 and keep.count == 5 and len(rec) == 5


def test_a_sink_that_fails_to_close_does_not_stop_the_others(tmp_path):
    class BadClose(SinkBase):
        def write(self, frame, result):
            pass

        def close(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    video = VideoSink(tmp_path / "v.mp4")
    report, rec = _stream(4, [BadClose(), video])
    assert report.sink_errors == 1 and len(rec) == 4
    assert (tmp_path / "v.mp4").stat().st_size > 0  # closed after the failing one


def test_a_result_after_the_deadline_is_never_shown_and_no_wait_outlasts_the_budget(monkeypatch):
    """Every 5th call takes 3 budgets: its frame goes out raw at the deadline; no wait is longer
    than what is left of the frame's budget."""
    waits = []
    real_call = pipeline_mod.InferenceWorker.call

    def spy(self, *args, timeout_s):
        waits.append(timeout_s)
        return real_call(self, *args, timeout_s=timeout_s)

    monkeypatch.setattr(pipeline_mod.InferenceWorker, "call", spy)
    slow = lambda i: 99.0 if i % 5 == 2 else 4.0  # noqa: E731 - call index -> ms
    clock = ManualClock()
    runner = FakeRunner(latency_ms=slow, clock=clock)
    src = FakeSource(n=60, clock=clock, interval_ns=33 * MS)
    with runner:
        enh = Enhancer(runner, fake_manifest(1), clock=clock)
        rec = Record.for_enhancer(enh)
        run(src, enh, [NullSink()], PipelineConfig(policy=PolicyConfig(budget_ms=33.0, probe_every=2,
                                                               tiers=TierConfig(enabled=False)), warmup=0),
            clock=clock, record=rec)
    rows = rec.rows
    assert len(rows) == 60 and waits and max(waits) <= 0.033
    assert all(not r.late for r in rows if r.outcome is Outcome.ENHANCED)
    slow_frames = [r for r in rows if r.infer_ms > 33.0]
    assert slow_frames and all((r.outcome, r.reason) == (Outcome.PASSTHROUGH, Reason.LATE) for r in slow_frames)
    assert sum(r.outcome is Outcome.ENHANCED for r in rows) > 20  # fast calls still enhance


def test_a_corrupt_image_keeps_its_index_and_its_record_row(tmp_path, capsys):
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        cv2.imwrite(str(src / f"img_{i:03d}.png"), np.full((24, 32), 40 * i + 10, np.uint8))
    (src / "img_001.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    out = tmp_path / "o"
    rc = main(["run", "--source", str(src), "--model", str(make_bundle(tmp_path / "b")), "--out", str(out),
               "--sink", "png"])
    assert rc == 0, capsys.readouterr().err
    rows = [json.loads(ln) for ln in (out / "record.jsonl").read_text().splitlines()]
    assert [(r["index"], r["outcome"], r["reason"]) for r in rows][1] == (1, "dropped", "unreadable")
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["frame_000000.png", "frame_000002.png",
                                                                  "frame_000003.png"]
    for i in (0, 2, 3):  # frame N of the output is file N of the input
        assert int(cv2.imread(str(out / "frames" / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED).mean()) != 0


def test_a_file_record_holds_no_rows_in_memory_and_its_report_matches(tmp_path):
    """Rows stream to disk in index order (out-of-order drops put back); the report comes from
    running aggregates equal to what the rows say."""
    from ganrt.runtime.frames import Frame, FrameResult
    from ganrt.runtime.records.record import read_rows
    from ganrt.runtime.records.report import Report

    rec = Record(tmp_path / "r.jsonl")
    order = [0, 2, 1, 3, 5, 4, 6]  # a drop recorded by the capture thread before the frame in hand
    for i in order:
        out = Outcome.DROPPED if i % 2 else Outcome.ENHANCED
        res = FrameResult(i, out, Reason.OVERTAKEN if i % 2 else Reason.NONE, infer_ms=float(i), t_output_ns=None)
        rec.add(Frame(i, 0, np.zeros((1, 1), np.uint8)), res)
    assert rec._rows is None and len(rec) == 7
    on_disk = [r.index for r in read_rows(tmp_path / "r.jsonl.partial")]
    assert on_disk == [0, 1, 2, 3, 4, 5, 6]  # flushed as they came, in order
    rec.close()
    rows = read_rows(tmp_path / "r.jsonl")
    report = Report.from_record(rec, wall_s=1.0, budget_ms=33.0)
    assert report.frames_in == 7 and report.enhanced == 4 and report.dropped == {"overtaken": 3}
    assert report.latency["infer_ms"].median == np.median([r.infer_ms for r in rows if r.outcome is Outcome.ENHANCED])
    with pytest.raises(ValueError, match="twice"):
        rec2 = Record(tmp_path / "r2.jsonl")
        rec2.add_dropped(Frame(0, 0, np.zeros((1, 1), np.uint8)))
        rec2.add_dropped(Frame(0, 0, np.zeros((1, 1), np.uint8)))


def test_running_summary_matches_the_exact_one_and_stays_bounded():
    from ganrt.runtime.records.record_stats import RunningSummary
    from ganrt.runtime.records.stats import summarize

    rng = np.random.default_rng(1)
    xs = rng.gamma(2.0, 3.0, 5000)
    small = RunningSummary(cap=8192)
    for x in xs:
        small.add(float(x))
    exact = summarize(xs)
    got = small.summary()
    for k in ("n", "min", "mean", "median", "p99", "max", "std", "jitter"):
        assert getattr(got, k) == pytest.approx(getattr(exact, k)), k
    capped = RunningSummary(cap=1000)
    for x in xs:
        capped.add(float(x))
    s = capped.summary()
    assert capped.samples().size == 1000 and s.n == 5000 and s.max == pytest.approx(exact.max)
    assert s.mean == pytest.approx(exact.mean) and s.jitter == pytest.approx(exact.jitter)
    assert abs(s.median - exact.median) < 0.1 * exact.median  # a uniform sample's median
