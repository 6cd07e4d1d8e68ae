"""The triton backend without a server: the profile's [triton] section, the --triton-* overrides,
the registry's choice, and what the pipeline does with a remote-unavailable frame."""

from __future__ import annotations

import argparse

import pytest
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest

from ganrt.runtime.backends.base import Backend
from ganrt.runtime.backends.registry import select
from ganrt.runtime.backends.triton.contract import Protocol, SharedMemory, TritonOptions
from ganrt.runtime.cli.triton_options import apply_triton_args
from ganrt.runtime.errors import ConfigError, RemoteUnavailable
from ganrt.runtime.frames import Outcome, Reason
from ganrt.runtime.model.manifest import Manifest, bundled_model_dir
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.model.profiles import DeviceProfile
from ganrt.runtime.records.record import Record
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import PolicyConfig

BASE = {"name": "hub", "budget_ms": 40.0, "input_hw": [512, 512], "precision": "fp32"}


def test_profile_triton_section():
    p = DeviceProfile.from_dict({**BASE, "backends": ["triton"],
                                 "triton": {"url": "gpu-server:8001", "protocol": "http", "timeout_ms": 30}}, "hub.toml")
    assert p.triton == TritonOptions(url="gpu-server:8001", protocol=Protocol.HTTP, timeout_ms=30.0)
    assert not p.triton.is_local and TritonOptions(url="127.0.0.1:8001").is_local
    with pytest.raises(ConfigError, match="triton.bogus"):
        DeviceProfile.from_dict({**BASE, "backends": ["triton"], "triton": {"bogus": 1}}, "hub.toml")
    with pytest.raises(ConfigError, match="HOST:PORT"):
        DeviceProfile.from_dict({**BASE, "backends": ["triton"], "triton": {"url": "grpc://gpu"}}, "hub.toml")


def test_command_line_overrides_the_profile():
    p = DeviceProfile.from_dict({**BASE, "backends": ["triton"], "triton": {"url": "a:1", "timeout_ms": 30}}, "h")
    args = argparse.Namespace(triton_url="b:2", triton_model="m", triton_protocol=None, triton_shm="none",
                              triton_timeout_ms=None, budget_ms=[50.0, 20.0])
    t = apply_triton_args(p, args).triton
    assert (t.url, t.model, t.shared_memory, t.timeout_ms) == ("b:2", "m", SharedMemory.NONE, 30.0)
    p = DeviceProfile.from_dict({**BASE, "backends": ["triton"]}, "h")
    assert apply_triton_args(p, args).triton.timeout_ms == 20.0  # no timeout set: the tightest frame budget


def test_auto_falls_through_without_a_server_url():
    manifest = Manifest.load(bundled_model_dir())
    p = DeviceProfile.from_dict({**BASE, "backends": ["triton", "onnxruntime"]}, "h")
    assert select(manifest, Backend.AUTO, p).backend is Backend.ONNXRUNTIME
    p = DeviceProfile.from_dict({**BASE, "backends": ["triton", "onnxruntime"], "triton": {"url": "hub:8001"}}, "h")
    sel = select(manifest, Backend.AUTO, p)  # constructing the runner does not touch the network
    assert sel.backend is Backend.TRITON and sel.runner.model == "us-enhance-fp32"


def test_remote_unavailable_frames_go_raw_without_the_local_backoff():
    """The remote runner backs off and reconnects on its own: the deadline policy's failure backoff
    (meant for a broken local backend) stays out, so the stream is enhanced again on the first
    frame the server answers."""
    down = set(range(3, 12))

    def fn(x):
        if runner.calls - 1 in down:
            raise RemoteUnavailable("server away")
        return x.copy()

    clock = ManualClock()
    runner = FakeRunner(clock=clock, latency_ms=1.0, fn=fn)
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=33.0, fail_threshold=3, backoff_frames=8), warmup=0)
    with runner:
        enh = Enhancer(runner, fake_manifest(1), clock=clock)
        rec = Record.for_enhancer(enh)
        report = run(FakeSource(n=20, clock=clock, interval_ns=33_000_000), enh, [], cfg, clock=clock, record=rec)
    got = [(r.outcome, r.reason) for r in rec.rows]
    assert got[:3] == [(Outcome.ENHANCED, Reason.NONE)] * 3
    assert got[3:12] == [(Outcome.PASSTHROUGH, Reason.REMOTE_UNAVAILABLE)] * 9
    assert got[12:] == [(Outcome.ENHANCED, Reason.NONE)] * 8
    assert report.passthrough == {"remote-unavailable": 9}
