"""Camera-like degradations of a real colour photograph: the degraded input of an RGB restoration pair.

The clean photograph is the target (real colour statistics); the input is the same scene through
a worse chain, modelled in linear light (sRGB decoded with gamma 2.2):

- smoke / haze: a spatially smooth veil blending towards a grey-white airlight;
- optical blur (Gaussian);
- low light: exposure gain ``exposure`` on the sensor, Poisson-Gaussian noise (signal-dependent
  shot noise of ``full_well`` electrons at full scale plus read noise), then the processor's
  auto-gain restoring ``auto_gain`` of the lost brightness (in log terms), which amplifies that
  noise; re-encoded with gamma 2.2;
- JPEG compression (``jpeg`` 0: none).

The degradation never re-grades colour on purpose: the airlight is neutral and the gains are the
same on every channel, so what a restorer must undo is the veil, the noise, the blur and the
remaining darkening, not a palette. Deterministic for a given generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GAMMA = 2.2
AIRLIGHT = np.array([0.86, 0.86, 0.88], np.float32)  # surgical smoke: a near-neutral grey-white (RGB)


@dataclass(frozen=True)
class PhotoDegradation:
    exposure: float = 1.0  # light on the sensor relative to the target's exposure
    auto_gain: float = 1.0  # fraction (log terms) of the lost brightness the processor restores
    smoke: float = 0.0  # veil density at its thickest
    blur: float = 0.0  # Gaussian sigma, px
    full_well: float = 0.0  # electrons at full scale (0: no shot noise)
    read: float = 0.0  # read noise, fraction of full scale
    jpeg: int = 0  # JPEG quality (0: none)


# The benchmark's fixed degradations (benchmarks/realphoto.py): one per kind of harm, moderate.
PRESETS: dict[str, PhotoDegradation] = {
    "low-light": PhotoDegradation(exposure=0.2, auto_gain=0.8, full_well=250.0, read=0.01),
    "smoke": PhotoDegradation(smoke=0.45, full_well=1500.0, read=0.004),
    "blur+noise": PhotoDegradation(blur=1.3, full_well=400.0, read=0.008, jpeg=70),
}


def _veil(rng: np.random.Generator, hw: tuple[int, int], density: float) -> np.ndarray:
    """A smooth density in [0, density], varying over about a third of the frame."""
    coarse = rng.uniform(0.0, 1.0, (4, 4)).astype(np.float32)
    v = cv2.resize(coarse, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)
    v = cv2.GaussianBlur(v, (0, 0), max(hw) / 12.0)
    lo, hi = float(v.min()), float(v.max())
    v = 0.35 + 0.65 * (v - lo) / max(hi - lo, 1e-6)  # never fully clear: smoke fills the field
    return (np.float32(density) * v).astype(np.float32)


def degrade(rgb: np.ndarray, d: PhotoDegradation, rng: np.random.Generator) -> np.ndarray:
    """``rgb``: float32 HxWx3 in [0, 1] (display-encoded); returns the degraded frame, same form."""
    lin = np.power(np.clip(rgb, 0.0, 1.0), GAMMA).astype(np.float32)
    if d.smoke > 0:
        v = _veil(rng, lin.shape[:2], d.smoke)[..., None]
        lin = lin * (1.0 - v) + np.power(AIRLIGHT, GAMMA) * v
    if d.blur > 0.25:
        lin = cv2.GaussianBlur(lin, (0, 0), d.blur)
    sensor = np.minimum(lin * np.float32(d.exposure), 1.0)
    if d.full_well > 0 or d.read > 0:
        shot = sensor / np.float32(d.full_well) if d.full_well > 0 else 0.0
        sensor = sensor + np.sqrt(shot + np.float32(d.read) ** 2) * rng.standard_normal(sensor.shape, dtype=np.float32)
    gain = np.float32(d.exposure ** -d.auto_gain)
    out = np.power(np.clip(sensor * gain, 0.0, 1.0), 1.0 / GAMMA).astype(np.float32)
    out8 = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if d.jpeg:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(d.jpeg)])
        if not ok:  # pragma: no cover - OpenCV always has a JPEG codec
            raise RuntimeError("JPEG encoding failed")
        out8 = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out8.astype(np.float32) / 255.0
