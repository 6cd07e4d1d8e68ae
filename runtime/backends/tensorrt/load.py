"""The engine for an artifact on this device: ``load_or_build`` never loads a stale engine.

A cached engine is used only when its identity matches exactly and its bytes hash to what the cache
recorded; otherwise it is built (``builder.py``) and stored (``cache.py``) under the cache's lock,
or, with ``no_build``, refused with the fields that differ from the nearest cached engine.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError, EngineMismatch, GanrtError, ModelError
from .builder import BuildOutput, BuildRequest, EngineBuilder, TensorRTBuilder
from .cache import CACHE_ENV, CacheEntry, EngineCache
from .identity import DeviceFacts, EngineIdentity, Probe, check_trt_precision, make_identity, probe_device

log = logging.getLogger(__name__)


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
        out, seconds = _build(builder, cache, identity, artifact, progress, reason)
        meta = _build_meta(builder, artifact, profile, facts, out, seconds)
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


def _build(builder: EngineBuilder, cache: EngineCache, identity: EngineIdentity, artifact, progress: bool,
           reason: str) -> tuple[BuildOutput, float]:
    """Build from the verified ONNX with the saved timing cache (and save the one the build leaves);
    returns the output and the build's seconds."""
    onnx = artifact.verified_bytes()
    timing = cache.read_timing_cache(identity) if identity.build.timing_cache else None
    log.info("building TensorRT engine %s for %s (%s)", identity.key()[:12], artifact.key, reason)
    t0 = time.perf_counter()
    try:
        out = builder.build(BuildRequest(identity, onnx, artifact.key, timing, progress))
    except (GanrtError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 TensorRT's own exception types: one line, our class
        raise ModelError(f"building the TensorRT engine for artifact {artifact.key!r} failed "
                         f"({exc.__class__.__name__}: {' '.join(str(exc).split())[:300]})") from None
    seconds = time.perf_counter() - t0
    if identity.build.timing_cache and out.timing_cache:
        try:
            cache.write_timing_cache(identity, out.timing_cache)
        except OSError as exc:  # a lost timing cache only costs time on the next build
            log.warning("could not save the TensorRT timing cache (%s)", exc)
    return out, seconds


def _build_meta(builder: EngineBuilder, artifact, profile, facts: DeviceFacts, out: BuildOutput,
                seconds: float) -> dict[str, Any]:
    """What engine.json records about a build, besides the identity and the engine's hash."""
    return {
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
