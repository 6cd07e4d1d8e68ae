"""Ultrasound super-resolution pairs: the point-of-care frame at 1/factor resolution -> the cart frame.

One scene from the simulator gives both: the cart-quality target at full resolution and the
point-of-care input, degraded by its probe, then reduced by ``factor`` with area averaging
(anti-aliased, the coarser pixel grid a low-cost probe's scan conversion delivers). The region
masks stay at target resolution, where outputs are compared with targets.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .simulator import Sample, SimConfig, render_pair


def downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Area-average ``img`` (H x W[, C]) by an integer ``factor``; H and W must be multiples of it."""
    h, w = img.shape[:2]
    if h % factor or w % factor:
        raise ValueError(f"{h}x{w} is not a multiple of {factor}")
    return cv2.resize(img, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def render_sr_pair(seed: int, cfg: SimConfig = SimConfig(), factor: int = 2) -> Sample:
    """``render_pair`` with the input reduced by ``factor`` (target and masks at ``cfg.out_hw``)."""
    s = render_pair(seed, cfg)
    return replace(s, input=downsample(s.input, factor))
