"""How a region is asked for: ``RegionConfig`` from ``--region`` or the profile's ``[region]`` table,
and the default region of a bundle by its modality. What the modes mean: region.py."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from ..errors import ConfigError
from .region_mask import Box
from .us_regions import UsRegion

DEFAULT_FRAMES = 15  # half a second at 30 fps: enough speckle decorrelation to separate it from UI
# detection's thresholds live with the detectors (region_detect.py)


class RegionMode(Enum):
    AUTO = "auto"
    FULL = "full"
    RECT = "rect"
    POLYGON = "polygon"
    MASK = "mask"


# The region a bundle gets when neither --region nor the profile's [region] names one, by the
# modality its manifest is for. Ultrasound frames carry scanner text, scales and calipers around
# and inside the sector: detect the image area (no UI pixel is touched unless --region full).
# Anything else (colour endoscopy: the scope's circle fills the frame) keeps the whole frame.
DEFAULT_MODE_BY_MODALITY: dict[str, RegionMode] = {"US": RegionMode.AUTO}


@dataclass(frozen=True)
class RegionConfig:
    mode: RegionMode = RegionMode.FULL
    frames: int = DEFAULT_FRAMES  # auto: frames collected before the region is fixed
    rect: Box | None = None
    polygon: tuple[tuple[int, int], ...] = ()
    mask: Path | None = None  # nonzero pixels are inside
    carve_marks: bool = True  # auto: static bright/coloured marks inside the sector stay untouched
    # auto: the source's DICOM ultrasound regions (checked against each frame size before use)
    us_regions: tuple[UsRegion, ...] = ()

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ConfigError(f"region frames must be >= 1 (got {self.frames})")
        need = {RegionMode.RECT: self.rect, RegionMode.POLYGON: self.polygon, RegionMode.MASK: self.mask}
        if self.mode in need and not need[self.mode]:
            raise ConfigError(f"region mode {self.mode.value} needs its '{self.mode.value}' value")
        if self.rect is not None and (self.rect.w < 1 or self.rect.h < 1):
            raise ConfigError(f"region rectangle needs a positive width and height (got {tuple(self.rect)})")
        if self.mode is RegionMode.POLYGON and len(self.polygon) < 3:
            raise ConfigError("region polygon needs at least 3 points")
        if self.mode is RegionMode.MASK and not self.mask.is_file():
            raise ConfigError(f"region mask {self.mask} does not exist")

    @classmethod
    def parse(cls, text: str, base: RegionConfig | None = None) -> RegionConfig:
        """``--region auto[:FRAMES] | full | X,Y,W,H`` (other settings kept from ``base``)."""
        base = base or cls()
        t = text.strip().lower()
        keep = dict(frames=base.frames, carve_marks=base.carve_marks, us_regions=base.us_regions)
        if t == "full":
            return cls(RegionMode.FULL, **keep)
        if t == "auto" or t.startswith("auto:"):
            n = t.partition(":")[2]
            try:
                keep["frames"] = int(n) if n else base.frames
            except ValueError:
                raise ConfigError(f"--region {text!r}: auto:FRAMES needs a whole number") from None
            return cls(RegionMode.AUTO, **keep)
        try:
            vals = [int(v) for v in t.split(",")]
        except ValueError:
            vals = []
        if len(vals) != 4:
            raise ConfigError(f"--region {text!r}: expected auto[:FRAMES], full or X,Y,W,H in pixels")
        return cls(RegionMode.RECT, rect=Box(*vals), **keep)

    @classmethod
    def default_for(cls, modality: str) -> RegionConfig:
        """The default region for a bundle whose frames are of ``modality`` (see DEFAULT_MODE_BY_MODALITY)."""
        return cls(DEFAULT_MODE_BY_MODALITY.get(modality, RegionMode.FULL))

    def for_source(self, source: object) -> RegionConfig:
        """This config with what ``source`` says of its image areas (a DICOM file's ultrasound
        regions, ``source.us_regions``): used by auto detection only."""
        hint = tuple(getattr(source, "us_regions", None) or ())
        if self.mode is not RegionMode.AUTO or not hint:
            return self
        return replace(self, us_regions=hint)

    @classmethod
    def from_dict(cls, raw: dict, where: str, base_dir: Path | None = None) -> RegionConfig:
        """The profile's ``[region]`` table (keys already checked by the profile loader)."""
        try:
            mode = RegionMode(raw.get("mode", "full"))
        except ValueError:
            choices = ", ".join(m.value for m in RegionMode)
            raise ConfigError(f"{where}: region.mode {raw.get('mode')!r} is not one of: {choices}") from None
        rect = raw.get("rect")
        poly = raw.get("polygon", ())
        if rect is not None and not (isinstance(rect, list) and len(rect) == 4
                                     and all(isinstance(v, int) for v in rect)):
            raise ConfigError(f"{where}: region.rect must be [x, y, width, height] in pixels")
        if not (isinstance(poly, (list, tuple)) and all(isinstance(p, list) and len(p) == 2
                                                       and all(isinstance(v, int) for v in p) for p in poly)):
            raise ConfigError(f"{where}: region.polygon must be a list of [x, y] points")
        mask = raw.get("mask")
        if mask is not None:
            mask = Path(mask)
            if not mask.is_absolute() and base_dir is not None:
                mask = base_dir / mask
        try:
            return cls(mode, frames=int(raw.get("frames", DEFAULT_FRAMES)), rect=Box(*rect) if rect else None,
                       polygon=tuple((int(x), int(y)) for x, y in poly), mask=mask,
                       carve_marks=bool(raw.get("carve_marks", True)))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
