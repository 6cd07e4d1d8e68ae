"""The manifest's ``fidelity`` block: the runtime's fidelity threshold, calibrated per model.

The runtime re-degrades each enhanced frame and scores it against the input
(``ganrt.runtime.fidelity``); below the manifest's ``min_db`` the frame is shown raw. What a
faithful model legitimately changes differs by task (despeckling moves ultrasound texture more
than denoising moves endoscopy colour), so one fixed threshold is either blind on one task or
rejects good frames on another. This runs every artifact of the bundle on held-out pairs
through the same scorer the runtime uses, in the runtime's display form (8-bit, BGR for colour,
the imaging region as the mask), and sets ``min_db`` ``margin_db`` below the lowest score seen:
normal output passes with that margin, and an invention that moves a tile further than the
model ever does goes raw.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import cv2
import numpy as np

from ganrt.runtime.fidelity import CALIBRATION_MARGIN_DB, Degrade, FidelityConfig, FidelityMonitor

from .arrays import to_images, to_nchw
from .data.simulator import to_uint8
from .tasks import PairSet


@dataclass(frozen=True)
class FidelityCalibration:
    config: FidelityConfig
    frames: int
    floor_db: float  # the lowest worst-tile score of any artifact on any frame
    median_db: float
    floor_by_artifact: dict[str, float]
    margin_db: float

    def manifest_block(self) -> dict:
        """What the runtime reads (``FidelityConfig.from_manifest``): settings that differ from its defaults' form."""
        return {"min_db": round(self.config.min_db, 2), "degrade": self.config.degrade.value}

    def to_dict(self) -> dict:
        return {"frames": self.frames, "floor_db": round(self.floor_db, 2), "median_db": round(self.median_db, 2),
                "floor_by_artifact": {k: round(v, 2) for k, v in self.floor_by_artifact.items()},
                "margin_db": self.margin_db, "min_db": round(self.config.min_db, 2),
                "degrade": self.config.degrade.value,
                "how": "every artifact on the held-out pairs through ganrt.runtime.fidelity, 8-bit display form, "
                       "the imaging region as the mask; min_db = floor - margin"}


def _display(img: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) RGB float in [0, 1] -> what the runtime scores: 8-bit, BGR for colour."""
    u8 = to_uint8(img)
    return cv2.cvtColor(u8, cv2.COLOR_RGB2BGR) if u8.ndim == 3 else u8


def frame_scores(outputs: np.ndarray, pairs: PairSet, scale: int, config: FidelityConfig) -> np.ndarray:
    """Worst-tile fidelity score (dB) of each output (N, H, W[, 3]) against its input, inside the region."""
    mon = FidelityMonitor(config, scale)
    scores = []
    for i in range(len(outputs)):
        raw = _display(pairs.inputs[i])
        mask = pairs.sector[i].astype(np.uint8) * 255
        if scale > 1:  # the region at the input's resolution
            mask = cv2.resize(mask, raw.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        s = mon.score(raw, _display(outputs[i]), mask)
        scores.append(s.worst_db)
    return np.asarray(scores, np.float64)


def calibrate(outputs_by_artifact: Mapping[str, np.ndarray], pairs: PairSet, scale: int,
              margin_db: float = CALIBRATION_MARGIN_DB) -> FidelityCalibration:
    """``outputs_by_artifact``: name -> (N, H, W[, 3]) outputs in [0, 1] for ``pairs``' inputs."""
    base = FidelityConfig(degrade=Degrade.DOWNSAMPLE if scale > 1 else Degrade.GAUSSIAN)
    per = {k: frame_scores(v, pairs, scale, base) for k, v in outputs_by_artifact.items()}
    judged = np.concatenate([v[~np.isnan(v)] for v in per.values()])
    if judged.size == 0:
        raise ValueError("no held-out frame had a region large enough to judge fidelity")
    floor = float(judged.min())
    cfg = replace(base, min_db=math.floor((floor - margin_db) * 10) / 10)
    return FidelityCalibration(cfg, len(pairs.inputs), floor, float(np.median(judged)),
                               {k: float(np.nanmin(v)) for k, v in per.items()}, margin_db)


def write_into_manifest(manifest_path: Path, cal: FidelityCalibration) -> dict:
    """Add (or replace) the ``fidelity`` block and ``metrics.fidelity_calibration`` of a bundle's manifest."""
    m = json.loads(manifest_path.read_text())
    m["fidelity"] = cal.manifest_block()
    m.setdefault("metrics", {})["fidelity_calibration"] = cal.to_dict()
    manifest_path.write_text(json.dumps(m, indent=2, sort_keys=True, default=str) + "\n")
    return m


def calibrate_bundle(model_dir: Path, frames: int | None = None) -> FidelityCalibration:
    """Re-create the bundle's held-out pairs (its manifest says which), run every artifact as the
    runtime would (int8-trt with TensorRT's exact Q/DQ arithmetic), calibrate, write the manifest."""
    from ganrt.runtime.errors import ModelError

    from . import gate as gating
    from .tasks import get_task

    path = Path(model_dir) / "manifest.json"
    try:
        m = json.loads(path.read_text())
        held = m["metrics"]["held_out"]
        task = get_task(m["task"])
        n, hw, seed0 = int(frames or held["frames"]), tuple(held["hw"]), int(held["seed0"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a ganrt export bundle with held-out metrics ({exc})") from None
    pairs = task.make_pairs(range(seed0, seed0 + n), hw)
    x = to_nchw(pairs.inputs)
    outs = {}
    for name, art in m["artifacts"].items():
        sem = gating.Semantics.QDQ_REFERENCE if name == "int8-trt" else gating.Semantics.KERNELS
        outs[name] = to_images(gating.outputs(Path(model_dir) / art["file"], x, sem))
    cal = calibrate(outs, pairs, task.scale)
    write_into_manifest(path, cal)
    return cal
