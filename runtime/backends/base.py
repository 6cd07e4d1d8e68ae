"""The runner interface every backend implements (Polygraphy's shape).

Cheap constructor; heavy work in ``activate``; usable as a context manager.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Mapping, Protocol, runtime_checkable

import numpy as np


class Backend(Enum):
    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"
    TORCH = "torch"
    TRITON = "triton"  # a Triton Inference Server over the network (runtime/backends/triton/runner.py)


@dataclass(frozen=True)
class IOSpec:
    input_name: str
    output_name: str
    input_dtype: np.dtype
    description: str = ""  # e.g. "onnxruntime 1.32 [CPUExecutionProvider]"
    dynamic_batch: bool = False  # infer() takes N>1 frames stacked on axis 0 (the shared runner batches streams)
    max_batch: int | None = None  # the most frames infer() takes at once (None: no limit of its own)


@runtime_checkable
class Runner(Protocol):
    name: str

    def activate(self) -> IOSpec: ...

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def deactivate(self) -> None: ...

    def __enter__(self) -> "Runner": ...

    def __exit__(self, *exc: object) -> None: ...


class RunnerBase:
    """Context-manager plumbing shared by concrete runners."""

    name = "base"
    io: IOSpec | None = None

    def activate(self) -> IOSpec:  # pragma: no cover - overridden
        raise NotImplementedError

    def deactivate(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def active(self) -> bool:
        return self.io is not None

    def __enter__(self):
        if not self.active:
            self.io = self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self.deactivate()
        self.io = None
