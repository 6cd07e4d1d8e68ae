"""Quality metrics on paired sets: PSNR, SSIM, gCNR, speckle SNR (docs/benchmarks.md, Metrics)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from .data.simulator import gcnr
from .onnx_export import psnr
from .tasks import PairSet


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of HxW or HxWx3 images (colour: the mean over channels)."""
    return float(structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, channel_axis=-1 if a.ndim == 3 else None))


def _gray(img: np.ndarray) -> np.ndarray:
    """Contrast and speckle measures work on intensity: RGB -> Rec. 601 luma."""
    return img if img.ndim == 2 else (img @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def image_speckle_snr(img: np.ndarray, mask: np.ndarray) -> float:
    """mean/std of the displayed image in a homogeneous region (higher = smoother speckle)."""
    v = img[mask].astype(np.float64)
    return float(v.mean() / v.std()) if v.size > 1 and v.std() > 0 else float("nan")


def quality(outputs: np.ndarray, ps: PairSet) -> dict[str, float]:
    """Mean metrics of (N,H,W) or (N,H,W,3) outputs against the set's targets (same layout):
    PSNR and SSIM over the frame, gCNR and speckle SNR (on luma for colour) in their regions."""
    if outputs.shape != ps.targets.shape:
        raise ValueError(f"outputs {outputs.shape} and targets {ps.targets.shape} differ")
    p, s, g, snr = [], [], [], []
    for i in range(outputs.shape[0]):
        o, t = outputs[i], ps.targets[i]
        p.append(psnr(o, t))
        s.append(ssim(o, t))
        gray = _gray(o)
        if ps.lesion[i].any() and ps.background[i].any():
            g.append(gcnr(gray, ps.lesion[i], ps.background[i]))
        if ps.homogeneous[i].sum() > 16:
            snr.append(image_speckle_snr(gray, ps.homogeneous[i]))
    return {
        "psnr": float(np.mean(p)),
        "ssim": float(np.mean(s)),
        "gcnr": float(np.mean(g)) if g else float("nan"),
        "speckle_snr": float(np.nanmean(snr)) if snr else float("nan"),
    }


def gain_ratio(student: dict[str, float], teacher: dict[str, float], base: dict[str, float], key: str) -> float:
    """Student's improvement over the input as a fraction of the teacher's improvement."""
    t_gain = teacher[key] - base[key]
    return float((student[key] - base[key]) / t_gain) if t_gain > 0 else float("nan")
