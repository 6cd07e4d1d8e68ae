"""The TensorRT engine cache on disk: paths, keys, atomic files, entries, the build lock.

Layout of the cache (default ``$GANRT_CACHE`` or ``~/.cache/ganrt/engines``)::

    <cache>/<key>/model.engine     the serialized engine (written atomically: tmp + os.replace)
    <cache>/<key>/engine.json      identity + build time + TensorRT version + DLA fallback report
    <cache>/timing/<name>.cache    TensorRT timing caches, one per TensorRT/CUDA/kind of device
    <cache>/.locks/<key>.lock      one builder at a time per engine

``<key>`` is ``EngineIdentity.key()``. ``engine.json`` is written after the engine, so an entry
without it is invisible; it records the engine's sha256, so a torn or replaced engine file is
detected and rebuilt instead of loaded.

Building an engine is ``builder.py``; ``load.py`` (``load_or_build``) puts the two together and never
loads a stale engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ...errors import ConfigError
from .identity import EngineIdentity

log = logging.getLogger(__name__)

CACHE_ENV = "GANRT_CACHE"
ENGINE_FILE = "model.engine"
META_FILE = "engine.json"
TIMING_DIR = "timing"
LOCK_DIR = ".locks"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ganrt" / "engines"


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
