"""The torch runner's per-shape static buffers (pinned host staging + device) and CUDA graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import RunnerBase


@dataclass
class Slot:
    """Static buffers (and the CUDA graph) for one input shape."""

    shape: tuple[int, ...]
    h_in: Any  # pinned float32 NCHW (host staging)
    d_in: Any  # device float32 NCHW
    d_out: Any  # device float32 NCHW
    h_out: Any  # pinned float32 NCHW
    h_in_np: np.ndarray
    h_out_np: np.ndarray
    graph: Any = None
    events: tuple = ()
    calls: int = 0


def new_slot(torch: Any, shape: tuple[int, ...], scale: int, device: Any, timed: bool) -> Slot:
    """Float32 NCHW buffers for input ``shape`` and its output (``scale`` times H and W); with
    ``timed``, four CUDA timing events (around H2D, compute and D2H)."""
    h_in = torch.empty(shape, dtype=torch.float32, pin_memory=True)
    n, c, h, w = shape
    out_shape = (n, c, h * scale, w * scale)
    h_out = torch.empty(out_shape, dtype=torch.float32, pin_memory=True)
    slot = Slot(shape=shape, h_in=h_in, d_in=torch.empty(shape, dtype=torch.float32, device=device),
                d_out=torch.empty(out_shape, dtype=torch.float32, device=device), h_out=h_out,
                h_in_np=h_in.numpy(), h_out_np=h_out.numpy())
    if timed:
        slot.events = tuple(torch.cuda.Event(enable_timing=True) for _ in range(4))
    return slot


def free_slot(slot: Slot, problems: list[str]) -> None:
    """Drop a slot's graph and buffers; failures go to ``problems`` (the caller reports them)."""
    if slot.graph is not None:
        RunnerBase.attempt(problems, slot.graph.reset)
    slot.graph = None
    slot.h_in = slot.d_in = slot.d_out = slot.h_out = None
    slot.h_in_np = slot.h_out_np = np.empty(0, np.float32)  # the numpy views kept the pinned tensors alive
    slot.events = ()
