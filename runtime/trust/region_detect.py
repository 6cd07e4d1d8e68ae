"""Finding the imaging region in pixels: from motion over frames, from one still frame (intensity
and shape), and inside the rectangles a DICOM file's ultrasound regions give.

Detection runs on a copy reduced to at most ``WORK_SIDE`` px (shapes, not pixels, matter); masks
are drawn back at full size. See region.py for how a region is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

MIN_AREA_FRACTION = 0.02  # a "region" smaller than this is a detection failure, not a sector
MOTION_MIN_STD = 3.0  # grey levels: above lossy-video noise around static text
MOTION_REL_STD = 0.1  # ... and above this fraction of the typical moving pixel's std
MOTION_CLEAN_STD = 0.5  # ... or above this where most still pixels are bit-identical (std exactly 0)
STILL_MIN_LEVEL = 12.0  # grey levels above black counted as image in a single frame
CLEAN_BLACK_FRACTION = 0.2  # ... or above black itself, when this much of the frame is exactly black
BANNER_WIDTH, BANNER_HEIGHT = 0.9, 0.3  # a band this wide and at most this high at the top or bottom
THIN_FRACTION = 0.1  # ... or an area narrower than this fraction of the frame (a text line, a bar)
DENSE_FRACTION = 0.7  # ... counting only where this much of the neighbourhood is above it (not text)
BUMP_DIVISOR = 20  # the opening that cuts text bumps off an area: 1/20 of the frame's shorter side
REACH_DIVISOR = 20  # ... and the edges it blunted grow back this far, through pixels above the level
SHAPE_PENALTY = 0.05  # ... scores this much less than an image area would
STATIC_MAX_STD = 1.5  # a mark inside the sector whose pixels change less than this is burned in,
STATIC_REL_STD = 0.2  # ... or less than this fraction of the sector's median change (lossy video
#                       makes static marks over moving speckle flicker by a few levels)
MARK_MIN_LEVEL = 160.0  # ... and bright (calipers, labels are drawn near white)
MARK_MIN_CHROMA = 48.0  # ... or coloured (max - min of B, G, R)

WORK_SIDE = 256  # detection runs at most this large (shapes, not pixels, matter); the hull is drawn at full size


def _odd(n: float, lo: int = 3) -> int:
    n = max(lo, int(round(n)))
    return n if n % 2 else n + 1


def _ellipse(k: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def luma_u8(pixels: np.ndarray, bits: int = 16) -> np.ndarray:
    """8-bit grey view of a frame (uint16 scaled by its bit depth; colour -> BGR2GRAY)."""
    p = pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
    if p.dtype == np.uint16:
        p = cv2.convertScaleAbs(p, alpha=255.0 / ((1 << bits) - 1))
    elif p.dtype != np.uint8:
        p = np.clip(p, 0, 255).astype(np.uint8)
    if p.ndim == 3:
        p = cv2.cvtColor(p, cv2.COLOR_BGRA2GRAY if p.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    return p


def _shrink(img: np.ndarray) -> tuple[np.ndarray, int]:
    """``img`` area-reduced by an integer factor so its longer side is <= WORK_SIDE."""
    f = max(1, -(-max(img.shape[:2]) // WORK_SIDE))
    if f == 1:
        return img, 1
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA), f


def _draw_hull(comp: np.ndarray, f: int, hw: tuple[int, int]) -> np.ndarray:
    """Filled convex hull of ``comp`` (a working image reduced ``f`` times) at full size ``hw``."""
    contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.vstack(contours)).astype(np.float32)
    # working pixel i covers full pixels [i*f, (i+1)*f): map the hull's corners outward by half a cell
    centre = hull.reshape(-1, 2).mean(axis=0)
    pts = hull * f + (f - 1) / 2.0 + np.sign(hull - centre) * (f / 2.0 if f > 1 else 0.0)
    out = np.zeros(hw, np.uint8)
    cv2.fillConvexPoly(out, np.round(pts).astype(np.int32), 255)
    return out


def _hull_of_largest(binary: np.ndarray, f: int, hw: tuple[int, int]) -> np.ndarray | None:
    """Filled convex hull (at full size ``hw``, uint8 0/255) of the largest 8-connected component of
    ``binary`` (a working image reduced ``f`` times), or None when there is no plausible one."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[k, cv2.CC_STAT_AREA] < MIN_AREA_FRACTION * binary.size:
        return None
    return _draw_hull(np.where(labels == k, np.uint8(255), np.uint8(0)), f, hw)


def shape_score(comp: np.ndarray, stat: np.ndarray, hw: tuple[int, int]) -> float:
    """How much a component (uint8 0/255, working size ``hw``) looks like an ultrasound image area:
    large and solid (a fan or a rectangle of tissue), not a thin band across the whole width at the
    top or bottom (a header or toolbar), not a line of text (low solidity, thin)."""
    H, W = hw
    x, y, w, h, area = (int(v) for v in stat[:5])
    contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull_area = max(1.0, cv2.contourArea(cv2.convexHull(np.vstack(contours))))
    score = (area / float(H * W)) * min(1.0, area / hull_area)
    banner = w >= BANNER_WIDTH * W and h <= BANNER_HEIGHT * H and (y <= 1 or y + h >= H - 1)
    thin = min(w / float(W), h / float(H)) < THIN_FRACTION
    return score * (SHAPE_PENALTY if banner else 1.0) * (SHAPE_PENALTY if thin else 1.0)


def _still_levels(small: np.ndarray) -> list[float]:
    """Grey levels that separate image from background in one frame: the usual one a little above
    black (lossy video, where black is noisy), and black itself when the background is a clean
    digital black (a still whose deep, anechoic fan is one level above the black around it)."""
    sample = small[::2, ::2]
    usual = max(STILL_MIN_LEVEL, 0.08 * float(np.percentile(sample, 99)))
    black = float(np.percentile(sample, 5))
    clean = np.count_nonzero(sample == black) >= CLEAN_BLACK_FRACTION * sample.size
    return sorted({black, usual}) if clean and black < usual else [usual]


def _candidates(small: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(everything above ``level``, its dense part with speckle holes closed, without text) of a
    working image: image areas are dense above the level, text is sparse strokes on black."""
    s = min(small.shape)
    above = cv2.compare(small, level, cv2.CMP_GT)
    dense = cv2.compare(cv2.blur(above, (_odd(s / 24),) * 2), DENSE_FRACTION * 255, cv2.CMP_GE)
    dense = cv2.morphologyEx(dense, cv2.MORPH_CLOSE, _ellipse(_odd(s / 48)))  # dark speckle holes
    return above, cv2.morphologyEx(dense, cv2.MORPH_OPEN, _ellipse(_odd(s / 40, 5)))


def detect_still(gray: np.ndarray) -> np.ndarray | None:
    """Imaging region of one 8-bit grey frame: among the dense areas above a background level, the
    component that best fits the shape of an image area (``shape_score``), as its hull."""
    small, f = _shrink(cv2.medianBlur(gray, 5))  # the median erases 1-2 px text strokes and caliper lines
    s = min(small.shape)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for level in _still_levels(small):
        above, dense = _candidates(small, level)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(dense, connectivity=8)
        for k in range(1, n):
            if stats[k, cv2.CC_STAT_AREA] < MIN_AREA_FRACTION * dense.size:
                continue
            comp = np.where(labels == k, np.uint8(255), np.uint8(0))
            score = shape_score(comp, stats[k], small.shape)
            if best is None or score > best[0]:
                best = (score, comp, above)
    if best is None:
        return None
    _, comp, above = best
    # text lines a few pixels from a rectangle of tissue can still touch it: an opening with a larger
    # disc cuts such bumps off; the edges the density test and that opening blunted (a fan's apex and
    # corners) grow back through what is above the level, which a black gap to a text line stops
    core = cv2.morphologyEx(comp, cv2.MORPH_OPEN, _ellipse(_odd(s / BUMP_DIVISOR)))
    if not cv2.countNonZero(core):
        core = comp
    body, step = core, _ellipse(3)
    for _ in range(max(1, round(s / REACH_DIVISOR))):  # grown through what is above the level only:
        body = cv2.bitwise_and(cv2.dilate(body, step), above)  # a gap to a text line stops it
    # one pixel more all round: the median ate the outermost pixel of the image's edges
    return cv2.dilate(_draw_hull(cv2.bitwise_or(body, core), f, gray.shape), step)


def detect_motion(std: np.ndarray) -> np.ndarray | None:
    """Imaging region from the temporal std (grey levels) of each pixel."""
    small, f = _shrink(std)
    moving = small[small > MOTION_MIN_STD]
    if moving.size < MIN_AREA_FRACTION * small.size:
        return None
    level = max(MOTION_MIN_STD, MOTION_REL_STD * float(np.percentile(moving, 75)))
    fg = np.where(small > level, np.uint8(255), np.uint8(0))
    s = min(small.shape)
    if np.count_nonzero(small == 0) >= CLEAN_BLACK_FRACTION * small.size:
        # a lossless or intra-coded cine: what does not move is bit-identical from frame to frame, so
        # any change is the image, down to the dark, barely moving walls of a sector (std ~1 level).
        # Static text in a compression block shared with moving pixels flickers too, but sparsely:
        # only dense change counts
        low = cv2.compare(small, MOTION_CLEAN_STD, cv2.CMP_GT)
        low = cv2.compare(cv2.blur(low, (_odd(s / 24),) * 2), DENSE_FRACTION * 255, cv2.CMP_GE)
        fg = cv2.bitwise_or(fg, low)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, _ellipse(_odd(s / 64)))  # isolated noisy pixels
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, _ellipse(_odd(s / 32)))
    return _hull_of_largest(fg, f, std.shape)


def static_marks(mean: np.ndarray, std: np.ndarray, last: np.ndarray, hull: np.ndarray) -> np.ndarray:
    """Burned-in marks inside ``hull``: pixels that (almost) never change and are bright or coloured
    (uint8 0/255, dilated one pixel for anti-aliased edges). Full resolution: caliper lines are one
    pixel wide."""
    typical = float(np.median(std[::4, ::4][hull[::4, ::4] > 0])) if cv2.countNonZero(hull) else 0.0
    still = cv2.compare(std, max(STATIC_MAX_STD, STATIC_REL_STD * typical), cv2.CMP_LE)
    vivid = cv2.compare(mean, MARK_MIN_LEVEL, cv2.CMP_GE)
    if last.ndim == 3 and last.shape[2] >= 3 and last.dtype == np.uint8:
        b, g, r = cv2.split(last)[:3]
        chroma = cv2.subtract(cv2.max(cv2.max(b, g), r), cv2.min(cv2.min(b, g), r))
        vivid = cv2.bitwise_or(vivid, cv2.compare(chroma, MARK_MIN_CHROMA, cv2.CMP_GE))
    return cv2.bitwise_and(cv2.dilate(cv2.bitwise_and(still, vivid), _ellipse(3)), hull)




def detect_in_boxes(boxes: Sequence[tuple[int, int, int, int]], gray: np.ndarray,
                    std: np.ndarray | None = None) -> np.ndarray | None:
    """The imaging region inside rectangles (x, y, w, h) a file says hold its image areas (the
    bounding boxes of a fan, say): in each, the region detected there (from motion when ``std`` is
    given, else from the frame), so the black corners of a fan and any banner or text inside the
    rectangle stay out; when nothing is detected in a rectangle, its pixels above black."""
    out = np.zeros(gray.shape[:2], np.uint8)
    for x, y, w, h in boxes:
        sl = (slice(y, y + h), slice(x, x + w))
        found = detect_motion(std[sl]) if std is not None else None
        if found is None:
            found = detect_still(gray[sl])
        if found is None:
            found = cv2.compare(cv2.medianBlur(np.ascontiguousarray(gray[sl]), 5), STILL_MIN_LEVEL, cv2.CMP_GT)
        out[sl] = cv2.bitwise_or(out[sl], found)
    return out if cv2.countNonZero(out) else None
