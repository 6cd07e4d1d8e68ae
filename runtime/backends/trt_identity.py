"""What a TensorRT engine depends on, as one hashable identity (pure Python, no TensorRT).

Engines are not portable: an engine is only valid for the exact ONNX bytes, optimisation
profile, builder options, TensorRT version, CUDA runtime/driver and kind of GPU it was built
with. ``EngineIdentity`` records all of that; ``key()`` (sha256 of a canonical JSON) names the
cache folder, and ``diff()`` names the fields that differ when a cached engine does not fit.

What is deliberately *not* part of the identity:

- the GPU's UUID and PCI bus id: they name one physical chip, not what the engine was compiled
  for. Two identical cards (same name, compute capability, SM count, memory, ECC, integrated or
  not, same driver and toolkit) run the same engine, so a fleet of identical carts can share a
  prebuilt cache and a replaced board does not force a rebuild. The probe still reports them
  for logs (``DeviceFacts.uuid``).
- CUDA graphs: a runtime choice of how the engine is launched, not how it is built.

Device and toolkit facts come from ``probe_device()``, which imports cuda-python lazily
(``cuda.bindings.runtime``; pycuda as the alternative) and raises ``BackendUnavailable`` with
one line when there is no GPU or driver.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import BackendUnavailable, ConfigError, ModelError

#: Bump when the identity's layout or meaning changes: every older cache entry stops matching.
IDENTITY_SCHEMA = 1

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
    cuda_runtime: int  # cudaRuntimeGetVersion(), e.g. 12060
    cuda_driver: int  # cudaDriverGetVersion(): the newest CUDA the driver supports


@dataclass(frozen=True)
class BuildOptions:
    """Everything handed to the builder that changes the engine. No precision flags: the
    network is strongly typed, so precision is decided by the ONNX artifact itself."""

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
    def from_dict(cls, d: dict[str, Any]) -> "EngineIdentity":
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
    def from_json(cls, text: str) -> "EngineIdentity":
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

    def diff(self, other: "EngineIdentity") -> list[str]:
        """Dotted names of the fields that differ (empty when the identities are equal)."""
        a, b = self.flat(), other.flat()
        if a["profiles"] != b["profiles"]:
            names = ["profiles"]
            a = {k: v for k, v in a.items() if not k.startswith("profiles")}
            b = {k: v for k, v in b.items() if not k.startswith("profiles")}
            return names + [k for k in a if a[k] != b.get(k)]
        return [k for k in a if a[k] != b.get(k)]

    def describe_diff(self, other: "EngineIdentity", limit: int = 4) -> str:
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
        raw = json.dumps([t.tensorrt, t.cuda_runtime, t.cuda_driver, d.name, list(d.compute_capability),
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


def build_options(t, precision: str) -> BuildOptions:
    """BuildOptions from a profile's ``TensorRTOptions`` and the artifact's precision value."""
    return BuildOptions(
        precision=precision,
        strongly_typed=True,
        builder_optimization_level=int(t.builder_optimization_level),
        workspace_mb=int(t.workspace_mb),
        dla_core=t.dla_core,
        timing_cache=bool(t.timing_cache),
    )


# --- device and toolkit facts -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceFacts:
    """What the probe saw. ``uuid`` and ``pci_bus_id`` are for logs only (not in the identity)."""

    device: DeviceInfo
    cuda_runtime: int
    cuda_driver: int
    uuid: str = ""
    pci_bus_id: str = ""
    via: str = "cuda-python"


Probe = Callable[[], DeviceFacts]


def make_identity(manifest, artifact, profile, tensorrt_version: str, facts: DeviceFacts) -> EngineIdentity:
    """The identity of the engine for ``artifact`` under ``profile`` on the probed device."""
    mn, opt, mx = optimisation_profile(profile, manifest)
    return EngineIdentity(
        onnx_sha256=artifact.sha256,
        profiles=(ShapeProfile(manifest.input.name, mn, opt, mx),),
        build=build_options(profile.tensorrt, artifact.precision.value),
        toolkit=Toolkit(tensorrt=str(tensorrt_version), cuda_runtime=int(facts.cuda_runtime),
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


def _cuda_python_runtime():
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6
        return runtime
    except ImportError:
        from cuda import cudart  # older cuda-python 12.x layout
        return cudart


def probe_device(device: int = 0) -> DeviceFacts:
    """Facts about CUDA device ``device`` via cuda-python (pycuda when only that is installed).

    Raises BackendUnavailable with one line when neither is installed or there is no GPU/driver.
    """
    try:
        rt = _cuda_python_runtime()
    except ImportError:
        try:
            return _probe_pycuda(device)
        except ImportError:
            raise BackendUnavailable("cuda-python is not installed (needed to query the GPU); "
                                     "install ganrt[trt]") from None
    try:
        return _probe_cuda_python(rt, device)
    except BackendUnavailable:
        raise
    except Exception as exc:  # cuda-python raises RuntimeError subclasses when libcuda.so is absent
        raise BackendUnavailable(f"no usable CUDA GPU/driver ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text[:200]}"


def _probe_cuda_python(rt, device: int) -> DeviceFacts:
    def call(fn, *args):
        res = fn(*args)
        err, rest = (res[0], res[1:]) if isinstance(res, tuple) else (res, ())
        if int(err) != 0:
            name = rt.cudaGetErrorName(err)[1]
            name = name.decode() if isinstance(name, bytes) else str(name)
            raise BackendUnavailable(f"no usable CUDA GPU/driver ({fn.__name__}: {name})")
        return rest[0] if len(rest) == 1 else rest

    runtime_version = call(rt.cudaRuntimeGetVersion)
    driver_version = call(rt.cudaDriverGetVersion)
    if driver_version == 0:
        raise BackendUnavailable("no NVIDIA driver found (cudaDriverGetVersion reports none)")
    count = call(rt.cudaGetDeviceCount)
    if count <= device:
        raise BackendUnavailable(f"no CUDA device {device} (found {count})")
    p = call(rt.cudaGetDeviceProperties, device)
    name = p.name.decode(errors="replace").rstrip("\x00") if isinstance(p.name, bytes) else str(p.name)
    uuid = ""
    try:
        raw = bytes(p.uuid.bytes) if hasattr(p.uuid, "bytes") else b""
        uuid = raw.hex()
    except Exception:  # the uuid is informative only
        pass
    info = DeviceInfo(
        name=name.strip(),
        compute_capability=(int(p.major), int(p.minor)),
        sm_count=int(p.multiProcessorCount),
        total_memory_mib=int(p.totalGlobalMem) >> 20,
        ecc=bool(p.ECCEnabled),
        integrated=bool(p.integrated),
    )
    bus = f"{int(p.pciDomainID):04x}:{int(p.pciBusID):02x}:{int(p.pciDeviceID):02x}"
    return DeviceFacts(info, int(runtime_version), int(driver_version), uuid=uuid, pci_bus_id=bus, via="cuda-python")


def _probe_pycuda(device: int) -> DeviceFacts:
    import pycuda.driver as cuda  # noqa: PLC0415 - the alternative to cuda-python

    try:
        cuda.init()
        if cuda.Device.count() <= device:
            raise BackendUnavailable(f"no CUDA device {device} (found {cuda.Device.count()})")
        d = cuda.Device(device)
        A = cuda.device_attribute
        info = DeviceInfo(
            name=d.name().strip(),
            compute_capability=tuple(int(x) for x in d.compute_capability()),  # type: ignore[arg-type]
            sm_count=int(d.get_attribute(A.MULTIPROCESSOR_COUNT)),
            total_memory_mib=int(d.total_memory()) >> 20,
            ecc=bool(d.get_attribute(A.ECC_ENABLED)),
            integrated=bool(d.get_attribute(A.INTEGRATED)),
        )
        major, minor, _ = cuda.get_version()  # the CUDA pycuda was built against
        return DeviceFacts(info, major * 1000 + minor * 10, int(cuda.get_driver_version()),
                           pci_bus_id=d.pci_bus_id(), via="pycuda")
    except BackendUnavailable:
        raise
    except Exception as exc:
        raise BackendUnavailable(f"no usable CUDA GPU/driver ({_one_line(exc)})") from None


UNKNOWN_DEVICE = DeviceFacts(DeviceInfo("unknown", (0, 0), 0, 0, False, False), 0, 0, via="none")

__all__ = [
    "IDENTITY_SCHEMA", "BuildOptions", "DeviceFacts", "DeviceInfo", "EngineIdentity", "Probe", "Shape",
    "ShapeProfile", "Toolkit", "TRT_PRECISIONS", "UNKNOWN_DEVICE", "build_options", "check_trt_precision",
    "make_identity", "optimisation_profile", "probe_device",
]
