"""Physics-based pseudo-B-mode ultrasound simulator producing aligned (point-of-care, cart) pairs.

Pipeline (numpy + OpenCV only, so the runtime could replay it):

1. Phantom (`phantom.py`): analytic echogenicity in tissue coordinates (mm).
2. Scatterers: ~`scatterers_per_cell` random points per polar grid cell, complex Gaussian
   amplitudes (Rayleigh) x sqrt(echogenicity at the point). They are fixed in *tissue*
   coordinates, so in a cine they move with the tissue and the speckle stays coherent.
3. Each probe sees the scatterers as a baseband field: every scatterer carries the round-trip
   phase exp(-2i k0 r) of its exact depth and is splatted bilinearly onto the polar grid
   (depth x scan-line angle). The field is convolved (FFT, OpenCV) with the complex baseband
   PSF: Gaussian pulse envelope axially (from f0 and fractional bandwidth) x Gaussian beam
   laterally (constant in angle, as for a fixed-aperture phased array). A steered angle phi
   rotates the PSF envelope and adds the plane-wave phase ramp exp(2i k0 (dz (cos phi - 1)
   + dx sin phi)); |field| is the envelope (equivalent to the Hilbert envelope of the RF).
4. Cart target: average of the envelopes of `n_compound` steered angles (spatial
   compounding), 60 dB display range, negligible noise. Point-of-care input: lower f0, wider
   beam, one angle, band-limited electronic noise added to the complex field (rising with depth
   as the TGC amplifies it), random gain / TGC errors, ~42 dB display range.
   With ``tone_neutral`` the target shares the input's gain / TGC field and dynamic range (the
   us-* students' pairs, data/us_domain.py: only speckle, resolution, noise and clutter differ).
5. Log compression to [0, 1] and scan conversion (cv2.remap) with a black surround: a phased
   sector, a curvilinear fan or a linear rectangle (``ScanFormat``); both images use the same
   map, so they are pixel-aligned.

Optional artefacts (data/us_artefacts.py): acoustic shadowing behind strong reflectors (in the
phantom, so both probes see it) and probe-fixed clutter, near-field haze and reverberation bands,
which each probe shows by its ``clutter_db`` (the compounded cart probe 10 dB less).

The polar grid is a little finer than the output (1.5x in depth, 1.25x in lines). At small
outputs (256 px for 80 mm) the physical 7.5 MHz pulse is shorter than a grid cell, so every
PSF length and the wavelength are multiplied by one common `psf_scale` (auto: the smallest
factor >= 1 that gives the sharpest PSF `min_sigma_cells` axially). The cart/POC ratios of
resolution, and the speckle statistics (fully developed: envelope SNR 1.91), are preserved.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

import cv2
import numpy as np

from .phantom import ANECHOIC, Phantom, Structure, add_chamber, make_phantom, polar_grid
from .us_artefacts import add_shadow, clutter_scatterers, draw_clutter

C_MM_PER_US = 1.54  # speed of sound, 1540 m/s
ATTEN_DB_CM_MHZ = 0.5  # soft-tissue attenuation (one way)


@dataclass(frozen=True)
class ProbeConfig:
    f0_mhz: float = 5.0
    bandwidth: float = 0.6  # fractional -6 dB pulse-echo bandwidth
    lateral_fwhm_mm: float = 1.0  # beam width at mid depth (constant in angle)
    n_compound: int = 1  # steered angles averaged (spatial compounding)
    steer_step_deg: float = 7.0  # angle between steered frames
    dynamic_range_db: float = 60.0
    noise_db: float = -40.0  # electronic noise rms at full depth, relative to tissue rms
    gain_db: float = 0.0
    gain_jitter_db: float = 0.0  # random overall gain (std)
    tgc_error_db: float = 0.0  # random linear depth-gain error (max, over the full depth)
    lateral_ripple_db: float = 0.0  # random smooth gain variation across scan lines (amplitude)
    clutter_db: float = 0.0  # how strongly this probe shows probe-fixed clutter (haze, reverberation)

    @property
    def wavelength_mm(self) -> float:
        return C_MM_PER_US / self.f0_mhz

    @property
    def sigma_axial_mm(self) -> float:
        """Envelope sigma (mm, in depth) of a Gaussian pulse with this -6 dB bandwidth."""
        sigma_f = self.bandwidth * self.f0_mhz / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        sigma_t = 1.0 / (2.0 * math.pi * sigma_f)  # microseconds
        return C_MM_PER_US * sigma_t / 2.0

    @property
    def sigma_lateral_mm(self) -> float:
        return self.lateral_fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))

    @property
    def steer_angles_deg(self) -> tuple[float, ...]:
        n = max(1, int(self.n_compound))
        return tuple((k - (n - 1) / 2.0) * self.steer_step_deg for k in range(n))


# Cart-based scanner: 7.5 MHz, 0.5 mm beam, 5-angle compounding, 60 dB, clean.
# Compounding averages clutter over angles: it shows 10 dB less of it.
CART_PROBE = ProbeConfig(f0_mhz=7.5, bandwidth=0.6, lateral_fwhm_mm=0.5, n_compound=5, steer_step_deg=7.0,
                         dynamic_range_db=60.0, noise_db=-35.0, clutter_db=-10.0)
# Low-cost point-of-care probe: 3.5 MHz, wide beam, single angle, noisy, 42 dB, gain errors.
POC_PROBE = ProbeConfig(f0_mhz=3.5, bandwidth=0.5, lateral_fwhm_mm=1.2, n_compound=1, dynamic_range_db=42.0,
                        noise_db=-10.0, gain_db=-1.0, gain_jitter_db=1.5, tgc_error_db=3.0, lateral_ripple_db=1.5)


class ScanFormat(Enum):
    """How the beam grid (depth x scan lines) is laid out on screen. The beams themselves are
    rendered alike; the format decides the shape of the image and how the grain fans out."""

    PHASED = "phased"  # a sector from a point apex (cardiac, abdominal phased arrays)
    CURVILINEAR = "curvilinear"  # a fan from a curved face: apex ``apex_mm`` above the skin line
    LINEAR = "linear"  # parallel lines: a rectangle (vascular, small parts, MSK)


@dataclass(frozen=True)
class SimConfig:
    out_hw: tuple[int, int] = (256, 256)
    depth_mm: float = 80.0
    sector_deg: float = 75.0
    probe_cart: ProbeConfig = CART_PROBE
    probe_poc: ProbeConfig = POC_PROBE
    kinds: frozenset[Structure] | None = None  # structure kinds in the phantom (None: random mix)
    grid_oversample: tuple[float, float] = (1.5, 1.25)  # polar grid (depth, lines) vs output (H, W)
    scatterers_per_cell: float = 1.5
    min_sigma_cells: float = 0.8  # sharpest axial PSF sigma, in grid cells
    psf_scale: float | None = None  # None: auto (see module doc)
    top_db: float = 24.0  # display white level over normal-tissue rms
    # Tone-neutral pairs: the target gets the input's gain / TGC field and dynamic range, so the pair
    # differs only in speckle, resolution, noise and clutter (what an enhancement may change), never
    # in the tone map (which differs on every real scanner).
    tone_neutral: bool = False
    chamber_prob: float = 0.0  # chance of a large anechoic chamber (faint blood speckle, bright wall)
    shadow_prob: float = 0.0  # chance of a bright reflector with an acoustic shadow behind it
    clutter_prob: float = 0.0  # chance of near-field haze and reverberation bands (probe-fixed clutter)
    scan_format: ScanFormat = ScanFormat.PHASED
    apex_mm: float = 40.0  # curvilinear: radius of the probe face

    def grid_shape(self) -> tuple[int, int]:
        h, w = self.out_hw
        return int(round(h * self.grid_oversample[0])), int(round(w * self.grid_oversample[1]))


@dataclass
class Sample:
    input: np.ndarray  # float32 HxW in [0,1], scan-converted, black outside the sector
    target: np.ndarray  # float32 HxW in [0,1], same geometry
    sector: np.ndarray  # bool HxW, inside the imaging sector
    lesion: np.ndarray  # bool HxW, inside a cyst / hypo / hyper lesion (may be empty)
    background: np.ndarray  # bool HxW, normal tissue ring around the lesion(s) (gCNR)
    homogeneous: np.ndarray  # bool HxW, homogeneous normal tissue (speckle SNR)
    envelope_target: np.ndarray  # float32 polar target envelope before log compression
    homogeneous_polar: np.ndarray  # bool polar mask of the homogeneous region
    envelope_input: np.ndarray | None = None  # float32 polar input envelope (with noise, gain)
    phantom: Phantom | None = field(default=None, repr=False)


# ---- measures ------------------------------------------------------------------------------
def gcnr(img: np.ndarray, a_mask: np.ndarray, b_mask: np.ndarray, bins: int = 256) -> float:
    """Generalized CNR: 1 - overlap of the two regions' intensity histograms on [0, 1]."""
    a = np.asarray(img)[np.asarray(a_mask, bool)]
    b = np.asarray(img)[np.asarray(b_mask, bool)]
    if a.size == 0 or b.size == 0:
        return float("nan")
    ha, _ = np.histogram(a, bins=bins, range=(0.0, 1.0))
    hb, _ = np.histogram(b, bins=bins, range=(0.0, 1.0))
    return float(1.0 - np.minimum(ha / a.size, hb / b.size).sum())


def speckle_snr(envelope: np.ndarray, mask: np.ndarray) -> float:
    """mean / std of the (linear, not log-compressed) envelope in a region: 1.91 for fully
    developed speckle (Rayleigh), higher when speckle is reduced (compounding, smoothing)."""
    v = np.asarray(envelope, np.float64)[np.asarray(mask, bool)]
    if v.size < 2:
        return float("nan")
    return float(v.mean() / v.std())


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(img, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


# ---- geometry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Geom:
    n_r: int
    n_t: int
    depth: float
    half: float  # half sector angle (rad)
    dz: float  # mm per depth cell
    dth: float  # rad per line
    dl: float  # mm per line at mid depth (lateral PSF unit)
    scale: float  # PSF / wavelength scale factor
    pr: int  # FFT padding in depth cells
    pl: int  # FFT padding in lines
    fft_shape: tuple[int, int]


def _kernel_sigmas(p: ProbeConfig, g_dz: float, g_dl: float, scale: float, phi: float) -> tuple[float, float]:
    sz, sl = p.sigma_axial_mm * scale, p.sigma_lateral_mm * scale
    ez = math.sqrt((sz * math.cos(phi)) ** 2 + (sl * math.sin(phi)) ** 2) / g_dz
    el = math.sqrt((sz * math.sin(phi)) ** 2 + (sl * math.cos(phi)) ** 2) / g_dl
    return ez, el


@functools.lru_cache(maxsize=16)
def _geometry(cfg: SimConfig) -> _Geom:
    n_r, n_t = cfg.grid_shape()
    half = math.radians(cfg.sector_deg) / 2.0
    dz = cfg.depth_mm / n_r
    dth = 2.0 * half / n_t
    dl = 0.5 * cfg.depth_mm * dth
    if cfg.psf_scale is not None:
        scale = float(cfg.psf_scale)
    else:
        sharpest = min(cfg.probe_cart.sigma_axial_mm, cfg.probe_poc.sigma_axial_mm)
        scale = max(1.0, cfg.min_sigma_cells * dz / sharpest)
    ez = el = 0.0
    for p in (cfg.probe_cart, cfg.probe_poc):
        for a in p.steer_angles_deg:
            z, l_ = _kernel_sigmas(p, dz, dl, scale, math.radians(a))
            ez, el = max(ez, z), max(el, l_)
    pr, pl = int(math.ceil(3.5 * ez)) + 2, int(math.ceil(3.5 * el)) + 2
    fft_shape = (cv2.getOptimalDFTSize(n_r + 2 * pr), cv2.getOptimalDFTSize(n_t + 2 * pl))
    return _Geom(n_r, n_t, cfg.depth_mm, half, dz, dth, dl, scale, pr, pl, fft_shape)


@functools.lru_cache(maxsize=16)
def _kernel_spectra(p: ProbeConfig, g: _Geom) -> tuple[tuple[np.ndarray, ...], float]:
    """DFTs (OpenCV 2-channel) of the complex PSF of each steered angle, and the peak |h| of
    the unsteered one (to set point-target amplitudes). Each PSF has sum |h|^2 = 1, so a unit
    scatterer density gives a unit-rms envelope."""
    fh, fw = g.fft_shape
    hz, hl = g.pr - 1, g.pl - 1
    z = (np.arange(-hz, hz + 1, dtype=np.float64) * g.dz)[:, None]
    lat = (np.arange(-hl, hl + 1, dtype=np.float64) * g.dl)[None, :]
    sz, sl = p.sigma_axial_mm * g.scale, p.sigma_lateral_mm * g.scale
    k2 = 2.0 * (2.0 * math.pi / (p.wavelength_mm * g.scale))  # round-trip wavenumber
    spectra = []
    peak = 1.0
    for a in p.steer_angles_deg:
        phi = math.radians(a)
        c, s = math.cos(phi), math.sin(phi)
        zr, lr = c * z + s * lat, -s * z + c * lat
        env = np.exp(-0.5 * ((zr / sz) ** 2 + (lr / sl) ** 2))
        h = env * np.exp(1j * k2 * (z * (c - 1.0) + lat * s))
        h /= math.sqrt(float(np.sum(np.abs(h) ** 2)))
        big = np.zeros((fh, fw), np.complex64)
        big[: 2 * hz + 1, : 2 * hl + 1] = h
        big = np.roll(big, (-hz, -hl), axis=(0, 1))
        two = np.ascontiguousarray(np.stack([big.real, big.imag], -1).astype(np.float32))
        spectra.append(cv2.dft(two, flags=cv2.DFT_COMPLEX_OUTPUT))
    env0 = np.exp(-0.5 * ((z / sz) ** 2 + (lat / sl) ** 2))
    peak = float(env0.max() / math.sqrt(float(np.sum(env0**2))))
    return tuple(spectra), peak


def _display_to_beam(cfg: SimConfig, g: _Geom, x: np.ndarray, y: np.ndarray):
    """Display mm (x lateral from the centre, y down from the top of the field) -> beam depth r
    and line angle th of the beam grid."""
    if cfg.scan_format is ScanFormat.LINEAR:  # lines dl apart at every depth (dl: lateral unit)
        return y, x * np.float32(g.dth / g.dl)
    apex = float(cfg.apex_mm) if cfg.scan_format is ScanFormat.CURVILINEAR else 0.0
    ya = y + np.float32(apex * math.cos(g.half))  # y from the virtual apex
    return np.sqrt(x * x + ya * ya) - np.float32(apex), np.arctan2(x, ya)


def _display_extent(cfg: SimConfig, g: _Geom) -> tuple[float, float]:
    """Width and height (mm) of the imaged field on screen."""
    D, half = g.depth, min(g.half, math.pi / 2)
    if cfg.scan_format is ScanFormat.LINEAR:
        return g.n_t * g.dl, D
    apex = float(cfg.apex_mm) if cfg.scan_format is ScanFormat.CURVILINEAR else 0.0
    return 2.0 * (apex + D) * math.sin(half), apex + D - apex * math.cos(half)


@functools.lru_cache(maxsize=8)
def _scan_maps(cfg: SimConfig):
    """cv2.remap maps from output pixels to polar-grid cells, the sector mask, and the tissue
    (x, y) mm of every output pixel. The field is centred at the top and fitted into the image."""
    g = _geometry(cfg)
    H, W = cfg.out_hw
    width, height = _display_extent(cfg, g)
    px = max(width / W, height / H)
    y_off = (H * px - height) / 2.0
    jj, ii = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    x = (jj + 0.5 - W / 2.0) * px
    y = (ii + 0.5) * px - y_off
    r, th = _display_to_beam(cfg, g, x, y)
    sector = (r >= 0) & (r <= g.depth) & (np.abs(th) <= g.half)
    map_r = (r / g.dz - 0.5).astype(np.float32)
    map_t = ((th + g.half) / g.dth - 0.5).astype(np.float32)
    map_x, map_y = cv2.convertMaps(map_t, map_r, cv2.CV_16SC2)
    if cfg.scan_format is not ScanFormat.PHASED:  # the phantom's frame is the beam grid's (r, th)
        x, y = r * np.sin(th), r * np.cos(th)
    for a in (sector, x, y):
        a.setflags(write=False)
    return map_x, map_y, sector, x.astype(np.float32), y.astype(np.float32)


def _scan_convert(polar: np.ndarray, cfg: SimConfig) -> np.ndarray:
    map_x, map_y, sector, _, _ = _scan_maps(cfg)
    out = cv2.remap(polar, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[~sector] = 0.0
    return out


# ---- scatterers and motion -------------------------------------------------------------------
R0_FRAC = 0.03  # below this fraction of the depth, scatterer density per cell tapers (apex)


@dataclass
class _Scatterers:
    x: np.ndarray  # tissue coordinates (mm), float32
    y: np.ndarray
    amp: np.ndarray  # complex64: complex Gaussian x sqrt(echogenicity) x density compensation
    r0: float


def _make_scatterers(rng: np.random.Generator, ph: Phantom, g: _Geom, density: float,
                     margin_r_mm: float = 0.0, margin_deg: float = 0.0) -> _Scatterers:
    """Scatterers over the padded polar domain (plus motion margins), fixed in tissue.

    Density in the plane is ~1/max(r, r0) (so ~`density` per polar cell beyond r0), and
    amplitudes carry sqrt(max(r, r0)/r0) so the backscatter per unit tissue area is uniform:
    a uniform medium stays uniform wherever motion carries it (the 1/r of the polar cell area
    is divided out per frame, in probe coordinates, like a TGC)."""
    r0 = R0_FRAC * g.depth
    r_max = (g.n_r + g.pr) * g.dz + margin_r_mm
    th_half = g.half + g.pl * g.dth + math.radians(margin_deg)
    th_half = min(th_half, math.pi / 2)
    # pdf(r) ~ r / max(r, r0) on [0, r_max]: CDF r^2/(2 r0) below r0, r - r0/2 above
    mass = r_max - r0 / 2.0
    n = int(round(density * mass / g.dz * (2.0 * th_half / g.dth)))
    u = rng.random(n) * mass
    r = np.where(u < r0 / 2.0, np.sqrt(2.0 * r0 * u), u + r0 / 2.0)
    th = rng.uniform(-th_half, th_half, n)
    x = (r * np.sin(th)).astype(np.float32)
    y = (r * np.cos(th)).astype(np.float32)
    echo, _ = ph.evaluate(x, y)
    w = np.sqrt(echo * (np.maximum(r, r0) / r0)).astype(np.float32)
    z = rng.standard_normal((n, 2), dtype=np.float32) * np.float32(math.sqrt(0.5))
    amp = (z[:, 0] + 1j * z[:, 1]).astype(np.complex64) * w
    return _Scatterers(x, y, amp, r0)


@dataclass(frozen=True)
class _Motion:
    dx: float = 0.0  # lateral tissue shift (mm)
    dy: float = 0.0  # axial tissue shift (mm)
    stretch: float = 0.0  # breathing: axial displacement = stretch * y  (0 at the skin)

    def forward(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x + np.float32(self.dx), y * np.float32(1.0 + self.stretch) + np.float32(self.dy)

    def inverse(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x - np.float32(self.dx), (y - np.float32(self.dy)) / np.float32(1.0 + self.stretch)


def _splat(sc: _Scatterers, xp: np.ndarray, yp: np.ndarray, g: _Geom, k2s: Sequence[float], density: float,
           extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> list[np.ndarray]:
    """Bilinear splat of the scatterers (at probe positions xp, yp) with the round-trip phase of
    each wavenumber in `k2s`, onto the padded FFT grid. Returns OpenCV 2-channel float32 grids."""
    fh, fw = g.fft_shape
    r = np.sqrt(xp * xp + yp * yp)
    th = np.arctan2(xp, yp)
    fi = r / np.float32(g.dz) - 0.5 + g.pr
    fj = (th + np.float32(g.half)) / np.float32(g.dth) - 0.5 + g.pl
    i0 = np.floor(fi)
    j0 = np.floor(fj)
    ok = (i0 >= 0) & (i0 < fh - 1) & (j0 >= 0) & (j0 < fw - 1) & (yp > 0)
    amp = sc.amp
    if not ok.all():
        r, fi, fj, i0, j0, amp = r[ok], fi[ok], fj[ok], i0[ok], j0[ok], amp[ok]
    # undo the polar cell area (~r) per probe position: a TGC for the sector geometry
    amp = amp * np.sqrt(np.float32(sc.r0 / density) / np.maximum(r, np.float32(0.5 * g.dz)))
    if extra is not None:  # point targets: fixed amplitude, no density compensation
        ex_r, ex_amp, ex_fi_fj = extra[0], extra[1], extra[2]
        r = np.concatenate([r, ex_r])
        amp = np.concatenate([amp, ex_amp])
        fi = np.concatenate([fi, ex_fi_fj[0]])
        fj = np.concatenate([fj, ex_fi_fj[1]])
        i0, j0 = np.floor(fi), np.floor(fj)
    u = (fi - i0).astype(np.float32)
    v = (fj - j0).astype(np.float32)
    base = i0.astype(np.int64) * fw + j0.astype(np.int64)
    idx = np.concatenate([base, base + 1, base + fw, base + fw + 1])
    wts = np.stack([(1 - u) * (1 - v), (1 - u) * v, u * (1 - v), u * v])  # (4, n)
    ar = np.ascontiguousarray(amp.real, dtype=np.float32)
    ai = np.ascontiguousarray(amp.imag, dtype=np.float32)
    r = r.astype(np.float32, copy=False)
    out = []
    for k2 in k2s:
        ph = np.float32(k2) * r
        c, s = np.cos(ph), np.sin(ph)
        cr = ar * c + ai * s  # amp * exp(-i k2 r)
        ci = ai * c - ar * s
        re = np.bincount(idx, weights=(wts * cr).ravel(), minlength=fh * fw)
        im = np.bincount(idx, weights=(wts * ci).ravel(), minlength=fh * fw)
        two = np.empty((fh, fw, 2), np.float32)
        two[..., 0] = re.reshape(fh, fw)
        two[..., 1] = im.reshape(fh, fw)
        out.append(two)
    return out


def _point_extra(ph: Phantom, motion: _Motion, g: _Geom, amp_scale: float):
    if ph.points.shape[0] == 0:
        return None
    xp, yp = motion.forward(ph.points[:, 0], ph.points[:, 1])
    r = np.sqrt(xp * xp + yp * yp)
    th = np.arctan2(xp, yp)
    fi = r / g.dz - 0.5 + g.pr
    fj = (th + g.half) / g.dth - 0.5 + g.pl
    a = np.float32(10 ** (ph.point_db / 20.0) * amp_scale)
    amp = np.full(r.shape, a, np.complex64)  # a fixed reflector: its phase follows its depth
    return r.astype(np.float32), amp, (fi.astype(np.float32), fj.astype(np.float32))


def _envelopes(field2: np.ndarray, spectra: Sequence[np.ndarray], g: _Geom) -> np.ndarray:
    """Mean over the PSFs of |field (*) psf| on the unpadded polar grid (complex fields too)."""
    F = cv2.dft(field2, flags=cv2.DFT_COMPLEX_OUTPUT)
    acc = None
    for S in spectra:
        prod = cv2.mulSpectrums(F, S, 0)
        o = cv2.idft(prod, flags=cv2.DFT_SCALE | cv2.DFT_COMPLEX_OUTPUT)
        o = o[g.pr : g.pr + g.n_r, g.pl : g.pl + g.n_t]
        mag = cv2.magnitude(np.ascontiguousarray(o[..., 0]), np.ascontiguousarray(o[..., 1]))
        acc = mag if acc is None else acc + mag
    return acc / np.float32(len(spectra))


def _complex_field(field2: np.ndarray, spectrum: np.ndarray, g: _Geom) -> np.ndarray:
    F = cv2.dft(field2, flags=cv2.DFT_COMPLEX_OUTPUT)
    o = cv2.idft(cv2.mulSpectrums(F, spectrum, 0), flags=cv2.DFT_SCALE | cv2.DFT_COMPLEX_OUTPUT)
    return np.ascontiguousarray(o[g.pr : g.pr + g.n_r, g.pl : g.pl + g.n_t])


def _log_compress(env: np.ndarray, dr_db: float, top_db: float) -> np.ndarray:
    db = 20.0 * np.log10(np.maximum(env, np.float32(1e-6)))
    return np.clip((db - np.float32(top_db - dr_db)) / np.float32(dr_db), 0.0, 1.0).astype(np.float32)


# ---- the render ------------------------------------------------------------------------------
@dataclass
class _Scene:
    cfg: SimConfig
    g: _Geom
    phantom: Phantom
    scat: _Scatterers
    gain_db: np.ndarray  # (n_r, n_t) POC gain field (dB), fixed per scene
    rng_noise: np.random.Generator
    rng_points: np.random.Generator
    clutter: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # probe x, y (mm), amplitude


def _make_scene(seed: int, cfg: SimConfig, margin_r_mm: float = 0.0, margin_deg: float = 0.0):
    g = _geometry(cfg)
    ss = np.random.SeedSequence(int(seed))
    r_ph, r_sc, r_gain, r_noise, r_pts, r_mot, r_art = (np.random.default_rng(s) for s in ss.spawn(7))
    ph = make_phantom(r_ph, (g.n_r, g.n_t), cfg.kinds, depth_mm=cfg.depth_mm, sector_deg=cfg.sector_deg)
    if cfg.chamber_prob > 0 and r_ph.random() < cfg.chamber_prob:
        ph = add_chamber(r_ph, ph, (g.n_r, g.n_t))
    if cfg.shadow_prob > 0 and r_art.random() < cfg.shadow_prob:
        ph = add_shadow(r_art, ph, (g.n_r, g.n_t))
    clutter = None
    if cfg.clutter_prob > 0 and r_art.random() < cfg.clutter_prob:
        clutter = clutter_scatterers(r_art, draw_clutter(r_art, g.depth, g.half), g.depth, g.half, g.dz, g.dth,
                                     cfg.scatterers_per_cell, R0_FRAC * g.depth)
    sc = _make_scatterers(r_sc, ph, g, cfg.scatterers_per_cell, margin_r_mm, margin_deg)
    p = cfg.probe_poc
    rr, tt = polar_grid((g.n_r, g.n_t), g.depth, math.degrees(2 * g.half))
    gain = (p.gain_db + r_gain.normal(0.0, 1.0) * p.gain_jitter_db
            + r_gain.uniform(-1, 1) * p.tgc_error_db * (rr / g.depth - 0.5)
            + p.lateral_ripple_db * np.sin(tt * r_gain.uniform(2, 6) / g.half + r_gain.uniform(0, 2 * math.pi)))
    return _Scene(cfg, g, ph, sc, gain.astype(np.float32), r_noise, r_pts, clutter), r_mot


def _noise(rng: np.random.Generator, p: ProbeConfig, g: _Geom) -> np.ndarray:
    """Complex electronic noise, band-limited along depth (receive filter), independent across
    lines, amplified with depth by the TGC that compensates attenuation at f0."""
    z = rng.standard_normal((g.n_r, g.n_t, 2), dtype=np.float32)
    sig = p.sigma_axial_mm * g.scale / g.dz
    k = int(math.ceil(3 * sig)) * 2 + 1
    if k > 1:
        z = cv2.GaussianBlur(z, (1, k), sigmaX=1e-3, sigmaY=sig, borderType=cv2.BORDER_REFLECT)
        z *= np.float32(math.sqrt(2.0 * math.sqrt(math.pi) * sig))  # back to unit variance
    r = (np.arange(g.n_r, dtype=np.float32) + 0.5) * g.dz
    atten = ATTEN_DB_CM_MHZ * p.f0_mhz * 2.0 * (r - g.depth) / 10.0  # dB relative to full depth
    lvl = (10 ** ((p.noise_db + atten) / 20.0) * math.sqrt(0.5)).astype(np.float32)
    return z * lvl[:, None, None]


def _render(scene: _Scene, motion: _Motion) -> Sample:
    cfg, g, ph, sc = scene.cfg, scene.g, scene.phantom, scene.scat
    pc, pp = cfg.probe_cart, cfg.probe_poc
    spec_c, peak_c = _kernel_spectra(pc, g)
    spec_p, _ = _kernel_spectra(pp, g)
    k2c = 4.0 * math.pi / (pc.wavelength_mm * g.scale)
    k2p = 4.0 * math.pi / (pp.wavelength_mm * g.scale)
    xp, yp = motion.forward(sc.x, sc.y)
    extra = _point_extra(ph, motion, g, 1.0 / peak_c)
    field_c, field_p = _splat(sc, xp, yp, g, (k2c, k2p), cfg.scatterers_per_cell, extra)
    if scene.clutter is not None:  # fixed to the probe: no motion; each probe shows its share
        cx, cy, camp = scene.clutter
        cl_c, cl_p = _splat(_Scatterers(cx, cy, camp, sc.r0), cx, cy, g, (k2c, k2p), cfg.scatterers_per_cell)
        field_c = field_c + cl_c * np.float32(10 ** (pc.clutter_db / 20.0))
        field_p = field_p + cl_p * np.float32(10 ** (pp.clutter_db / 20.0))

    env_t = _envelopes(field_c, spec_c, g)
    if pc.noise_db > -80:  # the target's (weak) noise: add to the compounded envelope's power
        n = _noise(scene.rng_noise, pc, g)
        env_t = np.sqrt(env_t * env_t + (n * n).sum(-1)).astype(np.float32)

    cf = _complex_field(field_p, spec_p[0], g) + _noise(scene.rng_noise, pp, g)
    env_i = cv2.magnitude(np.ascontiguousarray(cf[..., 0]), np.ascontiguousarray(cf[..., 1]))
    gain = (10 ** (scene.gain_db / 20.0)).astype(np.float32)
    env_i *= gain
    dr_t = pc.dynamic_range_db
    if cfg.tone_neutral:
        env_t, dr_t = env_t * gain, pp.dynamic_range_db
    tgt = _scan_convert(_log_compress(env_t, dr_t, cfg.top_db), cfg)
    inp = _scan_convert(_log_compress(env_i, pp.dynamic_range_db, cfg.top_db), cfg)

    _, _, sector, x, y = _scan_maps(cfg)
    xt, yt = motion.inverse(x, y)
    lesion, background, homog = ph.masks(xt, yt)
    rr, tt = polar_grid((g.n_r, g.n_t), g.depth, math.degrees(2 * g.half))
    if motion == _Motion():
        homog_polar = ph.homogeneous_mask
    else:
        xq, yq = motion.inverse(rr * np.sin(tt), rr * np.cos(tt))
        homog_polar = ph.masks(xq, yq)[2]
    return Sample(
        input=inp, target=tgt, sector=sector.copy(), lesion=lesion & sector, background=background & sector,
        homogeneous=homog & sector, envelope_target=env_t.astype(np.float32), homogeneous_polar=homog_polar,
        envelope_input=env_i.astype(np.float32), phantom=ph,
    )


def render_pair(seed: int, cfg: SimConfig = SimConfig()) -> Sample:
    """One scene rendered by both probes from the same scatterers: aligned (input, target)."""
    scene, _ = _make_scene(seed, cfg)
    return _render(scene, _Motion())


def cine(seed: int, n_frames: int, cfg: SimConfig = SimConfig(), fps: float = 30.0,
         drift_mm_s: float | None = None, breath_mm: float | None = None) -> Iterator[Sample]:
    """Frames of one scene under probe drift (slow lateral/axial translation) and breathing
    (periodic axial displacement growing with depth). Scatterers move with the tissue, so the
    speckle is coherent between frames; electronic noise is fresh every frame."""
    n_frames = int(n_frames)
    dur = max(n_frames - 1, 0) / float(fps)
    # motion parameters come from their own stream; sizes decide the scatterer margins
    r_mot = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(6)[5])
    vx = float(r_mot.uniform(-1, 1)) * (1.5 if drift_mm_s is None else drift_mm_s)
    vy = float(r_mot.uniform(-0.3, 0.3)) * (1.5 if drift_mm_s is None else drift_mm_s)
    amp = float(r_mot.uniform(1.0, 3.0)) if breath_mm is None else float(breath_mm)
    f_b = float(r_mot.uniform(0.2, 0.33))
    ph0 = float(r_mot.uniform(0, 2 * math.pi))
    max_lat = abs(vx) * dur + 1.0
    margin_r = abs(vy) * dur + amp + 1.0
    margin_deg = min(90.0, math.degrees(math.atan2(max_lat, 6.0)))
    scene, _ = _make_scene(seed, cfg, margin_r, margin_deg)
    for k in range(n_frames):
        t = k / float(fps)
        stretch = amp * math.sin(2 * math.pi * f_b * t + ph0) / cfg.depth_mm
        yield _render(scene, _Motion(dx=vx * t, dy=vy * t, stretch=stretch))


def render_dataset(seeds: Sequence[int], cfg: SimConfig = SimConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) float32 inputs and targets, one pair per seed."""
    h, w = cfg.out_hw
    xs = np.empty((len(seeds), h, w), np.float32)
    ys = np.empty((len(seeds), h, w), np.float32)
    for i, s in enumerate(seeds):
        smp = render_pair(int(s), cfg)
        xs[i], ys[i] = smp.input, smp.target
    return xs, ys


def single_angle(cfg: SimConfig = SimConfig()) -> SimConfig:
    """`cfg` with an uncompounded cart target (speckle-statistics checks)."""
    return replace(cfg, probe_cart=replace(cfg.probe_cart, n_compound=1))


__all__ = [
    "ANECHOIC", "CART_PROBE", "POC_PROBE", "ProbeConfig", "Sample", "ScanFormat", "SimConfig", "Structure", "cine", "gcnr",
    "render_dataset", "render_pair", "single_angle", "speckle_snr", "to_uint8",
]
