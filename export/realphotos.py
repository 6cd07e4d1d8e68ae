"""Real colour photographs for the colour model: calibration, training targets and the benchmark.

The only real colour images that install offline are the photographs scikit-image ships (no
download). They are split once, here: the colour guard calibration (guard_cal.py) and the
intraop-enhance training pairs (data/photo_pairs.py) may look only at ``TUNE``; ``REPORT`` is kept
for the real-reference benchmark (benchmarks/realphoto.py), so nothing is judged on what it was
set or trained on. ``motorcycle_right`` is in neither: it is the same scene as ``motorcycle_left``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from .realscans import RealItem

log = logging.getLogger(__name__)

TUNE = ("chelsea", "rocket", "motorcycle_left", "hubble_deep_field")
REPORT = ("astronaut", "coffee", "immunohistochemistry", "retina")
MAX_SIDE = 512  # larger photographs are area-reduced to this (the runtime's typical frame)


def load(name: str, max_side: int = MAX_SIDE) -> np.ndarray | None:
    """The photograph as RGB uint8, its longer side at most ``max_side`` and both sides even;
    None when scikit-image is not installed or the file would need a download."""
    try:
        from skimage import data
    except ImportError:
        log.warning("scikit-image not installed: no real photographs")
        return None
    try:
        if name == "motorcycle_left":
            img = data.stereo_motorcycle()[0]
        else:
            img = getattr(data, name)()
    except Exception as exc:  # noqa: BLE001 (a fetcher that needs the network: skip the image)
        log.warning("skimage.data.%s not available offline (%s)", name, type(exc).__name__)
        return None
    img = np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)
    h, w = img.shape[:2]
    k = min(1.0, max_side / max(h, w))
    nh, nw = int(h * k) // 2 * 2, int(w * k) // 2 * 2
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return img


def load_all(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {n: img for n in names if (img := load(n)) is not None}


def run_bundle(model_dir: Path, names: tuple[str, ...] = TUNE, artifact: str = "fp32") -> list[RealItem]:
    """Each photograph (as a BGR frame, the runtime's order) through the bundle's ``artifact`` on
    the whole frame, as the runtime runs a colour model."""
    from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner
    from ganrt.runtime.frames import Frame
    from ganrt.runtime.model.manifest import Manifest
    from ganrt.runtime.model.ops import Enhancer
    from ganrt.runtime.trust.region import luma_u8

    man = Manifest.load(model_dir)
    items: list[RealItem] = []
    with OnnxRuntimeRunner(man.artifacts[artifact]) as runner:
        enh = Enhancer(runner, man, artifact=man.artifacts[artifact])
        for name, rgb in load_all(names).items():
            frame = Frame(index=0, t_capture_ns=0, pixels=cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            items.append(RealItem(name, 0, enh.passthrough(frame), enh.enhance(frame), None,
                                  luma_u8(frame.pixels), None, frame.hw))
    return items
