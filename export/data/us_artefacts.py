"""Ultrasound artefacts real scans are full of and a clean phantom lacks.

- **Acoustic shadowing** (``add_shadow``): a strong reflector (stone, calcification, bone edge)
  sends almost nothing deeper, so the beams through it show a dark band behind it. It belongs to
  the anatomy: input and target both have it, and a model must neither fill it nor deepen it.
- **Clutter** (``Clutter``, ``clutter_scatterers``): near-field haze (side lobes and multiple
  scattering in the body wall) and reverberation bands at multiples of a bright shallow
  interface. They are fixed to the probe, not the tissue, and are echoes with their own speckle.
  The simulator renders them through each probe, scaled by its ``clutter_db``: a single-angle
  fundamental point-of-care probe shows them fully, the compounded cart probe (and harmonic
  imaging) much less. So the pair differs in clutter texture; the tone-neutral target's local mean
  is matched to the input's, so a model learns to despeckle the haze, never to remove its light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .phantom import Ellipse, Phantom, Shadow, Structure, _with_maps


def add_shadow(rng: np.random.Generator, ph: Phantom, shape: tuple[int, int]) -> Phantom:
    """``ph`` with a bright flattened reflector and a -10 to -25 dB shadow behind it, on beams that
    miss the homogeneous disk (its speckle statistics stay clean; ``Phantom.masks`` leaves shadowed
    lesion and background pixels out of the contrast measures). Unchanged when no beams are free."""
    D, half = ph.depth_mm, math.radians(ph.sector_deg) / 2.0
    s = D / 80.0
    hx, hy, hr = ph.homogeneous
    for _ in range(20):
        a = float(rng.uniform(1.5, 5.0)) * s  # half-length across the beam
        r_c = float(rng.uniform(0.15, 0.6)) * D
        w = math.atan2(a, r_c)
        th_c = float(rng.uniform(-half + w, half - w)) if half > w else 0.0
        if _beams_miss(th_c, w, hx, hy, hr + 1.5 * s) or math.hypot(hx, hy) + hr < r_c - a:
            break
    else:
        return ph
    b = a * float(rng.uniform(0.25, 0.5))
    caster = Ellipse(Structure.CALCIFICATION, r_c * math.sin(th_c), r_c * math.cos(th_c), a, b, -th_c,
                     float(10 ** rng.uniform(1.0, 1.8)), 0.15)
    shadow = Shadow(th_c, w * 0.9, r_c + 0.5 * b, float(rng.uniform(10.0, 25.0)), w * float(rng.uniform(0.1, 0.3)))
    return _with_maps(replace(ph, ellipses=ph.ellipses + (caster,), shadows=ph.shadows + (shadow,)), shape)


def _beams_miss(th_c: float, w: float, cx: float, cy: float, rad: float) -> bool:
    """The beams within w of th_c pass clear of the disk (cx, cy, rad)."""
    r = math.hypot(cx, cy)
    return abs(math.atan2(cx, cy) - th_c) > w + math.asin(min(1.0, rad / max(r, 1e-3)))


@dataclass(frozen=True)
class Clutter:
    """Probe-fixed clutter echo (intensity relative to normal tissue) at beam depth r (mm), angle th."""

    haze: float  # near-field haze at the skin
    haze_mm: float  # its decay length
    band_mm: float  # depth of the reverberating interface: bands at 2x, 3x, ...
    band_echo: float  # the first band's echo
    band_decay: float  # each further band's echo relative to the one before
    band_width_mm: float
    th_lo: float  # the lines the reverberation spans (the interface's extent)
    th_hi: float

    def echo(self, r: np.ndarray, th: np.ndarray) -> np.ndarray:
        out = self.haze * np.exp(-r / self.haze_mm)
        on = ((th >= self.th_lo) & (th <= self.th_hi)).astype(np.float32)
        amp = self.band_echo
        for k in range(2, 8):
            out = out + on * amp * np.exp(-0.5 * ((r - k * self.band_mm) / (0.5 * self.band_width_mm)) ** 2)
            amp *= self.band_decay
        return out.astype(np.float32)

    def reach_mm(self) -> float:
        """Depth beyond which the clutter is negligible (< 1e-3 of tissue)."""
        haze = self.haze_mm * math.log(max(self.haze / 1e-3, 1.0))
        return max(haze, 7.5 * self.band_mm + 2.0 * self.band_width_mm)


def draw_clutter(rng: np.random.Generator, depth_mm: float, half: float) -> Clutter:
    s = depth_mm / 80.0
    lo = float(rng.uniform(-half, 0.3 * half)) if rng.random() < 0.5 else -half
    hi = float(rng.uniform(max(lo, -0.3 * half), half)) if lo > -half else half
    return Clutter(haze=float(10 ** rng.uniform(-1.3, -0.3)), haze_mm=float(rng.uniform(0.1, 0.5)) * depth_mm,
                   band_mm=float(rng.uniform(3.0, 10.0)) * s, band_echo=float(10 ** rng.uniform(-1.2, -0.2)),
                   band_decay=float(10 ** rng.uniform(-0.6, -0.15)), band_width_mm=float(rng.uniform(0.6, 2.0)) * s,
                   th_lo=lo, th_hi=hi)


def clutter_scatterers(rng: np.random.Generator, clutter: Clutter, depth_mm: float, half: float, dz: float,
                       dth: float, density: float, r0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probe positions (x, y mm) and complex amplitudes of the clutter's scatterers: ``density``
    per beam cell, with the same sqrt(max(r, r0) / r0) weight as the tissue's (the splat divides
    the beam cell's area back out), so the clutter's echo is in tissue units."""
    r_max = min(clutter.reach_mm(), depth_mm)
    n = int(round(density * (r_max / dz) * (2.0 * half / dth)))
    r = (rng.random(n) * r_max).astype(np.float32)
    th = rng.uniform(-half, half, n).astype(np.float32)
    w = np.sqrt(clutter.echo(r, th) * (np.maximum(r, r0) / r0)).astype(np.float32)
    z = rng.standard_normal((n, 2), dtype=np.float32) * np.float32(math.sqrt(0.5))
    return r * np.sin(th), r * np.cos(th), (z[:, 0] + 1j * z[:, 1]).astype(np.complex64) * w
