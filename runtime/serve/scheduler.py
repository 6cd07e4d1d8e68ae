"""One runner, several streams: a thread that owns the runner and makes every call to it.

A runner is not thread-safe (a TensorRT context and its bound buffers are not, and an ONNX
Runtime session sized for the machine's cores gains nothing from two callers at once), and on
a cart one model instance is all the memory there is. So each stream's pipeline gets a
``StreamRunner``: it looks like a runner but only queues a request, and ``SharedRunner``'s
thread serves the queue:

- requests waiting together whose inputs agree (same names, shapes and dtypes) go into one
  call of N frames stacked on axis 0, up to ``max_batch``, when the runner takes a dynamic
  batch (``IOSpec.dynamic_batch``); otherwise, and when shapes differ, one call per request
  in arrival order (serial);
- nothing waits to fill a batch: requests that arrive while the runner is busy are batched
  on its next turn, so batching removes queueing and never adds latency;
- a batched call that fails is retried one request at a time, so one stream's bad input
  fails only that stream's frame (except when a remote server is unavailable: every request
  of the batch gets that failure at once).

Each stream keeps its own Enhancer (pre/post run on the stream's own thread), deadline
policy and inference timeout; the time a request waits here is part of its ``infer_ms``,
which is what the stream's deadline policy must predict.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelError, RemoteUnavailable

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 2.0  # a runner stuck in a call must not keep the process from ending


class BatchMode(Enum):
    BATCH = "batch"  # inputs that agree share one call
    SERIAL = "serial"  # one call per request


@dataclass(frozen=True)
class SchedulerConfig:
    max_batch: int = 4  # frames in one call at most
    batching: bool = True  # False: serial even when the runner could batch (for comparisons)

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1 (got {self.max_batch})")


@dataclass
class SchedulerStats:
    """Written only by the serving thread; read after ``close``."""

    requests: Counter = field(default_factory=Counter)  # per stream
    batch_sizes: Counter = field(default_factory=Counter)  # requests per runner call -> calls
    batch_failures: int = 0  # batched calls that failed and were retried one by one

    @property
    def calls(self) -> int:
        return sum(self.batch_sizes.values())

    def to_dict(self) -> dict[str, Any]:
        return {"requests": sum(self.requests.values()), "requests_by_stream": {str(k): v for k, v in
                                                                                 sorted(self.requests.items())},
                "runner_calls": self.calls, "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                "batch_failures": self.batch_failures}


@dataclass
class _Request:
    stream: int
    feeds: dict[str, np.ndarray]
    future: Future

    @property
    def key(self) -> tuple:
        return tuple(sorted((k, v.shape, v.dtype.str) for k, v in self.feeds.items()))


class SharedRunner:
    """Owns an activated runner. ``threaded=False`` starts no thread: the caller serves the
    queue with ``serve_pending`` (deterministic tests)."""

    def __init__(self, runner, config: SchedulerConfig = SchedulerConfig(), *, threaded: bool = True) -> None:
        if getattr(runner, "io", None) is None:
            raise ConfigError("activate the runner before sharing it between streams")
        self.runner, self.io, self.config = runner, runner.io, config
        self.name = getattr(runner, "name", type(runner).__name__)
        can_batch = bool(getattr(self.io, "dynamic_batch", False))
        own = getattr(self.io, "max_batch", None)  # e.g. a TensorRT profile's largest batch
        self.max_batch = min(config.max_batch, own) if own else config.max_batch
        self.mode = BatchMode.BATCH if config.batching and self.max_batch > 1 and can_batch else BatchMode.SERIAL
        self.why_serial = "" if self.mode is BatchMode.BATCH else (
            "the model has a fixed batch size of 1" if not can_batch else "batching turned off")
        self.stats = SchedulerStats()
        self._pending: collections.deque[_Request] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        if threaded:  # daemon: a runner stuck in a call must not keep the process alive
            self._thread = threading.Thread(target=self._loop, name="ganrt-scheduler", daemon=True)
            self._thread.start()

    def client(self, stream: int) -> StreamRunner:
        return StreamRunner(self, stream)

    def submit(self, stream: int, feeds: Mapping[str, np.ndarray]) -> Future:
        fut: Future = Future()
        with self._cond:
            if self._closed:
                fut.set_exception(ModelError("the shared runner is closed"))
                return fut
            self._pending.append(_Request(stream, dict(feeds), fut))
            self._cond.notify()
        return fut

    # --- serving -----------------------------------------------------------------------------
    def serve_pending(self) -> int:
        """Serve everything queued now: one turn of the serving thread. Returns requests taken."""
        with self._cond:
            taken = list(self._pending)
            self._pending.clear()
        for group in self._plan(taken):
            self._serve(group)
        return len(taken)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
            self.serve_pending()

    def _plan(self, requests: list[_Request]) -> list[list[_Request]]:
        """Calls to make, in order of each group's first arrival."""
        if self.mode is BatchMode.SERIAL:
            return [[r] for r in requests]
        groups: dict[tuple, list[_Request]] = {}
        for r in requests:
            groups.setdefault(r.key, []).append(r)
        n = self.max_batch
        return [g[i:i + n] for g in groups.values() for i in range(0, len(g), n)]

    def _serve(self, group: list[_Request]) -> None:
        live = [r for r in group if r.future.set_running_or_notify_cancel()]
        for r in live:
            self.stats.requests[r.stream] += 1
        if len(live) > 1:
            try:
                outs = self._call_batch(live)
            except RemoteUnavailable as exc:  # the server is away: one by one would only ask it again
                for r in live:
                    r.future.set_exception(exc)
                return
            except Exception as exc:  # noqa: BLE001 - retried one by one: only the bad input fails
                self.stats.batch_failures += 1
                log.warning("a batch of %d failed (%s: %s); serving its requests one by one",
                            len(live), type(exc).__name__, exc)
            else:
                for r, out in zip(live, outs):
                    r.future.set_result(out)
                return
        for r in live:
            self._call_one(r)

    def _call_one(self, r: _Request) -> None:
        self.stats.batch_sizes[1] += 1
        try:
            r.future.set_result(self.runner.infer(r.feeds))
        except BaseException as exc:  # noqa: BLE001 - delivered to the stream, which shows the raw frame
            r.future.set_exception(exc)

    def _call_batch(self, live: list[_Request]) -> list[dict[str, np.ndarray]]:
        stacked = {k: np.concatenate([r.feeds[k] for r in live], axis=0) for k in live[0].feeds}
        per = next(iter(live[0].feeds.values())).shape[0]  # frames per request (1 from the Enhancer)
        total = per * len(live)
        outs = self.runner.infer(stacked)
        self.stats.batch_sizes[len(live)] += 1
        bad = {k: v.shape for k, v in outs.items() if np.ndim(v) == 0 or v.shape[0] != total}
        if bad:
            raise ModelError(f"batched call of {total} returned outputs of shapes {bad}")
        return [{k: v[i * per:(i + 1) * per] for k, v in outs.items()} for i in range(len(live))]

    # --- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        """Serve what is queued, then stop. A call stuck in the runner is left behind (daemon)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(CLOSE_WAIT_S)
        else:
            self.serve_pending()

    def __enter__(self) -> SharedRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamRunner:
    """One stream's view of the shared runner: a runner whose ``infer`` waits its turn.
    Activation belongs to the shared runner; entering or leaving this one does nothing."""

    def __init__(self, shared: SharedRunner, stream: int) -> None:
        self.shared, self.stream = shared, stream
        self.name, self.io = shared.name, shared.io

    def activate(self):
        return self.io

    def deactivate(self) -> None:
        pass

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.shared.submit(self.stream, feeds).result()

    def __enter__(self) -> StreamRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
