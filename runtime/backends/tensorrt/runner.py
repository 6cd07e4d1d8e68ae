"""TensorRT runner: a cached (or freshly built) strongly typed engine on its own CUDA stream.

Cheap constructor; ``activate()`` probes the device, gets the engine from ``load_or_build``,
deserializes it, creates the execution context, a stream and pinned host + device buffers.
``infer`` sets the input shape only when it changes, binds tensors by name
(``set_tensor_address``) and launches with ``execute_async_v3``. With CUDA graphs the
copy-in / execute / copy-out sequence is captured once per input shape and replayed: one graph
per shape (batch size included, at most ``MAX_GRAPHS``, least recently used dropped), so streams
batched 1..max_batch frames at a time do not recapture on every change; all are dropped when the
buffers move. A failed capture ends the capture, frees its graph, clears CUDA's last error and
turns graphs off for the runner (as trtexec does). Graphs are never used with a DLA engine
(capture fails there). ``deactivate`` frees everything and is idempotent.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BackendUnavailable, EngineMismatch, GanrtError, ModelError
from ...lazy import lazy_import
from ...model.manifest import Artifact, Manifest
from ..base import IOSpec, RunnerBase, one_line
from . import cuda_mem
from .builder import EngineBuilder, TensorRTBuilder
from .identity import Probe, ShapeProfile, check_trt_precision, probe_device
from .load import LoadResult, load_or_build

log = logging.getLogger(__name__)

MAX_GRAPHS = 8  # captured graphs kept per runner (one per input shape)


def check_available() -> None:
    """Raise BackendUnavailable (one line) unless TensorRT imports and a CUDA GPU answers."""
    trt = lazy_import("tensorrt", extra="trt", what="TensorRT")
    from .builder import check_tensorrt_version

    check_tensorrt_version(str(trt.__version__))
    probe_device()


class TensorRTRunner(RunnerBase):
    name = "tensorrt"
    start_label = "the TensorRT runner"
    input_owner = "engine"

    def __init__(self, manifest: Manifest, artifact: Artifact, profile, cache_dir: Path | str | None = None, *,
                 no_build: bool = False, cuda_graphs: bool | None = None, builder: EngineBuilder | None = None,
                 probe: Probe | None = None, cuda: Callable[[], cuda_mem.CudaMem] | None = None,
                 trt: Any = None) -> None:
        """``builder``, ``probe``, ``cuda`` (a CudaMem factory) and ``trt`` (the tensorrt module)
        default to the real ones; tests inject fakes."""
        self._manifest, self._artifact, self._profile = manifest, artifact, profile
        self._cache_dir, self._no_build = cache_dir, no_build
        self._graphs_wanted = profile.tensorrt.cuda_graphs if cuda_graphs is None else cuda_graphs
        self._builder, self._probe, self._cuda_factory, self._trt_module = builder, probe, cuda, trt
        self.loaded: LoadResult | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._trt = self._logger = self._runtime = self._engine = self._context = None
        self._mem: cuda_mem.CudaMem | None = None
        self._stream = None
        self._in_name = self._out_name = ""
        self._in_dtype = self._out_dtype = np.dtype(np.float32)
        self._shape_profile: ShapeProfile | None = None
        self._shape: tuple[int, ...] | None = None
        self._out_shape: tuple[int, ...] = ()
        self._in_bytes = self._out_bytes = 0
        self._d_in = self._d_out = self._h_in = self._h_out = None
        self._graph_cache: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._graphs = False
        self._bound = False

    # -- lifecycle --

    def activate_impl(self) -> IOSpec:
        check_trt_precision(self._artifact)
        trt = self._trt_module or lazy_import("tensorrt", extra="trt", what="TensorRT")
        builder = self._builder if self._builder is not None else TensorRTBuilder(trt)
        self.loaded = load_or_build(self._manifest, self._artifact, self._profile, self._cache_dir,
                                    self._no_build, builder=builder, probe=self._probe or probe_device)
        self._trt = trt
        self._mem = (self._cuda_factory or cuda_mem.open_cuda)()
        self._open_engine(trt, self.loaded)
        self.loaded = dataclasses.replace(self.loaded, engine=b"")  # TensorRT holds its own copy now
        facts = self.loaded.facts
        where = facts.device.name if facts else "GPU"
        dla = self.loaded.identity.build.dla_core
        max_n = self._shape_profile.max[0] if self._shape_profile is not None else 1  # the profile's batch range
        return IOSpec(
            input_name=self._in_name,
            output_name=self._out_name,
            input_dtype=self._in_dtype,
            dynamic_batch=max_n > 1,
            max_batch=max_n,
            description=(f"tensorrt {trt.__version__} [{where}{f', DLA core {dla}' if dla is not None else ''}, "
                         f"engine {self.loaded.entry.key[:12]}{', built now' if self.loaded.built else ''}, "
                         f"{self._mem.name}{', CUDA graphs' if self._graphs else ''}]"),
        )

    def _open_engine(self, trt: Any, loaded: LoadResult) -> None:
        self._logger = _quiet_logger(trt)  # must outlive the runtime
        self._runtime = trt.Runtime(self._logger)
        if loaded.identity.build.dla_core is not None:
            self._runtime.DLA_core = int(loaded.identity.build.dla_core)
        self._engine = self._runtime.deserialize_cuda_engine(loaded.engine)
        if self._engine is None:
            raise EngineMismatch(f"TensorRT {trt.__version__} cannot deserialize cached engine {loaded.entry.key[:12]} "
                                 f"({loaded.entry.engine_path}); delete that folder or rebuild with `ganrt engine build`")
        inputs, outputs = [], []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append(name)
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"artifact {self._artifact.key!r}: the engine has inputs {inputs} and outputs {outputs}; "
                             f"ganrt runs single-input, single-output generators")
        self._in_name, self._out_name = inputs[0], outputs[0]
        self._in_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._in_name)))
        self._out_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._out_name)))
        self._shape_profile = next((p for p in loaded.identity.profiles if p.input == self._in_name), None)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendUnavailable("TensorRT could not create an execution context (out of GPU memory?)")
        self._stream = self._mem.stream_create()
        dla = loaded.identity.build.dla_core is not None  # graph capture fails with DLA engines
        self._graphs = bool(self._graphs_wanted and self._mem.supports_graphs and not dla)

    def deactivate_impl(self) -> None:
        """Free everything that exists; safe to call twice and after a failed activate."""
        mem, problems = self._mem, []
        if mem is not None and self._stream is not None:
            self.attempt(problems, mem.stream_synchronize, self._stream)
        self._drop_graph(problems)
        # TensorRT objects first, in reverse order of creation: context -> engine -> runtime
        self._context = None
        self._engine = None
        self._runtime = None
        self._logger = None
        if mem is not None:
            for buf, free in ((self._d_in, mem.free_device), (self._d_out, mem.free_device),
                              (self._h_in, mem.free_pinned), (self._h_out, mem.free_pinned)):
                if buf is not None:
                    self.attempt(problems, free, buf)
            if self._stream is not None:
                self.attempt(problems, mem.stream_destroy, self._stream)
            self.attempt(problems, mem.close)
        self.report_problems(problems)
        self._reset_state()

    # -- inference --

    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(feeds[self._in_name], dtype=self._in_dtype)
        try:
            if x.shape != self._shape:
                self._set_shape(tuple(int(s) for s in x.shape))
            self._h_in.array[: self._in_bytes] = x.reshape(-1).view(np.uint8)
            if self._graphs:
                self._run_graph()
            else:
                self._enqueue()
            self._mem.stream_synchronize(self._stream)
        except GanrtError:
            raise
        except Exception as exc:  # noqa: BLE001 TensorRT / CUDA binding exceptions become one of ours
            raise ModelError(f"TensorRT inference failed ({exc.__class__.__name__}: {one_line(exc)})") from None
        out = self._h_out.array[: self._out_bytes].view(self._out_dtype).reshape(self._out_shape).copy()
        return {self._out_name: out}

    def _enqueue(self) -> None:
        mem, stream = self._mem, self._stream
        mem.memcpy_htod_async(self._d_in, self._h_in, self._in_bytes, stream)
        if not self._context.execute_async_v3(mem.stream_handle(stream)):
            raise ModelError(f"TensorRT execute_async_v3 failed for input shape {self._shape}")
        mem.memcpy_dtoh_async(self._h_out, self._d_out, self._out_bytes, stream)

    def _run_graph(self) -> None:
        mem, stream, shape = self._mem, self._stream, self._shape
        graph = self._graph_cache.get(shape)
        if graph is not None:
            self._graph_cache.move_to_end(shape)
            mem.graph_launch(graph, stream)
            return
        # TensorRT does its shape-dependent setup on the first launch after set_input_shape: run
        # once outside the capture (this frame's output), then capture a launch with nothing left to set up.
        self._enqueue()
        mem.stream_synchronize(stream)
        graph = self._capture()
        if graph is None:
            self._graphs = False
            self._drop_graph([])
            return
        self._graph_cache[shape] = graph
        while len(self._graph_cache) > MAX_GRAPHS:
            _, old = self._graph_cache.popitem(last=False)
            self.attempt([], mem.graph_destroy, old)

    def _capture(self) -> Any:
        """The executable graph of one copy-in / execute / copy-out, or None (logged) when capture
        fails; a failed capture is ended, its graph freed and CUDA's last error cleared."""
        mem, stream = self._mem, self._stream
        try:
            mem.graph_begin_capture(stream)
        except GanrtError as exc:
            log.warning("CUDA graph capture failed to start (%s); running without CUDA graphs", exc)
            return None
        why = ""
        try:
            mem.memcpy_htod_async(self._d_in, self._h_in, self._in_bytes, stream)
            if self._context.execute_async_v3(mem.stream_handle(stream)):
                mem.memcpy_dtoh_async(self._h_out, self._d_out, self._out_bytes, stream)
            else:
                why = "TensorRT's execute_async_v3 failed under capture (the engine has work that cannot be captured)"
        except Exception as exc:  # noqa: BLE001 CUDA / TensorRT binding errors while capturing
            why = f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:200]}"
        if why:
            problems: list[str] = []
            self.attempt(problems, mem.graph_abort_capture, stream)
            log.warning("CUDA graph capture failed (%s); running without CUDA graphs%s", why,
                        f" ({'; '.join(problems)})" if problems else "")
            return None
        try:
            return mem.graph_end_capture(stream)
        except GanrtError as exc:
            log.warning("CUDA graph capture failed (%s); running without CUDA graphs", exc)
            return None

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        p = self._shape_profile
        if p is not None and not p.contains(shape):
            raise ModelError(f"input {'x'.join(map(str, shape))} is outside the engine's optimisation profile "
                             f"({'x'.join(map(str, p.min))} .. {'x'.join(map(str, p.max))}); "
                             f"widen tensorrt.min_hw/max_hw in the device profile")
        self._shape = None  # until this succeeds: a failure here forces the next call to set it again
        if not self._context.set_input_shape(self._in_name, shape):
            raise ModelError(f"TensorRT rejected input shape {shape} for {self._in_name!r}")
        out_shape = tuple(int(s) for s in self._context.get_tensor_shape(self._out_name))
        if any(s < 0 for s in out_shape):
            raise ModelError(f"TensorRT could not infer the output shape for input {shape} (got {out_shape})")
        in_bytes = int(np.prod(shape)) * self._in_dtype.itemsize
        out_bytes = int(np.prod(out_shape)) * self._out_dtype.itemsize
        self._ensure_buffers(in_bytes, out_bytes)
        self._shape, self._out_shape = shape, out_shape
        self._in_bytes, self._out_bytes = in_bytes, out_bytes

    def _ensure_buffers(self, in_bytes: int, out_bytes: int) -> None:
        """Grow (never shrink) the buffers; re-bind the tensor addresses when they move."""
        moved_in = self._grow("_d_in", "_h_in", in_bytes)
        moved_out = self._grow("_d_out", "_h_out", out_bytes)
        if moved_in or moved_out:
            self._drop_graph([])  # every captured graph holds the old addresses
        if moved_in or moved_out or not self._bound:
            ok_in = self._context.set_tensor_address(self._in_name, self._d_in.ptr)
            ok_out = self._context.set_tensor_address(self._out_name, self._d_out.ptr)
            if not (ok_in and ok_out):
                raise ModelError("TensorRT rejected the tensor addresses")
            self._bound = True

    def _grow(self, dev_attr: str, host_attr: str, nbytes: int) -> bool:
        mem = self._mem
        dev, host = getattr(self, dev_attr), getattr(self, host_attr)
        if dev is not None and host is not None and dev.nbytes >= nbytes and host.nbytes >= nbytes:
            return False
        self._bound = False
        for buf, free in ((dev, mem.free_device), (host, mem.free_pinned)):
            if buf is not None:
                free(buf)
        setattr(self, dev_attr, None)
        setattr(self, host_attr, None)
        setattr(self, dev_attr, mem.alloc_device(nbytes))  # one at a time: teardown frees what exists
        setattr(self, host_attr, mem.alloc_pinned(nbytes))
        return True

    def _drop_graph(self, problems: list[str]) -> None:
        """Destroy every captured graph."""
        if self._mem is not None:
            for graph in self._graph_cache.values():
                self.attempt(problems, self._mem.graph_destroy, graph)
        self._graph_cache.clear()


def _quiet_logger(trt: Any):
    from .reporting import make_logger

    return make_logger(trt)
