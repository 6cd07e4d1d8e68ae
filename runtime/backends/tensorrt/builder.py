"""Building a TensorRT engine from an ONNX artifact (``TensorRTBuilder``).

The builder follows the one path that TensorRT 10.3 (JetPack 6) through 11.x share: a strongly
typed network parsed from ONNX whose precision is in the graph (FP16 ONNX, or explicit Q/DQ for
INT8). No calibrator. The exception is DLA on 10.x: every DLA path there (trtexec, the samples'
``enableDLA``) builds weakly typed with FP16 (+ INT8) flags, so DLA engines are built that way
(``dla.py``) and their identity says ``strongly_typed: false``.

TensorRT Python calls used, and where they exist:

================================================  ===========  ==========================================
call                                              10.3–10.x    11.x
================================================  ===========  ==========================================
Builder, create_network(flags), OnnxParser        yes          yes
NetworkDefinitionCreationFlag.STRONGLY_TYPED      required     deprecated and ignored (always strongly
                                                  (not DLA)    typed); used only when present
NetworkDefinitionCreationFlag.EXPLICIT_BATCH      deprecated   removed — never used here
BuilderFlag.FP16 / INT8                           DLA only     removed — never used on 11
int8_calibrator                                   deprecated   removed — never used here
OnnxParserFlag.ADJUST_FOR_DLA                     from 10.16   yes — the build report says when absent
create_engine_inspector (DLA layer report)        yes          yes
parser.parse, num_errors, get_error(i).desc()     yes          yes
create_optimization_profile, set_shape            yes          yes
set_memory_pool_limit(MemoryPoolType.WORKSPACE)   yes          yes
builder_optimization_level                        yes          yes
create_timing_cache / set_timing_cache /          yes          yes
  get_timing_cache().serialize()
build_serialized_network                          yes          yes (build_engine was removed in 10.0)
IProgressMonitor, config.progress_monitor         yes (>=10.0) yes — used when present
DeviceType.DLA, DLA_core, BuilderFlag.            yes (DLA:    no DLA in 11.0–11.3; back on Jetson AGX
  GPU_FALLBACK, can_run_on_DLA                    up to 10.7)  Orin with JetPack 7.2.2 + TRT 11.4.1
Runtime.deserialize_cuda_engine                   yes          yes
num_io_tensors, get_tensor_name/mode/dtype        yes          yes (binding-index APIs removed in 10.0)
create_execution_context, set_input_shape,        yes          yes
  get_tensor_shape, set_tensor_address,
  execute_async_v3
================================================  ===========  ==========================================
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import IO, Any, Protocol

from ...errors import BackendUnavailable, ModelError
from ...lazy import lazy_import
from .identity import EngineIdentity
from .reporting import make_logger, make_progress_monitor

log = logging.getLogger(__name__)

MIN_TENSORRT = (10, 3)


def check_tensorrt_version(version: str) -> tuple[int, int]:
    """(major, minor) of a TensorRT version string; BackendUnavailable below 10.3."""
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        raise BackendUnavailable(f"cannot read the TensorRT version {version!r}") from None
    if (major, minor) < MIN_TENSORRT:
        raise BackendUnavailable(
            f"TensorRT {version} is too old: ganrt needs 10.3 or newer (strongly typed networks, "
            f"set_tensor_address + execute_async_v3); install ganrt[trt]"
        )
    return major, minor


@dataclass(frozen=True)
class BuildRequest:
    identity: EngineIdentity
    onnx: bytes
    label: str  # artifact key, for messages
    timing_cache: bytes | None = None
    progress: bool = True


@dataclass
class BuildOutput:
    engine: bytes
    timing_cache: bytes | None = None
    dla_fallback: tuple[str, ...] = ()  # layers TensorRT said cannot run on DLA (can_run_on_DLA)
    notes: tuple[str, ...] = ()  # what the build did or could not do, for the report (engine.json)
    layers: tuple[dict, ...] = ()  # per-layer info from the engine inspector (DLA builds)


class EngineBuilder(Protocol):
    """What ``load_or_build`` needs from a builder (the real one wraps TensorRT; tests inject a fake)."""

    version: str  # the TensorRT version the engines will be built with
    # (optional) build_label: str — which TensorRT build (wheel / system package); part of the identity

    def build(self, request: BuildRequest) -> BuildOutput: ...


class TensorRTBuilder:
    """Builds engines with TensorRT 10.3–11.x: strongly typed, except DLA engines on 10.x
    (``dla.py``). Cheap to construct; imports TensorRT (BackendUnavailable naming ganrt[trt]
    when it is missing)."""

    def __init__(self, trt: Any = None, progress_stream: IO[str] | None = None) -> None:
        from .probe import tensorrt_build_label

        self.trt = trt if trt is not None else lazy_import("tensorrt", extra="trt", what="TensorRT")
        self.version = str(self.trt.__version__)
        self.major, self.minor = check_tensorrt_version(self.version)
        self.build_label = tensorrt_build_label(self.trt)
        self._stream = progress_stream or sys.stderr

    def network_flags(self, strongly_typed: bool = True) -> int:
        if not strongly_typed:
            return 0  # a weakly typed 10.x network (DLA): explicit batch is implied since 10.0
        flag = getattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is None:
            if self.major >= 11:
                return 0  # every TensorRT 11 network is strongly typed
            raise BackendUnavailable(f"TensorRT {self.version} has no strongly typed networks; install ganrt[trt]")
        return 1 << int(flag)

    def build(self, req: BuildRequest) -> BuildOutput:
        from . import dla

        trt, ident = self.trt, req.identity
        logger = make_logger(trt)
        builder = trt.Builder(logger)
        network = builder.create_network(self.network_flags(ident.build.strongly_typed))
        parser = trt.OnnxParser(network, logger)
        core, notes = ident.build.dla_core, []  # the DLA core (None: GPU); `dla` is the module
        if core is not None:
            notes.append(dla.adjust_for_dla(trt, parser, self.version))
        if not parser.parse(req.onnx):
            raise ModelError(parser_error_line(parser, req.label, self.version))
        _check_network_io(network, ident, req.label)

        config = builder.create_builder_config()
        prof = builder.create_optimization_profile()
        for p in ident.profiles:
            prof.set_shape(p.input, p.min, p.opt, p.max)
        if config.add_optimization_profile(prof) < 0:
            raise ModelError(f"artifact {req.label!r}: TensorRT rejected the optimisation profile "
                             f"{[(p.min, p.opt, p.max) for p in ident.profiles]}")
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(ident.build.workspace_mb) << 20)
        config.builder_optimization_level = int(ident.build.builder_optimization_level)
        if ident.build.timing_cache:
            set_timing_cache(config, req.timing_cache)

        fallback: list[str] = []
        if core is not None:
            fallback, dla_notes = dla.configure_dla(
                trt, builder, network, config, core, precision=ident.build.precision,
                weakly_typed=not ident.build.strongly_typed, version=self.version)
            notes += dla_notes
        monitor = None
        if req.progress and hasattr(trt, "IProgressMonitor"):  # TensorRT >= 10.0
            monitor = make_progress_monitor(trt, self._stream, req.label)
            config.progress_monitor = monitor

        serialized = builder.build_serialized_network(network, config)
        if monitor is not None:
            monitor.done()
        if serialized is None:
            raise ModelError(f"TensorRT {self.version} could not build an engine for artifact {req.label!r}: "
                             f"{logger.last_error or 'no error was logged'}")
        engine = bytes(memoryview(serialized))
        layers: tuple[dict, ...] = ()
        if core is not None:
            layers, line = dla.inspect_layers(trt, logger, engine, core)
            notes.append(line)
        timing = None
        if ident.build.timing_cache:
            with contextlib.suppress(Exception):
                timing = bytes(memoryview(config.get_timing_cache().serialize()))
        return BuildOutput(engine, timing, tuple(fallback), tuple(notes), layers)


def set_timing_cache(config: Any, data: bytes | None) -> None:
    """Give ``config`` the saved timing cache, or a new empty one when the saved one is unusable.

    ``IBuilderConfig.create_timing_cache`` returns None for a corrupt blob (it does not raise), and
    ``set_timing_cache(None, ...)`` raises TypeError, so None is checked, not caught."""
    cache = None
    if data:
        try:
            cache = config.create_timing_cache(data)
        except Exception:  # noqa: BLE001 defensive: the bindings return None rather than raise
            cache = None
        if cache is None:
            log.warning("TensorRT timing cache unreadable (corrupt or from another TensorRT); starting a new one")
    if cache is None:
        cache = config.create_timing_cache(b"")
    if cache is None:
        log.warning("TensorRT could not create a timing cache; building without one")
        return
    if not config.set_timing_cache(cache, False):  # ignore_mismatch=False: TensorRT checks the device
        log.warning("TensorRT timing cache does not fit this device/version; starting a new one")
        fresh = config.create_timing_cache(b"")
        if fresh is not None:
            config.set_timing_cache(fresh, False)


def parser_error_line(parser: Any, label: str, version: str) -> str:
    """All of the ONNX parser's errors as one line."""
    n = int(getattr(parser, "num_errors", 0))
    parts = []
    for i in range(min(n, 3)):
        e = parser.get_error(i)
        desc = " ".join(str(_call(e, "desc", e)).split())
        where = _call(e, "node_name", "") or ""
        op = _call(e, "node_operator", "") or ""
        node = f" at node {where!s}" + (f" ({op})" if op else "") if where else ""
        parts.append(desc + node)
    more = f" (+{n - 3} more)" if n > 3 else ""
    return (f"TensorRT {version}'s ONNX parser rejected artifact {label!r}: "
            f"{'; '.join(parts) or 'unknown error'}{more}")


def _call(obj: Any, name: str, default: Any) -> Any:
    fn = getattr(obj, name, None)
    try:
        return fn() if callable(fn) else default
    except Exception:  # noqa: BLE001 an optional attribute of this TensorRT build: the default stands
        return default


def _check_network_io(network: Any, ident: EngineIdentity, label: str) -> None:
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    want = [p.input for p in ident.profiles]
    if sorted(names) != sorted(want):
        raise ModelError(f"artifact {label!r}: network inputs {names} do not match the manifest's {want}")
    if network.num_outputs != 1:
        raise ModelError(f"artifact {label!r}: expected one output, the network has {network.num_outputs}")
