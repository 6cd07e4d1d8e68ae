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

from ...errors import BackendUnavailable, ConfigError, EngineMismatch, GanrtError, ModelError
from ...lazy import lazy_import
from .identity import DeviceFacts, EngineIdentity, Probe, check_trt_precision, make_identity, probe_device

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
    dla_fallback: tuple[str, ...] = ()  # layers TensorRT said cannot run on DLA (can_run_on_DLA)
    notes: tuple[str, ...] = ()  # what the build did or could not do, for the report (engine.json)
    layers: tuple[dict, ...] = ()  # per-layer info from the engine inspector (DLA builds)


class EngineBuilder(Protocol):
    """What ``load_or_build`` needs from a builder (the real one wraps TensorRT; tests inject a fake)."""

    version: str  # the TensorRT version the engines will be built with
    # (optional) build_label: str — which TensorRT build (wheel / system package); part of the identity

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


def wanted_identity(manifest, artifact, profile, builder_version: str, probe: Probe,
                    builder: Any = None) -> tuple[EngineIdentity, DeviceFacts]:
    facts = probe()
    build_label = str(getattr(builder, "build_label", "")) if builder is not None else ""
    return make_identity(manifest, artifact, profile, builder_version, facts, build_label), facts


def load_or_build(manifest, artifact, profile, cache_dir: Path | str | None = None, no_build: bool = False, *,
                  builder: EngineBuilder | None = None, probe: Probe | None = None, progress: bool = True,
                  cache: EngineCache | None = None) -> LoadResult:
    """The engine for ``artifact`` under ``profile`` on this device: from the cache when its
    identity matches exactly (and its bytes hash right), else built and cached — or, with
    ``no_build``, EngineMismatch naming the fields that differ from the nearest cached engine."""
    check_trt_precision(artifact)
    builder = builder if builder is not None else TensorRTBuilder()
    probe = probe if probe is not None else probe_device
    identity, facts = wanted_identity(manifest, artifact, profile, builder.version, probe, builder)
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
            "build_notes": list(out.notes),
            "layers": list(out.layers),
            "built_on": {"uuid": facts.uuid, "pci_bus_id": facts.pci_bus_id, "via": facts.via,
                         "helper_cuda_runtime": facts.helper_runtime},
        }
        try:
            entry = cache.store(identity, out.engine, meta)
        except OSError as exc:
            raise ConfigError(f"cannot write the engine cache at {cache.root} ({exc.strerror or exc}); "
                              f"set {CACHE_ENV} or --cache to a writable folder") from None
    for note in out.notes:
        log.warning("TensorRT build %s: %s", key[:12], note)
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


# --- the real builder (TensorRT) ---------------------------------------------------------------------


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
        dla, notes = ident.build.dla_core, []
        if dla is not None:
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
        if dla is not None:
            fallback, dla_notes = dla.configure_dla(
                trt, builder, network, config, dla, precision=ident.build.precision,
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
        if dla is not None:
            layers, line = dla.inspect_layers(trt, logger, engine, dla)
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
        except Exception:  # defensive: the bindings return None rather than raise
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
