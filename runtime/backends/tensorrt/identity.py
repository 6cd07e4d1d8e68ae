"""What a TensorRT engine depends on, as one hashable identity (pure Python, no TensorRT).

Engines are not portable: an engine is only valid for the exact ONNX bytes, optimisation
profile, builder options, TensorRT version and build, CUDA driver and kind of GPU it was built
with. ``EngineIdentity`` records all of that; ``key()`` (sha256 of a canonical JSON) names the
cache folder, and ``diff()`` names the fields that differ when a cached engine does not fit.

What is deliberately *not* part of the identity:

- the GPU's UUID and PCI bus id: they name one physical chip, not what the engine was compiled
  for. Two identical cards (same name, compute capability, SM count, memory, ECC, integrated or
  not, same driver and toolkit) run the same engine, so a fleet of identical carts can share a
  prebuilt cache and a replaced board does not force a rebuild. The probe still reports them
  for logs (``DeviceFacts.uuid``).
- CUDA graphs: a runtime choice of how the engine is launched, not how it is built.
- the CUDA runtime version of the helper library (cuda-python reports the runtime it links
  statically, pycuda the CUDA it was compiled against): neither is the CUDA TensorRT runs on, so
  upgrading a helper must not change an engine's key. What TensorRT depends on is its own version
  and build (``Toolkit.tensorrt_build``: the wheel or system package, which fixes its CUDA major)
  and the driver.

Device facts come from ``probe_device()`` (``probe.py``), which imports cuda-python lazily
(``cuda.bindings.runtime``; pycuda as the alternative) and raises ``BackendUnavailable`` with
one line when there is no GPU or driver, or the driver is older than the helper's CUDA.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError, ModelError

#: Bump when the identity's layout or meaning changes: every older cache entry stops matching.
IDENTITY_SCHEMA = 2  # 2: toolkit keys on TensorRT build + driver, not the helper's CUDA runtime

Shape = tuple[int, int, int, int]  # NCHW


# --- the identity ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """The kind of GPU an engine was built for (not which physical chip: no UUID)."""

    name: str
    compute_capability: tuple[int, int]
    sm_count: int
    total_memory_mib: int
    ecc: bool
    integrated: bool  # Jetson / iGPU (shares system memory) vs a discrete card

    def label(self) -> str:
        kind = "integrated" if self.integrated else "discrete"
        return (f"{self.name} (sm_{self.compute_capability[0]}{self.compute_capability[1]}, {self.sm_count} SMs, "
                f"{self.total_memory_mib} MiB, ECC {'on' if self.ecc else 'off'}, {kind})")


@dataclass(frozen=True)
class Toolkit:
    tensorrt: str  # trt.__version__ (or the ONNX Runtime TensorRT EP's label)
    tensorrt_build: str  # which TensorRT build: e.g. "tensorrt-cu12-libs 10.3.0 (cu12)" or the system package
    cuda_driver: int  # cudaDriverGetVersion(): the newest CUDA the driver supports


@dataclass(frozen=True)
class BuildOptions:
    """Everything handed to the builder that changes the engine. Strongly typed networks take
    their precision from the ONNX artifact; DLA engines on TensorRT 10.x are built weakly typed
    with FP16 (+ INT8 for Q/DQ artifacts) builder flags, as trtexec does (``strongly_typed``)."""

    precision: str  # the artifact's Precision value: fp32 | fp16 | int8-trt
    strongly_typed: bool
    builder_optimization_level: int
    workspace_mb: int
    dla_core: int | None
    timing_cache: bool


@dataclass(frozen=True)
class ShapeProfile:
    """One optimisation profile entry: NCHW min/opt/max for one input tensor."""

    input: str
    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))


@dataclass(frozen=True)
class EngineIdentity:
    onnx_sha256: str
    profiles: tuple[ShapeProfile, ...]
    build: BuildOptions
    toolkit: Toolkit
    device: DeviceInfo

    # -- serialisation --

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {"schema": IDENTITY_SCHEMA, **_lists(d)}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def key(self) -> str:
        """sha256 (hex) of the canonical JSON: the cache folder's name."""
        return hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineIdentity:
        if not isinstance(d, dict):
            raise ValueError("engine identity must be a JSON object")
        if d.get("schema") != IDENTITY_SCHEMA:
            raise ValueError(f"engine identity schema {d.get('schema')!r} (this ganrt writes {IDENTITY_SCHEMA})")
        try:
            dev = dict(d["device"])
            dev["compute_capability"] = tuple(int(x) for x in dev["compute_capability"])
            return cls(
                onnx_sha256=str(d["onnx_sha256"]),
                profiles=tuple(
                    ShapeProfile(input=str(p["input"]), min=_shape(p["min"]), opt=_shape(p["opt"]), max=_shape(p["max"]))
                    for p in d["profiles"]
                ),
                build=BuildOptions(**d["build"]),
                toolkit=Toolkit(**d["toolkit"]),
                device=DeviceInfo(**dev),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed engine identity ({exc.__class__.__name__}: {exc})") from None

    @classmethod
    def from_json(cls, text: str) -> EngineIdentity:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ValueError(f"engine identity is not JSON ({exc})") from None

    # -- comparison --

    def flat(self) -> dict[str, Any]:
        """Leaf fields by dotted path, e.g. ``device.sm_count``, ``profiles[0].max``."""
        out: dict[str, Any] = {"onnx_sha256": self.onnx_sha256, "profiles": len(self.profiles)}
        for i, p in enumerate(self.profiles):
            for f in dataclasses.fields(p):
                out[f"profiles[{i}].{f.name}"] = getattr(p, f.name)
        for group in ("build", "toolkit", "device"):
            obj = getattr(self, group)
            for f in dataclasses.fields(obj):
                out[f"{group}.{f.name}"] = getattr(obj, f.name)
        return out

    def diff(self, other: EngineIdentity) -> list[str]:
        """Dotted names of the fields that differ (empty when the identities are equal)."""
        a, b = self.flat(), other.flat()
        if a["profiles"] != b["profiles"]:
            names = ["profiles"]
            a = {k: v for k, v in a.items() if not k.startswith("profiles")}
            b = {k: v for k, v in b.items() if not k.startswith("profiles")}
            return names + [k for k in a if a[k] != b.get(k)]
        return [k for k in a if a[k] != b.get(k)]

    def describe_diff(self, other: EngineIdentity, limit: int = 4) -> str:
        """One line: ``toolkit.tensorrt (cached 10.3.0, here 10.7.0), device.sm_count (…)``.
        ``self`` is the cached identity, ``other`` the one wanted here."""
        a, b = self.flat(), other.flat()
        names = self.diff(other)
        parts = [f"{n} (cached {_short(a.get(n))}, here {_short(b.get(n))})" for n in names[:limit]]
        if len(names) > limit:
            parts.append(f"+{len(names) - limit} more")
        return ", ".join(parts)

    def timing_cache_name(self) -> str:
        """Timing caches are valid per TensorRT version, CUDA and kind of device, not per model."""
        d, t = self.device, self.toolkit
        raw = json.dumps([t.tensorrt, t.tensorrt_build, t.cuda_driver, d.name, list(d.compute_capability),
                          d.sm_count, d.integrated], separators=(",", ":"))
        return f"trt{t.tensorrt}_sm{d.compute_capability[0]}{d.compute_capability[1]}_" \
               f"{hashlib.sha256(raw.encode()).hexdigest()[:16]}.cache"


def _lists(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _lists(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_lists(v) for v in obj]
    return obj


def _shape(v: Any) -> Shape:
    s = tuple(int(x) for x in v)
    if len(s) != 4:
        raise TypeError(f"shape {v!r} is not NCHW")
    return s  # type: ignore[return-value]


def _short(v: Any) -> str:
    if isinstance(v, str) and len(v) == 64:
        return v[:12] + "…"
    if isinstance(v, tuple) and len(v) == 4:
        return "x".join(str(x) for x in v)
    return repr(v) if isinstance(v, str) else str(v)


# --- optimisation profile (pure) ---------------------------------------------------------------------


def _round_up(v: int, multiple: int) -> int:
    return -(-v // multiple) * multiple


def optimisation_profile(profile, manifest) -> tuple[Shape, Shape, Shape]:
    """(min, opt, max) NCHW shapes for the manifest's input under a DeviceProfile.

    H and W come from ``profile.tensorrt.{min,opt,max}_hw`` rounded UP to the manifest's
    ``size_multiple`` (the preprocessor pads frames up to it); channels from the manifest. Batch
    is 1 at min and opt and ``tensorrt.max_batch`` at max when the manifest says its artifacts
    take a dynamic batch (``io.dynamic_batch``), else 1: a static-batch ONNX cannot build a range.
    DLA (``tensorrt.dla_core`` set) takes static shapes only: min == opt == max.
    """
    t = profile.tensorrt
    m = max(1, int(manifest.size_multiple))
    c = int(manifest.input.channels)
    n = int(getattr(t, "max_batch", 1)) if getattr(manifest, "dynamic_batch", False) else 1
    shapes = tuple((b, c, _round_up(h, m), _round_up(w, m))
                   for b, (h, w) in zip((1, 1, n), (t.min_hw, t.opt_hw, t.max_hw)))
    mn, opt, mx = shapes
    if t.dla_core is not None and not (mn == opt == mx):
        raise ConfigError(
            f"{profile.source}: profile {profile.name!r} sets tensorrt.dla_core = {t.dla_core}, and DLA takes static "
            f"shapes only: min_hw, opt_hw and max_hw must be equal (got {_short(mn)}, {_short(opt)}, {_short(mx)} "
            f"after rounding to multiples of {m})"
        )
    return mn, opt, mx  # type: ignore[return-value]


def dla_builds_weakly_typed(tensorrt_version: str) -> bool:
    """TensorRT 10.x builds DLA engines weakly typed with FP16/INT8 flags (trtexec and the samples'
    ``enableDLA`` do); from 11 every network is strongly typed and those flags are gone."""
    try:
        return int(str(tensorrt_version).split(".")[0]) < 11
    except ValueError:
        return True


def build_options(t, precision: str, tensorrt_version: str = "") -> BuildOptions:
    """BuildOptions from a profile's ``TensorRTOptions``, the artifact's precision value and the
    TensorRT version that builds (it decides how a DLA engine is typed)."""
    weak = t.dla_core is not None and bool(tensorrt_version) and dla_builds_weakly_typed(tensorrt_version)
    return BuildOptions(
        precision=precision,
        strongly_typed=not weak,
        builder_optimization_level=int(t.builder_optimization_level),
        workspace_mb=int(t.workspace_mb),
        dla_core=t.dla_core,
        timing_cache=bool(t.timing_cache),
    )


# --- device and toolkit facts -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceFacts:
    """What the probe saw. ``helper_runtime`` (the helper library's own CUDA runtime version),
    ``uuid`` and ``pci_bus_id`` are for logs only (not in the identity)."""

    device: DeviceInfo
    helper_runtime: int
    cuda_driver: int
    uuid: str = ""
    pci_bus_id: str = ""
    via: str = "cuda-python"


Probe = Callable[[], DeviceFacts]


def make_identity(manifest, artifact, profile, tensorrt_version: str, facts: DeviceFacts,
                  tensorrt_build: str = "") -> EngineIdentity:
    """The identity of the engine for ``artifact`` under ``profile`` on the probed device, built by
    TensorRT ``tensorrt_version`` from the build ``tensorrt_build`` names."""
    mn, opt, mx = optimisation_profile(profile, manifest)
    return EngineIdentity(
        onnx_sha256=artifact.sha256,
        profiles=(ShapeProfile(manifest.input.name, mn, opt, mx),),
        build=build_options(profile.tensorrt, artifact.precision.value, str(tensorrt_version)),
        toolkit=Toolkit(tensorrt=str(tensorrt_version), tensorrt_build=str(tensorrt_build),
                        cuda_driver=int(facts.cuda_driver)),
        device=facts.device,
    )


TRT_PRECISIONS = ("fp32", "fp16", "int8-trt")


def check_trt_precision(artifact) -> None:
    """TensorRT takes fp32, fp16 and the symmetric int8 Q/DQ artifact, not ORT-CPU's u8 one."""
    if artifact.precision.value not in TRT_PRECISIONS:
        raise ModelError(
            f"artifact {artifact.key!r} is {artifact.precision.value}: TensorRT takes {', '.join(TRT_PRECISIONS)} "
            f"(the int8-cpu artifact has asymmetric u8 activations, which TensorRT rejects)"
        )


def probe_device(device: int = 0) -> DeviceFacts:
    """Facts about CUDA device ``device`` (see ``cuda_probe.probe``); BackendUnavailable with one
    line when no helper library is installed, there is no GPU, or the driver is too old for it."""
    from .probe import probe

    return probe(device)


UNKNOWN_DEVICE = DeviceFacts(DeviceInfo("unknown", (0, 0), 0, 0, False, False), 0, 0, via="none")

__all__ = [
    "IDENTITY_SCHEMA", "BuildOptions", "DeviceFacts", "DeviceInfo", "EngineIdentity", "Probe", "Shape",
    "ShapeProfile", "Toolkit", "TRT_PRECISIONS", "UNKNOWN_DEVICE", "build_options", "check_trt_precision",
    "dla_builds_weakly_typed", "make_identity", "optimisation_profile", "probe_device",
]
