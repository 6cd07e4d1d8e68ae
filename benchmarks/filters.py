"""Classic OpenCV filters a user would otherwise reach for, with the parameter grids the
baseline benchmark sweeps (on calibration seeds only) before comparing them with the student.

Every filter maps a uint8 gray frame to a uint8 frame, the same contract as the pipeline.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import Enum
from typing import Any

import cv2
import numpy as np


class FilterKind(Enum):
    BILATERAL = "bilateral"
    NLMEANS = "nlmeans"  # cv2.fastNlMeansDenoising
    CLAHE = "clahe"
    MEDIAN = "median"
    GAUSSIAN = "gaussian"
    BICUBIC = "bicubic"  # super-resolution tasks only: upscale by the task's scale

    @property
    def sr_only(self) -> bool:
        return self is FilterKind.BICUBIC


# Small grids: the point is a fair setting, not an exhaustive search.
GRIDS: dict[FilterKind, dict[str, tuple]] = {
    FilterKind.BILATERAL: {"d": (5, 9), "sigma_color": (20.0, 40.0, 80.0, 120.0), "sigma_space": (3.0, 9.0)},
    FilterKind.NLMEANS: {"h": (6.0, 10.0, 15.0, 22.0, 30.0), "template": (7,), "search": (11, 21)},
    FilterKind.CLAHE: {"clip": (1.0, 2.0, 3.0, 4.0), "tiles": (4, 8)},
    FilterKind.MEDIAN: {"ksize": (3, 5, 7, 9)},
    FilterKind.GAUSSIAN: {"sigma": (0.8, 1.2, 1.8, 2.5, 3.5)},
    FilterKind.BICUBIC: {},
}


@dataclass(frozen=True)
class FilterSpec:
    kind: FilterKind
    params: tuple[tuple[str, Any], ...] = ()
    scale: int = 1

    @property
    def p(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def label(self) -> str:
        return self.kind.value

    def describe(self) -> str:
        return f"{self.kind.value}(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                                 for k, v in self.params) + ")"

    def apply(self, img: np.ndarray) -> np.ndarray:
        """uint8 HxW -> uint8 (HxW, or scale x for bicubic)."""
        p, k = self.p, self.kind
        if k is FilterKind.BILATERAL:
            return cv2.bilateralFilter(img, int(p["d"]), float(p["sigma_color"]), float(p["sigma_space"]))
        if k is FilterKind.NLMEANS:
            return cv2.fastNlMeansDenoising(img, None, float(p["h"]), int(p["template"]), int(p["search"]))
        if k is FilterKind.CLAHE:
            t = int(p["tiles"])
            return cv2.createCLAHE(clipLimit=float(p["clip"]), tileGridSize=(t, t)).apply(img)
        if k is FilterKind.MEDIAN:
            return cv2.medianBlur(img, int(p["ksize"]))
        if k is FilterKind.GAUSSIAN:
            return cv2.GaussianBlur(img, (0, 0), float(p["sigma"]))
        if k is FilterKind.BICUBIC:
            h, w = img.shape[:2]
            return cv2.resize(img, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)
        raise ValueError(f"unknown filter {k}")


def grid(kind: FilterKind, scale: int = 1) -> list[FilterSpec]:
    """Every parameter combination of ``kind``'s grid."""
    g = GRIDS[kind]
    keys = list(g)
    return [FilterSpec(kind, tuple(zip(keys, vals)), scale) for vals in itertools.product(*(g[k] for k in keys))]


def applicable(kinds: tuple[FilterKind, ...], scale: int) -> tuple[list[FilterKind], list[dict[str, str]]]:
    """(filters that fit the task, [why each other one does not])."""
    ok, skipped = [], []
    for k in kinds:
        if k.sr_only and scale == 1:
            skipped.append({"name": k.value, "reason": "super-resolution baseline; this task keeps the size (scale 1)"})
        elif not k.sr_only and scale != 1:
            skipped.append({"name": k.value, "reason": f"same-size filter; this task upscales x{scale}"})
        else:
            ok.append(k)
    return ok, skipped
