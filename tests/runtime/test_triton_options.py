"""The triton backend's options: the profile's [triton] section, the --triton-* overrides and the
registry's choice (no server needed)."""

from __future__ import annotations

import argparse

import pytest

from ganrt.runtime.backends.base import Backend
from ganrt.runtime.backends.registry import select
from ganrt.runtime.backends.triton_contract import Protocol, SharedMemory, TritonOptions
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.manifest import Manifest, bundled_model_dir
from ganrt.runtime.profiles import DeviceProfile
from ganrt.runtime.triton_cli import apply_triton_args

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
