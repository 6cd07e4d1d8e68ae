"""Procedural endoscopic / laparoscopic RGB frames: aligned (degraded input, clean target) pairs.

No endoscopy dataset is reachable offline, so the scene is synthesised (numpy + OpenCV only):

1. Surface: a height field of multi-octave value noise (folds at low frequency, mucosal texture at
   high) plus one polyp-like dome. The light sits beside the lens, so diffuse brightness follows
   the surface's tilt towards the camera (n.v) and falls off with the square of a smooth depth map
   (a dark lumen where the tube recedes).
2. Albedo: a mucosa palette (pale pink -> salmon -> deep red) indexed by another noise field;
   vessels are branching random-walk curves in dark red/purple; the polyp is redder with a finer
   pit texture.
3. Specular highlights: small blobs on surfaces facing the light, with radiance far above white,
   so they clip in both images and stay saturated in the dim input.
4. Scope: circular field of view (it may be cut by the frame's top and bottom) with a black
   surround and optical vignetting.

Target: the radiance as a well-exposed, clean camera shows it (clipped, 8-bit levels).
Input, the same scene through a worse chain: smoke (a spatially smooth veil blending towards a
grey airlight, i.e. reduced contrast), optical blur, low light (exposure gain), Poisson-Gaussian
sensor noise (the Gaussian approximation with signal-dependent variance), the processor's partial
auto-gain (which amplifies that noise) and a darkening tone curve (gamma), colour noise and JPEG
compression. Everything is deterministic by seed; about 30 ms per 256x256 pair on 2 cores.

Masks for the metrics: ``lesion`` (the polyp, inset) vs ``background`` (a ring of mucosa around
it without vessels or highlights) for gCNR, ``homogeneous`` (a vessel-free disc of plain mucosa),
and ``sector`` (the scope circle: the valid region).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Range = tuple[float, float]

# Mucosa palette (linear-ish RGB in [0, 1]), light to dark.
PALETTE = np.array([[0.96, 0.68, 0.62], [0.92, 0.50, 0.44], [0.80, 0.30, 0.27], [0.62, 0.16, 0.15]], np.float32)
VESSEL_RGB = np.array([0.50, 0.08, 0.14], np.float32)
POLYP_RGB = np.array([0.86, 0.40, 0.36], np.float32)
SMOKE_RGB = np.array([0.86, 0.86, 0.88], np.float32)


@dataclass(frozen=True)
class EndoConfig:
    """Scene and degradation parameters; each Range is sampled uniformly per scene. Lengths are
    fractions of the frame's shorter side, so a scene looks the same at any resolution."""

    out_hw: tuple[int, int] = (256, 256)
    # scene
    scope_radius: Range = (0.46, 0.62)  # > 0.5: the circle is cut by the frame's edges
    vignetting: Range = (0.15, 0.35)  # brightness lost at the circle's rim
    vessels: tuple[int, int] = (3, 7)  # vessel trunks (each branches)
    polyp_radius: Range = (0.07, 0.13)
    speculars: tuple[int, int] = (4, 14)
    # degradations (input only)
    exposure: Range = (0.12, 0.4)  # light on the sensor relative to the target's exposure
    auto_gain: Range = (0.5, 0.9)  # fraction (in log terms) of the lost brightness the processor restores
    gamma: Range = (1.0, 1.5)  # tone curve of the dim frame (> 1 darkens mid-tones)
    smoke: Range = (0.0, 0.6)  # veil density at its thickest
    blur_sigma: Range = (0.4, 1.6)  # optical blur, px at 256 (scaled with the frame)
    full_well: Range = (150.0, 600.0)  # electrons at full scale: shot noise
    read_noise: Range = (0.004, 0.015)  # fraction of full scale
    chroma_noise: Range = (0.0, 0.03)  # colour blotches (std)
    jpeg_quality: tuple[int, int] = (35, 85)


@dataclass
class EndoSample:
    input: np.ndarray  # float32 HxWx3 RGB in [0, 1] (8-bit levels)
    target: np.ndarray  # float32 HxWx3 RGB in [0, 1] (8-bit levels)
    sector: np.ndarray  # bool HxW: inside the scope circle
    lesion: np.ndarray  # bool HxW: the polyp (inset from its edge)
    background: np.ndarray  # bool HxW: mucosa ring around the polyp (no vessels, no highlights)
    homogeneous: np.ndarray  # bool HxW: a vessel-free disc of plain mucosa
    vessels: np.ndarray  # float32 HxW: vessel opacity (0..1)


# ---- fields ------------------------------------------------------------------------------------
def _value_noise(rng: np.random.Generator, hw: tuple[int, int], cell_px: float) -> np.ndarray:
    """A smooth random field (unit-ish std) varying over ``cell_px`` pixels: a coarse Gaussian grid
    upsampled bicubically."""
    h, w = hw
    gh, gw = int(round(h / cell_px)) + 2, int(round(w / cell_px)) + 2
    g = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def _fractal(rng: np.random.Generator, hw: tuple[int, int], cell_px: float, octaves: int,
             persistence: float = 0.5) -> np.ndarray:
    out = np.zeros(hw, np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += np.float32(amp) * _value_noise(rng, hw, cell_px / 2**k)
        total += amp * amp
        amp *= persistence
    return out / np.float32(math.sqrt(total))


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _palette(t: np.ndarray) -> np.ndarray:
    """t in [0, 1] -> RGB along PALETTE (piecewise linear)."""
    knots = np.linspace(0.0, 1.0, len(PALETTE))
    return np.stack([np.interp(t, knots, PALETTE[:, k]).astype(np.float32) for k in range(3)], -1)


def _vessels(rng: np.random.Generator, hw: tuple[int, int], trunks: int) -> np.ndarray:
    """Opacity (0..1) of branching vessels: random walks with momentum, thinner at each branching."""
    h, w = hw
    S = min(h, w)
    canvas = np.zeros(hw, np.uint8)
    stack = []
    for _ in range(trunks):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        stack.append((x, y, rng.uniform(0, 2 * math.pi), rng.uniform(0.005, 0.011) * S, int(rng.integers(90, 230)), 0))
    step = 0.012 * S
    while stack:
        x, y, heading, thick, ink, depth = stack.pop()
        n = int(rng.integers(25, 80 if depth == 0 else 40))
        turns, forks = rng.normal(0.0, 0.1, n), rng.random(n)
        pts, turn = [(x, y)], 0.0
        for k in range(n):
            turn = 0.8 * turn + turns[k]  # momentum: smooth, meandering paths
            heading += turn
            x, y = x + step * math.cos(heading), y + step * math.sin(heading)
            pts.append((x, y))
            if depth < 2 and forks[k] < 0.04:
                side = 1.0 if forks[k] < 0.02 else -1.0
                stack.append((x, y, heading + side * rng.uniform(0.4, 1.1), thick * 0.6, int(ink * 0.8), depth + 1))
        line = np.round(np.array(pts) * 16).astype(np.int32)  # 4 fractional bits: sub-pixel paths
        cv2.polylines(canvas, [line], False, ink, max(1, int(round(thick))), cv2.LINE_AA, shift=4)
    op = canvas.astype(np.float32) / 255.0
    return cv2.GaussianBlur(op, (0, 0), 0.004 * S + 0.3)


def _blob_canvas(rng: np.random.Generator, hw: tuple[int, int], weights: np.ndarray, n: int) -> np.ndarray:
    """n small soft ellipses (peak ~1) at positions drawn with probability ~ ``weights``."""
    h, w = hw
    S = min(h, w)
    out = np.zeros(hw, np.float32)
    p = weights.ravel().astype(np.float64)
    if n == 0 or p.sum() <= 0:
        return out
    idx = rng.choice(p.size, size=n, p=p / p.sum())
    for k in idx:
        cy, cx = divmod(int(k), w)
        ax = (max(1, int(round(rng.uniform(0.004, 0.016) * S))), max(1, int(round(rng.uniform(0.003, 0.009) * S))))
        cv2.ellipse(out, (cx, cy), ax, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.7, 1.0)), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(out, (0, 0), 0.003 * S + 0.4)


# ---- scene -------------------------------------------------------------------------------------
@dataclass
class _Scene:
    radiance: np.ndarray  # HxWx3 float32 linear, may exceed 1 at highlights (canvas size)
    vessels: np.ndarray  # HxW opacity
    specular: np.ndarray  # HxW blob canvas
    polyp_rho: np.ndarray  # HxW normalised polyp radius (< 1 inside)
    homog_center: tuple[float, float]  # (y, x) on the canvas
    homog_radius: float
    scope_offset: tuple[float, float]  # (dy, dx) of the scope axis from the view's centre
    scope_r: float
    vignetting: float


def _make_scene(rng: np.random.Generator, cfg: EndoConfig, canvas_hw: tuple[int, int]) -> _Scene:
    H, W = canvas_hw
    h, w = cfg.out_hw
    S = float(min(h, w))
    yy, xx = (a.astype(np.float32) for a in np.ogrid[0:H, 0:W])
    off = (rng.uniform(-0.03, 0.03) * S, rng.uniform(-0.03, 0.03) * S)
    vc = (H / 2.0 + off[0], W / 2.0 + off[1])  # scope axis on the canvas when the view is centred
    scope_r = rng.uniform(*cfg.scope_radius) * S

    # polyp: inside the visible field, away from the rim; the lumen (far, dark) on the other side
    ang = rng.uniform(0, 2 * math.pi)
    dist = rng.uniform(0.0, 0.5) * min(scope_r, 0.5 * S)
    py, px = vc[0] + dist * math.sin(ang), vc[1] + dist * math.cos(ang)
    pa = rng.uniform(*cfg.polyp_radius) * S
    pb = pa * rng.uniform(0.7, 1.0)
    th = rng.uniform(0, math.pi)
    u = (xx - px) * math.cos(th) + (yy - py) * math.sin(th)
    v = -(xx - px) * math.sin(th) + (yy - py) * math.cos(th)
    rho = np.sqrt((u / pa) ** 2 + (v / pb) ** 2)

    # height field (px): folds + fine mucosal texture + the polyp dome
    dome = np.clip(1.0 - rho * rho, 0.0, None) ** 2  # flat at the rim: a sessile polyp
    height = (np.float32(0.05 * S) * _fractal(rng, canvas_hw, S / 3.0, 3)
              + np.float32(0.0012 * S) * _value_noise(rng, canvas_hw, S / 35.0) + np.float32(0.65 * pa) * dome)
    gy, gx = np.gradient(height)
    diffuse = 1.0 / np.sqrt(1.0 + 4.0 * (gx * gx + gy * gy))  # n.v with the light at the lens

    # depth: a receding lumen opposite the polyp, gentle undulation elsewhere
    ly = vc[0] - rng.uniform(0.25, 0.45) * S * math.sin(ang)
    lx = vc[1] - rng.uniform(0.25, 0.45) * S * math.cos(ang)
    lumen = np.exp(-((yy - ly) ** 2 + (xx - lx) ** 2) / np.float32(2 * (rng.uniform(0.12, 0.22) * S) ** 2))
    depth = 1.0 + 0.15 * _value_noise(rng, canvas_hw, S / 2.0) + rng.uniform(0.8, 1.6) * lumen - 0.35 * dome
    illum = 1.0 / np.maximum(depth, 0.5) ** 2

    # albedo: mucosa palette, vessels, polyp tint and pits
    t = 0.4 + 0.2 * _fractal(rng, canvas_hw, S / 5.0, 3) + rng.uniform(-0.15, 0.15)
    albedo = _palette(t) * (1.0 + rng.normal(0.0, 0.04, 3)).astype(np.float32)
    pits = 0.5 + 0.5 * np.tanh(2.0 * _value_noise(rng, canvas_hw, S / 60.0))
    inside = (1.0 - _smoothstep(0.85, 1.05, rho))[..., None]
    polyp = POLYP_RGB * (0.85 + 0.3 * pits)[..., None]
    albedo = albedo * (1.0 - inside) + polyp * inside
    vessels = _vessels(rng, canvas_hw, int(rng.integers(cfg.vessels[0], cfg.vessels[1] + 1)))
    albedo = albedo * (1.0 - vessels[..., None]) + VESSEL_RGB * vessels[..., None]

    shade = diffuse * illum
    rad = albedo * shade[..., None]
    # highlights where the surface faces the light (and the light is strong)
    facing = np.clip((diffuse - 0.97) / 0.03, 0.0, 1.0) * illum
    spec = _blob_canvas(rng, canvas_hw, facing + 1e-3, int(rng.integers(cfg.speculars[0], cfg.speculars[1] + 1)))
    rad = rad + (rng.uniform(2.0, 5.0) * spec)[..., None]
    rad *= np.float32(0.85 / max(float(np.percentile(shade[::4, ::4], 95)), 1e-3))  # target's auto-exposure

    # homogeneous disc: plain mucosa away from the polyp, the lumen and the rim
    hr = 0.07 * S
    best, best_score = (vc[0], vc[1]), -np.inf
    for _ in range(24):
        a, d = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.7) * (min(scope_r, 0.5 * S) - hr)
        cy, cx = vc[0] + d * math.sin(a), vc[1] + d * math.cos(a)
        score = min(math.hypot(cy - py, cx - px) - 1.6 * pa, math.hypot(cy - ly, cx - lx) - 0.3 * S)
        if score > best_score:
            best, best_score = (cy, cx), score
    return _Scene(rad.astype(np.float32), vessels, spec, rho.astype(np.float32), best, hr, off, scope_r,
                  float(rng.uniform(*cfg.vignetting)))


def _optics(scene: _Scene, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(soft scope mask x vignetting, hard sector mask): fixed in the frame, whatever the view."""
    h, w = hw
    yy, xx = (a.astype(np.float32) for a in np.ogrid[0:h, 0:w])
    cy, cx = h / 2.0 + scene.scope_offset[0], w / 2.0 + scene.scope_offset[1]
    r = np.sqrt((yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2)
    R = np.float32(scene.scope_r)
    edge = np.clip(R - r + 0.5, 0.0, 1.0)  # one-pixel anti-aliased rim
    vig = 1.0 - np.float32(scene.vignetting) * np.clip(r / R, 0.0, 1.0) ** 2
    return (edge * vig).astype(np.float32), r < R - 1.0


def _to8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Degradation:
    exposure: float
    auto_gain: float
    gamma: float
    smoke: float
    blur: float
    full_well: float
    read: float
    chroma: float
    jpeg: int


def _draw_degradation(rng: np.random.Generator, cfg: EndoConfig) -> _Degradation:
    S = min(cfg.out_hw)
    return _Degradation(
        exposure=rng.uniform(*cfg.exposure), auto_gain=rng.uniform(*cfg.auto_gain), gamma=rng.uniform(*cfg.gamma),
        smoke=rng.uniform(*cfg.smoke), blur=rng.uniform(*cfg.blur_sigma) * S / 256.0,
        full_well=rng.uniform(*cfg.full_well), read=rng.uniform(*cfg.read_noise),
        chroma=rng.uniform(*cfg.chroma_noise), jpeg=int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)),
    )


def _degrade(rng: np.random.Generator, rad: np.ndarray, veil: np.ndarray, optics: np.ndarray,
             d: _Degradation) -> np.ndarray:
    hazy = rad * (1.0 - veil[..., None]) + SMOKE_RGB * veil[..., None]
    if d.blur > 0.25:
        hazy = cv2.GaussianBlur(hazy, (0, 0), d.blur)
    sensor = np.minimum(hazy * optics[..., None] * np.float32(d.exposure), 1.0)  # the sensor saturates
    sigma = np.sqrt(sensor / np.float32(d.full_well) + np.float32(d.read) ** 2)
    sensor = sensor + sigma * rng.standard_normal(sensor.shape, dtype=np.float32)
    gain = np.float32(d.exposure ** -d.auto_gain)
    out = cv2.pow(np.clip(sensor * gain, 0.0, 1.0), d.gamma)
    if d.chroma > 0:  # colour blotches: low-resolution chroma noise, as demosaicing + NR leave it
        h, w = out.shape[:2]
        blot = rng.standard_normal((max(1, h // 3), max(1, w // 3), 3), dtype=np.float32) * np.float32(d.chroma)
        out = out + cv2.resize(blot, (w, h), interpolation=cv2.INTER_LINEAR)
    out = out * optics[..., None].astype(bool)  # the processor blanks outside the scope circle
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(_to8(out), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, d.jpeg])
    if not ok:  # pragma: no cover - OpenCV always has a JPEG codec
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def _veil(rng: np.random.Generator, hw: tuple[int, int], S: int, density: float) -> np.ndarray:
    """Smoke: a spatially smooth density (0..density) varying over ~0.4 of the frame."""
    v = 0.5 + 0.5 * np.tanh(1.5 * _fractal(rng, hw, S / 2.5, 2) + rng.uniform(-0.5, 0.5))
    return (np.float32(density) * v).astype(np.float32)


def _view(scene: _Scene, rng_deg: np.random.Generator, d: _Degradation, veil: np.ndarray, hw: tuple[int, int],
          top_left: tuple[int, int]) -> EndoSample:
    h, w = hw
    r0, c0 = top_left
    sl = (slice(r0, r0 + h), slice(c0, c0 + w))
    optics, sector = _optics(scene, hw)
    rad = scene.radiance[sl]
    target = _to8(np.clip(rad * optics[..., None], 0.0, 1.0)).astype(np.float32) / 255.0
    inp = _degrade(rng_deg, rad, veil, optics, d)
    rho = scene.polyp_rho[sl]
    clear = (scene.vessels[sl] < 0.05) & (scene.specular[sl] < 0.02)
    yy, xx = np.ogrid[0:h, 0:w]
    hy, hx = scene.homog_center[0] - r0, scene.homog_center[1] - c0
    disc = (yy - hy) ** 2 + (xx - hx) ** 2 < scene.homog_radius**2
    return EndoSample(
        input=inp, target=target, sector=sector, lesion=(rho < 0.75) & sector,
        background=(rho > 1.3) & (rho < 2.0) & clear & sector, homogeneous=disc & clear & (rho > 1.3) & sector,
        vessels=scene.vessels[sl].copy(),
    )


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    scene, deg, noise = np.random.SeedSequence(int(seed)).spawn(3)
    return np.random.default_rng(scene), np.random.default_rng(deg), np.random.default_rng(noise)


def render_pair(seed: int, cfg: EndoConfig = EndoConfig()) -> EndoSample:
    """One scene seen by a clean, well-lit scope (target) and a dim, smoky, noisy one (input)."""
    r_scene, r_deg, r_noise = _streams(seed)
    scene = _make_scene(r_scene, cfg, cfg.out_hw)
    d = _draw_degradation(r_deg, cfg)
    return _view(scene, r_noise, d, _veil(r_deg, cfg.out_hw, min(cfg.out_hw), d.smoke), cfg.out_hw, (0, 0))


def cine(seed: int, n_frames: int, cfg: EndoConfig = EndoConfig(), fps: float = 30.0,
         drift_px_s: float = 24.0) -> Iterator[EndoSample]:
    """Frames of one scene while the scope pans slowly over it (the tissue moves under a fixed
    circle); the smoke drifts too, sensor noise and JPEG are fresh every frame."""
    h, w = cfg.out_hw
    r_scene, r_deg, r_noise = _streams(seed)
    ang = r_scene.uniform(0, 2 * math.pi)
    span = drift_px_s * max(n_frames - 1, 0) / float(fps)
    m = int(math.ceil(span)) + 1
    scene = _make_scene(r_scene, cfg, (h + 2 * m, w + 2 * m))
    d = _draw_degradation(r_deg, cfg)
    veil = _veil(r_deg, (h + 2 * m, w + 2 * m), min(h, w), d.smoke)
    for k in range(int(n_frames)):
        frac = k / max(n_frames - 1, 1) - 0.5  # the pan is centred on the canvas' middle
        r0 = int(round(m + frac * span * math.sin(ang)))
        c0 = int(round(m + frac * span * math.cos(ang)))
        yield _view(scene, r_noise, d, veil[r0 : r0 + h, c0 : c0 + w], (h, w), (r0, c0))


def render_pairs(seeds: Sequence[int], cfg: EndoConfig = EndoConfig()) -> list[EndoSample]:
    return [render_pair(int(s), cfg) for s in seeds]


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of (..., 3) RGB (the weights OpenCV's BGR2GRAY uses)."""
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.float32)


__all__ = ["EndoConfig", "EndoSample", "cine", "luma", "render_pair", "render_pairs"]
