"""Typed device profiles (firmware_configs/*.toml): data only, schema-checked.

Unknown keys are an error naming the file and the key, so a typo never silently
falls back to a default on a cart.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (JetPack 6's system Python, which its TensorRT is built for)
    import tomli as tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..backends.base import Backend
from ..backends.triton.contract import TritonOptions
from ..errors import ConfigError
from ..serve.tiers import TierConfig
from ..trust.phi import PhiConfig
from ..trust.region import RegionConfig
from ..trust.temporal import TemporalConfig
from .manifest import Precision

PROFILE_DIR = Path(__file__).resolve().parents[2] / "firmware_configs"
DEFAULT_PROFILE = "cpu-x86-2core"


@dataclass(frozen=True)
class Threads:
    intra_op: int = 0  # 0 = library default (all cores)
    inter_op: int = 1
    spin: bool = True  # ORT intra-op busy-wait; off where capture/encode share few cores


@dataclass(frozen=True)
class TensorRTOptions:
    min_hw: tuple[int, int] = (256, 256)
    opt_hw: tuple[int, int] = (512, 512)
    max_hw: tuple[int, int] = (1088, 1920)
    workspace_mb: int = 1024
    builder_optimization_level: int = 3
    timing_cache: bool = True
    cuda_graphs: bool = True  # must be false when dla_core is set
    dla_core: int | None = None  # only on devices that have DLA (AGX/NX, not Orin Nano)
    # Largest batch the engine's profile takes (several streams' frames in one call); 1 = no batching.
    # Only models whose manifest says io.dynamic_batch get more than 1.
    max_batch: int = 1


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    budget_ms: float
    input_hw: tuple[int, int]
    precision: Precision
    backends: tuple[Backend, ...]
    threads: Threads = field(default_factory=Threads)
    tensorrt: TensorRTOptions = field(default_factory=TensorRTOptions)
    region: RegionConfig | None = None  # [region]: where enhancement may act (None: the bundle's default)
    phi: PhiConfig = field(default_factory=PhiConfig)  # [phi]: masking outside the region
    temporal: TemporalConfig = field(default_factory=TemporalConfig)  # [temporal]: output smoothing
    triton: TritonOptions = field(default_factory=TritonOptions)  # [triton]: a Triton server to run the model on
    tiers: TierConfig = field(default_factory=TierConfig)  # [tiers]: reduced-resolution tier near the budget
    source: str = "<built-in>"

    @classmethod
    def load(cls, path: str | Path) -> DeviceProfile:
        p = resolve_profile_path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p.name}: cannot read profile ({exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p.name}: malformed TOML ({exc})") from None
        return cls.from_dict(raw, p.name, base_dir=p.resolve().parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str, base_dir: Path | None = None) -> DeviceProfile:
        top = {f.name for f in fields(cls)} - {"source"}
        _reject_unknown(raw, top, where, "")
        for req in ("name", "budget_ms", "input_hw", "precision", "backends"):
            if req not in raw:
                raise ConfigError(f"{where}: missing key '{req}'")
        try:
            threads = raw.get("threads", {})
            trt = raw.get("tensorrt", {})
            _reject_unknown(threads, {f.name for f in fields(Threads)}, where, "threads.")
            _check_types(threads, Threads, where, "threads.")
            _reject_unknown(trt, {f.name for f in fields(TensorRTOptions)}, where, "tensorrt.")
            trt = {k: tuple(v) if isinstance(v, list) else v for k, v in trt.items()}
            sections = {k: raw.get(k, {}) for k in ("region", "phi", "temporal")}
            for key, allowed in SECTION_KEYS.items():
                _reject_unknown(sections[key], allowed, where, f"{key}.")
            prof = cls(
                name=str(raw["name"]),
                description=str(raw.get("description", "")),
                budget_ms=float(raw["budget_ms"]),
                input_hw=_hw(raw["input_hw"], where, "input_hw"),
                precision=_enum(Precision, raw["precision"], where, "precision"),
                backends=tuple(_enum(Backend, b, where, "backends") for b in raw["backends"]),
                threads=Threads(**threads),
                tensorrt=TensorRTOptions(**trt),
                region=RegionConfig.from_dict(sections["region"], where, base_dir) if "region" in raw else None,
                phi=PhiConfig.from_dict(sections["phi"], where),
                temporal=TemporalConfig.from_dict(sections["temporal"], where),
                triton=TritonOptions.from_dict(_table(raw.get("triton", {}), where, "triton"), where),
                tiers=TierConfig.from_dict(_table(raw.get("tiers", {}), where, "tiers"), where),
                source=where,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: bad value ({exc})") from None
        prof._check(where)
        return prof

    def _check(self, where: str) -> None:
        if not 1.0 <= self.budget_ms <= 10_000:
            raise ConfigError(f"{where}: budget_ms must be between 1 and 10000 (got {self.budget_ms})")
        if not self.backends:
            raise ConfigError(f"{where}: backends must list at least one backend")
        t = self.tensorrt
        for a, b in ((t.min_hw, t.opt_hw), (t.opt_hw, t.max_hw)):
            if a[0] > b[0] or a[1] > b[1]:
                raise ConfigError(f"{where}: tensorrt shapes must satisfy min_hw <= opt_hw <= max_hw")
        if t.dla_core is not None and t.dla_core < 0:
            raise ConfigError(f"{where}: tensorrt.dla_core must be >= 0")
        if t.dla_core is not None and t.cuda_graphs:
            # Capturing a launch of a DLA engine into a CUDA graph fails (TensorRT runs DLA work
            # outside stream capture's reach), so the combination is refused, not silently dropped.
            raise ConfigError(f"{where}: tensorrt.cuda_graphs = true cannot be used with tensorrt.dla_core = "
                              f"{t.dla_core} (CUDA graph capture fails with DLA engines); set cuda_graphs = false")
        if not 1 <= t.max_batch <= MAX_TRT_BATCH:
            raise ConfigError(f"{where}: tensorrt.max_batch must be between 1 and {MAX_TRT_BATCH} (got {t.max_batch})")


MAX_TRT_BATCH = 16

SECTION_KEYS: dict[str, set[str]] = {
    "region": {"mode", "frames", "rect", "polygon", "mask", "carve_marks"},
    "phi": {"enabled", "keep"},
    "temporal": {"filter", "alpha"},
}


def _reject_unknown(raw: dict, allowed: set[str], where: str, prefix: str) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: '{prefix.rstrip('.')}' must be a table")
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'")


def _table(raw, where: str, key: str) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: '{key}' must be a table")
    return raw


def _check_types(raw: dict, kind: type, where: str, prefix: str) -> None:
    """TOML values against the dataclass defaults' types (``intra_op = "two"`` is not a count)."""
    for f in fields(kind):
        if f.name in raw:
            want = type(f.default)
            v = raw[f.name]
            if type(v) is not want:  # bool is not an int here either
                raise ConfigError(f"{where}: {prefix}{f.name} must be {want.__name__} (got {v!r})")


def _enum(kind, value, where: str, key: str):
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise ConfigError(f"{where}: {key} {value!r} is not one of: {choices}") from None


def _hw(v, where: str, key: str) -> tuple[int, int]:
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v)):
        raise ConfigError(f"{where}: {key} must be [height, width] in pixels")
    return int(v[0]), int(v[1])


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """A file, or the name of a shipped profile. Anything spelled as a path (a folder part or
    a suffix) must exist: a mistyped path never silently loads the shipped profile of that name."""
    p = Path(name_or_path)
    if p.exists():
        return p
    if len(p.parts) > 1 or p.suffix:
        raise ConfigError(f"no such profile file: {name_or_path}")
    shipped = PROFILE_DIR / f"{p.stem}.toml"
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(x.stem for x in PROFILE_DIR.glob("*.toml")))
    raise ConfigError(f"no such profile: {name_or_path} (shipped: {known})")


def shipped_profiles() -> list[Path]:
    return sorted(PROFILE_DIR.glob("*.toml"))
