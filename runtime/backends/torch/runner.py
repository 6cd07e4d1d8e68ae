"""Torch runner: the bundle's exported student weights on a CUDA GPU without TensorRT.

For machines with torch + CUDA and no TensorRT. ``activate()`` verifies ``student.safetensors``
against the manifest's sha256 (``manifest["weights"]``), loads it without pickle
(``safetensors.torch.load`` of the verified bytes, so what was hashed is what is loaded) into
``torch_models.StudentGenerator`` with ``strict=True``, and moves the network to the device in
FP32 or FP16, channels-last, on its own CUDA stream.

``infer`` copies the input into a pinned host staging buffer, then H2D into a static device
buffer, runs the network, copies the float32 NCHW result D2H and synchronises. With CUDA graphs
(fixed shapes), the first call of a shape warms the network up on the runner's side stream
(cuDNN autotuning, allocator) and captures the compute as a graph; later calls of that shape
replay it. Each shape has its own static buffers and graph, kept in a small LRU
(``max_shapes``); a new shape beyond that evicts the least recently used one. ``deactivate``
frees everything and is idempotent; activate/deactivate cycles are fine.

``device="cpu"`` (FP32 only, no graphs, no streams) exists so the runner's logic is testable on
machines without a GPU. The registry never picks it on its own: an explicit ``--backend torch``
on a CPU-only machine is refused unless ``GANRT_TORCH_DEVICE=cpu`` is set — a testing switch,
not a deployment mode (ONNX Runtime is the faster CPU backend).

Process-wide torch settings the runner changes while active and restores on ``deactivate``:
cuDNN benchmark (autotune per shape; ``cudnn_benchmark``), for FP32 cuDNN conv TF32 off
(``allow_tf32=False``: FP32 means IEEE FP32, as the ONNX Runtime reference computes it), and on
the CPU torch's intra-op thread count when ``cpu_threads`` is given.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ...errors import BackendUnavailable, ConfigError, GanrtError, ModelError
from ...lazy import lazy_import
from ...model.manifest import Manifest, Precision
from ..base import InputLayout, IOSpec, RunnerBase, one_line
from .models import STUDENT_ARCH, StudentConfig, build_student
from .slots import Slot, free_slot, new_slot
from .weights import WeightsSpec

log = logging.getLogger(__name__)

ENV_DEVICE = "GANRT_TORCH_DEVICE"  # "cpu": allow/force the torch runner on the CPU (testing only)
DEVICES = ("cuda", "cpu")
PRECISIONS = (Precision.FP32, Precision.FP16)


def _torch() -> Any:
    return lazy_import("torch", extra="export", what="torch")


def requested_device() -> str:
    """``cuda`` unless ``$GANRT_TORCH_DEVICE`` says ``cpu``; anything else is a ConfigError."""
    value = os.environ.get(ENV_DEVICE, "").strip().lower() or "cuda"
    if value not in DEVICES:
        raise ConfigError(f"{ENV_DEVICE}={value!r} is not one of: {', '.join(DEVICES)}")
    return value


def check_available(*, auto: bool = False) -> str:
    """The device the torch runner would use here ("cuda" or "cpu"), or BackendUnavailable (one line).

    ``auto``: the automatic choice never lands on the CPU, even with ``GANRT_TORCH_DEVICE=cpu``.
    """
    torch = _torch()
    lazy_import("safetensors.torch", extra="export", what="safetensors")
    device = requested_device()
    if device == "cpu":
        if auto:
            raise BackendUnavailable(f"not chosen automatically on the CPU ({ENV_DEVICE}=cpu is a testing switch; "
                                     f"onnxruntime is the CPU backend)")
        return "cpu"
    if not torch.cuda.is_available():
        build = "a CPU-only build" if getattr(torch.version, "cuda", None) is None else f"CUDA {torch.version.cuda}"
        raise BackendUnavailable(f"torch runner needs a CUDA GPU (torch {torch.__version__}, {build}, sees none); "
                                 f"use onnxruntime on this machine "
                                 f"({ENV_DEVICE}=cpu runs it on the CPU for testing only)")
    return "cuda"


def resolve_precision(requested: Precision | None, profile_precision: Precision, device: str) -> Precision:
    """FP32 or FP16 from an explicit request, else from the profile (INT8 profiles get FP16 on CUDA)."""
    if requested is not None:
        if requested not in PRECISIONS:
            raise BackendUnavailable(f"the torch runner runs fp32 or fp16 weights, not {requested.value} "
                                     f"(int8 artifacts run on onnxruntime or tensorrt)")
        if requested is Precision.FP16 and device == "cpu":
            raise BackendUnavailable("the torch runner runs fp16 on CUDA only (use fp32 on the CPU)")
        return requested
    if device == "cpu" or profile_precision is Precision.FP32:
        return Precision.FP32
    return Precision.FP16


class TorchRunner(RunnerBase):
    name = "torch"
    start_label = "the torch runner"

    def __init__(self, manifest: Manifest, precision: Precision = Precision.FP16, *, device: str = "cuda",
                 cuda_graphs: bool = True, max_shapes: int = 4, warmup: int = 2, channels_last: bool = True,
                 cudnn_benchmark: bool = True, allow_tf32: bool = False, stage_timing: bool = False,
                 cpu_threads: int = 0, torch: Any = None) -> None:
        """``device``: "cuda", "cuda:N" or "cpu" (testing). ``stage_timing``: record CUDA events around
        H2D, compute and D2H (``last_stage_ms``) — for benchmarks. ``cpu_threads``: on the CPU, torch's
        intra-op threads while active (0: torch's default; 1 keeps small inputs fast on a busy machine).
        ``torch``: the module (tests inject)."""
        self._manifest, self._precision = manifest, precision
        self._device_name = str(device)
        self._graphs_wanted, self._max_shapes, self._warmup = bool(cuda_graphs), max(1, int(max_shapes)), max(0, warmup)
        self._channels_last, self._cudnn_benchmark, self._allow_tf32 = channels_last, cudnn_benchmark, allow_tf32
        self._stage_timing, self._cpu_threads = stage_timing, max(0, int(cpu_threads))
        self._torch_module = torch
        self.last_stage_ms: dict[str, float] = {}
        self._reset_state()

    def _reset_state(self) -> None:
        self._torch = self._model = self._device = self._dtype = self._stream = None
        self._cfg: StudentConfig | None = None
        self._multiple = 1
        self._slots: OrderedDict[tuple[int, ...], Slot] = OrderedDict()
        self._graphs = False
        self._restore: list[Callable[[], None]] = []
        self._in_name = self._out_name = ""

    @property
    def device(self) -> str:
        return str(self._device) if self._device is not None else self._device_name

    @property
    def precision(self) -> Precision:
        return self._precision

    @property
    def cuda_graphs(self) -> bool:
        """True while CUDA graphs are in use (wanted, on CUDA, and no capture has failed)."""
        return self._graphs

    @property
    def cached_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(self._slots)

    # -- lifecycle --

    def activate_impl(self) -> IOSpec:
        torch = self._torch_module or _torch()
        st = lazy_import("safetensors.torch", extra="export", what="safetensors")
        device = self._checked_device(torch)
        spec = WeightsSpec.from_manifest(self._manifest, self._precision)
        model = self._load_model(torch, st, spec)
        self._place(torch, model, spec.config, device)
        on_cuda = self._device.type == "cuda"
        where = torch.cuda.get_device_name(self._device) if on_cuda else "CPU"
        opts = [str(self._device), where, self._precision.value]
        if self._channels_last:
            opts.append("channels-last")
        if self._graphs:
            opts.append("CUDA graphs")
        return IOSpec(
            input_name=self._in_name,
            output_name=self._out_name,
            input_dtype=np.dtype(np.float32),  # I/O stays float32 (as the fp16 ONNX artifact's)
            dynamic_batch=True,  # any N: each input shape, batch included, has its own buffers and graph
            description=f"torch {torch.__version__} [{', '.join(opts)}, weights {spec.artifact.sha256[:12]}]",
            layout=InputLayout(self._cfg.channels, self._multiple),
        )

    def _checked_device(self, torch: Any) -> Any:
        """The torch device to run on, or the error saying why this precision/device cannot run."""
        if self._precision not in PRECISIONS:
            raise BackendUnavailable(f"the torch runner runs fp32 or fp16 weights, not {self._precision.value}")
        try:
            device = torch.device(self._device_name)
        except (RuntimeError, TypeError, ValueError):
            raise ConfigError(f"torch runner: unknown device {self._device_name!r} (cuda, cuda:N or cpu)") from None
        if device.type not in DEVICES:
            raise ConfigError(f"torch runner: device {self._device_name!r} is not one of cuda, cuda:N, cpu")
        on_cuda = device.type == "cuda"
        if on_cuda and not torch.cuda.is_available():
            raise BackendUnavailable(f"torch runner needs a CUDA GPU (torch {torch.__version__} sees none)")
        if not on_cuda and self._precision is Precision.FP16:
            raise BackendUnavailable("the torch runner runs fp16 on CUDA only (use fp32 on the CPU)")
        return device

    def _load_model(self, torch: Any, st: Any, spec: WeightsSpec) -> Any:
        """The student with the verified weights loaded (strict), still on the CPU in FP32."""
        data = spec.artifact.verified_bytes()  # ModelError on a sha256 mismatch: nothing unverified is parsed
        try:
            state = st.load(data)
        except Exception as exc:  # noqa: BLE001 safetensors' own error types
            raise ModelError(f"weights {spec.artifact.path.name} are not a readable safetensors file "
                             f"({exc.__class__.__name__}: {exc})") from None
        cfg = spec.config
        if cfg.scale != self._manifest.scale:
            raise ModelError(f"weights config has scale {cfg.scale} but the manifest's io says scale "
                             f"{self._manifest.scale}")
        if cfg.channels != self._manifest.input.channels or cfg.channels != self._manifest.output.channels:
            raise ModelError(f"weights config has {cfg.channels} channel(s) but the manifest's io says "
                             f"{self._manifest.input.channels} in / {self._manifest.output.channels} out")
        model = build_student(torch, cfg)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = " ".join(str(exc).split())[:300]
            raise ModelError(f"weights {spec.artifact.path.name} do not fit "
                             f"{STUDENT_ARCH}{cfg.to_dict()} ({first})") from None
        return model

    def _place(self, torch: Any, model: Any, cfg: StudentConfig, device: Any) -> None:
        """Move the network to ``device`` in the runner's dtype and layout; on CUDA set the cuDNN
        flags and make the side stream, on the CPU set the thread count (undone by deactivate)."""
        self._torch, self._cfg, self._device = torch, cfg, device
        self._dtype = torch.float16 if self._precision is Precision.FP16 else torch.float32
        self._multiple = math.lcm(max(1, self._manifest.size_multiple), cfg.down)
        self._in_name, self._out_name = self._manifest.input.name, self._manifest.output.name
        model = model.eval().requires_grad_(False)
        fmt = torch.channels_last if self._channels_last else torch.contiguous_format
        self._model = model.to(device=device, dtype=self._dtype, memory_format=fmt)
        if device.type == "cuda":
            if device.index is None:
                self._device = device = torch.device("cuda", torch.cuda.current_device())
            self._set_flags(torch)
            self._stream = torch.cuda.Stream(device=device)
            self._graphs = self._graphs_wanted
        elif self._cpu_threads and torch.get_num_threads() != self._cpu_threads:
            prev_threads = torch.get_num_threads()
            torch.set_num_threads(self._cpu_threads)
            self._restore.append(lambda: torch.set_num_threads(prev_threads))

    def _set_flags(self, torch: Any) -> None:
        """cuDNN benchmark on; FP32 conv without TF32 — restored by deactivate."""
        cudnn = torch.backends.cudnn
        try:
            if self._cudnn_benchmark and not cudnn.benchmark:
                cudnn.benchmark = True
                self._restore.append(lambda: setattr(cudnn, "benchmark", False))
            if self._precision is Precision.FP32:
                conv = getattr(cudnn, "conv", None)
                if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9: the new TF32 API
                    prev, want = conv.fp32_precision, "tf32" if self._allow_tf32 else "ieee"
                    if prev != want:
                        conv.fp32_precision = want
                        self._restore.append(lambda: setattr(conv, "fp32_precision", prev))
                elif bool(cudnn.allow_tf32) != self._allow_tf32:
                    prev_allow = bool(cudnn.allow_tf32)
                    cudnn.allow_tf32 = self._allow_tf32
                    self._restore.append(lambda: setattr(cudnn, "allow_tf32", prev_allow))
        except RuntimeError as exc:  # torch refuses mixed legacy/new TF32 settings made elsewhere
            log.warning("torch runner: could not set cuDNN flags (%s); running with the process's settings", exc)

    def deactivate_impl(self) -> None:
        """Free everything that exists; safe to call twice and after a failed activate."""
        torch, problems = self._torch, []
        if self._stream is not None:
            self.attempt(problems, self._stream.synchronize)
        for slot in self._slots.values():
            free_slot(slot, problems)
        self._slots.clear()
        self._model = None
        self._stream = None
        for undo in reversed(self._restore):
            self.attempt(problems, undo)
        on_cuda = self._device is not None and self._device.type == "cuda"
        if torch is not None and on_cuda:
            self.attempt(problems, torch.cuda.empty_cache)
        self.report_problems(problems)
        self._reset_state()

    # -- inference --

    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds[self._in_name]  # checked against io.layout by RunnerBase.infer
        try:
            if self._stream is None:
                y = self._infer_cpu(x)
            else:
                y = self._infer_cuda(x)
        except GanrtError:
            raise
        except Exception as exc:  # noqa: BLE001 torch / CUDA errors (out of memory ...) become one of ours
            raise ModelError(f"torch inference failed for input {'x'.join(map(str, x.shape))} "
                             f"({exc.__class__.__name__}: {one_line(exc)})") from None
        return {self._out_name: y}

    def _forward(self, x: Any) -> Any:
        torch = self._torch
        if x.dtype != self._dtype:
            x = x.to(self._dtype)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._model(x)

    def _infer_cpu(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            y = self._forward(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            return y.to(torch.float32).contiguous().numpy()

    def _infer_cuda(self, x: np.ndarray) -> np.ndarray:
        torch, stream = self._torch, self._stream
        slot = self._slot_for(tuple(int(s) for s in x.shape))
        np.copyto(slot.h_in_np, x, casting="same_kind")  # into pinned staging (float16 feeds are widened)
        timed = bool(slot.events)
        with torch.cuda.device(self._device), torch.cuda.stream(stream):
            if timed:
                slot.events[0].record(stream)
            slot.d_in.copy_(slot.h_in, non_blocking=True)
            if timed:
                slot.events[1].record(stream)
            if self._graphs and slot.graph is None:
                self._capture(slot)
            if slot.graph is not None:
                slot.graph.replay()
            else:
                self._compute(slot)
            if timed:
                slot.events[2].record(stream)
            slot.h_out.copy_(slot.d_out, non_blocking=True)
            if timed:
                slot.events[3].record(stream)
        stream.synchronize()
        slot.calls += 1
        if timed:
            e = slot.events
            self.last_stage_ms = {"h2d": e[0].elapsed_time(e[1]), "compute": e[1].elapsed_time(e[2]),
                                  "d2h": e[2].elapsed_time(e[3])}
        return slot.h_out_np.copy()

    def _compute(self, slot: Slot) -> None:
        with self._torch.no_grad():
            slot.d_out.copy_(self._forward(slot.d_in))  # back to float32 NCHW in the static output

    def _capture(self, slot: Slot) -> None:
        """Warm up on the runner's side stream, then capture the compute of this shape as a graph."""
        torch, stream = self._torch, self._stream
        try:
            for _ in range(self._warmup):  # cuDNN autotuning and allocator growth happen here, not in the graph
                self._compute(slot)
            stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                self._compute(slot)
            slot.graph = graph
        except Exception as exc:  # noqa: BLE001 capture refused (unsupported op, driver): run eagerly from now on
            log.warning("torch runner: CUDA graph capture failed for %s (%s: %s); running without CUDA graphs",
                        "x".join(map(str, slot.shape)), exc.__class__.__name__, " ".join(str(exc).split())[:200])
            slot.graph = None
            self._graphs = False
            stream.synchronize()

    def _slot_for(self, shape: tuple[int, ...]) -> Slot:
        slot = self._slots.get(shape)
        if slot is not None:
            self._slots.move_to_end(shape)
            return slot
        while len(self._slots) >= self._max_shapes:
            _, old = self._slots.popitem(last=False)
            problems: list[str] = []
            free_slot(old, problems)
            self.report_problems(problems, "freeing a cached shape")
        slot = new_slot(self._torch, shape, self._cfg.scale, self._device, self._stage_timing)
        self._slots[shape] = slot
        return slot

