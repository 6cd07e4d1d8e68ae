"""overlay_mask: the scanner's drawing (colour, calipers, dotted lines, text) found on each frame,
and ordinary speckle left alone."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from ganrt.runtime.trust.graphics import overlay_mask


@functools.lru_cache(maxsize=1)
def _tissue() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Simulated B-mode frames (512x512, several phantoms) and their sectors."""
    from ganrt.export.data.simulator import SimConfig, render_pair

    out = []
    for seed in range(4):
        s = render_pair(seed, SimConfig(out_hw=(512, 512)))
        out.append((np.clip(s.input * 255.0 + 0.5, 0, 255).astype(np.uint8), s.sector))
    return tuple(out)


def _marked(mask: np.ndarray | None, where: np.ndarray) -> float:
    return 0.0 if mask is None else float(np.count_nonzero(mask[where] > 0)) / max(1, int(np.count_nonzero(where)))


@pytest.mark.parametrize("colour", [False, True])
def test_speckle_and_tissue_are_not_marked(colour):
    for img, sector in _tissue():
        frame = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if colour else img
        assert _marked(overlay_mask(frame), sector) < 0.005


def test_a_blank_frame_has_nothing_to_protect():
    assert overlay_mask(np.full((64, 64), 90, np.uint8)) is None
    assert overlay_mask(np.full((64, 64, 3), 90, np.uint8)) is None


@pytest.mark.parametrize("colour", [False, True])
def test_calipers_dotted_line_and_text_drawn_on_tissue_are_marked(colour):
    img, sector = _tissue()[0]
    frame = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if colour else img.copy()
    ink = np.zeros(img.shape, np.uint8)  # where the drawing went
    white = (255, 255, 255) if colour else 255
    for layer in (frame, ink):
        paint = white if layer is frame else 255
        for c in ((200, 300), (320, 340)):
            cv2.drawMarker(layer, c, paint, cv2.MARKER_CROSS, 11, 1)
        for t in np.linspace(0, 1, 12):  # a dotted measurement line between them
            x, y = int(210 + 100 * t), int(303 + 35 * t)
            cv2.rectangle(layer, (x, y), (x + 1, y + 1), paint, -1)
        cv2.putText(layer, "D1 1.24cm", (180, 260), cv2.FONT_HERSHEY_SIMPLEX, 0.5, paint, 1, cv2.LINE_AA)
    mask = overlay_mask(frame)
    strokes = (ink >= 200) & sector  # the solid part of each stroke
    assert _marked(mask, strokes) > 0.97
    assert _marked(mask, (ink > 0) & sector) > 0.9  # anti-aliased edges too (dilated)
    far = cv2.dilate(ink, np.ones((9, 9), np.uint8)) == 0
    assert _marked(mask, far & sector) < 0.005  # and little else


def test_colour_flow_blobs_and_coloured_labels_are_marked_whole():
    img, sector = _tissue()[1]
    frame = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    ink = np.zeros(img.shape, np.uint8)
    for layer, colours in ((frame, ((0, 0, 200), (255, 60, 0), (0, 140, 255), (0, 0, 90))), (ink, (255,) * 4)):
        for (cx, cy), c in zip(((220, 260), (300, 300), (260, 350), (330, 240)), colours):
            cv2.ellipse(layer, (cx, cy), (25, 12), 20, 0, 360, c, -1)  # red, blue, orange, dark red flow
        cv2.putText(layer, "PW", (150, 200), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colours[2], 2)
    mask = overlay_mask(frame)
    assert _marked(mask, ink > 0) == 1.0
    far = cv2.dilate(ink, np.ones((5, 5), np.uint8)) == 0
    assert _marked(mask, far & sector) < 0.005


def test_sixteen_bit_frames_are_read_at_their_depth():
    img, sector = _tissue()[2]
    frame = img.astype(np.uint16) << 4  # 12-bit data
    cv2.drawMarker(frame, (256, 300), 4095, cv2.MARKER_CROSS, 11, 1)
    mask = overlay_mask(frame, bits=12)
    assert mask is not None and mask.shape == img.shape and mask.dtype == np.uint8
    assert mask[300, 256] == 255 and mask[300, 250] == 255
    assert _marked(mask, sector & (np.abs(np.arange(512)[None, :] - 256) > 8)) < 0.005


def test_real_doppler_colour_and_ob_calipers_are_marked():
    """The GE power Doppler still: its colour pixels; the Philips OB still: its caliper crosses."""
    pytest.importorskip("pydicom")
    from test_dicom_io import pydicom_file

    from ganrt.runtime.sources import open_source

    with open_source(pydicom_file("examples_jpeg2k.dcm")) as src:
        px = src.read().pixels
    ycc = cv2.cvtColor(px, cv2.COLOR_BGR2YCrCb).astype(int)
    vivid = (np.abs(ycc[..., 1] - 128) > 40) | (np.abs(ycc[..., 2] - 128) > 40)
    assert vivid.sum() > 5000 and _marked(overlay_mask(px), vivid) == 1.0
    with open_source(pydicom_file("examples_palette.dcm")) as src:
        px = src.read().pixels
    mask = overlay_mask(px, bits=16)
    assert mask[290, 459] and mask[301, 498]  # the two '+' calipers below the fan's bright arc
    near_field = np.zeros(mask.shape, bool)
    near_field[100:140, 400:520] = True
    assert _marked(mask, near_field) < 0.005  # the tissue of the near field is not


@pytest.mark.parametrize("scale", [1, 2])
def test_region_enhance_mask_leaves_out_the_frames_graphics(scale):
    from ganrt.runtime.trust.region import Box, Region

    img, sector = _tissue()[0]
    frame = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    cv2.drawMarker(frame, (250, 300), (255, 255, 255), cv2.MARKER_CROSS, 11, 1)
    cv2.circle(frame, (300, 260), 10, (0, 0, 220), -1)  # colour flow
    box = Box(150, 200, 256, 192)
    crop = frame[box.slices]
    for region in (Region.from_mask(sector.astype(np.uint8), "test"), Region.whole(img.shape)):
        m = region.enhance_mask(box, crop, scale, bits=8)
        assert m.shape == (box.h * scale, box.w * scale)
        at = lambda x, y, m=m: m[(y - box.y) * scale, (x - box.x) * scale]  # noqa: E731 - frame coordinates
        assert at(250, 300) == 0 and at(245, 300) == 0 and at(300, 260) == 0  # caliper, colour: raw
        assert at(200, 350) == 255  # tissue: enhanced
        if not region.full:
            oy, ox = np.argwhere(~sector[box.slices])[0]
            assert at(box.x + ox, box.y + oy) == 0  # outside the sector: raw
    assert Region.whole(img.shape).enhance_mask(box, img[box.slices] // 2) is None  # no graphics, whole frame
