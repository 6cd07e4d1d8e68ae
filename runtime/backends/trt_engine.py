"""TensorRT engine cache and builder: ``load_or_build`` never loads a stale engine.

Layout of the cache (default ``$GANRT_CACHE`` or ``~/.cache/ganrt/engines``)::

    <cache>/<key>/model.engine     the serialized engine (written atomically: tmp + os.replace)
    <cache>/<key>/engine.json      identity + build time + TensorRT version + DLA fallback report
    <cache>/timing/<name>.cache    TensorRT timing caches, one per TensorRT/CUDA/kind of device
    <cache>/.locks/<key>.lock      one builder at a time per engine

``<key>`` is ``EngineIdentity.key()``. ``engine.json`` is written after the engine, so an entry
without it is invisible; it records the engine's sha256, so a torn or replaced engine file is
detected and rebuilt instead of loaded.

The builder follows the one path that TensorRT 10.3 (JetPack 6) through 11.x share: a strongly
typed network parsed from ONNX whose precision is in the graph (FP16 ONNX, or explicit Q/DQ for
INT8). No FP16/INT8 builder flags and no calibrator (both gone in TensorRT 11).

TensorRT Python calls used, and where they exist:

================================================  ===========  ==========================================
call                                              10.3–10.x    11.x
================================================  ===========  ==========================================
Builder, create_network(flags), OnnxParser        yes          yes
NetworkDefinitionCreationFlag.STRONGLY_TYPED      required     deprecated and ignored (always strongly
                                                               typed); used only when present
NetworkDefinitionCreationFlag.EXPLICIT_BATCH      deprecated   removed — never used here
BuilderFlag.FP16 / INT8, int8_calibrator          deprecated   removed — never used here
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
import datetime as _dt
import hashlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Protocol

from ..errors import BackendUnavailable, ConfigError, EngineMismatch, GanrtError, ModelError
from ..lazy import lazy_import
from .trt_identity import (
    UNKNOWN_DEVICE,
    DeviceFacts,
    EngineIdentity,
    Probe,
    ShapeProfile,
    Toolkit,
    build_options,
    check_trt_precision,
    make_identity,
    optimisation_profile,
    probe_device,
)

log = logging.getLogger(__name__)

CACHE_ENV = "GANRT_CACHE"
ENGINE_FILE = "model.engine"
META_FILE = "engine.json"
TIMING_DIR = "timing"
LOCK_DIR = ".locks"
MIN_TENSORRT = (10, 3)


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ganrt" / "engines"


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


# --- atomic files ----------------------------------------------------------------------------------

Writer = Callable[[IO[bytes], bytes], None]


def _write_all(fh: IO[bytes], data: bytes) -> None:
    fh.write(data)


def atomic_write_bytes(path: Path, data: bytes, writer: Writer | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a
    part: write a temporary file beside it, fsync, ``os.replace``. On any failure the temporary
    file is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            (writer or _write_all)(fh, data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename durable (POSIX)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the cache -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheEntry:
    key: str
    dir: Path
    identity: EngineIdentity
    meta: dict[str, Any]

    @property
    def engine_path(self) -> Path:
        return self.dir / ENGINE_FILE

    @property
    def engine_sha256(self) -> str:
        return str(self.meta.get("engine_sha256", ""))

    @property
    def dla_fallback(self) -> list[str]:
        return list(self.meta.get("dla_fallback", []))

    def read_engine(self) -> bytes | None:
        """The engine's bytes if the file is there and hashes to what engine.json recorded."""
        try:
            data = self.engine_path.read_bytes()
        except OSError:
            return None
        return data if sha256_of(data) == self.engine_sha256 else None


class EngineCache:
    def __init__(self, root: Path | str | None = None, writer: Writer | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self._writer = writer

    def entry_dir(self, key: str) -> Path:
        return self.root / key

    def entry(self, key: str) -> CacheEntry | None:
        """The entry stored under ``key``, or None when absent or unreadable."""
        d = self.entry_dir(key)
        meta_path = d / META_FILE
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            identity = EngineIdentity.from_dict(meta["identity"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable engine cache entry %s (%s)", d, exc)
            return None
        return CacheEntry(key, d, identity, meta)

    def entries(self) -> tuple[list[CacheEntry], list[str]]:
        """Every readable entry, and one line per folder that is not a usable entry."""
        found, problems = [], []
        if not self.root.is_dir():
            return found, problems
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if d.name == TIMING_DIR:
                continue
            if not (d / META_FILE).exists():
                if (d / "identity.json").exists():
                    continue  # an ONNX Runtime TensorRT EP cache folder (see onnxruntime.py)
                problems.append(f"{d.name}: no {META_FILE} (incomplete or foreign folder)")
                continue
            e = self.entry(d.name)
            if e is None:
                problems.append(f"{d.name}: unreadable {META_FILE}")
            else:
                found.append(e)
        return found, problems

    def nearest(self, identity: EngineIdentity) -> CacheEntry | None:
        """The cached engine of the same ONNX that differs from ``identity`` in the fewest fields."""
        same_model = [e for e in self.entries()[0] if e.identity.onnx_sha256 == identity.onnx_sha256]
        return min(same_model, key=lambda e: len(e.identity.diff(identity)), default=None)

    def timing_cache_path(self, identity: EngineIdentity) -> Path:
        return self.root / TIMING_DIR / identity.timing_cache_name()

    def read_timing_cache(self, identity: EngineIdentity) -> bytes | None:
        try:
            return self.timing_cache_path(identity).read_bytes()
        except OSError:
            return None

    def write_timing_cache(self, identity: EngineIdentity, data: bytes) -> None:
        atomic_write_bytes(self.timing_cache_path(identity), data, self._writer)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """One builder per engine across processes (install-time prebuild vs a running cart)."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock
            yield
            return
        path = self.root / LOCK_DIR / f"{key}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "a+")
        except OSError as exc:
            raise ConfigError(f"cannot use the engine cache at {self.root} ({exc.strerror or exc}); "
                              f"set {CACHE_ENV} or --cache to a writable folder") from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def store(self, identity: EngineIdentity, engine: bytes, meta: dict[str, Any]) -> CacheEntry:
        """Write the engine, then engine.json (the entry exists only once both are whole).

        A failure while writing leaves the previous files untouched; a crash between the two
        renames leaves a new engine under the old engine.json, whose recorded sha256 then no
        longer matches, so the entry reads as corrupt and is rebuilt, never loaded."""
        key = identity.key()
        d = self.entry_dir(key)
        d.mkdir(parents=True, exist_ok=True)
        meta = {**meta, "key": key, "identity": identity.to_dict(), "engine_sha256": sha256_of(engine),
                "engine_bytes": len(engine)}
        atomic_write_bytes(d / ENGINE_FILE, engine, self._writer)
        atomic_write_bytes(d / META_FILE, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode(), self._writer)
        return CacheEntry(key, d, identity, meta)


# --- building --------------------------------------------------------------------------------------


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
    dla_fallback: tuple[str, ...] = ()


class EngineBuilder(Protocol):
    """What ``load_or_build`` needs from a builder (the real one wraps TensorRT; tests inject a fake)."""

    version: str  # the TensorRT version the engines will be built with

    def build(self, request: BuildRequest) -> BuildOutput: ...


@dataclass(frozen=True)
class LoadResult:
    entry: CacheEntry
    engine: bytes  # verified against engine.json's sha256
    built: bool
    build_seconds: float | None = None
    reason: str = "cached"  # cached | missing | mismatch: … | corrupt
    facts: DeviceFacts | None = field(default=None, compare=False)

    @property
    def identity(self) -> EngineIdentity:
        return self.entry.identity


def wanted_identity(manifest, artifact, profile, builder_version: str, probe: Probe) -> tuple[EngineIdentity, DeviceFacts]:
    facts = probe()
    return make_identity(manifest, artifact, profile, builder_version, facts), facts


def load_or_build(manifest, artifact, profile, cache_dir: Path | str | None = None, no_build: bool = False, *,
                  builder: EngineBuilder | None = None, probe: Probe | None = None, progress: bool = True,
                  cache: EngineCache | None = None) -> LoadResult:
    """The engine for ``artifact`` under ``profile`` on this device: from the cache when its
    identity matches exactly (and its bytes hash right), else built and cached — or, with
    ``no_build``, EngineMismatch naming the fields that differ from the nearest cached engine."""
    check_trt_precision(artifact)
    builder = builder if builder is not None else TensorRTBuilder()
    probe = probe if probe is not None else probe_device
    identity, facts = wanted_identity(manifest, artifact, profile, builder.version, probe)
    cache = cache if cache is not None else EngineCache(cache_dir)
    key = identity.key()

    hit, reason = _lookup(cache, key, identity)
    if hit is not None:
        artifact.verified_bytes()  # the bundle must still be what the engine was built from
        log.info("TensorRT engine cache hit %s (%s)", key[:12], artifact.key)
        return LoadResult(hit[0], hit[1], built=False, reason="cached", facts=facts)

    if no_build:
        raise EngineMismatch(_mismatch_line(cache, identity, manifest, artifact, profile, reason))

    with cache.lock(key):
        hit, _ = _lookup(cache, key, identity)  # another process may have built it meanwhile
        if hit is not None:
            return LoadResult(hit[0], hit[1], built=False, reason="cached", facts=facts)
        onnx = artifact.verified_bytes()
        timing = cache.read_timing_cache(identity) if identity.build.timing_cache else None
        log.info("building TensorRT engine %s for %s (%s)", key[:12], artifact.key, reason)
        t0 = time.perf_counter()
        try:
            out = builder.build(BuildRequest(identity, onnx, artifact.key, timing, progress))
        except (GanrtError, KeyboardInterrupt):
            raise
        except Exception as exc:  # TensorRT's own exception types: one line, our class
            raise ModelError(f"building the TensorRT engine for artifact {artifact.key!r} failed "
                             f"({exc.__class__.__name__}: {' '.join(str(exc).split())[:300]})") from None
        seconds = time.perf_counter() - t0
        if identity.build.timing_cache and out.timing_cache:
            try:
                cache.write_timing_cache(identity, out.timing_cache)
            except OSError as exc:  # a lost timing cache only costs time on the next build
                log.warning("could not save the TensorRT timing cache (%s)", exc)
        meta = {
            "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(seconds, 3),
            "tensorrt": builder.version,
            "artifact": {"key": artifact.key, "file": artifact.path.name, "precision": artifact.precision.value},
            "profile": getattr(profile, "name", ""),
            "dla_fallback": list(out.dla_fallback),
            "built_on": {"uuid": facts.uuid, "pci_bus_id": facts.pci_bus_id, "via": facts.via},
        }
        try:
            entry = cache.store(identity, out.engine, meta)
        except OSError as exc:
            raise ConfigError(f"cannot write the engine cache at {cache.root} ({exc.strerror or exc}); "
                              f"set {CACHE_ENV} or --cache to a writable folder") from None
    if out.dla_fallback:
        log.warning("%d layer(s) cannot run on DLA core %s and fall back to the GPU: %s", len(out.dla_fallback),
                    identity.build.dla_core, ", ".join(out.dla_fallback[:8]) + (" …" if len(out.dla_fallback) > 8 else ""))
    return LoadResult(entry, out.engine, built=True, build_seconds=seconds, reason=reason, facts=facts)


def _lookup(cache: EngineCache, key: str, identity: EngineIdentity) -> tuple[tuple[CacheEntry, bytes] | None, str]:
    entry = cache.entry(key)
    if entry is None:
        return None, "missing"
    if entry.identity != identity:  # a key collision or a hand-edited entry: never trust it
        return None, "mismatch: " + entry.identity.describe_diff(identity)
    data = entry.read_engine()
    if data is None:
        return None, "corrupt: the engine file is missing or does not match its recorded sha256"
    return (entry, data), "cached"


def _mismatch_line(cache: EngineCache, identity: EngineIdentity, manifest, artifact, profile, reason: str) -> str:
    hint = (f"build it with `ganrt engine build {manifest.root} --profile {getattr(profile, 'name', 'PROFILE')}` "
            f"or drop --no-build")
    if reason.startswith(("mismatch", "corrupt")):
        return f"cached TensorRT engine {identity.key()[:12]} for artifact {artifact.key!r} is unusable ({reason}); {hint}"
    near = cache.nearest(identity)
    if near is None:
        return (f"no cached TensorRT engine for artifact {artifact.key!r} (onnx {identity.onnx_sha256[:12]}…) "
                f"in {cache.root}; {hint}")
    return (f"the cached TensorRT engine {near.key[:12]} for artifact {artifact.key!r} does not fit here: differs in "
            f"{near.identity.describe_diff(identity)}; {hint}")


# --- ONNX Runtime's TensorRT execution provider --------------------------------------------------


def ort_trt_ep_options(artifact, manifest=None, profile=None, cache_dir: Path | str | None = None,
                       facts: DeviceFacts | None = None) -> dict[str, str]:
    """Provider options for ONNX Runtime's TensorRT execution provider.

    The EP builds its engines into the same cache as the native TensorRT runner, in a folder
    named by the same kind of ``EngineIdentity`` key (ONNX sha256, optimisation profile, builder
    options, toolkit, device); its toolkit field says "onnxruntime-trt-ep" because the TensorRT
    library is the one ONNX Runtime loads. Options set:

    - ``trt_engine_cache_enable`` / ``trt_engine_cache_path``: ``<cache>/<key>/``
    - ``trt_timing_cache_enable`` / ``trt_timing_cache_path``: ``<cache>/timing/`` (profile's timing_cache)
    - ``trt_max_workspace_size`` (bytes) and ``trt_builder_optimization_level`` from the profile
    - ``trt_profile_{min,opt,max}_shapes``: the profile's NCHW shapes (when manifest and profile are given)
    - ``trt_dla_enable`` / ``trt_dla_core`` when the profile names a DLA core
    - no ``trt_fp16_enable`` / ``trt_int8_enable``: with both off the EP builds a strongly typed
      network, so precision comes from the artifact itself (FP16 ONNX, explicit Q/DQ)

    ``facts`` (a ``DeviceFacts``) is probed when not given; without cuda-python the key holds an
    unknown device, and the EP's own engine names (which include the GPU architecture) keep
    different GPUs apart.
    """
    from ..profiles import TensorRTOptions

    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    trt_opts = profile.tensorrt if profile is not None else TensorRTOptions()
    if facts is None:
        try:
            facts = probe_device()
        except BackendUnavailable as exc:
            log.info("TensorRT EP cache key without device facts (%s)", exc)
            facts = UNKNOWN_DEVICE
    shapes: tuple = ()
    if manifest is not None and profile is not None:
        mn, opt, mx = optimisation_profile(profile, manifest)
        shapes = (ShapeProfile(manifest.input.name, mn, opt, mx),)
    try:
        ort_version = lazy_import("onnxruntime", extra="ganrt", what="onnxruntime").__version__
    except BackendUnavailable:
        ort_version = "?"
    identity = EngineIdentity(artifact.sha256, shapes, build_options(trt_opts, artifact.precision.value),
                              Toolkit(f"onnxruntime-trt-ep/{ort_version}", facts.cuda_runtime, facts.cuda_driver),
                              facts.device)
    engine_dir = root / identity.key()
    engine_dir.mkdir(parents=True, exist_ok=True)
    marker = engine_dir / "identity.json"
    if not marker.exists():
        atomic_write_bytes(marker, (json.dumps({"kind": "onnxruntime-trt-ep", "identity": identity.to_dict()},
                                               indent=2, sort_keys=True) + "\n").encode())
    opts: dict[str, Any] = {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engine_dir),
        "trt_timing_cache_enable": bool(trt_opts.timing_cache),
        "trt_max_workspace_size": int(trt_opts.workspace_mb) << 20,
        "trt_builder_optimization_level": int(trt_opts.builder_optimization_level),
    }
    if trt_opts.timing_cache:
        (root / TIMING_DIR).mkdir(parents=True, exist_ok=True)
        opts["trt_timing_cache_path"] = str(root / TIMING_DIR)
    for p in shapes:
        for name, shape in (("min", p.min), ("opt", p.opt), ("max", p.max)):
            opts[f"trt_profile_{name}_shapes"] = f"{p.input}:{'x'.join(str(v) for v in shape)}"
    if trt_opts.dla_core is not None:
        opts["trt_dla_enable"] = True
        opts["trt_dla_core"] = int(trt_opts.dla_core)
    return {k: str(v) for k, v in opts.items()}


# --- the real builder (TensorRT) ---------------------------------------------------------------------


class TensorRTBuilder:
    """Builds strongly typed engines with TensorRT 10.3–11.x. Cheap to construct; imports
    TensorRT (BackendUnavailable naming ganrt[trt] when it is missing)."""

    def __init__(self, trt: Any = None, progress_stream: IO[str] | None = None) -> None:
        self.trt = trt if trt is not None else lazy_import("tensorrt", extra="trt", what="TensorRT")
        self.version = str(self.trt.__version__)
        self.major, self.minor = check_tensorrt_version(self.version)
        self._stream = progress_stream or sys.stderr

    def network_flags(self) -> int:
        flag = getattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is None:
            if self.major >= 11:
                return 0  # every TensorRT 11 network is strongly typed
            raise BackendUnavailable(f"TensorRT {self.version} has no strongly typed networks; install ganrt[trt]")
        return 1 << int(flag)

    def build(self, req: BuildRequest) -> BuildOutput:
        trt, ident = self.trt, req.identity
        logger = make_logger(trt)
        builder = trt.Builder(logger)
        network = builder.create_network(self.network_flags())
        parser = trt.OnnxParser(network, logger)
        dla = ident.build.dla_core
        if dla is not None and hasattr(trt, "OnnxParserFlag") and hasattr(trt.OnnxParserFlag, "ADJUST_FOR_DLA"):
            parser.set_flag(trt.OnnxParserFlag.ADJUST_FOR_DLA)
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
            self._set_timing_cache(config, req.timing_cache)

        fallback: list[str] = []
        if dla is not None:
            fallback = self._configure_dla(builder, network, config, dla)
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
        timing = None
        if ident.build.timing_cache:
            with contextlib.suppress(Exception):
                timing = bytes(memoryview(config.get_timing_cache().serialize()))
        return BuildOutput(bytes(memoryview(serialized)), timing, tuple(fallback))

    def _set_timing_cache(self, config: Any, data: bytes | None) -> None:
        try:
            cache = config.create_timing_cache(data or b"")
        except Exception:  # a corrupt cache file: start afresh
            log.warning("TensorRT timing cache unreadable; starting a new one")
            cache = config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, False):  # ignore_mismatch=False: TensorRT checks the device
            log.warning("TensorRT timing cache does not fit this device/version; starting a new one")
            config.set_timing_cache(config.create_timing_cache(b""), False)

    def _configure_dla(self, builder: Any, network: Any, config: Any, core: int) -> list[str]:
        trt = self.trt
        cores = int(getattr(builder, "num_DLA_cores", 0))
        if core >= cores:
            raise BackendUnavailable(f"the profile asks for DLA core {core}, this device has {cores} DLA core(s) "
                                     f"(TensorRT {self.version})")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        fallback = []
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if not config.can_run_on_DLA(layer):
                fallback.append(f"{layer.name} ({getattr(layer.type, 'name', layer.type)})")
        return fallback


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
    except Exception:
        return default


def _check_network_io(network: Any, ident: EngineIdentity, label: str) -> None:
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    want = [p.input for p in ident.profiles]
    if sorted(names) != sorted(want):
        raise ModelError(f"artifact {label!r}: network inputs {names} do not match the manifest's {want}")
    if network.num_outputs != 1:
        raise ModelError(f"artifact {label!r}: expected one output, the network has {network.num_outputs}")


def make_logger(trt: Any):
    """A TensorRT ILogger that forwards to Python logging and keeps the last error."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.last_error = ""

        def log(self, severity: Any, msg: str) -> None:
            S = trt.ILogger.Severity
            text = " ".join(str(msg).split())
            if severity in (S.INTERNAL_ERROR, S.ERROR):
                self.last_error = text
                log.error("TensorRT: %s", text)
            elif severity == S.WARNING:
                log.warning("TensorRT: %s", text)
            else:
                log.debug("TensorRT: %s", text)

    return _Logger()


def make_progress_monitor(trt: Any, stream: IO[str], label: str):
    """An IProgressMonitor printing top-level phase progress to ``stream`` (thread-safe)."""

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._steps: dict[str, int] = {}
            self._parents: dict[str, str | None] = {}
            self._tty = bool(getattr(stream, "isatty", lambda: False)())
            self._t0 = time.perf_counter()

        def _say(self, text: str, final: bool = False) -> None:
            elapsed = time.perf_counter() - self._t0
            line = f"ganrt: building {label}: {text} [{elapsed:5.0f} s]"
            try:
                if self._tty:
                    stream.write("\r" + line[:120].ljust(120) + ("\n" if final else ""))
                else:
                    stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._steps[phase_name] = max(1, int(num_steps))
                self._parents[phase_name] = parent_phase
                if parent_phase is None or self._tty:
                    self._say(f"{phase_name} (0/{num_steps})")

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                if self._tty:
                    self._say(f"{phase_name} ({step + 1}/{self._steps.get(phase_name, 1)})")
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                if self._parents.pop(phase_name, "x") is None and not self._tty:
                    self._say(f"{phase_name} done")
                self._steps.pop(phase_name, None)

        def done(self) -> None:
            with self._lock:
                self._say("finished", final=True)

    return _Monitor()
