"""Tone-neutral, domain-randomised ultrasound pairs: what the us-* students train on.

Every real scanner has its own tone map (dynamic range, gain, TGC), speckle grain (centre
frequency x pixel spacing), sector and storage (burned-in text, JPEG cines). A student trained on
one simulated scanner learns that scanner's tone map and grain size, and on real scans moves the
local brightness and paints holes. So each pair here draws its own scanner:

- tone: dynamic range 40-80 dB, gain +-10 dB, a TGC slope error and lateral ripple, shared by the
  input and its target (``SimConfig.tone_neutral``), so the pair differs only in speckle,
  resolution, noise and clutter;
- grain: a PSF / wavelength scale so the input speckle spans ~1-8 px, and the sector angle;
- format: phased (sector), curvilinear (fan from a 20-60 mm face) or linear (rectangle);
- a harmonic-imaging input in ``harmonic_prob`` of the pairs: receive at 2 f0, a narrower beam,
  less clutter, noise rising faster with depth;
- anatomy: a large anechoic chamber with faint blood speckle in ``chamber_prob`` of the scenes,
  a strong reflector with its acoustic shadow in ``shadow_prob``, near-field haze and
  reverberation bands in ``clutter_prob`` (data/us_artefacts.py);
- the scanner's own smoothing (speckle reduction, persistence) in ``smooth_prob`` of the pairs,
  on both images: smoothed real frames are common, and undoing that smoothing is not the job;
- storage: burned-in text and caliper marks (identical in input and target: the model must leave
  them alone) and JPEG compression of the input (a stored cine's blocks are noise to remove).

The target's local mean is finally set to the input's (``match_local_mean``, the same double box
the students' outputs are confined by): what is left to learn is detail, never brightness.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .simulator import ProbeConfig, Sample, ScanFormat, SimConfig, _geometry, render_pair
from .us_sr import downsample

# The students' low-pass (runtime/backends/torch/models.py, ``lowpass``): a box this wide, twice.
LOWPASS_BOX = 7


@dataclass(frozen=True)
class DomainConfig:
    dynamic_range_db: tuple[float, float] = (40.0, 80.0)
    gain_db: tuple[float, float] = (-24.0, 8.0)  # real echo frames sit far darker than a -10 dB gain gives
    tgc_error_db: tuple[float, float] = (0.0, 10.0)
    noise_db: tuple[float, float] = (-25.0, -8.0)
    # multiples of the auto PSF scale (input grain ~1.3 px axially at 1x, wider laterally): ~1.3 .. ~8 px
    grain: tuple[float, ...] = (1.0, 1.0, 1.4, 2.0, 2.8, 4.0)
    sector_deg: tuple[float, ...] = (45.0, 60.0, 75.0, 90.0)
    formats: tuple[ScanFormat, ...] = (ScanFormat.PHASED, ScanFormat.PHASED, ScanFormat.CURVILINEAR, ScanFormat.LINEAR)
    apex_mm: tuple[float, float] = (20.0, 60.0)  # curvilinear face radius
    harmonic_prob: float = 0.3
    chamber_prob: float = 0.6
    shadow_prob: float = 0.3
    clutter_prob: float = 0.5
    text_prob: float = 0.5
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 90)
    # the scanner's own smoothing (speckle reduction, persistence): a Gaussian of this sigma (px) on both images
    smooth_prob: float = 0.4
    smooth_px: tuple[float, float] = (0.6, 2.5)


def scanner(rng: np.random.Generator, base: SimConfig, dom: DomainConfig = DomainConfig()) -> SimConfig:
    """``base`` with one randomly drawn scanner: tone, grain, sector (tone-neutral pairs)."""
    poc = replace(base.probe_poc, dynamic_range_db=float(rng.uniform(*dom.dynamic_range_db)),
                  gain_db=float(rng.uniform(*dom.gain_db)), gain_jitter_db=0.0,
                  tgc_error_db=float(rng.uniform(*dom.tgc_error_db)), noise_db=float(rng.uniform(*dom.noise_db)))
    if rng.random() < dom.harmonic_prob:
        poc = harmonic(poc)
    fmt = dom.formats[int(rng.integers(len(dom.formats)))]
    cfg = replace(base, probe_poc=poc, sector_deg=float(rng.choice(dom.sector_deg)), tone_neutral=True,
                  psf_scale=None, chamber_prob=dom.chamber_prob, shadow_prob=dom.shadow_prob,
                  clutter_prob=dom.clutter_prob, scan_format=fmt, apex_mm=round(float(rng.uniform(*dom.apex_mm)), 1))
    auto = _geometry(cfg).scale  # the sharpest PSF the grid resolves; grain grows from there
    return replace(cfg, psf_scale=round(auto * float(rng.choice(dom.grain)), 2))


def harmonic(p: ProbeConfig) -> ProbeConfig:
    """Tissue harmonic imaging with probe ``p``: the echo is received at 2 f0 in a narrow band
    (similar axial grain, finer speckle phase), the beam is ~1.4x narrower, clutter is ~8 dB lower
    and attenuation at 2 f0 lets noise rise twice as fast with depth (``_noise`` scales with f0)."""
    return replace(p, f0_mhz=2.0 * p.f0_mhz, bandwidth=0.35, lateral_fwhm_mm=p.lateral_fwhm_mm / 1.4,
                   clutter_db=p.clutter_db - 8.0)


def _box2(img: np.ndarray) -> np.ndarray:
    k = (LOWPASS_BOX, LOWPASS_BOX)
    return cv2.blur(cv2.blur(img, k, borderType=cv2.BORDER_REFLECT), k, borderType=cv2.BORDER_REFLECT)


def match_local_mean(target: np.ndarray, inp: np.ndarray) -> np.ndarray:
    """``target`` with its double-box local mean replaced by ``inp``'s: only the detail differs."""
    return np.clip(target - _box2(target) + _box2(inp), 0.0, 1.0).astype(np.float32)


def _burn_in(rng: np.random.Generator, imgs: tuple[np.ndarray, ...], sector: np.ndarray) -> None:
    """Text in the corners and caliper crosses in the sector, drawn alike into every image."""
    h, w = sector.shape
    font = cv2.FONT_HERSHEY_SIMPLEX
    marks = []
    for _ in range(int(rng.integers(1, 4))):
        txt = "".join(rng.choice(list("ABCDEFGHKLMPRST0123456789 .:/")) for _ in range(int(rng.integers(3, 10))))
        org = (int(rng.integers(0, w // 2)), int(rng.integers(h // 20 + 8, h)))
        marks.append(("t", txt, org, float(rng.uniform(0.25, 0.5)), float(rng.uniform(0.6, 1.0))))
    ys, xs = np.nonzero(sector)
    for _ in range(int(rng.integers(0, 3))):
        j = int(rng.integers(len(ys)))
        marks.append(("c", "", (int(xs[j]), int(ys[j])), float(rng.integers(3, 7)), float(rng.uniform(0.7, 1.0))))
    canvas = np.zeros((h, w), np.uint8)  # OpenCV draws text in 8 bit only
    for kind, txt, org, size, grey in marks:
        g = int(round(grey * 255))
        if kind == "t":
            cv2.putText(canvas, txt, org, font, size, g, 1, cv2.LINE_AA)
        else:
            cv2.drawMarker(canvas, org, g, cv2.MARKER_CROSS, int(size) * 2 + 1, 1)
    on = canvas > 0
    for img in imgs:
        img[on] = np.maximum(img[on], canvas[on].astype(np.float32) / 255.0)


def _scanner_smoothing(imgs: tuple[np.ndarray, ...], sector: np.ndarray, sigma: float) -> tuple[np.ndarray, ...]:
    """Every image through the same Gaussian, black outside the sector again. Scanners smooth their
    output (speckle reduction, persistence) by a preset the user picks: like the tone map, a display
    choice both images share, so a model meets already-smoothed frames and is not taught to undo it."""
    return tuple((cv2.GaussianBlur(img, (0, 0), sigma) * sector).astype(np.float32) for img in imgs)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0


def render_domain_pair(seed: int, base: SimConfig = SimConfig(), factor: int = 1,
                       dom: DomainConfig = DomainConfig(), resolution_only: bool = False) -> Sample:
    """One tone-neutral pair from a randomly drawn scanner; the input reduced by ``factor`` (SR).

    ``resolution_only`` (SR): the input is the target itself reduced by ``factor``, so the pair
    differs in resolution alone, as a real frame and its 2x reduction do (the real-reference 2x
    check). No JPEG: a compressed target would teach the model to draw block edges. Otherwise the
    input is the point-of-care render (noise, clutter, coarser PSF), sometimes JPEG-compressed."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    s = render_pair(seed, scanner(rng, base, dom))
    inp, tgt = s.input.copy(), s.target
    if rng.random() < dom.smooth_prob:
        inp, tgt = _scanner_smoothing((inp, tgt), s.sector, float(rng.uniform(*dom.smooth_px)))
    tgt = match_local_mean(tgt, inp)
    if rng.random() < dom.text_prob:
        _burn_in(rng, (inp, tgt), s.sector)
    if resolution_only and factor > 1:
        return replace(s, input=downsample(tgt, factor), target=tgt)
    if factor > 1:
        inp = downsample(inp, factor)
    if rng.random() < dom.jpeg_prob:
        inp = _jpeg(inp, int(rng.integers(*dom.jpeg_quality)))
    return replace(s, input=inp, target=tgt)
