"""The ``--triton-*`` options of every command that loads a model; they override the profile's ``[triton]``."""

from __future__ import annotations

import argparse
import dataclasses

from ..backends.triton.contract import Protocol, SharedMemory, TritonOptions
from ..errors import ConfigError


def add_triton_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("triton (--backend triton: the model runs on a Triton Inference Server)")
    g.add_argument("--triton-url", default=None, metavar="HOST:PORT", help="the server (gRPC port, or HTTP port "
                   "with --triton-protocol http)")
    g.add_argument("--triton-model", default=None, metavar="NAME",
                   help="served model (default TASK-PRECISION, as `ganrt export triton` names it)")
    g.add_argument("--triton-protocol", choices=[m.value for m in Protocol], default=None, help="default grpc")
    g.add_argument("--triton-shm", choices=[m.value for m in SharedMemory], default=None,
                   help="system shared memory for frames (default auto: when the server is on this host)")
    g.add_argument("--triton-timeout-ms", type=float, default=None, metavar="MS",
                   help="longest wait for one call (default: the frame budget)")


def _budget(args: argparse.Namespace) -> float | None:
    b = getattr(args, "budget_ms", None)
    if isinstance(b, list):  # `ganrt run`: once, or once per stream -> the tightest
        return min(b) if b else None
    return b


def apply_triton_args(profile, args: argparse.Namespace):
    """The profile with the command line's triton options (and budget) in force."""
    t: TritonOptions = profile.triton
    changes = {}
    for field, attr, conv in (("url", "triton_url", str), ("model", "triton_model", str),
                              ("protocol", "triton_protocol", Protocol), ("shared_memory", "triton_shm", SharedMemory),
                              ("timeout_ms", "triton_timeout_ms", float)):
        value = getattr(args, attr, None)
        if value is not None:
            changes[field] = conv(value)
    if "timeout_ms" not in changes and t.timeout_ms is None and _budget(args):
        changes["timeout_ms"] = float(_budget(args))
    if not changes:
        return profile
    t = dataclasses.replace(t, **changes)
    t.check("--triton-*")
    if t.timeout_ms is not None and t.timeout_ms <= 0:
        raise ConfigError("--triton-timeout-ms must be > 0")
    return dataclasses.replace(profile, triton=t)
