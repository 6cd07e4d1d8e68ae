"""Local mean preservation: the shown frame must keep the input's local brightness.

An enhancement model may remove speckle and noise and sharpen edges; it must not move the local
mean. A model trained on pairs that mix a tone change into the enhancement (a point-of-care input
rendered at a lower dynamic range than its target) learns a tone map, and on a real scanner that
map paints flat bright blobs into the myocardium and dark holes into tissue: the structures a
sonographer reads. The fidelity check (fidelity.py) removes smooth tone changes before it
compares, on purpose, so it cannot see this; this check measures exactly that.

Measure: ``|G(out) - G(in)|`` in 8-bit grey levels, ``G`` a Gaussian of sigma ``sigma_frac`` of the
frame width (1.5%: larger than a speckle, smaller than a lesion), computed on an area-reduced
grid (a Gaussian of sigma s barely changes when the image is first averaged over cells of s/2);
never below ``MIN_SIGMA_PX``.
Judged per tile (``tile_frac`` of the frame's shorter side): a tile fails when its median shift
is above ``max_median`` or its 95th percentile above ``max_p95``. When every tile passes, so
does the frame: at most 5% of each tile's pixels, and so of the union, are above ``max_p95``.

Failed tiles are shown raw, blended into the enhanced ones over ``ramp_tiles`` of a tile on the
passing side (a failed tile is exactly raw); when more than ``max_failed`` of the region's
tiles fail, the whole frame is shown raw (reason ``mean-shift``). ``enhanced_fraction`` is the
share of the region that shows the model's output (blend weights summed).

A colour model (3 channels) is judged in CIELAB instead, on two maps: the local lightness shift
``|G(L*out) - G(L*in)|`` and the local chroma shift, the a*b* distance between the local means
``|G(ab_out) - G(ab_in)|`` (a change of saturation and a change of hue both count: in surgery the
tissue's colour is read, and a cast is harm). A tile fails when either map breaks its own limits
(``max_median_l``/``max_p95_l``, ``max_median_chroma``/``max_p95_chroma``, Lab units).

The limits are the clinical ones (a shift of a few grey levels is below what a reader notices on
a B-mode display; ten is a visible change of echogenicity), not fitted to any model: the export's
guard calibration (export/guard_cal.py) measures how much of the current models' harm on real
scans and of synthetic tone changes they catch, and records it in the manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from ..errors import ModelError

MIN_TILE_COVERAGE = 0.25  # a tile is judged when at least this share of it lies inside the region
MIN_SIGMA_PX = 3.0  # on a small frame 1.5% of the width is under a pixel: the "local mean" would be the speckle


def sigma_px(frame_w: int, sigma_frac: float = 0.015) -> float:
    """The Gaussian's sigma for a frame ``frame_w`` pixels wide."""
    return max(sigma_frac * frame_w, MIN_SIGMA_PX)


@dataclass(frozen=True)
class ToneConfig:
    enabled: bool = True
    sigma_frac: float = 0.015  # Gaussian sigma, fraction of the frame width
    max_median: float = 3.0  # grey levels (8-bit), per tile
    max_p95: float = 10.0
    tile_frac: float = 0.125  # tile side, fraction of the frame's shorter side
    max_failed: float = 0.5  # more failed tiles than this share of the judged ones: the frame goes raw
    ramp_tiles: float = 0.5  # blend width on the passing side of a failed tile, in tiles
    # colour models (CIELAB units): a lightness step of 2 and an a*b* step of 3 are at the threshold
    # of a side-by-side comparison; 6 and 8 are a visible cast
    max_median_l: float = 2.0
    max_p95_l: float = 6.0
    max_median_chroma: float = 3.0
    max_p95_chroma: float = 8.0

    def __post_init__(self) -> None:
        limits = (self.max_median, self.max_p95, self.max_median_l, self.max_p95_l, self.max_median_chroma,
                  self.max_p95_chroma)
        if not (0 < self.sigma_frac < 0.5 and min(limits) >= 0
                and 0 < self.tile_frac <= 1 and 0 <= self.max_failed <= 1 and self.ramp_tiles >= 0):
            raise ModelError("tone check: need 0 < sigma_frac < 0.5, 0 < tile_frac <= 1, 0 <= max_failed <= 1 "
                             "and non-negative limits")

    @classmethod
    def from_manifest(cls, manifest: Any) -> ToneConfig:
        """The manifest's optional ``tone`` block (limits and tiling); absent: the defaults."""
        raw = (getattr(manifest, "raw", None) or {}).get("tone")
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ModelError("manifest: 'tone' must be an object")
        names = {f.name: f.type for f in fields(cls)}
        unknown = set(raw) - set(names)
        if unknown:
            raise ModelError(f"manifest: unknown tone key(s) {', '.join(sorted(unknown))}")
        try:
            kw = {k: (bool(v) if k == "enabled" else float(v)) for k, v in raw.items()}
            if any(isinstance(v, float) and not math.isfinite(v) for v in kw.values()):
                raise ValueError("values must be finite")
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"manifest: malformed tone block ({exc})") from None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ToneVerdict:
    weights: np.ndarray | None  # float32 HxW in [0, 1] at the compared size; None: every tile passed
    tiles: int  # tiles judged
    failed: int
    worst_median: float  # grey levels (colour: L*), over judged tiles (NaN: none judged)
    worst_p95: float
    whole_frame_raw: bool  # too many tiles failed
    worst_chroma_median: float = math.nan  # colour only: a*b* distance, Lab units
    worst_chroma_p95: float = math.nan

    @property
    def passed(self) -> bool:
        return self.failed == 0


NOT_JUDGED = ToneVerdict(None, 0, 0, math.nan, math.nan, False)


def _tile_stats(diff: np.ndarray, inside: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per t x t tile: median and 95th percentile of ``diff`` over the pixels ``inside``, and the
    tile's coverage. Vectorised: outside pixels are sorted below every inside one (-1), and each
    tile's order statistics are read at its own offset (numpy's linear interpolation)."""
    h, w = diff.shape
    th, tw = -(-h // t), -(-w // t)
    pad = ((0, th * t - h), (0, tw * t - w))
    d = np.pad(np.where(inside, diff, -1.0).astype(np.float32), pad, constant_values=-1.0)
    tiles = d.reshape(th, t, tw, t).transpose(0, 2, 1, 3).reshape(th * tw, t * t)
    tiles.sort(axis=1)
    n_in = np.count_nonzero(tiles >= 0, axis=1)
    n_out = tiles.shape[1] - n_in
    rows = np.arange(tiles.shape[0])

    def quantile(q: float) -> np.ndarray:
        pos = n_out + q * np.maximum(n_in - 1, 0)
        lo = np.minimum(np.floor(pos).astype(np.int64), tiles.shape[1] - 1)  # empty tiles: not judged anyway
        hi = np.minimum(lo + 1, tiles.shape[1] - 1)
        frac = (pos - lo).astype(np.float32)
        return tiles[rows, lo] * (1 - frac) + tiles[rows, hi] * frac

    cover = (n_in / float(t * t)).reshape(th, tw)
    return quantile(0.5).reshape(th, tw), quantile(0.95).reshape(th, tw), cover


def _reduced(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-reduced to ``size`` (W, H), float32: grey levels, or CIELAB (L* 0..100) for BGR."""
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    if small.ndim == 2:
        return small
    return cv2.cvtColor(small * (1.0 / 255.0), cv2.COLOR_BGR2Lab)


def blend(raw: np.ndarray, shown: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``raw + weights * (shown - raw)`` in uint8: exactly ``shown`` where the weight is 1 and
    exactly ``raw`` where it is 0 (grey or colour; ``weights`` HxW)."""
    w = weights if shown.ndim == 2 else weights[:, :, None]
    r = raw.astype(np.float32)
    return np.clip(r + w * (shown.astype(np.float32) - r) + 0.5, 0, 255).astype(np.uint8)


class ToneCheck:
    def __init__(self, config: ToneConfig = ToneConfig()) -> None:
        self.config = config

    def check(self, raw: np.ndarray, shown: np.ndarray, mask: np.ndarray | None, frame_w: int,
              frame_min_side: int) -> ToneVerdict:
        """``raw``, ``shown``: 8-bit, same size (the region's box at the shown resolution): grey, or
        BGR for a colour model (judged in CIELAB); ``mask``: uint8 region there (None: all);
        ``frame_w``/``frame_min_side``: the whole shown frame's width and shorter side (they set
        sigma and the tile size)."""
        c = self.config
        h, w = raw.shape[:2]
        sigma = sigma_px(frame_w, c.sigma_frac)
        f = max(1, int(sigma / 2))  # area cells of <= sigma/2: the Gaussian at the cell scale is unchanged
        f = max(1, min(f, h, w))
        hs, ws = h // f, w // f
        hc, wc = hs * f, ws * f  # an integer reduction: OpenCV's fast area path (the rest is an edge strip)
        a, b = (_reduced(x[:hc, :wc], (ws, hs)) for x in (raw, shown))
        s = max(sigma / f, 0.5)
        if mask is None:
            inside = np.ones((hs, ws), bool)
            delta = cv2.GaussianBlur(b - a, (0, 0), s)
        else:  # normalised convolution: pixels outside the region neither count nor blur in
            m = cv2.resize(mask[:hc, :wc], (ws, hs), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
            inside = m >= 0.5
            norm = np.maximum(cv2.GaussianBlur(m, (0, 0), s), 1e-3)
            if a.ndim == 3:
                m, norm = m[:, :, None], norm[:, :, None]
            delta = cv2.GaussianBlur((b - a) * m, (0, 0), s) / norm
        if delta.ndim == 2:
            maps = [(np.abs(delta), c.max_median, c.max_p95)]
        else:  # L*, then the a*b* distance
            maps = [(np.abs(delta[:, :, 0]), c.max_median_l, c.max_p95_l),
                    (np.hypot(delta[:, :, 1], delta[:, :, 2]), c.max_median_chroma, c.max_p95_chroma)]
        t = max(2, int(round(c.tile_frac * frame_min_side / f)))
        stats = [(*_tile_stats(d, inside, t), lim_med, lim_p95) for d, lim_med, lim_p95 in maps]
        judged = stats[0][2] >= MIN_TILE_COVERAGE
        n = int(judged.sum())
        if n == 0:
            return NOT_JUDGED
        bad = np.zeros_like(judged)
        for med, p95, _, lim_med, lim_p95 in stats:
            bad |= judged & ((med > lim_med) | (p95 > lim_p95))
        worst = [float(x[judged].max()) for med, p95, *_ in stats for x in (med, p95)]
        worst += [math.nan] * (4 - len(worst))  # grey: no chroma
        failed = int(bad.sum())
        if failed == 0:
            weights = None
        elif failed > c.max_failed * n:
            weights = np.zeros((h, w), np.float32)
        else:
            weights = self._weights(bad, t, (hs, ws), (h, w))
        return ToneVerdict(weights, n, failed, worst[0], worst[1], failed > c.max_failed * n, worst[2], worst[3])

    def _weights(self, bad: np.ndarray, t: int, small_hw: tuple[int, int], hw: tuple[int, int]) -> np.ndarray:
        """0 on failed tiles, rising to 1 over ``ramp_tiles`` tiles on the passing side."""
        hs, ws = small_hw
        grid = np.kron(bad.astype(np.uint8), np.ones((t, t), np.uint8))[:hs, :ws]
        ramp = self.config.ramp_tiles * t
        if ramp <= 0:
            w_small = (grid == 0).astype(np.float32)
        else:
            dist = cv2.distanceTransform((grid == 0).astype(np.uint8), cv2.DIST_L2, 3)
            w_small = np.clip(dist / ramp, 0.0, 1.0).astype(np.float32)
        f_h, f_w = hw[0] // hs, hw[1] // ws
        size = (ws * f_w, hs * f_h)
        w_full = cv2.resize(w_small, size, interpolation=cv2.INTER_LINEAR)
        # the failed tiles at full size: exactly raw there, whatever the interpolation did at their edge
        w_full[cv2.resize(grid, size, interpolation=cv2.INTER_NEAREST) > 0] = 0.0
        pad = ((0, hw[0] - size[1]), (0, hw[1] - size[0]))
        return np.pad(w_full, pad, mode="edge") if any(p[1] for p in pad) else w_full
