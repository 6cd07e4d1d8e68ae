"""Viewer labels go inside the imaging region, so the scanner's pixels outside it stay untouched."""

from __future__ import annotations

import cv2
import numpy as np

from ganrt.runtime.frames import FrameResult, Outcome, Reason
from ganrt.runtime.sinks.overlay import inside, label


def _sector(h: int = 240, w: int = 320) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, 20), (200, 200), 0, 45, 135, 255, -1)  # a fan opening downwards
    return m


def test_box_found_inside_a_fan_and_none_when_it_cannot_fit():
    m = _sector()
    x, y = inside(m, 60, 14)
    assert (m[y:y + 14, x:x + 60] > 0).all()
    assert inside(m, 400, 10) is None
    assert inside(np.zeros((50, 50), np.uint8), 5, 5) is None


def test_labels_leave_pixels_outside_the_region_untouched():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    m = _sector()
    for res in (FrameResult(0, Outcome.ENHANCED, label_mask=m),
                FrameResult(1, Outcome.PASSTHROUGH, Reason.FIDELITY, label_mask=m)):
        out = label(img, res)
        changed = np.any(out != img, axis=2)
        assert changed.any(), "a label was drawn"
        assert not changed[m == 0].any(), "nothing outside the region changed"


def test_without_a_region_the_label_goes_to_a_corner():
    img = np.zeros((240, 320), np.uint8)
    out = label(img, FrameResult(0, Outcome.ENHANCED))
    changed = np.any(out != cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), axis=2)
    r, c = np.nonzero(changed)
    assert r.max() < 40 and c.min() > 200  # top-right corner
