"""Several streams on one runner: the scheduler (batch or serialise), per-stream records and reports,
failure isolation, stopping together, and `ganrt run --source A --source B` (fakes, manual clocks)."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from bundles import blur_model, make_bundle
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest, make_frames

from ganrt.runtime.backends.base import Backend
from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner
from ganrt.runtime.backends.registry import Selection
from ganrt.runtime.cli import main
from ganrt.runtime.errors import ConfigError, ModelError
from ganrt.runtime.frames import Outcome, Reason
from ganrt.runtime.model.manifest import Manifest
from ganrt.runtime.model.profiles import DEFAULT_PROFILE, DeviceProfile
from ganrt.runtime.serve.multistream import run_streams
from ganrt.runtime.serve.scheduler import BatchMode, SchedulerConfig, SharedRunner
from ganrt.runtime.serve.stream import RunSetup, StreamSpec, stream_once
from ganrt.runtime.sinks.files import SinkBase
from ganrt.runtime.sinks.specs import parse_sinks

MS = 1_000_000


def feeds(value: float, hw=(8, 8)) -> dict[str, np.ndarray]:
    return {"input": np.full((1, 1, *hw), value, np.float32)}


# --- the scheduler, served by hand ----------------------------------------------------------------
def shared(runner: FakeRunner, **cfg) -> SharedRunner:
    runner.__enter__()
    return SharedRunner(runner, SchedulerConfig(**cfg), threaded=False)


def test_requests_whose_inputs_agree_share_one_batched_call():
    runner = FakeRunner(latency_ms=0.0, dynamic_batch=True)
    sched = shared(runner)
    f0, f1 = sched.submit(0, feeds(0.25)), sched.submit(1, feeds(0.75))
    assert sched.serve_pending() == 2
    assert runner.shapes == [(2, 1, 8, 8)] and sched.mode is BatchMode.BATCH
    # each stream gets its own frame's output back
    assert f0.result().keys() == {"output"} and f0.result()["output"].shape == (1, 1, 8, 8)
    assert np.all(f0.result()["output"] == 0.25) and np.all(f1.result()["output"] == 0.75)
    assert sched.stats.to_dict()["batch_sizes"] == {"2": 1}


def test_inputs_of_different_shapes_are_served_one_by_one_in_arrival_order():
    runner = FakeRunner(latency_ms=0.0, dynamic_batch=True)
    sched = shared(runner)
    futures = [sched.submit(0, feeds(0.1, (8, 8))), sched.submit(1, feeds(0.2, (8, 12))),
               sched.submit(2, feeds(0.3, (8, 8)))]
    sched.serve_pending()
    assert runner.shapes == [(2, 1, 8, 8), (1, 1, 8, 12)]  # the two that agree batch, the odd one alone
    assert [float(f.result()["output"].flat[0]) for f in futures] == pytest.approx([0.1, 0.2, 0.3])


def test_a_runner_with_a_fixed_batch_of_one_is_served_serially():
    runner = FakeRunner(latency_ms=0.0, dynamic_batch=False)
    sched = shared(runner)
    for s in range(3):
        sched.submit(s, feeds(0.5))
    sched.serve_pending()
    assert runner.shapes == [(1, 1, 8, 8)] * 3
    assert sched.mode is BatchMode.SERIAL and "fixed batch size of 1" in sched.why_serial


def test_batches_are_capped_at_max_batch():
    runner = FakeRunner(latency_ms=0.0, dynamic_batch=True)
    sched = shared(runner, max_batch=2)
    for s in range(5):
        sched.submit(s, feeds(0.5))
    sched.serve_pending()
    assert [shape[0] for shape in runner.shapes] == [2, 2, 1]


def test_a_runner_with_its_own_batch_limit_caps_the_batches():
    runner = FakeRunner(latency_ms=0.0, dynamic_batch=True)
    runner.__enter__()
    runner.io = dataclasses.replace(runner.io, max_batch=2)  # e.g. a TensorRT profile's largest batch
    sched = SharedRunner(runner, SchedulerConfig(max_batch=4), threaded=False)
    for s in range(5):
        sched.submit(s, feeds(0.5))
    sched.serve_pending()
    assert sched.max_batch == 2 and runner.shapes == [(2, 1, 8, 8), (2, 1, 8, 8), (1, 1, 8, 8)]


def test_a_failed_batch_is_retried_one_by_one_so_only_the_bad_input_fails():
    def fn(x):
        if (x == 0.9).any():
            raise RuntimeError("the model cannot take this frame")
        return x.copy()

    runner = FakeRunner(latency_ms=0.0, dynamic_batch=True, fn=fn)
    sched = shared(runner)
    good, bad = sched.submit(0, feeds(0.2)), sched.submit(1, feeds(0.9))
    sched.serve_pending()
    assert np.all(good.result()["output"] == 0.2)
    with pytest.raises(RuntimeError, match="cannot take"):
        bad.result()
    assert runner.shapes == [(2, 1, 8, 8), (1, 1, 8, 8), (1, 1, 8, 8)] and sched.stats.batch_failures == 1


def test_a_closed_scheduler_refuses_new_requests():
    sched = shared(FakeRunner(latency_ms=0.0))
    sched.close()
    with pytest.raises(ModelError, match="closed"):
        sched.submit(0, feeds(0.5)).result()


def test_onnxruntime_runner_says_whether_it_batches_and_a_batch_equals_serial_calls(tmp_path):
    fixed = Manifest.load(make_bundle(tmp_path / "fixed"))
    dynamic = Manifest.load(make_bundle(tmp_path / "dynamic", model=blur_model(batch="N")))
    with OnnxRuntimeRunner(fixed.artifacts["fp32"]) as runner:
        assert runner.io.dynamic_batch is False
    rng = np.random.default_rng(0)
    xs = [rng.random((1, 1, 16, 20), dtype=np.float32) for _ in range(3)]
    with OnnxRuntimeRunner(dynamic.artifacts["fp32"]) as runner:
        assert runner.io.dynamic_batch is True
        serial = [runner.infer({"input": x})["output"] for x in xs]
        sched = SharedRunner(runner, threaded=False)
        futures = [sched.submit(i, {"input": x}) for i, x in enumerate(xs)]
        sched.serve_pending()
        assert sched.stats.to_dict()["batch_sizes"] == {"3": 1}
        for f, want in zip(futures, serial):
            np.testing.assert_allclose(f.result()["output"], want, rtol=0, atol=1e-6)


# --- several streams through the pipeline ----------------------------------------------------------
class KeepSink(SinkBase):
    def __init__(self, stream: str, fail_at: int | None = None, quit_at: int | None = None) -> None:
        self.stream, self.fail_at, self.quit_at = stream, fail_at, quit_at
        self.indices: list[int] = []
        self.outcomes: list[Outcome] = []

    def write(self, frame, result) -> None:
        if frame.index == self.fail_at:
            raise ConfigError(f"{self.stream}: cannot write frame {frame.index}")
        self.indices.append(frame.index)
        self.outcomes.append(result.outcome)
        if frame.index == self.quit_at:
            self.quit_requested = True


def setup_for(runner: FakeRunner, budget_ms: float = 10_000.0) -> RunSetup:
    manifest = fake_manifest(1)
    selection = Selection(runner, Backend.ONNXRUNTIME, manifest.artifacts["fp32"])
    return RunSetup(manifest, DeviceProfile.load(DEFAULT_PROFILE), selection, sinks=parse_sinks(["null"]),
                    budget_ms=budget_ms)


def several(tmp_path: Path, runner: FakeRunner, sources: dict[str, FakeSource], clock: ManualClock,
            sinks: dict[str, KeepSink] | None = None, **kw):
    sinks = sinks if sinks is not None else {name: KeepSink(name) for name in sources}
    specs = [StreamSpec(f"fake{i}", tmp_path / name, name=name) for i, name in enumerate(sources)]
    try:
        report, failures = run_streams(specs, setup_for(runner), clock=clock, sinks=lambda ctx: [sinks[ctx.stream]],
                                       opener=lambda spec, _clock: sources[spec.name], **kw)
    finally:
        runner.release.set()
    return report, failures, sinks


def records(tmp_path: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / name / "record.jsonl").read_text().splitlines()]


def test_two_streams_share_one_runner_and_record_every_frame_once(tmp_path):
    clock = ManualClock()
    runner = FakeRunner(latency_ms=4.0, clock=clock)
    sources = {"stream0": FakeSource(n=12, clock=clock, interval_ns=33 * MS),
               "stream1": FakeSource(n=7, hw=(40, 24), clock=clock, interval_ns=20 * MS)}
    report, failures, sinks = several(tmp_path, runner, sources, clock)
    assert not failures
    assert set(runner.threads) == {"ganrt-scheduler"}  # one thread makes every model call
    for name, n in (("stream0", 12), ("stream1", 7)):
        rows = records(tmp_path, name)
        assert [r["index"] for r in rows] == list(range(n))  # every frame exactly once, per stream
        assert {r["outcome"] for r in rows} == {"enhanced"}
        assert sinks[name].indices == list(range(n))
        assert json.loads((tmp_path / name / "report.json").read_text())["frames_in"] == n
    d = report.to_dict()
    assert d["streams"]["stream0"]["frames_in"] == 12 and d["streams"]["stream1"]["enhanced"] == 7
    assert d["streams"]["stream0"]["capture_to_output_ms"]["p99"] is not None
    assert d["combined"]["frames_in"] == 19 and d["combined"]["enhanced"] == 19
    assert d["scheduler"]["mode"] == "serial" and d["scheduler"]["requests"] == runner.calls
    assert "combined" in report.format_table() and "fixed batch size of 1" in report.format_table()


def test_a_stream_whose_sink_fails_ends_alone(tmp_path):
    clock = ManualClock()
    runner = FakeRunner(latency_ms=1.0, clock=clock)
    sources = {"stream0": FakeSource(n=10, clock=clock, interval_ns=33 * MS),
               "stream1": FakeSource(n=10, clock=clock, interval_ns=33 * MS)}
    sinks = {"stream0": KeepSink("stream0"), "stream1": KeepSink("stream1", fail_at=3)}
    report, failures, _ = several(tmp_path, runner, sources, clock, sinks=sinks)
    assert len(failures) == 1 and isinstance(failures[0], ConfigError)
    assert sinks["stream0"].indices == list(range(10))
    assert [r["index"] for r in records(tmp_path, "stream0")] == list(range(10))
    assert [r["index"] for r in records(tmp_path, "stream1")] == [0, 1, 2, 3]  # the failing frame is recorded too
    assert "cannot write frame 3" in report.to_dict()["streams"]["stream1"]["error"]
    assert [s.name for s in report.failed] == ["stream1"]


def test_frames_the_model_rejects_fail_only_their_stream(tmp_path):
    def fn(x):  # stream1's frames (all white) crash the model, whether batched with stream0's or alone
        if any((x[i] == 1.0).all() for i in range(x.shape[0])):
            raise RuntimeError("bad input")
        return x.copy()

    clock = ManualClock()
    runner = FakeRunner(latency_ms=1.0, clock=clock, fn=fn, dynamic_batch=True)
    white = [np.full((32, 48), 255, np.uint8)] * 10
    sources = {"stream0": FakeSource(n=10, clock=clock, interval_ns=33 * MS),
               "stream1": FakeSource(white, clock=clock, interval_ns=33 * MS)}
    report, failures, sinks = several(tmp_path, runner, sources, clock)
    assert not failures and report.scheduler["mode"] == "batch"
    assert sinks["stream0"].outcomes == [Outcome.ENHANCED] * 10
    rows1 = records(tmp_path, "stream1")
    assert [r["index"] for r in rows1] == list(range(10)) and sinks["stream1"].indices == list(range(10))
    assert {r["outcome"] for r in rows1} == {"passthrough"}
    assert {r["reason"] for r in rows1} <= {Reason.BACKEND_ERROR.value, Reason.BACKOFF.value}


def test_a_quit_in_one_stream_stops_every_stream(tmp_path):
    clock = ManualClock()
    runner = FakeRunner(latency_ms=1.0, clock=clock)
    stop = threading.Event()

    def wait_for_stop(i: int) -> None:
        if i >= 1:  # stream1 delivers its second frame only once the stop was given
            assert stop.wait(10.0)

    sources = {"stream0": FakeSource(n=10, clock=clock),
               "stream1": FakeSource(n=10, clock=clock, on_read=wait_for_stop)}
    sinks = {"stream0": KeepSink("stream0", quit_at=2), "stream1": KeepSink("stream1")}
    report, failures, _ = several(tmp_path, runner, sources, clock, sinks=sinks, stop=stop)
    assert not failures and stop.is_set()
    assert [s.report.interrupted for s in report.streams] == [True, True]
    assert sinks["stream0"].indices == [0, 1, 2]
    # stream1 may see the stop right after its first frame (stream0 can quit before stream1 asks
    # for a second one) or read frame 1 as the stop arrives; either way every frame it read is
    # recorded exactly once
    assert sinks["stream1"].indices in ([0], [0, 1])
    assert [r["index"] for r in records(tmp_path, "stream1")] in ([0], [0, 1])
    assert len(records(tmp_path, "stream1")) >= len(sinks["stream1"].indices)


def test_one_stream_path_writes_sinks_with_provenance(tmp_path):
    """The path `ganrt demo` takes: registry sinks carry the run's provenance sidecar."""
    clock = ManualClock()
    runner = FakeRunner(latency_ms=1.0, clock=clock)
    setup = setup_for(runner)
    setup = RunSetup(setup.manifest, setup.profile, setup.selection, sinks=parse_sinks(["side-by-side"]),
                     budget_ms=10_000.0)
    src = FakeSource(n=4, clock=clock)
    try:
        report = stream_once(StreamSpec("fake", tmp_path, "demo_"), setup, clock=clock, opener=lambda s, c: src)
    finally:
        runner.release.set()
    assert report.enhanced == 4
    side = json.loads((tmp_path / "demo_side_by_side.mp4.provenance.json").read_text())
    assert side["backend"] == "fake" and side["frames"] == 4 and side["source"] == "fake"
    assert [json.loads(x)["index"] for x in (tmp_path / "demo_record.jsonl").read_text().splitlines()] == [0, 1, 2, 3]


# --- the command line -----------------------------------------------------------------------------
def _video(path: Path, n: int, hw=(48, 64)) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (hw[1], hw[0]))
    for f in make_frames(n, hw, channels=3):
        vw.write(f)
    vw.release()
    return path


def test_run_with_two_sources_writes_per_stream_outputs_and_a_combined_report(tmp_path, capsys):
    bundle = make_bundle(tmp_path / "bundle")
    a, b = _video(tmp_path / "a.avi", 5), _video(tmp_path / "b.avi", 3, (32, 40))
    out = tmp_path / "o"
    rc = main(["run", "--source", str(a), "--source", str(b), "--model", str(bundle), "--out", str(out),
               "--sink", "video", "--sink", f"png:{out}/png_{{stream}}", "--budget-ms", "5000", "--budget-ms", "6000"])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "stream0" in text.out and "combined" in text.out
    for name, n, budget, src in (("stream0", 5, 5000.0, "a.avi"), ("stream1", 3, 6000.0, "b.avi")):
        rows = [json.loads(x) for x in (out / name / "record.jsonl").read_text().splitlines()]
        assert [r["index"] for r in rows] == list(range(n))
        assert json.loads((out / name / "report.json").read_text())["budget_ms"] == budget
        assert json.loads((out / name / "enhanced.mp4.provenance.json").read_text())["source"] == src
        assert len(list((out / f"png_{name}").glob("frame_*.png"))) == n
    rep = json.loads((out / "report.json").read_text())
    assert rep["combined"]["frames_in"] == 8 and set(rep["streams"]) == {"stream0", "stream1"}
    assert rep["streams"]["stream1"]["capture_to_output_ms"]["p99"] is not None
    assert rep["scheduler"]["mode"] == "serial"  # the test bundle has a fixed batch of 1


@pytest.mark.parametrize("extra,fragment", [
    (["--sink", "video:{out}/one.mp4"], "written by every stream"),
    (["--sink", "pipe:-"], "pipe:- carries one stream"),
    (["--change-map", "{out}/map.mp4"], "--change-map"),
    (["--budget-ms", "10", "--budget-ms", "20", "--budget-ms", "30"], "once per --source"),
])
def test_several_sources_reject_shared_targets_in_one_line(tmp_path, capsys, extra, fragment):
    bundle = make_bundle(tmp_path / "bundle")
    a = _video(tmp_path / "a.avi", 2)
    argv = ["run", "--source", str(a), "--source", str(a), "--model", str(bundle), "--out", str(tmp_path / "o"),
            *[x.replace("{out}", str(tmp_path)) for x in extra]]
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == ConfigError.exit_code and len(lines) == 1 and fragment in lines[0], err
    assert not (tmp_path / "o").exists()  # nothing opened or written


def test_a_batch_the_remote_server_could_not_take_fails_at_once_without_retries():
    from ganrt.runtime.errors import RemoteUnavailable

    def fn(x):
        raise RemoteUnavailable("server down")

    runner = FakeRunner(latency_ms=0.0, dynamic_batch=True, fn=fn)
    sched = shared(runner)
    futs = [sched.submit(i, {"input": np.zeros((1, 1, 8, 8), np.float32)}) for i in range(3)]
    sched.serve_pending()
    assert runner.calls == 1 and sched.stats.batch_failures == 0
    for f in futs:
        with pytest.raises(RemoteUnavailable):
            f.result(0)
