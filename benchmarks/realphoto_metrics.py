"""What the RGB section of `ganrt bench realscan` measures on real colour photographs (BGR uint8 in).

Computed with scikit-image's CIELAB and CIEDE2000 (independent of the runtime's OpenCV Lab):

- local lightness shift: ``|G(L*out) - G(L*in)|``, G a Gaussian of sigma = 1.5 % of the frame
  width (the scale of runtime/trust/tone.py), median and p95 over the frame;
- local chroma shift: the a*b* distance between the local means ``|G(ab_out) - G(ab_in)|``
  (a change of saturation and of hue both count), median and p95;
- CIEDE2000 per pixel (skimage.color.deltaE_ciede2000), median and mean;
- detail kept (clean frames): the local RMS of L*'s fine detail (L* less its Gaussian blur of DETAIL_SIGMA px)
  in the output over the input's, where the input has detail (the top DETAIL_TOP of its local detail
  energy); median and p5. 1 is untouched, below 1 softened, above 1 sharpened. The colour measures do not
  see a softened fine structure: a lattice erased by a denoiser keeps its local mean;
- against a clean original: PSNR (dB, 8-bit RGB) and SSIM (colour, skimage.metrics).
"""

from __future__ import annotations

import cv2
import numpy as np

SIGMA_FRAC = 0.015
DETAIL_SIGMA = 1.0  # px: the finest structure, where a denoiser's softening shows first
DETAIL_TOP = 0.2  # share of the frame with the most detail that the ratio is taken over


def _lab(bgr: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).astype(np.float32)


def colour_shift(ref: np.ndarray, out: np.ndarray) -> dict:
    """How far ``out`` moved from ``ref`` in local lightness, local chroma and CIEDE2000."""
    from skimage.color import deltaE_ciede2000

    a, b = _lab(ref), _lab(out)
    sigma = max(SIGMA_FRAC * ref.shape[1], 1.0)
    d = cv2.GaussianBlur(b - a, (0, 0), sigma)
    dl, dab = np.abs(d[..., 0]), np.hypot(d[..., 1], d[..., 2])
    de = deltaE_ciede2000(a, b)
    return {"local_l_median": round(float(np.median(dl)), 2), "local_l_p95": round(float(np.percentile(dl, 95)), 2),
            "local_chroma_median": round(float(np.median(dab)), 2),
            "local_chroma_p95": round(float(np.percentile(dab, 95)), 2),
            "ciede2000_median": round(float(np.median(de)), 2), "ciede2000_mean": round(float(de.mean()), 2)}


def restoration(original: np.ndarray, out: np.ndarray) -> dict:
    """``out`` against the clean ``original``: PSNR, SSIM and CIEDE2000 (mean)."""
    from skimage.color import deltaE_ciede2000
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    psnr = peak_signal_noise_ratio(original, out, data_range=255)
    ssim = structural_similarity(original, out, data_range=255, channel_axis=2)
    de = deltaE_ciede2000(_lab(original), _lab(out))
    return {"psnr_db": round(float(psnr), 2), "ssim": round(float(ssim), 4), "ciede2000_mean": round(float(de.mean()), 2)}


def detail_kept(ref: np.ndarray, out: np.ndarray) -> dict:
    """How much of ``ref``'s fine lightness detail ``out`` keeps (see the module docstring)."""
    sigma = max(SIGMA_FRAC * ref.shape[1], 1.0)

    def energy(bgr: np.ndarray) -> np.ndarray:
        lum = _lab(bgr)[..., 0]
        fine = lum - cv2.GaussianBlur(lum, (0, 0), DETAIL_SIGMA)
        return cv2.GaussianBlur(fine * fine, (0, 0), sigma)

    e_in, e_out = energy(ref), energy(out)
    where = e_in >= np.quantile(e_in, 1.0 - DETAIL_TOP)
    ratio = np.sqrt(e_out[where] / np.maximum(e_in[where], 1e-6))
    return {"detail_kept_median": round(float(np.median(ratio)), 3), "detail_kept_p5": round(float(np.percentile(ratio, 5)), 3)}
