"""Triton runner: the model runs on a Triton Inference Server, this process only sends frames.

- gRPC by default, HTTP as an option (``TritonOptions.protocol``); tritonclient is imported lazily.
- System shared memory when the server is on this host (``shared_memory = auto``): the frame is
  written once into a region the server reads, the output comes back the same way, and only
  the request's description crosses the socket.
- ``activate`` reaches the server within ``connect_timeout_ms`` and refuses a served model
  whose config does not carry this bundle's artifact sha256 and I/O contract
  (``triton_contract.check_model_config``). Unreachable: BackendUnavailable (exit 4); no such
  model: ConfigError (2); a different model: ModelError (3).
- ``infer`` never waits longer than ``timeout_ms`` (the frame budget by default). A call that
  fails to reach the server, or times out, raises ``RemoteUnavailable`` and the runner stays
  down for a backoff that doubles up to a cap: meanwhile calls fail at once, without touching
  the network, so a dead server costs the stream nothing but raw frames. The first call after
  the backoff reconnects: it re-checks the model (a restarted server may serve another one)
  and re-registers shared memory.
- The server batches: ``IOSpec.dynamic_batch`` follows the served ``max_batch_size``, so the
  in-process scheduler sends several streams' frames in one request, and the server's dynamic
  batcher merges requests of several processes. ``stats()`` reads the batch sizes the server
  formed from its statistics endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import BackendUnavailable, ConfigError, GanrtError, ModelError, RemoteUnavailable
from ...lazy import lazy_import
from ...model.manifest import Artifact, Manifest
from ..base import IOSpec, RunnerBase
from .contract import Protocol, SharedMemory, TritonOptions, check_model_config, default_model_name
from .shm import SystemRegions

log = logging.getLogger(__name__)

STATS_READS, STATS_SETTLE_S = 10, 0.02  # statistics read until two reads agree (at most this often)


@dataclass
class RemoteCounters:
    calls: int = 0
    frames: int = 0
    failures: int = 0  # calls that could not reach the server or timed out
    timeouts: int = 0
    skipped: int = 0  # calls refused at once while backing off
    reconnects: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)  # frames per request this process sent


def _client_module(protocol: Protocol):
    return lazy_import(f"tritonclient.{protocol.value}", extra="ganrt[triton]", what="tritonclient")


def batch_counts(stats: Mapping[str, Any]) -> dict[int, int]:
    """``{batch size: executions}`` from a model's inference statistics (JSON form)."""
    out: dict[int, int] = {}
    for model in stats.get("model_stats", []):
        for b in model.get("batch_stats", []):
            out[int(b["batch_size"])] = out.get(int(b["batch_size"]), 0) + int(b["compute_infer"]["count"])
    return out


class TritonRunner(RunnerBase):
    name = "triton"

    def __init__(self, manifest: Manifest, artifact: Artifact, options: TritonOptions, budget_ms: float,
                 *, warm_hw: tuple[int, int] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if options.url is None:
            raise BackendUnavailable("the triton backend needs --triton-url HOST:PORT (or [triton] url in the profile)")
        self.manifest, self._artifact, self.options = manifest, artifact, options
        self.model = options.model or default_model_name(manifest, artifact)
        self.timeout_s = (options.timeout_ms or budget_ms) / 1e3
        self.use_shm = options.shared_memory is SharedMemory.SYSTEM or (
            options.shared_memory is SharedMemory.AUTO and options.is_local)
        self.counters = RemoteCounters()
        self._clock = clock
        self._warm_hw = warm_hw
        self._client = None  # the gRPC client (thread-safe), or over HTTP the sign of being active
        self._local = threading.local()  # over HTTP: each thread's clients (client_for)
        self._regions: SystemRegions | None = None
        self._down_until: float | None = None  # None: connected
        self._backoff_s = options.backoff_ms[0] / 1e3
        self._server_batches_at_start: dict[int, int] = {}
        self.server_batches: dict[int, int] | None = None  # executions per batch size during this run

    @property
    def where(self) -> str:
        return f"triton {self.options.protocol.value}://{self.options.url} model {self.model!r}"

    # --- lifetime ----------------------------------------------------------------------------
    def activate_impl(self) -> IOSpec:
        control = self.options.connect_timeout_ms / 1e3
        try:
            self._open_clients()
            self.client_for(control)
        except Exception as exc:  # noqa: BLE001 - tritonclient raises its own types for a bad url
            raise ConfigError(f"{self.where}: {_short(exc)}") from None
        max_batch = self._check_model(first=True)
        if self.use_shm:
            self._regions = SystemRegions(lambda: self.client_for(control), prefix=f"ganrt_{id(self):x}")
        io = IOSpec(input_name=self.manifest.input.name, output_name=self.manifest.output.name,
                    input_dtype=np.dtype(self.manifest.input.dtype),
                    description=f"{self.where} ({'system shm' if self.use_shm else 'no shm'})",
                    dynamic_batch=max_batch > 0 and self.manifest.dynamic_batch,
                    max_batch=max_batch or 1)
        self._warm_up(io)
        self.mark_server_batches()
        return io

    def _open_clients(self) -> None:
        """A new gRPC client (a new channel), and no HTTP clients yet (made per thread on use)."""
        self._close_clients()
        self._local = threading.local()
        self._client = _client_module(self.options.protocol).InferenceServerClient(url=self.options.url)

    def _close_clients(self) -> None:
        for c in {self._client, *getattr(self._local, "clients", {}).values()} - {None}:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing what may already be broken
                pass

    def client_for(self, timeout_s: float):
        """The client to make a call with. gRPC: the one client (thread-safe; timeouts are per call).
        HTTP: one per thread and timeout (gevent clients belong to their thread, and their timeout
        is the socket's)."""
        if self.options.protocol is Protocol.GRPC:
            return self._client
        clients = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        if timeout_s not in clients:
            clients[timeout_s] = _client_module(self.options.protocol).InferenceServerClient(
                url=self.options.url, connection_timeout=self.options.connect_timeout_ms / 1e3,
                network_timeout=timeout_s)
        return clients[timeout_s]

    def _warm_up(self, io: IOSpec) -> None:
        """One call at the profile's frame size with the connect timeout: the server's first
        execution allocates (and a Python model imports), which must not cost stream frames."""
        if self._warm_hw is None:
            return
        m = self.manifest.size_multiple
        h, w = ((d + m - 1) // m * m for d in self._warm_hw)
        x = np.zeros((1, self.manifest.input.channels, h, w), io.input_dtype)
        budget, self.timeout_s = self.timeout_s, max(self.timeout_s, self.options.connect_timeout_ms / 1e3)
        try:
            self._infer_once(x, io)
        except (RemoteUnavailable, ModelError) as exc:
            log.warning("%s: warm-up call failed (%s)", self.where, exc)
        finally:
            self.timeout_s = budget

    def _check_model(self, first: bool) -> int:
        """The served config against the bundle; returns its max_batch_size."""
        timeout = self.options.connect_timeout_ms / 1e3
        try:
            live = self._call("is_server_live", timeout)
        except Exception as exc:  # noqa: BLE001 - any failure to reach it
            if first:
                raise BackendUnavailable(f"{self.where}: server unreachable ({_short(exc)})") from None
            raise RemoteUnavailable(f"{self.where}: server unreachable ({_short(exc)})") from None
        if not live:
            raise (BackendUnavailable if first else RemoteUnavailable)(f"{self.where}: server not live")
        try:
            config = self._call("get_model_config", timeout, self.model)
        except Exception as exc:  # noqa: BLE001 - unknown model, or (a server coming back) not loaded yet
            raise (ConfigError if first else RemoteUnavailable)(
                f"{self.where}: the server does not serve this model ({_short(exc)})") from None
        config = config.get("config", config)  # gRPC as_json wraps it in {"config": ...}
        return check_model_config(config, self.manifest, self._artifact, self.where)

    def _call(self, method: str, timeout_s: float, *args, **kw):
        """``method`` of this thread's client, never waiting longer than ``timeout_s``."""
        if self.options.protocol is Protocol.GRPC:
            kw["client_timeout"] = timeout_s
            if method in ("get_model_config", "get_inference_statistics"):
                kw["as_json"] = True
        return getattr(self.client_for(timeout_s), method)(*args, **kw)

    def _read_server_batches(self) -> dict[int, int] | None:
        """The server's executions per batch size for this model, read until two reads agree: the
        server may answer a request before it has counted the request's execution."""
        timeout = self.options.connect_timeout_ms / 1e3
        last = None
        for _ in range(STATS_READS):
            try:
                now = batch_counts(self._call("get_inference_statistics", timeout, self.model))
            except Exception as exc:  # noqa: BLE001 - statistics are a report item, never a failure
                log.info("%s: no inference statistics (%s)", self.where, _short(exc))
                return None
            if now == last:
                return now
            last = now
            time.sleep(STATS_SETTLE_S)
        return last

    def mark_server_batches(self) -> None:
        """Count the server's batches from now on (the report's ``server_batch_sizes``)."""
        self._server_batches_at_start = self._read_server_batches() or {}
        self.server_batches = None

    def _update_server_batches(self) -> None:
        """Executions per batch size the server ran for this model since activate (every client's)."""
        now = self._read_server_batches() if self._client is not None and self._down_until is None else None
        if now is not None:
            start = self._server_batches_at_start
            self.server_batches = {b: n - start.get(b, 0) for b, n in sorted(now.items()) if n > start.get(b, 0)}

    def deactivate_impl(self) -> None:
        if self._client is not None:
            if self.io is not None:  # not after a failed activate: the server may be unreachable
                self._update_server_batches()
            if self._regions is not None:
                self._regions.close()
            self._close_clients()
        self._client, self._regions = None, None

    # --- inference ---------------------------------------------------------------------------
    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        io = self.io
        if self._down_until is not None:
            if self._clock() < self._down_until:
                self.counters.skipped += 1
                raise RemoteUnavailable(f"{self.where}: server unavailable, retrying in "
                                        f"{(self._down_until - self._clock()) * 1e3:.0f} ms")
            self._reconnect()
        x = np.ascontiguousarray(feeds[io.input_name])
        try:
            out = self._infer_once(x, io)
        except RemoteUnavailable:
            self._mark_down()
            raise
        self._backoff_s = self.options.backoff_ms[0] / 1e3
        self.counters.calls += 1
        self.counters.frames += x.shape[0]
        self.counters.batch_sizes[x.shape[0]] = self.counters.batch_sizes.get(x.shape[0], 0) + 1
        return {io.output_name: out}

    def _reconnect(self) -> None:
        """Check the model again (a restarted server may serve another one: then stay down) and start
        over with fresh shared-memory regions (a restarted server forgot the registrations, and an
        abandoned call could still write into the old output region). A new client too: a gRPC
        channel that failed to connect waits out its own backoff (seconds, growing) before trying again."""
        try:
            self._open_clients()
            self._check_model(first=False)
            if self._regions is not None:
                self._regions.reset()
        except GanrtError:
            self._mark_down()
            raise
        self._down_until = None
        self.counters.reconnects += 1
        log.warning("%s: reconnected", self.where)

    def _mark_down(self) -> None:
        self.counters.failures += 1
        if self._down_until is None:
            log.warning("%s: unavailable; frames go raw, reconnecting with backoff", self.where)
        self._down_until = self._clock() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self.options.backoff_ms[1] / 1e3)

    def _infer_once(self, x: np.ndarray, io: IOSpec) -> np.ndarray:
        mod = _client_module(self.options.protocol)
        utils = lazy_import("tritonclient.utils", extra="ganrt[triton]", what="tritonclient")
        inp = mod.InferInput(io.input_name, list(x.shape), utils.np_to_triton_dtype(x.dtype))
        out_shape = self._output_shape(x.shape)
        req_out = mod.InferRequestedOutput(io.output_name, **({"binary_data": True}
                                                                   if self.options.protocol is Protocol.HTTP else {}))
        if self._regions is not None:
            out_bytes = int(np.prod(out_shape)) * np.dtype(np.float32).itemsize
            self._regions.bind(x, inp, req_out, out_bytes)
        else:
            inp.set_data_from_numpy(x, **({"binary_data": True} if self.options.protocol is Protocol.HTTP else {}))
        t0 = self._clock()
        try:
            res = self._call("infer", self.timeout_s, self.model, [inp], outputs=[req_out])
        except Exception as exc:  # noqa: BLE001 - sorted into 'unreachable/slow' and 'refused'
            self._raise_for(exc, self._clock() - t0)
        if self._regions is not None:
            return self._regions.output(out_shape)
        return res.as_numpy(io.output_name)

    def _output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        s = self.manifest.scale
        return (shape[0], self.manifest.output.channels, shape[2] * s, shape[3] * s)

    def _raise_for(self, exc: Exception, elapsed_s: float):
        """A server that is down or slow -> RemoteUnavailable; one that refused this request (a
        batch over its max_batch_size, a wrong shape) -> ModelError: the frame was the problem."""
        text = _short(exc)
        status = str(getattr(exc, "status", lambda: "")() or "")
        unreachable = any(k in (status + " " + text) for k in (
            "UNAVAILABLE", "DEADLINE_EXCEEDED", "Deadline Exceeded", "Connection refused", "failed to connect",
            "Socket closed", "timed out", "Broken pipe", "Connection reset"))
        if unreachable or isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            if elapsed_s >= self.timeout_s * 0.95:
                self.counters.timeouts += 1
            raise RemoteUnavailable(f"{self.where}: {text}") from None
        raise ModelError(f"{self.where}: the server refused the request ({text})") from None

    def remote_stats(self) -> dict[str, Any]:
        """For the report: what this process sent and the batches the server formed meanwhile."""
        self._update_server_batches()
        c = self.counters
        return {"url": self.options.url, "model": self.model, "protocol": self.options.protocol.value,
                "shared_memory": "system" if self.use_shm else "none", "timeout_ms": round(self.timeout_s * 1e3, 1),
                "calls": c.calls, "frames": c.frames, "failures": c.failures, "timeouts": c.timeouts,
                "skipped_while_down": c.skipped, "reconnects": c.reconnects,
                "sent_batch_sizes": {str(k): v for k, v in sorted(c.batch_sizes.items())},
                "server_batch_sizes": ({str(k): v for k, v in self.server_batches.items()}
                                       if self.server_batches is not None else None)}


def _short(exc: BaseException) -> str:
    msg = getattr(exc, "message", None)
    text = msg() if callable(msg) else str(exc)
    return " ".join(str(text or type(exc).__name__).split())[:240]
