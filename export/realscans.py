"""Real ultrasound acquisitions for calibrating the runtime's checks, and a bundle run on them.

The only real scans that install offline ship with pydicom. They are split once, here: the
calibrations (fidelity_cal.py, guard_cal.py) may look only at ``TUNE``; ``REPORT`` is kept for
the real-scan benchmark, so a check is never judged on the frames it was set on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

TUNE = ("examples_ybr_color.dcm", "examples_jpeg2k.dcm")  # echo cine (30 frames), one abdominal still
REPORT = ("examples_rgb_color.dcm", "examples_palette.dcm")  # GE power Doppler, Philips OB still
# Training frames for us-sr2x (tasks._us_sr2x_train_pairs). Stricter than TUNE: the JPEG 2000 still is
# the reported GE power Doppler frame at twice the size, so a model trained on it has seen that scene.
SR_TUNE = ("examples_ybr_color.dcm",)
MAX_FRAMES = 30


@dataclass(frozen=True)
class RealItem:
    """One real frame through a bundle as the runtime runs it: the raw display form of the region's
    box (enlarged for super-resolution), the model's output there, the region mask at that size,
    the input crop's grey form and mask (input resolution), and the whole shown frame's H x W."""

    name: str
    index: int
    raw: np.ndarray
    out: np.ndarray
    mask: np.ndarray | None
    raw_in: np.ndarray
    mask_in: np.ndarray | None
    shown_hw: tuple[int, int]


def _frames(name: str) -> list:
    from pydicom.data import get_testdata_file

    from ganrt.runtime.sources import open_source

    with open_source(str(get_testdata_file(name))) as src:
        frames = []
        while len(frames) < MAX_FRAMES and (f := src.read()) is not None:
            frames.append(f)
    return frames


def tuning_luma(names: tuple[str, ...]) -> list[np.ndarray]:
    """Every decoded frame (up to MAX_FRAMES each) of ``names`` as 8-bit grey; empty without pydicom.
    (The SR tuning cine is 8-bit; a 16-bit frame would be scaled as full-range 16-bit.)"""
    try:
        import pydicom  # noqa: F401  (the acquisitions ship with it)
    except ImportError:
        return []
    from ganrt.runtime.trust.region import luma_u8

    return [luma_u8(f.pixels) for n in names for f in _frames(n)]


def run_bundle(model_dir: Path, names: tuple[str, ...] = TUNE, artifact: str = "fp32",
               region: str = "auto") -> list[RealItem]:
    """Each acquisition's frames through the bundle's ``artifact``, inside the imaging region the
    runtime detects (``auto``, from the frames read ahead) or on the whole frame (``full``).
    Empty when pydicom is not installed."""
    try:
        import pydicom  # noqa: F401  (the acquisitions ship with it)
    except ImportError:
        log.warning("pydicom not installed: no real frames for calibration")
        return []
    from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner
    from ganrt.runtime.model.manifest import Manifest
    from ganrt.runtime.model.ops import Enhancer
    from ganrt.runtime.trust.region import RegionConfig, RegionMode, RegionTracker, luma_u8

    man = Manifest.load(model_dir)
    items: list[RealItem] = []
    with OnnxRuntimeRunner(man.artifacts[artifact]) as runner:
        enh = Enhancer(runner, man, artifact=man.artifacts[artifact])
        s = man.scale
        for name in names:
            frames = _frames(name)
            if not frames:
                continue
            tracker = RegionTracker(RegionConfig(RegionMode(region)), bits=enh.bits)
            region_ = tracker.prime([f.pixels for f in frames]) or tracker.region_for(0, frames[0].pixels)
            box = region_.crop_box(enh.pre.multiple)
            for f in frames:
                crop = replace(f, pixels=f.pixels[box.slices])
                h, w = f.hw
                items.append(RealItem(name, f.index, enh.passthrough(crop), enh.enhance(crop),
                                      region_.mask_in(box, s), luma_u8(crop.pixels, enh.bits), region_.mask_in(box),
                                      (h * s, w * s)))
    return items
