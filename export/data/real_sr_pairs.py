"""Super-resolution pairs from real frames: a real scan and its own 2x area reduction.

The simulator's speckle is not a real scanner's: a student trained on simulated pairs alone lost
2-3 dB to plain bicubic on the real-reference 2x check (benchmarks/results/sr_real_probe.md).
Here the target is a tile of a real tuning frame (``realscans.SR_TUNE`` only: the reported
acquisitions stay unseen) and the input is that tile reduced 2x by area averaging, exactly what
the check does. Each tile is rescaled by a random factor first, so the speckle grain and the
structures vary in pixels as they do between probes, depths and zooms; frames smaller than the
tile are padded with black, as the scan-conversion surround is.

Deterministic by seed. Masks: ``sector`` is the frame's non-black area (patches mostly outside
are resampled); real frames have no lesion masks, so the lesion-contrast fine-tune skips them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .us_sr import downsample

SURROUND_MAX = 6  # 8-bit luma at or below this is the black surround, not tissue


@dataclass(frozen=True)
class RealSrConfig:
    out_hw: tuple[int, int] = (256, 256)
    factor: int = 2
    rescale: tuple[float, float] = (0.6, 1.4)  # of the frame, before the tile is cut


@dataclass
class RealSrSample:
    input: np.ndarray  # float32 (H / factor) x (W / factor) in [0, 1]
    target: np.ndarray  # float32 H x W in [0, 1]
    sector: np.ndarray  # bool H x W: not the black surround
    lesion: np.ndarray  # bool H x W: none
    background: np.ndarray
    homogeneous: np.ndarray


def render_real_sr_pair(seed: int, frames: Sequence[np.ndarray], cfg: RealSrConfig = RealSrConfig()) -> RealSrSample:
    """One pair from 8-bit grey ``frames``: float32 input (out_hw / factor) and target (out_hw)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    frame = frames[int(rng.integers(len(frames)))]
    s = float(rng.uniform(*cfg.rescale))
    g = cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    th, tw = cfg.out_hw
    g = cv2.copyMakeBorder(g, 0, max(0, th - g.shape[0]), 0, max(0, tw - g.shape[1]), cv2.BORDER_CONSTANT, value=0)
    r, c = int(rng.integers(g.shape[0] - th + 1)), int(rng.integers(g.shape[1] - tw + 1))
    tile = g[r:r + th, c:c + tw]
    if rng.random() < 0.5:  # lateral mirror keeps the physics (depth axis untouched)
        tile = tile[:, ::-1]
    target = np.ascontiguousarray(tile).astype(np.float32) / 255.0
    sector = cv2.blur(tile, (5, 5)) > SURROUND_MAX
    none = np.zeros_like(sector)
    return RealSrSample(input=downsample(target, cfg.factor), target=target, sector=sector, lesion=none,
                  background=none.copy(), homogeneous=none.copy())
