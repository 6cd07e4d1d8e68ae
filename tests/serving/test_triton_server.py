"""The triton runner against a real Triton server (tritonserver from nvidia-pytriton, serving the
repository `ganrt export triton` wrote through the test-only onnxruntime Python-based backend)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from fakes import FakeSource, make_frames

from ganrt.benchmarks.triton_server import free_port
from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner, Provider
from ganrt.runtime.backends.triton.contract import Protocol, SharedMemory, TritonOptions
from ganrt.runtime.backends.triton.runner import TritonRunner
from ganrt.runtime.cli import main
from ganrt.runtime.errors import BackendUnavailable, ConfigError, ModelError, RemoteUnavailable
from ganrt.runtime.frames import Outcome, Reason
from ganrt.runtime.model.manifest import Precision
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.records.record import Record
from ganrt.runtime.serve.pipeline import PipelineConfig, run

CINE = "runtime/assets/sim_cine_512.mp4"


def runner_for(manifest, url: str, precision: Precision = Precision.FP32, **kw) -> TritonRunner:
    opts = TritonOptions(url=url, timeout_ms=kw.pop("timeout_ms", 10_000), **kw)
    return TritonRunner(manifest, manifest.artifact_for(precision), opts, budget_ms=33.0)


def frames(n: int, hw=(64, 96), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, *hw), dtype=np.float32)


@pytest.mark.parametrize("protocol,shm", [(Protocol.GRPC, SharedMemory.NONE), (Protocol.GRPC, SharedMemory.SYSTEM),
                                          (Protocol.HTTP, SharedMemory.SYSTEM)])
@pytest.mark.parametrize("precision", [Precision.FP32, Precision.INT8_CPU])
def test_outputs_bit_identical_to_in_process_onnxruntime(manifest, triton_server, max_batch, protocol, shm,
                                                         precision):
    url = triton_server.grpc_url if protocol is Protocol.GRPC else triton_server.http_url
    x = frames(2)
    with OnnxRuntimeRunner(manifest.artifact_for(precision), (Provider.CPU,), 1, 1) as local:
        want = local.infer({"input": x})["output"]
    with runner_for(manifest, url, precision, protocol=protocol, shared_memory=shm) as remote:
        assert remote.use_shm is (shm is SharedMemory.SYSTEM)
        assert remote.io.dynamic_batch and remote.io.max_batch == max_batch
        got = remote.infer({"input": x})["output"]
        again = remote.infer({"input": x[:1]})["output"]  # a smaller call after a larger one (shm regions reused)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want)
    assert np.array_equal(again, want[:1])


def test_server_merges_requests_of_several_stations(manifest, triton_server):
    stations = [runner_for(manifest, triton_server.grpc_url, shared_memory=SharedMemory.NONE) for _ in range(4)]
    for r in stations:
        r.activate()
    start = threading.Barrier(len(stations))
    errors = []

    def station(r: TritonRunner, seed: int) -> None:
        try:
            start.wait()
            for i in range(3):
                r.infer({"input": frames(1, seed=seed * 10 + i)})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=station, args=(r, i)) for i, r in enumerate(stations)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    batches = {int(k): v for k, v in stations[0].remote_stats()["server_batch_sizes"].items()}
    for r in stations:
        r.deactivate()
    assert sum(k * v for k, v in batches.items()) == 12  # every station's frames, each executed once
    assert max(batches) > 1, batches  # the server's dynamic batcher merged requests of different stations


def test_batch_over_max_and_wrong_shape_are_refused(manifest, triton_server, max_batch):
    with runner_for(manifest, triton_server.grpc_url) as r:
        with pytest.raises(ModelError, match="refused") as over:
            r.infer({"input": frames(max_batch + 1)})
        with pytest.raises(ModelError, match="refused") as shape:
            r.infer({"input": np.zeros((1, 3, 64, 64), np.float32)})
        assert not isinstance(over.value, RemoteUnavailable) and not isinstance(shape.value, RemoteUnavailable)
        assert r.infer({"input": frames(max_batch)})["output"].shape == (max_batch, 1, 64, 96)
        assert r.counters.failures == 0 and r.counters.reconnects == 0  # a refusal is not an outage


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
def test_a_slow_server_times_out_and_the_runner_backs_off(manifest, triton_server, protocol):
    url = triton_server.grpc_url if protocol is Protocol.GRPC else triton_server.http_url
    with runner_for(manifest, url, model="us-enhance-fp32-slow", timeout_ms=100, protocol=protocol,
                    backoff_ms=(60_000.0, 60_000.0)) as r:
        with pytest.raises(RemoteUnavailable):
            r.infer({"input": frames(1)})
        assert r.counters.timeouts == 1 and r.counters.failures == 1
        with pytest.raises(RemoteUnavailable, match="retrying in"):  # backing off: not sent at all
            r.infer({"input": frames(1)})
        assert r.counters.skipped == 1 and r.counters.calls == 0


def test_activate_refuses_a_server_that_does_not_serve_the_bundle(manifest, triton_server):
    with pytest.raises(ModelError, match="sha256"):
        runner_for(manifest, triton_server.grpc_url, Precision.INT8_CPU, model="us-enhance-fp32").activate()
    with pytest.raises(ConfigError, match="does not serve"):
        runner_for(manifest, triton_server.grpc_url, model="no-such-model").activate()
    with pytest.raises(BackendUnavailable, match="unreachable"):
        runner_for(manifest, f"127.0.0.1:{_closed_port()}", connect_timeout_ms=500).activate()


def _closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


@pytest.mark.parametrize("extra,code,words", [
    (["--triton-model", "nope"], 2, "does not serve"),
    (["--precision", "int8-cpu", "--triton-model", "us-enhance-fp32"], 3, "not this bundle"),
    (["--triton-url", "localhost"], 2, "HOST:PORT"),
])
def test_cli_wrong_model_or_config_is_one_line(triton_server, tmp_path, capsys, extra, code, words):
    args = ["run", "--source", CINE, "--backend", "triton", "--triton-url", triton_server.grpc_url,
            "--max-frames", "2", "--sink", "null", "--out", str(tmp_path)] + extra
    assert main(args) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err


def test_cli_unreachable_server_exit_code(tmp_path, capsys, triton_venv):
    args = ["run", "--source", CINE, "--backend", "triton", "--triton-url", f"127.0.0.1:{_closed_port()}",
            "--max-frames", "2", "--sink", "null", "--out", str(tmp_path)]
    assert main(args) == BackendUnavailable.exit_code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unreachable" in err


def test_two_streams_report_the_batches_the_server_formed(triton_server, tmp_path):
    out = tmp_path / "out"
    args = ["run", "--source", CINE, "--source", CINE, "--backend", "triton", "--triton-url", triton_server.grpc_url,
            "--precision", "fp32", "--max-frames", "6", "--sink", "null", "--out", str(out), "--no-fidelity",
            "--budget-ms", "5000"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    remote = report["scheduler"]["remote"]
    assert report["combined"]["enhanced"] == 12 and remote["failures"] == 0
    sent = {int(k): v for k, v in remote["sent_batch_sizes"].items()}
    formed = {int(k): v for k, v in remote["server_batch_sizes"].items()}
    # every frame the streams sent (and the warm-up calls) was executed by the server in the batches it reports
    assert sum(k * v for k, v in formed.items()) == sum(k * v for k, v in sent.items()) >= 12


def test_two_station_processes_against_one_server(triton_server, tmp_path):
    """Stations are separate `ganrt run` processes; each report gives the server's batches meanwhile."""
    outs = [tmp_path / f"station{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "ganrt.runtime.cli", "run", "--source", CINE, "--backend", "triton",
                               "--triton-url", triton_server.grpc_url, "--precision", "fp32", "--max-frames", "8",
                               "--sink", "null", "--out", str(out), "--no-fidelity", "--budget-ms", "5000", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for out in outs]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    for out in outs:
        report = json.loads((out / "report.json").read_text())
        remote = report["remote"]
        assert report["enhanced"] == 8 and remote["failures"] == 0 and remote["shared_memory"] == "system"
        sent = sum(int(k) * v for k, v in remote["sent_batch_sizes"].items())
        formed = sum(int(k) * v for k, v in remote["server_batch_sizes"].items())
        assert sent >= 8 and formed >= sent  # the server also ran the other station's frames meanwhile


class _UntilRecovered(FakeSource):
    """Frames every 20 ms until ``stop_at`` is set (the test decides when it has seen enough)."""

    def __init__(self, on_read, stop_at: threading.Event) -> None:
        super().__init__(make_frames(2000, (64, 96)), on_read=on_read)
        self.stop_at = stop_at

    def _next_pixels(self):
        if self.stop_at.is_set():
            return None
        time.sleep(0.02)
        return super()._next_pixels()


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
def test_server_killed_mid_stream_gives_raw_frames_then_recovers(manifest, own_server, protocol):
    restarted, stop = threading.Event(), threading.Event()
    seen_after: list[int] = []

    def on_read(i: int) -> None:
        if i == 10:
            own_server.stop(signal.SIGKILL)  # the server dies as in a crash
        elif i == 15:
            threading.Thread(target=lambda: (own_server.start(), restarted.set()), daemon=True).start()
        if restarted.is_set():
            seen_after.append(i)
            stop.set() if len(seen_after) > 100 else None  # 2 s of frames after the server is back

    url = own_server.grpc_url if protocol is Protocol.GRPC else own_server.http_url
    runner = runner_for(manifest, url, timeout_ms=2000, backoff_ms=(100.0, 500.0), protocol=protocol)
    with runner:
        enhancer = Enhancer(runner, manifest)
        record = Record.for_enhancer(enhancer)
        report = run(_UntilRecovered(on_read, stop), enhancer, config=PipelineConfig.with_budget(5000.0),
                     record=record)
        stats = runner.remote_stats()
    rows = record.rows
    assert restarted.is_set()
    assert [r.index for r in rows] == list(range(len(rows)))  # every frame recorded once
    assert all(r.outcome is Outcome.ENHANCED for r in rows[:10])
    down = [r for r in rows if r.reason is Reason.REMOTE_UNAVAILABLE]
    assert down
    assert {r.reason for r in rows if r.outcome is Outcome.PASSTHROUGH} == {Reason.REMOTE_UNAVAILABLE}
    tail = [r.reason.value or "enhanced" for r in rows[-20:]]
    assert tail == ["enhanced"] * 20, (tail, stats)  # back to enhanced after the restart
    assert report.passthrough == {"remote-unavailable": len(down)}
    assert stats["reconnects"] >= 1 and stats["failures"] >= 1 and stats["skipped_while_down"] >= 1
