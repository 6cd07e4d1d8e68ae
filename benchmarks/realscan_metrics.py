"""What `ganrt bench realscan` measures on a real frame and a method's output, without a clean
target: how far the output moves from the input, and whether it does what a speckle filter
should (and nothing else).

All measures are computed at the input's resolution on luma (``BGR2GRAY``, the weights the
runtime's colour path uses); a scale-s output is area-downsampled first (the mean-preserving
inverse of an s-times enlargement). They are independent of the runtime's own checks.

- local mean shift: ``|G(out) - G(in)|``, G a Gaussian of sigma = 1.5 % of the frame width:
  the brightness a sonographer reads off a region, which an enhancer must not move.
- speckle energy ratio: mean squared high-pass (image minus a sigma-2 px Gaussian) of the
  output over the input's, in the tissue patches (< 1: speckle suppressed).
- ENL (equivalent number of looks, mean^2 / variance) in the homogeneous patch.
- EPI (edge preservation index): correlation of the Laplacians of input and output over
  the imaging area (1: every edge where it was).
- gCNR of a dark structure against tissue: 1 - overlap of their grey-level histograms.
- changed pixels: a pixel counts as changed when a channel differs by more than
  ``CHANGE_TOL`` grey levels from what the runtime shows when it leaves a frame alone (the
  input; for a scale-s model its bilinear enlargement). Counted in the UI boxes, the
  graphics/caliper boxes and on colour pixels (input chroma > ``CHROMA_MIN``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .realscan_data import Acquisition, Box

LOCAL_MEAN_SIGMA_FRAC = 0.015  # of the frame width
HIGHPASS_SIGMA_PX = 2.0
CHANGE_TOL = 2  # grey levels: rounding in the colour round trip is not a change
CHROMA_MIN = 40  # max(B,G,R) - min(B,G,R) of the input: a colour-flow / coloured graphics pixel


def luma(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img


def at_input_size(out: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if out.shape[:2] == hw:
        return out
    return cv2.resize(out, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def untouched(inp: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """What the runtime shows for a frame it leaves alone (ops.Enhancer.passthrough)."""
    if inp.shape[:2] == out_hw:
        return inp
    return cv2.resize(inp, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)


def changed_mask(inp: np.ndarray, out: np.ndarray) -> np.ndarray:
    """bool mask at the input's size: some channel moved by more than CHANGE_TOL (at the output's
    size for a scale-s output, then any changed pixel within each input pixel's s x s block)."""
    ref = untouched(inp, out.shape[:2]).astype(np.int16)
    d = np.abs(out.astype(np.int16) - ref)
    m = (d.max(axis=2) if d.ndim == 3 else d) > CHANGE_TOL
    if m.shape != inp.shape[:2]:
        m = cv2.resize(m.astype(np.uint8), (inp.shape[1], inp.shape[0]), interpolation=cv2.INTER_AREA) > 0
    return m


def _box(img: np.ndarray, b: Box) -> np.ndarray:
    x, y, w, h = b
    return img[y:y + h, x:x + w]


def highpass(g: np.ndarray) -> np.ndarray:
    f = g.astype(np.float32)
    return f - cv2.GaussianBlur(f, (0, 0), HIGHPASS_SIGMA_PX)


def gcnr(a: np.ndarray, b: np.ndarray) -> float:
    ha = np.bincount(a.ravel(), minlength=256) / a.size
    hb = np.bincount(b.ravel(), minlength=256) / b.size
    return float(1.0 - np.minimum(ha, hb).sum())


def epi(gin: np.ndarray, gout: np.ndarray, mask: np.ndarray) -> float:
    li = cv2.Laplacian(gin.astype(np.float32), cv2.CV_32F)[mask]
    lo = cv2.Laplacian(gout.astype(np.float32), cv2.CV_32F)[mask]
    li, lo = li - li.mean(), lo - lo.mean()
    den = float(np.sqrt((li * li).sum() * (lo * lo).sum()))
    return float((li * lo).sum() / den) if den > 0 else float("nan")


@dataclass
class FrameMeasures:
    """One acquisition's measures for one method, accumulated frame by frame."""

    shift_tissue: list = field(default_factory=list)  # |G(out) - G(in)| samples over the imaging area
    shift_changed: list = field(default_factory=list)  # ... over the pixels the method changed
    hp_in: float = 0.0
    hp_out: float = 0.0
    homog_in: list = field(default_factory=list)
    homog_out: list = field(default_factory=list)
    epi: list = field(default_factory=list)
    dark_in: list = field(default_factory=list)
    dark_out: list = field(default_factory=list)
    ref_in: list = field(default_factory=list)
    ref_out: list = field(default_factory=list)
    changed: dict = field(default_factory=lambda: {"tissue": [0, 0], "ui": [0, 0], "graphics": [0, 0],
                                                   "colour": [0, 0]})
    frames: int = 0

    def add(self, acq: Acquisition, masks: dict[str, np.ndarray], inp: np.ndarray, out: np.ndarray) -> None:
        ch = changed_mask(inp, out)
        gin, gout = luma(inp), luma(at_input_size(out, inp.shape[:2]))
        sigma = LOCAL_MEAN_SIGMA_FRAC * inp.shape[1]
        shift = np.abs(cv2.GaussianBlur(gout.astype(np.float32), (0, 0), sigma)
                       - cv2.GaussianBlur(gin.astype(np.float32), (0, 0), sigma))
        tissue = masks["tissue"]
        self.shift_tissue.append(shift[tissue])
        self.shift_changed.append(shift[tissue & ch])
        hi, ho = highpass(gin), highpass(gout)
        for b in acq.tissue:
            self.hp_in += float((_box(hi, b) ** 2).sum())
            self.hp_out += float((_box(ho, b) ** 2).sum())
        self.homog_in.append(_box(gin, acq.homogeneous).ravel())
        self.homog_out.append(_box(gout, acq.homogeneous).ravel())
        self.epi.append(epi(gin, gout, tissue))
        if acq.dark is not None and acq.dark_ref is not None:
            self.dark_in.append(_box(gin, acq.dark).ravel())
            self.dark_out.append(_box(gout, acq.dark).ravel())
            self.ref_in.append(_box(gin, acq.dark_ref).ravel())
            self.ref_out.append(_box(gout, acq.dark_ref).ravel())
        for key, m in masks.items():
            self.changed[key][0] += int((ch & m).sum())
            self.changed[key][1] += int(m.sum())
        self.frames += 1

    def summary(self) -> dict:
        def stats(parts: list) -> dict:
            v = np.concatenate(parts) if parts else np.zeros(0)
            if v.size == 0:
                return {"median": None, "p95": None, "max": None, "pixels": 0}
            return {"median": round(float(np.median(v)), 3), "p95": round(float(np.percentile(v, 95)), 3),
                    "max": round(float(v.max()), 3), "pixels": int(v.size)}

        def enl(parts: list) -> float:
            v = np.concatenate(parts).astype(np.float64)
            return round(float(v.mean() ** 2 / v.var()), 3) if v.var() > 0 else float("nan")

        out = {"frames": self.frames,
               "local_mean_shift": {"tissue_area": stats(self.shift_tissue),
                                    "enhanced_area": stats(self.shift_changed)},
               "speckle_energy_ratio": round(self.hp_out / self.hp_in, 4) if self.hp_in > 0 else None,
               "enl": {"input": enl(self.homog_in), "output": enl(self.homog_out)},
               "epi": round(float(np.nanmean(self.epi)), 4) if self.epi else None,
               "changed": {k: {"pixels": c, "of": n, "fraction": round(c / n, 5) if n else None}
                           for k, (c, n) in self.changed.items()}}
        if self.dark_in:
            out["gcnr"] = {"input": round(gcnr(np.concatenate(self.dark_in), np.concatenate(self.ref_in)), 4),
                           "output": round(gcnr(np.concatenate(self.dark_out), np.concatenate(self.ref_out)), 4)}
        else:
            out["gcnr"] = None
        return out


def region_masks(acq: Acquisition) -> dict[str, np.ndarray]:
    """The fixed masks changed pixels are counted in: imaging area (``tissue``), UI and graphics boxes."""
    return {"tissue": acq.imaging_mask(), "ui": acq.box_mask(acq.ui), "graphics": acq.box_mask(acq.graphics)}


def colour_mask(frame: np.ndarray) -> np.ndarray:
    """The input's colour pixels (colour flow, coloured graphics): per frame, as a cine's colour moves."""
    if frame.ndim != 3:
        return np.zeros(frame.shape[:2], bool)
    f = frame.astype(np.int16)
    return (f.max(axis=2) - f.min(axis=2)) > CHROMA_MIN
