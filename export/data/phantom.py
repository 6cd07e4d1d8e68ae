"""Analytic ultrasound phantoms: echogenicity as a function of tissue position (numpy only).

Structures live in Cartesian *tissue* coordinates (mm): x lateral (0 on the probe axis),
y depth below the probe face (the sector apex). The simulator evaluates them at scatterer
positions (so scatterers carry their echogenicity when the tissue moves) and at output pixels
(lesion / background / homogeneous masks). `Phantom.echogenicity` / `labels` are the same
maps sampled on the simulator's polar (depth x scan-line angle) grid.

Echogenicity is backscattered *intensity* relative to normal tissue: 1.0 = normal tissue,
~0 = anechoic (cyst, blood), > 1 = hyperechoic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np


class Structure(Enum):
    LAYER = 1
    CYST = 2
    HYPO_LESION = 3
    HYPER_LESION = 4
    VESSEL = 5
    POINT_TARGET = 6
    CALCIFICATION = 7  # a strong reflector (stone, calcification, bone edge) casting a shadow


LESION_KINDS = frozenset({Structure.CYST, Structure.HYPO_LESION, Structure.HYPER_LESION})
ANECHOIC = 1e-4  # intensity of "no scatterers" (-40 dB): keeps log() finite, below any display range

# Inner / outer normalised radii used for gCNR masks: lesion = inside LESION_INSET of the
# boundary, background = ring [RING_IN, RING_OUT] x the lesion size, normal tissue only.
LESION_INSET = 0.85
RING_IN, RING_OUT = 1.25, 1.6


@dataclass(frozen=True)
class Interface:
    """A tissue interface y = base + tilt*x + amp*sin(2*pi*x/period + phase); the band below it
    (down to the next interface) has echogenicity `below`; a thin bright line sits on it."""

    base: float
    tilt: float
    amp: float
    period: float
    phase: float
    below: float
    line_echo: float
    line_mm: float
    striated: bool = False

    def depth(self, x: np.ndarray) -> np.ndarray:
        return self.base + self.tilt * x + self.amp * np.sin(2.0 * math.pi * x / self.period + self.phase)


@dataclass(frozen=True)
class Ellipse:
    kind: Structure
    cx: float
    cy: float
    a: float  # semi-axis along the rotated x
    b: float
    angle: float  # radians
    echo: float
    edge: float = 0.05  # soft-edge width in normalised radius
    wall_echo: float = 0.0  # > 0: bright wall (vessel cross-section)
    wall_mm: float = 0.0

    def rho(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised elliptical radius (1 on the boundary)."""
        dx, dy = x - self.cx, y - self.cy
        c, s = math.cos(self.angle), math.sin(self.angle)
        u = (c * dx + s * dy) / self.a
        v = (-s * dx + c * dy) / self.b
        return np.sqrt(u * u + v * v)

    @property
    def size(self) -> float:
        return max(self.a, self.b)


@dataclass(frozen=True)
class Tube:
    """A vessel seen lengthwise: centreline y = y0 + slope*x + amp*sin(2*pi*x/period + phase)."""

    y0: float
    slope: float
    amp: float
    period: float
    phase: float
    half_width: float
    echo: float
    wall_echo: float
    wall_mm: float
    kind: Structure = Structure.VESSEL

    def dist(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        yc = self.y0 + self.slope * x + self.amp * np.sin(2.0 * math.pi * x / self.period + self.phase)
        # vertical distance scaled by the local slope -> perpendicular distance
        dyc = self.slope + self.amp * 2.0 * math.pi / self.period * np.cos(2.0 * math.pi * x / self.period + self.phase)
        return np.abs(y - yc) / np.sqrt(1.0 + dyc * dyc)


@dataclass(frozen=True)
class Shadow:
    """An acoustic shadow: the beams through angles |th - th_c| < half_width lose ``atten_db``
    of echo intensity beyond depth ``r_start`` (behind a strong reflector). It follows the beam
    lines (angle from the apex), softened over ``edge`` rad at its sides and 1 mm at its start."""

    th_c: float
    half_width: float
    r_start: float
    atten_db: float
    edge: float

    def factor(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r, th = np.sqrt(x * x + y * y), np.arctan2(x, y)
        side = np.clip((self.half_width + self.edge - np.abs(th - self.th_c)) / (2.0 * self.edge), 0.0, 1.0)
        deep = np.clip(r - self.r_start, 0.0, 1.0)
        return (10.0 ** (-self.atten_db * side * deep / 10.0)).astype(np.float32)


@dataclass(frozen=True)
class Phantom:
    echogenicity: np.ndarray  # float32 (n_r, n_theta) polar-grid map, 1.0 = normal tissue
    labels: np.ndarray  # int8 (n_r, n_theta): 0 normal tissue, else Structure.value
    lesion_mask: np.ndarray  # bool polar: inside a cyst / hypo / hyper lesion (inset)
    background_mask: np.ndarray  # bool polar: normal-tissue ring around the lesions
    homogeneous_mask: np.ndarray  # bool polar: homogeneous normal tissue (speckle SNR)
    depth_mm: float
    sector_deg: float
    interfaces: tuple[Interface, ...] = ()
    ellipses: tuple[Ellipse, ...] = ()
    tubes: tuple[Tube, ...] = ()
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # (K, 2) x, y mm
    point_db: float = 24.0  # point-target peak over normal-tissue rms (cart probe)
    homogeneous: tuple[float, float, float] = (0.0, 50.0, 5.0)  # disk cx, cy, radius (mm)
    kinds: frozenset[Structure] = frozenset()
    shadows: tuple[Shadow, ...] = ()

    # ---- analytic evaluation in tissue coordinates -------------------------------------
    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Echogenicity (float32) and label (int8) at tissue points (mm)."""
        return _evaluate(self, np.asarray(x, np.float32), np.asarray(y, np.float32))

    def masks(
        self, x: np.ndarray, y: np.ndarray, labels: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lesion, background, homogeneous) boolean masks at tissue points (mm); pass the
        labels from `evaluate` at the same points to skip re-evaluating them."""
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.float32)
        lab = _evaluate(self, x, y)[1] if labels is None else labels
        lesion = np.zeros(x.shape, bool)
        near = np.zeros(x.shape, bool)
        ring = np.zeros(x.shape, bool)
        for e in self.ellipses:
            if e.kind not in LESION_KINDS:
                continue
            rho = e.rho(x, y)
            lesion |= rho < LESION_INSET
            near |= rho < RING_IN
            ring |= (rho >= RING_IN) & (rho <= RING_OUT)
        background = ring & ~near & (lab == 0)
        cx, cy, rad = self.homogeneous
        homog = ((x - cx) ** 2 + (y - cy) ** 2 < rad * rad) & (lab == 0)
        for sh in self.shadows:  # contrast and speckle are measured outside acoustic shadows
            lit = sh.factor(x, y) > 0.9
            lesion, background, homog = lesion & lit, background & lit, homog & lit
        return lesion, background, homog


def polar_grid(shape: tuple[int, int], depth_mm: float, sector_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre radius (mm, column) and angle (rad, row) of the polar grid, broadcastable."""
    n_r, n_t = shape
    half = math.radians(sector_deg) / 2.0
    r = ((np.arange(n_r, dtype=np.float32) + 0.5) * (depth_mm / n_r))[:, None]
    t = (-half + (np.arange(n_t, dtype=np.float32) + 0.5) * (2.0 * half / n_t))[None, :]
    return r, t


def _evaluate(ph: Phantom, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    echo = np.ones(x.shape, np.float32)
    lab = np.zeros(x.shape, np.int8)
    if ph.interfaces:
        depths = [itf.depth(x) for itf in ph.interfaces]
        for k, itf in enumerate(ph.interfaces):
            d = depths[k]
            below = y >= d
            if k + 1 < len(ph.interfaces):
                band = below & (y < depths[k + 1])
            else:
                band = below
            if itf.striated:  # muscle: fine bright striations parallel to the fascia
                ph_ = np.sin((y - d) * (2.0 * math.pi / 1.6)) ** 8
                val = itf.below * (0.7 + 1.6 * ph_)
                echo = np.where(band, val, echo)
            else:
                echo = np.where(band, np.float32(itf.below), echo)
            if itf.below != 1.0 or itf.striated:
                lab = np.where(band, np.int8(Structure.LAYER.value), lab)
            line = np.abs(y - d) < itf.line_mm * 0.5
            echo = np.where(line, np.float32(itf.line_echo), echo)
            lab = np.where(line, np.int8(Structure.LAYER.value), lab)
        # skin: everything above the first interface
        above = y < depths[0]
        echo = np.where(above, np.float32(0.5), echo)
        lab = np.where(above, np.int8(Structure.LAYER.value), lab)
    for t in ph.tubes:
        dist = t.dist(x, y)
        inside = dist < t.half_width
        wall = (dist >= t.half_width) & (dist < t.half_width + t.wall_mm)
        echo = np.where(wall, np.float32(t.wall_echo), echo)
        echo = np.where(inside, np.float32(t.echo), echo)
        lab = np.where(inside | wall, np.int8(t.kind.value), lab)
    for e in ph.ellipses:
        rho = e.rho(x, y)
        if e.wall_echo > 0:
            wall = (rho >= 1.0) & (rho < 1.0 + e.wall_mm / e.size)
            echo = np.where(wall, np.float32(e.wall_echo), echo)
            lab = np.where(wall, np.int8(e.kind.value), lab)
        # soft edge: blend in log-intensity over [1 - edge, 1 + edge]
        w = np.clip((1.0 + e.edge - rho) / (2.0 * e.edge), 0.0, 1.0)
        m = w > 0
        if np.any(m):
            le = np.log(np.maximum(echo[m], ANECHOIC))
            echo[m] = np.exp(le * (1.0 - w[m]) + math.log(max(e.echo, ANECHOIC)) * w[m])
        lab = np.where(rho < 1.0, np.int8(e.kind.value), lab)
    for sh in ph.shadows:
        echo = echo * sh.factor(x, y)
    return echo.astype(np.float32, copy=False), lab


# ---- random scene construction -----------------------------------------------------------
def _pick_kinds(rng: np.random.Generator, kinds: frozenset[Structure] | None) -> tuple[frozenset[Structure], list[Structure]]:
    """Which structure kinds appear, and the kinds of the (1-3) lesions to place."""
    if kinds is None:
        chosen = {Structure.LAYER}
        n_les = int(rng.integers(1, 4))
        lesions = [list(LESION_KINDS_ORDER)[int(rng.integers(3))] for _ in range(n_les)]
        chosen.update(lesions)
        if rng.random() < 0.6:
            chosen.add(Structure.VESSEL)
        if rng.random() < 0.5:
            chosen.add(Structure.POINT_TARGET)
        return frozenset(chosen), lesions
    kinds = frozenset(kinds)
    les_kinds = [k for k in LESION_KINDS_ORDER if k in kinds]
    lesions = list(les_kinds)
    if les_kinds:
        extra = int(rng.integers(0, 4 - len(les_kinds))) if len(les_kinds) < 3 else 0
        lesions += [les_kinds[int(rng.integers(len(les_kinds)))] for _ in range(extra)]
    return kinds, lesions


LESION_KINDS_ORDER = (Structure.CYST, Structure.HYPO_LESION, Structure.HYPER_LESION)


def _in_sector(cx: float, cy: float, rad: float, depth: float, half: float, r_min: float) -> bool:
    r = math.hypot(cx, cy)
    if r - rad < r_min or r + rad > depth - 1.0:
        return False
    th = math.atan2(cx, cy)
    return abs(th) + math.asin(min(1.0, (rad + 1.0) / r)) < half


def _sample_center(rng, depth, half, r_lo, r_hi, rad):
    r = float(rng.uniform(r_lo, r_hi))
    lim = half - math.asin(min(1.0, (rad + 1.0) / max(r, 1e-3)))
    th = float(rng.uniform(-max(lim, 0.0), max(lim, 0.0)))
    return r * math.sin(th), r * math.cos(th)


@dataclass(frozen=True)
class _Room:
    """The sector a scene is placed in: depth D (mm), half-angle (rad), size scale s, and the
    deepest layer boundary (lesions, vessels and targets go below it)."""

    D: float
    half: float
    s: float
    bottom: float


def _layers(rng: np.random.Generator, s: float, D: float, half: float) -> tuple[list[Interface], float]:
    """Skin, fat and muscle interfaces, and the depth below which the layers leave room."""

    def itf(base, below, line_echo, line_mm, striated=False):
        return Interface(
            base=base, tilt=float(rng.uniform(-0.08, 0.08)), amp=float(rng.uniform(0.2, 1.5)) * s,
            period=float(rng.uniform(40, 120)) * s, phase=float(rng.uniform(0, 2 * math.pi)),
            below=below, line_echo=line_echo, line_mm=line_mm, striated=striated,
        )
    skin = float(rng.uniform(1.2, 2.2)) * s
    fat = skin + float(rng.uniform(4, 10)) * s
    muscle = fat + float(rng.uniform(6, 14)) * s
    interfaces = [
        itf(skin, float(rng.uniform(0.1, 0.3)), float(rng.uniform(4, 8)), 0.7 * s),  # skin line, fat below
        itf(fat, float(rng.uniform(0.25, 0.5)), float(rng.uniform(5, 10)), 0.9 * s, striated=True),  # fascia, muscle
        itf(muscle, 1.0, float(rng.uniform(3, 6)), 0.9 * s),  # deep fascia, normal tissue below
    ]
    bottom = muscle + 1.6 * s + 0.08 * D * math.tan(half)  # interface amplitude + tilt margin
    return interfaces, bottom


def _homogeneous_disk(rng: np.random.Generator, room: _Room) -> tuple[float, float, float]:
    """Centre and radius of the structure-free disk; placed first so everything else keeps clear of it."""
    D, half, s, bottom = room.D, room.half, room.s, room.bottom
    h_rad = 7.0 * s
    for _ in range(200):
        hx, hy = _sample_center(rng, D, half, max(0.5 * D, bottom + h_rad + 2 * s), 0.8 * D, h_rad)
        if _in_sector(hx, hy, h_rad, D, half, bottom + 2 * s):
            break
    else:  # pragma: no cover - the ranges above always admit a disk for sane geometry
        hx, hy = 0.0, 0.65 * D
    return hx, hy, h_rad


def _lesion_echo(rng: np.random.Generator, kind: Structure) -> tuple[float, float]:
    """Echogenicity and soft-edge width of a lesion of this kind."""
    if kind is Structure.CYST:
        return ANECHOIC, 0.03
    if kind is Structure.HYPO_LESION:
        return float(10 ** (rng.uniform(-9, -5) / 10)), float(rng.uniform(0.05, 0.2))
    return float(10 ** (rng.uniform(5, 9) / 10)), float(rng.uniform(0.05, 0.2))


def _place_lesions(rng: np.random.Generator, room: _Room, lesion_kinds: list[Structure],
                   placed: list[tuple[float, float, float]]) -> list[Ellipse]:
    """One ellipse per kind where a clear spot (ring included) is found; a kind with no room is dropped.
    Appends each to ``placed`` so later structures keep clear of its background ring."""
    D, half, s, bottom = room.D, room.half, room.s, room.bottom
    ellipses: list[Ellipse] = []
    for kind in lesion_kinds:
        for _ in range(200):
            a = float(rng.uniform(4.0, 8.5)) * s
            b = a * float(rng.uniform(0.75, 1.25))
            size = max(a, b)
            cx, cy = _sample_center(rng, D, half, bottom + size * RING_OUT + 1 * s, D - size - 2 * s, size * RING_OUT)
            if not _in_sector(cx, cy, size * RING_OUT, D, half, bottom):
                continue
            if any(math.hypot(cx - px, cy - py) < pr + size * RING_OUT for px, py, pr in placed):
                continue
            break
        else:
            continue  # no room: fewer lesions
        echo, edge = _lesion_echo(rng, kind)
        ellipses.append(Ellipse(kind, cx, cy, a, b, float(rng.uniform(0, math.pi)), echo, edge))
        placed.append((cx, cy, size * RING_OUT))
    return ellipses


def _vessel_across(rng: np.random.Generator, room: _Room, placed: list[tuple[float, float, float]]) -> Ellipse | None:
    """A vessel in cross-section: a round anechoic lumen with a bright wall, clear of ``placed``."""
    D, half, s, bottom = room.D, room.half, room.s, room.bottom
    for _ in range(200):
        rad = float(rng.uniform(2.0, 4.0)) * s
        cx, cy = _sample_center(rng, D, half, bottom + rad + 2 * s, D - rad - 3 * s, rad + 1)
        if _in_sector(cx, cy, rad + 1, D, half, bottom) and not any(
            math.hypot(cx - px, cy - py) < pr + rad + 1.5 * s for px, py, pr in placed
        ):
            placed.append((cx, cy, rad + 1.5 * s))
            return Ellipse(Structure.VESSEL, cx, cy, rad, rad * float(rng.uniform(0.8, 1.0)),
                           float(rng.uniform(0, math.pi)), 0.003, 0.03,
                           wall_echo=float(rng.uniform(2, 5)), wall_mm=0.7 * s)
    return None


def _vessel_along(rng: np.random.Generator, room: _Room, placed: list[tuple[float, float, float]]) -> Tube | None:
    """A vessel seen lengthwise: a band across the image that avoids everything in ``placed``."""
    D, s, bottom = room.D, room.s, room.bottom
    for _ in range(200):
        hw = float(rng.uniform(1.5, 3.0)) * s
        y0 = float(rng.uniform(bottom + hw + 2 * s, 0.9 * D))
        t = Tube(y0, float(rng.uniform(-0.25, 0.25)), float(rng.uniform(0.5, 3.0)) * s,
                 float(rng.uniform(40, 100)) * s, float(rng.uniform(0, 2 * math.pi)), hw, 0.003,
                 float(rng.uniform(2, 5)), 0.7 * s)
        clear = all(
            float(t.dist(np.float32(px), np.float32(py))) > pr + hw + 1.0 * s
            for px, py, pr in placed
        )
        if clear:
            return t
    return None


def _point_targets(rng: np.random.Generator, room: _Room, homogeneous: tuple[float, float, float]) -> np.ndarray:
    """(K, 2) wire targets: a short column (like a QA phantom) plus a few loose ones, never inside
    the sector's edge margin or the homogeneous disk."""
    D, half, s, bottom = room.D, room.half, room.s, room.bottom
    pts = []
    x0 = float(rng.uniform(-0.3, 0.3)) * D * math.sin(half)
    for k in range(int(rng.integers(3, 6))):
        pts.append((x0, bottom + (k + 1) * 8.0 * s))
    for _ in range(int(rng.integers(0, 4))):
        pts.append(_sample_center(rng, D, half, bottom + 2 * s, D - 3 * s, 2 * s))
    hx, hy, hr = homogeneous
    keep = []
    for px, py in pts:
        if not _in_sector(px, py, 1.0 * s, D, half, bottom):
            continue
        if math.hypot(px - hx, py - hy) < hr + 1.5 * s:
            continue  # never inside the homogeneous disk
        keep.append((px, py))
    return np.asarray(keep, np.float32).reshape(-1, 2)


def _with_maps(ph: Phantom, shape: tuple[int, int]) -> Phantom:
    """``ph`` with its echogenicity, labels and masks sampled on the polar grid of ``shape``."""
    r, t = polar_grid(shape, ph.depth_mm, ph.sector_deg)
    x = r * np.sin(t)
    y = r * np.cos(t)
    echo, lab = ph.evaluate(x, y)
    lesion, background, homog = ph.masks(x, y, lab)
    object.__setattr__(ph, "echogenicity", echo)
    object.__setattr__(ph, "labels", lab)
    object.__setattr__(ph, "lesion_mask", lesion)
    object.__setattr__(ph, "background_mask", background)
    object.__setattr__(ph, "homogeneous_mask", homog)
    return ph


def make_phantom(
    rng: np.random.Generator,
    shape: tuple[int, int],
    kinds: frozenset[Structure] | None = None,
    *,
    depth_mm: float = 80.0,
    sector_deg: float = 75.0,
) -> Phantom:
    """A random scene: near-field tissue layers, 1-3 lesions, maybe a vessel and point targets,
    and a structure-free homogeneous disk of normal tissue (for speckle statistics).

    `shape` is the polar grid (n_depth, n_lines) the maps are sampled on; `kinds` restricts
    the structure kinds (None: a random mix that always has layers and at least one lesion).
    The steps below draw from ``rng`` in a fixed order: a seed always gives the same scene.
    """
    D = float(depth_mm)
    half = math.radians(sector_deg) / 2.0
    s = D / 80.0  # sizes scale with the imaged depth
    chosen, lesion_kinds = _pick_kinds(rng, kinds)
    interfaces, bottom = _layers(rng, s, D, half) if Structure.LAYER in chosen else ([], 2.0 * s)
    room = _Room(D, half, s, bottom)

    hx, hy, h_rad = _homogeneous_disk(rng, room)
    placed = [(hx, hy, h_rad + 2.5 * s)]
    ellipses = _place_lesions(rng, room, lesion_kinds, placed)
    tubes: list[Tube] = []
    if Structure.VESSEL in chosen:
        vessel = _vessel_across(rng, room, placed) if rng.random() < 0.5 else _vessel_along(rng, room, placed)
        if isinstance(vessel, Ellipse):
            ellipses.append(vessel)
        elif vessel is not None:
            tubes.append(vessel)
    points = np.zeros((0, 2), np.float32)
    if Structure.POINT_TARGET in chosen:
        points = _point_targets(rng, room, placed[0])

    ph = Phantom(
        echogenicity=np.zeros((0, 0), np.float32), labels=np.zeros((0, 0), np.int8),
        lesion_mask=np.zeros((0, 0), bool), background_mask=np.zeros((0, 0), bool),
        homogeneous_mask=np.zeros((0, 0), bool), depth_mm=D, sector_deg=float(sector_deg),
        interfaces=tuple(interfaces), ellipses=tuple(ellipses), tubes=tuple(tubes), points=points,
        point_db=float(rng.uniform(18, 28)), homogeneous=(hx, hy, h_rad), kinds=chosen,
    )
    return _with_maps(ph, shape)


def add_chamber(rng: np.random.Generator, ph: Phantom, shape: tuple[int, int]) -> Phantom:
    """``ph`` with a large anechoic chamber (a heart chamber, bladder, gallbladder): faint blood
    speckle (-30 to -15 dB) inside a bright wall, drawn over what it covers. Real scans are full of
    them; a model that never saw one fills them with tissue or digs holes at their edges."""
    D, half = ph.depth_mm, math.radians(ph.sector_deg) / 2.0
    s = D / 80.0
    a = float(rng.uniform(10.0, 24.0)) * s
    b = a * float(rng.uniform(0.5, 1.0))
    cy = float(rng.uniform(0.35, 0.7)) * D
    cx = float(rng.uniform(-0.6, 0.6)) * cy * math.tan(half)
    chamber = Ellipse(Structure.VESSEL, cx, cy, a, b, float(rng.uniform(0, math.pi)),
                      float(10 ** (rng.uniform(-4.0, -1.5))), 0.03, wall_echo=float(rng.uniform(1.5, 5.0)),
                      wall_mm=float(rng.uniform(0.6, 1.5)) * s)
    out = replace(ph, ellipses=ph.ellipses + (chamber,))
    r, t = polar_grid(shape, D, ph.sector_deg)
    x, y = r * np.sin(t), r * np.cos(t)
    echo, lab = out.evaluate(x, y)
    lesion, background, homog = out.masks(x, y, lab)
    for name, val in (("echogenicity", echo), ("labels", lab), ("lesion_mask", lesion),
                      ("background_mask", background), ("homogeneous_mask", homog)):
        object.__setattr__(out, name, val)
    return out
