"""Input domain check: frames far outside what the model was trained on go raw.

A model trained on one range of brightness, contrast and speckle grain has no evidence for how it
behaves elsewhere, and a learned enhancer fails silently there (it paints its training texture
over whatever it sees). The manifest's ``input_domain`` block declares, per statistic, the range
its training inputs covered (widened by the calibration's margin, export/guard_cal.py); a frame
whose statistic falls outside is shown raw with reason ``out-of-distribution``.

Statistics, on the imaging region of the 8-bit grey input:

- ``luma_mean``: mean grey level;
- ``hp_std``: standard deviation of the high-pass part (input minus a ``HIGHPASS_PX`` box mean):
  speckle and fine-structure contrast;
- ``grain_px``: the speckle grain size, the correlation length (sigma of a Gaussian
  autocorrelation) of the high-pass part, from the mean squared one-pixel difference:
  E[(h(x+1) - h(x))^2] = 2 var (1 - exp(-1 / (2 l^2))). Exact to about 5% up to l = 3 px; the
  high-pass compresses coarser grain (it still reads coarser).

They change slowly (a probe, a preset, a depth), so they are measured every ``every`` frames and
on a change of region; the verdict holds in between. Without the block nothing is checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..errors import ModelError

HIGHPASS_PX = 25  # box side: well above any speckle grain, below organ structure
STATS = ("luma_mean", "hp_std", "grain_px")


def frame_stats(gray: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """The statistics of one 8-bit grey image (``mask``: uint8, nonzero inside)."""
    g = gray.astype(np.float32)
    k = min(HIGHPASS_PX, max(3, min(g.shape) // 4 * 2 + 1))
    hp = g - cv2.blur(g, (k, k), borderType=cv2.BORDER_REFLECT)
    inside = np.ones(g.shape, bool) if mask is None else mask > 0
    if inside.sum() < 64:
        return {s: math.nan for s in STATS}
    var = float(hp[inside].var())
    both_x = inside[:, 1:] & inside[:, :-1]
    both_y = inside[1:, :] & inside[:-1, :]
    dx, dy = (hp[:, 1:] - hp[:, :-1])[both_x], (hp[1:, :] - hp[:-1, :])[both_y]
    msd = float(np.concatenate([dx * dx, dy * dy]).mean()) if dx.size + dy.size else math.nan
    grain = math.nan
    if var > 1e-6 and math.isfinite(msd):
        rho = 1.0 - msd / (2.0 * var)
        grain = math.sqrt(-1.0 / (2.0 * math.log(rho))) if 0.0 < rho < 1.0 else (0.0 if rho <= 0 else math.inf)
    return {"luma_mean": float(g[inside].mean()), "hp_std": math.sqrt(var), "grain_px": grain}


@dataclass(frozen=True)
class DomainConfig:
    ranges: dict[str, tuple[float, float]]  # statistic -> [lo, hi] accepted
    every: int = 15  # frames between measurements

    @classmethod
    def from_manifest(cls, manifest: Any) -> DomainConfig | None:
        raw = (getattr(manifest, "raw", None) or {}).get("input_domain")
        if raw is None:
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("ranges"), dict):
            raise ModelError("manifest: 'input_domain' must be an object with a 'ranges' object")
        ranges: dict[str, tuple[float, float]] = {}
        for name, r in raw["ranges"].items():
            if name not in STATS:
                raise ModelError(f"manifest: unknown input_domain statistic {name!r} (known: {', '.join(STATS)})")
            if not (isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r)
                    and r[0] <= r[1]):
                raise ModelError(f"manifest: input_domain.ranges.{name} must be [lo, hi] numbers with lo <= hi")
            ranges[name] = (float(r[0]), float(r[1]))
        every = raw.get("every", 15)
        if not isinstance(every, int) or every < 1:
            raise ModelError("manifest: input_domain.every must be a whole number >= 1")
        return cls(ranges, every)

    def outside(self, stats: dict[str, float]) -> list[str]:
        """The statistics out of range, as readable lines (empty: inside the domain). A NaN
        statistic (too few pixels to measure) is not evidence of anything: not out."""
        out = []
        for name, (lo, hi) in self.ranges.items():
            v = stats.get(name, math.nan)
            if not math.isnan(v) and not lo <= v <= hi:
                out.append(f"{name} {v:.2f} outside [{lo:g}, {hi:g}]")
        return out


class DomainMonitor:
    """Measures every ``config.every`` frames (and when the region changes); holds the verdict."""

    def __init__(self, config: DomainConfig) -> None:
        self.config = config
        self._key: object = None
        self._count = 0
        self._verdict: list[str] = []
        self.last_stats: dict[str, float] = {}

    def check(self, key: object, gray: np.ndarray, mask: np.ndarray | None) -> list[str]:
        """Reasons the frame is outside the domain (empty: inside). ``key`` names the region."""
        if key != self._key or self._count % self.config.every == 0:
            self._key, self._count = key, 0
            self.last_stats = frame_stats(gray, mask)
            self._verdict = self.config.outside(self.last_stats)
        self._count += 1
        return self._verdict
