"""Deterministic stand-ins: a source and a runner that move a ManualClock instead of sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from ganrt.runtime.backends.base import IOSpec, RunnerBase
from ganrt.runtime.model.manifest import Manifest, TensorSpec
from ganrt.runtime.serve.clock import Clock, ManualClock
from ganrt.runtime.sources.base import SourceBase

__all__ = ["FakeRunner", "FakeSource", "ManualClock", "fake_manifest", "make_frames"]


def make_frames(n: int, hw: tuple[int, int] = (32, 48), channels: int = 1, dtype=np.uint8,
                seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    hi = 255 if dtype == np.uint8 else 65535
    shape = hw if channels == 1 else (*hw, channels)
    return [rng.integers(0, hi + 1, size=shape, dtype=np.uint64).astype(dtype) for _ in range(n)]


class FakeSource(SourceBase):
    """Frames from a list (or ``n`` random ones); each read moves the clock by ``interval_ns``
    first (the time the 'camera' took to deliver it). ``on_read(index)`` runs before a frame
    is produced; it may raise (a failing or interrupted source)."""

    def __init__(self, frames: Sequence[np.ndarray] | None = None, n: int = 10, hw: tuple[int, int] = (32, 48),
                 clock: Clock | None = None, interval_ns: int = 0, live: bool = False, channels: int = 1,
                 dtype=np.uint8, fps: float = 30.0, on_read: Callable[[int], None] | None = None) -> None:
        self.frames = list(frames) if frames is not None else make_frames(n, hw, channels, dtype)
        self.clock_ = clock or ManualClock()
        super().__init__("fake", fps=fps, frame_count=len(self.frames), live=live, clock=self.clock_)
        self.interval_ns, self.on_read = interval_ns, on_read
        self._pos = 0

    def _next_pixels(self) -> np.ndarray | None:
        if self._pos >= len(self.frames):
            return None
        if self.on_read is not None:
            self.on_read(self._pos)
        if self.interval_ns and isinstance(self.clock_, ManualClock):
            self.clock_.advance(self.interval_ns)
        img = self.frames[self._pos]
        self._pos += 1
        return img


class FakeRunner(RunnerBase):
    """A runner whose latency is set. Indices in ``fail_on``/``nan_on``/``hang_on`` count
    ``infer`` calls (0-based), not frames. A hung call waits for ``release`` (set it at teardown).
    The output is ``fn(input)`` (identity by default). ``dynamic_batch`` says it takes N>1 frames;
    ``shapes`` and ``threads`` note each call's input shape and calling thread."""

    name = "fake"

    def __init__(self, latency_ms: float | Callable[[int], float] = 5.0, clock: ManualClock | None = None,
                 fail_on: Iterable[int] = (), nan_on: Iterable[int] = (), hang_on: Iterable[int] = (),
                 fn: Callable[[np.ndarray], np.ndarray] | None = None, input_dtype=np.float32,
                 dynamic_batch: bool = False) -> None:
        self.latency_ms, self.clock = latency_ms, clock
        self.fail_on, self.nan_on, self.hang_on = set(fail_on), set(nan_on), set(hang_on)
        self.fn = fn or (lambda x: x.copy())
        self.input_dtype = np.dtype(input_dtype)
        self.release = threading.Event()
        self.returned = threading.Event()  # a hung call came back
        self.calls = 0
        self.dynamic_batch = dynamic_batch
        self.shapes: list[tuple[int, ...]] = []
        self.threads: list[str] = []

    def activate_impl(self) -> IOSpec:
        return IOSpec("input", "output", self.input_dtype, "fake runner", dynamic_batch=self.dynamic_batch)

    def deactivate_impl(self) -> None:
        self.release.set()

    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        i = self.calls
        self.calls += 1
        x = feeds["input"]
        self.shapes.append(tuple(x.shape))
        self.threads.append(threading.current_thread().name)
        ms = self.latency_ms(i) if callable(self.latency_ms) else self.latency_ms
        if self.clock is not None:
            self.clock.advance_ms(ms)
        if i in self.hang_on:
            self.release.wait()
            self.returned.set()
        if i in self.fail_on:
            raise RuntimeError(f"fake backend failure on call {i}")
        if i in self.nan_on:
            return {"output": np.full(x.shape, np.nan, x.dtype)}
        return {"output": self.fn(x)}


def fake_manifest(channels: int = 1, size_multiple: int = 4, value_range=(0.0, 1.0), color_order: str | None = None,
                  out_channels: int | None = None) -> Manifest:
    def spec(name: str, c: int) -> TensorSpec:
        return TensorSpec(name, c, value_range=tuple(value_range),
                          color_order=color_order or ("gray" if c == 1 else "bgr"))

    from pathlib import Path

    from ganrt.runtime.model.manifest import Artifact, Precision

    art = Artifact("fp32", Path("fake.onnx"), Precision.FP32, "f" * 64)
    return Manifest(root=Path("."), task="us-enhance", input=spec("input", channels),
                    output=spec("output", out_channels or channels), size_multiple=size_multiple, scale=1,
                    artifacts={"fp32": art}, raw={})
