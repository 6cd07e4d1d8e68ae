"""Fidelity check: the enhanced frame, degraded back the way the input was, must explain the input.

A GAN can invent structure (a lesion, a vessel wall) that the probe never saw. Whatever it
adds must survive the degradation that separates the two domains, so we undo the
enhancement's domain shift and compare on a coarse scale:

1. degrade the shown frame like the input was degraded: ``gaussian`` (the point-of-care
   probe's wider PSF, for same-size enhancement) or ``downsample`` (area average by the
   model's scale, for super-resolution);
2. reduce both to a grid of ``grid`` cells across the frame's shorter side (area average)
   and smooth both by one cell: speckle and noise average out, structure stays (the PSF
   blur is applied at this scale: Gaussians compose, sigma / cell after the area average);
3. fit one gain and offset (least squares inside the region, gain clamped to [1/4, 4]) and
   remove the residual's smooth part (Gaussian, ``detrend_cells``): a global or slowly
   varying tone change (dynamic range, gain and TGC correction) is what the model is
   trained to do;
4. the residual's mean square per tile of ``tile_cells`` x ``tile_cells`` cells inside the
   region; the score is the PSNR (values in [0, 1]) of the *worst* tile, so one invented
   blob fails the frame even when the rest of it is faithful.

``method = "structure"`` replaces steps 3-4 with the output's local structure that the input
does not explain (``Method.STRUCTURE``): insensitive to local contrast changes, which a smoke
veil or low light cause and which the residual cannot tell from an invented blob.

Below ``min_db`` the frame is shown raw (reason ``fidelity``). The threshold is per model,
in the manifest's optional ``fidelity`` block; without one, ``DEFAULT_MIN_DB`` applies.

Calibrating the default: the bundled ``us-enhance`` student (int8-cpu and fp32) on 164
frames of ``ganrt.export.data.simulator`` (48 single renders and 24 cine frames at 256 px,
20 renders and 12 cine frames at 512 px) and the 60 frames of the bundled demo cine, the
sector as the region. Its lowest score was ``CALIBRATED_FLOOR_DB`` (median 29-34 dB by
set); the default threshold is ``CALIBRATION_MARGIN_DB`` below that floor, so normal
output passes with that margin (tests/runtime/test_fidelity.py re-measures it on other
simulated frames). What it catches there is bounded by how much the model itself
legitimately changes: on the same frames a Gaussian blob (sigma 1/20 of the frame) that
darkens by 0.5 of full scale fails about 3 frames in 4, one that brightens by 0.5 about 1
in 2 (most of the misses are blobs clipped at white on tissue the model already shows
bright); faint or small inventions pass. A tighter threshold belongs in the manifest of a
more faithful model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import cv2
import numpy as np

from ..errors import ModelError

CALIBRATED_FLOOR_DB = 26.7
CALIBRATION_MARGIN_DB = 2.2
DEFAULT_MIN_DB = CALIBRATED_FLOOR_DB - CALIBRATION_MARGIN_DB
GAIN_RANGE = (0.25, 4.0)  # an inverted or flattened image is not a tone change
MIN_TILE_COVERAGE = 0.5  # a tile counts when at least half of it is inside the region
STRUCTURE_EPS = 9e-5  # stabilises the local correlation of flat cells (a tenth of SSIM's C2 on [0, 1])


class Degrade(Enum):
    GAUSSIAN = "gaussian"
    DOWNSAMPLE = "downsample"
    NONE = "none"


class Method(Enum):
    """How a tile's disagreement is measured once both frames are on the cell grid."""

    RESIDUAL = "residual"  # input minus the tone-matched output (steps 3-4 above)
    # Output structure the input does not explain: (1 - local correlation) x the output's local
    # variance. A contrast change (smoke, low light, gain) keeps the correlation; an invented blob
    # has none with the input. Scored as PSNR of that energy, like the residual.
    STRUCTURE = "structure"


@dataclass(frozen=True)
class FidelityConfig:
    min_db: float = DEFAULT_MIN_DB
    degrade: Degrade = Degrade.GAUSSIAN
    sigma_px: float = 2.0  # gaussian: the point-of-care PSF blur, input pixels
    grid: int = 32  # comparison cells across the frame's shorter side (a cell is larger than a speckle)
    tile_cells: int = 4  # tile side, cells
    detrend_cells: float = 4.0  # smooth tone changes removed from the residual (Gaussian sigma, cells)
    enabled: bool = True
    method: Method = Method.RESIDUAL
    window_cells: float = 1.0  # structure: the local correlation's Gaussian window (sigma, cells)
    # The reduced tier's threshold (runtime.tiers: the model on a downsampled crop, its output upsampled).
    # An upsampled output departs further from the re-degraded input than a full-resolution one, so it
    # has its own calibrated floor; None: ``min_db``.
    min_db_reduced: float | None = None

    def __post_init__(self) -> None:
        if self.grid < 2 or self.tile_cells < 1 or self.sigma_px < 0 or self.detrend_cells < 0 \
                or not self.window_cells > 0:
            raise ModelError("fidelity: need grid >= 2, tile_cells >= 1, sigma_px >= 0, detrend_cells >= 0 "
                             "and window_cells > 0")

    @classmethod
    def from_manifest(cls, manifest: Any) -> FidelityConfig:
        """The manifest's optional ``fidelity`` block; absent: defaults (downsample for a scale > 1 model)."""
        raw = (getattr(manifest, "raw", None) or {}).get("fidelity")
        scale = int(getattr(manifest, "scale", 1) or 1)
        base = cls(degrade=Degrade.DOWNSAMPLE if scale > 1 else Degrade.GAUSSIAN)
        if raw is None:
            return base
        if not isinstance(raw, dict):
            raise ModelError("manifest: 'fidelity' must be an object")
        unknown = set(raw) - set(base.to_dict())
        if unknown:
            raise ModelError(f"manifest: unknown fidelity key(s) {', '.join(sorted(unknown))}")
        try:
            kw = {**base.to_dict(), **raw}
            kw["degrade"] = Degrade(kw["degrade"])
            kw["method"] = Method(kw["method"])
            for k in ("min_db", "sigma_px", "detrend_cells", "window_cells"):
                kw[k] = float(kw[k])
            kw["min_db_reduced"] = None if kw["min_db_reduced"] is None else float(kw["min_db_reduced"])
            for k in ("grid", "tile_cells"):
                kw[k] = int(kw[k])
            kw["enabled"] = bool(kw["enabled"])
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"manifest: malformed fidelity block ({exc})") from None

    def to_dict(self) -> dict[str, Any]:
        return {"min_db": self.min_db, "degrade": self.degrade.value, "sigma_px": self.sigma_px, "grid": self.grid,
                "tile_cells": self.tile_cells, "detrend_cells": self.detrend_cells, "enabled": self.enabled,
                "method": self.method.value, "window_cells": self.window_cells, "min_db_reduced": self.min_db_reduced}

    def threshold(self, reduced: bool = False) -> float:
        """The score a frame must reach: ``min_db_reduced`` for a reduced-tier frame when calibrated."""
        return self.min_db_reduced if reduced and self.min_db_reduced is not None else self.min_db


@dataclass(frozen=True)
class FidelityScore:
    worst_db: float  # PSNR of the worst tile (the score); NaN when the region has no tile to judge
    mean_db: float  # PSNR over the whole region

    def passes(self, min_db: float) -> bool:
        return math.isnan(self.worst_db) or self.worst_db >= min_db


NOT_JUDGED = FidelityScore(math.nan, math.nan)


def _gray_u8(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.shape[2] == 3 else img[:, :, 0]
    return img


def _cells(img: np.ndarray, ws: int, hs: int) -> np.ndarray:
    """Area average to ws x hs cells, as float32 in [0, 1] (averaged in float: no rounding)."""
    return cv2.resize(img.astype(np.float32), (ws, hs), interpolation=cv2.INTER_AREA) * np.float32(1.0 / 255.0)


def _psnr(mse: float) -> float:
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


class FidelityMonitor:
    def __init__(self, config: FidelityConfig = FidelityConfig(), scale: int = 1) -> None:
        self.config, self.scale = config, max(1, scale)

    def cell_px(self, frame_hw: tuple[int, int]) -> int:
        return max(2, int(round(min(frame_hw) / self.config.grid)))

    def score(self, raw: np.ndarray, shown: np.ndarray, mask: np.ndarray | None = None,
              frame_hw: tuple[int, int] | None = None) -> FidelityScore:
        """``raw``: the input (8-bit, input resolution); ``shown``: what will be displayed for it
        (8-bit, ``scale`` times larger); ``mask``: uint8 region at input resolution (None: all);
        ``frame_hw``: the whole frame's size when ``raw`` is a crop of it (sets the cell size)."""
        c = self.config
        a, b = _gray_u8(raw), _gray_u8(shown)
        h, w = a.shape
        if b.shape != a.shape:  # super-resolution: back to the input's grid
            b = cv2.resize(b, (w, h), interpolation=cv2.INTER_AREA)
        cell = self.cell_px(frame_hw or (h, w))
        hs, ws = h // cell, w // cell
        if hs < 2 or ws < 2:
            return NOT_JUDGED
        a = _cells(a[:hs * cell, :ws * cell], ws, hs)
        b = _cells(b[:hs * cell, :ws * cell], ws, hs)
        sig_b = 1.0
        if c.degrade is Degrade.GAUSSIAN and c.sigma_px > 0:
            sig_b = math.hypot(1.0, c.sigma_px / cell)
        a = cv2.GaussianBlur(a, (0, 0), 1.0)
        b = cv2.GaussianBlur(b, (0, 0), sig_b)
        if mask is None:
            valid = np.ones((hs, ws), np.float32)
        else:
            cover = cv2.resize(mask[:hs * cell, :ws * cell], (ws, hs), interpolation=cv2.INTER_AREA)
            valid = (cover >= 250).astype(np.float32)  # cells wholly inside the region
        n = float(valid.sum())
        if n < 4:
            return NOT_JUDGED
        if c.method is Method.STRUCTURE:
            return self._worst_tile(_unexplained(a, b, valid, c.window_cells), valid, n)
        ma, mb = float((a * valid).sum()) / n, float((b * valid).sum()) / n
        da, db = (a - ma) * valid, (b - mb) * valid
        var_b = float((db * db).sum())
        gain = float((da * db).sum()) / var_b if var_b > 1e-9 else 1.0
        gain = min(max(gain, GAIN_RANGE[0]), GAIN_RANGE[1])
        r = (a - (gain * b + (ma - gain * mb))) * valid  # input minus the tone-matched shown frame
        if c.detrend_cells > 0:  # normalised convolution: the smooth part inside the region only
            s = c.detrend_cells
            smooth = cv2.GaussianBlur(r, (0, 0), s) / np.maximum(cv2.GaussianBlur(valid, (0, 0), s), 1e-3)
            r = (r - smooth) * valid
        return self._worst_tile(r * r, valid, n)

    def _worst_tile(self, err: np.ndarray, valid: np.ndarray, n: float) -> FidelityScore:
        """PSNR of the worst tile's mean error (tiles at least half inside the region) and of the whole region."""
        r2, (hs, ws) = err * valid, err.shape
        mean_db = _psnr(float(r2.sum()) / n)
        t = self.config.tile_cells
        th, tw = -(-hs // t), -(-ws // t)
        pad = ((0, th * t - hs), (0, tw * t - ws))
        tile_err = np.pad(r2, pad).reshape(th, t, tw, t).sum(axis=(1, 3))
        tile_n = np.pad(valid, pad).reshape(th, t, tw, t).sum(axis=(1, 3))
        ok = tile_n >= MIN_TILE_COVERAGE * t * t
        if not ok.any():
            return FidelityScore(math.nan, mean_db)
        worst = float((tile_err[ok] / tile_n[ok]).max())
        return FidelityScore(_psnr(worst), mean_db)


def _unexplained(a: np.ndarray, b: np.ndarray, valid: np.ndarray, window: float) -> np.ndarray:
    """Per cell: the output's local variance not correlated with the input's, (1 - corr) x var(b),
    from Gaussian-windowed moments inside the region (normalised convolution)."""
    def g(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), window)

    w = g(valid) + 1e-6
    ma, mb = g(a * valid) / w, g(b * valid) / w
    va = np.maximum(g(a * a * valid) / w - ma * ma, 0.0)
    vb = np.maximum(g(b * b * valid) / w - mb * mb, 0.0)
    cov = g(a * b * valid) / w - ma * mb
    eps = STRUCTURE_EPS
    corr = np.clip((cov + eps) / (np.sqrt(va * vb) + eps), -1.0, 1.0)
    return ((1.0 - corr) * vb).astype(np.float32)
