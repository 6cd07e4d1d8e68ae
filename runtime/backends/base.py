"""The runner interface every backend implements (Polygraphy's shape).

Cheap constructor; heavy work in ``activate``; usable as a context manager. ``RunnerBase`` is a
template: its public ``activate`` / ``infer`` / ``deactivate`` keep the activation state and check
every feed once, then call the runner's ``activate_impl`` / ``infer_impl`` / ``deactivate_impl``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import BackendUnavailable, GanrtError, ModelError

log = logging.getLogger(__name__)


class Backend(Enum):
    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"
    TORCH = "torch"
    TRITON = "triton"  # a Triton Inference Server over the network (runtime/backends/triton/runner.py)


@dataclass(frozen=True)
class InputLayout:
    """What a runner declares its input must look like; ``RunnerBase.infer`` checks it."""

    channels: int  # N x channels x H x W (NCHW), N >= 1
    multiple: int = 1  # H and W are positive multiples of this
    floating: bool = True  # the feed's dtype is a floating-point one (the runner casts it)


@dataclass(frozen=True)
class IOSpec:
    input_name: str
    output_name: str
    input_dtype: np.dtype
    description: str = ""  # e.g. "onnxruntime 1.32 [CPUExecutionProvider]"
    dynamic_batch: bool = False  # infer() takes N>1 frames stacked on axis 0 (the shared runner batches streams)
    max_batch: int | None = None  # the most frames infer() takes at once (None: no limit of its own)
    layout: InputLayout | None = None  # checked by RunnerBase.infer (None: the runner's library checks)


@runtime_checkable
class Runner(Protocol):
    name: str

    def activate(self) -> IOSpec: ...

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def deactivate(self) -> None: ...

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc: object) -> None: ...


class RunnerBase:
    """The life cycle every concrete runner shares; subclasses implement the ``*_impl`` methods.

    - ``activate()``: a no-op while active; else ``activate_impl()`` -> the IOSpec kept in ``io``.
      When it fails, ``deactivate_impl()`` frees what it made, and an exception that is not a ganrt
      error becomes BackendUnavailable naming ``start_label`` (when set; otherwise it propagates).
    - ``infer(feeds)``: ModelError unless active and ``feeds`` hold ``io.input_name``; the input is
      checked against ``io.layout`` (when declared); then ``infer_impl(feeds)``.
    - ``deactivate()``: ``deactivate_impl()`` (which must be idempotent: it also runs after a failed
      activate and on a runner that is not active), then ``io`` is cleared.
    """

    name = "base"
    io: IOSpec | None = None
    start_label: str | None = None  # e.g. "the TensorRT runner", for start-up failures of other libraries
    input_owner = "model"  # whose input a missing feed names ("feeds lack the model's input ...")

    def activate_impl(self) -> IOSpec:  # pragma: no cover - overridden
        raise NotImplementedError

    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def deactivate_impl(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def active(self) -> bool:
        return self.io is not None

    def activate(self) -> IOSpec:
        if self.io is not None:
            return self.io
        try:
            io = self.activate_impl()
        except BaseException as exc:
            self.deactivate_impl()
            if isinstance(exc, GanrtError) or not isinstance(exc, Exception) or self.start_label is None:
                raise
            # the backend library's own exception types: one line, our class
            raise BackendUnavailable(f"{self.start_label} could not start ({exc.__class__.__name__}: "
                                     f"{one_line(exc)})") from None
        self.io = io
        return io

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        io = self.io  # read once: another thread may deactivate meanwhile
        if io is None:
            raise ModelError("runner used before activate()")
        name = io.input_name
        if name not in feeds:
            raise ModelError(f"feeds lack the {self.input_owner}'s input {name!r} (got {', '.join(feeds) or 'nothing'})")
        if io.layout is not None:
            feeds = {**feeds, name: check_layout(np.asarray(feeds[name]), name, io.layout)}
        return self.infer_impl(feeds)

    def deactivate(self) -> None:
        try:
            self.deactivate_impl()
        finally:
            self.io = None

    def __enter__(self):
        if not self.active:
            self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self.deactivate()
        self.io = None

    @staticmethod
    def attempt(problems: list[str], fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)``; a failure is noted in ``problems`` instead of raised, so a teardown frees
        everything it can and reports once (``report_problems``)."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 teardown goes on
            problems.append(f"{getattr(fn, '__name__', fn)}: {exc.__class__.__name__}: {exc}")

    def report_problems(self, problems: list[str], what: str = "teardown") -> None:
        if problems:
            log.warning("%s runner %s: %s", self.name, what, "; ".join(problems))


def check_layout(x: np.ndarray, name: str, layout: InputLayout) -> np.ndarray:
    """``x`` when it fits ``layout``, else a ModelError saying what the input must be."""
    c, m = layout.channels, layout.multiple
    if x.ndim != 4 or x.shape[1] != c:
        raise ModelError(f"input {name!r} must be N x {c} x H x W (NCHW); got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    if n < 1 or h < 1 or w < 1 or h % m or w % m:
        raise ModelError(f"input {name!r} must have N >= 1 and H, W positive multiples of {m} "
                         f"(got {n}x{c}x{h}x{w}); pad the frame first")
    if layout.floating and x.dtype.kind != "f":
        raise ModelError(f"input {name!r} must be floating point in the manifest's range (got {x.dtype})")
    return x


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, at most ``limit`` characters."""
    return " ".join(str(exc).split())[:limit]
