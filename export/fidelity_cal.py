"""The manifest's ``fidelity`` block: the runtime's fidelity threshold, calibrated per model.

The runtime re-degrades each enhanced frame and scores it against the input
(``ganrt.runtime.trust.fidelity``); below the manifest's ``min_db`` the frame is shown raw. What a
faithful model legitimately changes differs by task (despeckling moves ultrasound texture more
than denoising moves endoscopy colour), so one fixed threshold is either blind on one task or
rejects good frames on another. This runs every artifact of the bundle on held-out pairs
through the same scorer the runtime uses, in the runtime's display form (8-bit, BGR for colour,
the imaging region as the mask), and sets ``min_db`` ``margin_db`` below the lowest score seen:
normal output passes with that margin, and an invention that moves a tile further than the
model ever does goes raw. How far is "further" depends on how disagreement is measured (the
residual and its detrending scale, or the unexplained structure and its window), so each setting
in ``CANDIDATES`` is tried, with synthetic inventions (bright and dark blobs) added to the
model's own held-out outputs, and the one whose threshold catches the most of them goes into the
manifest with its measured catch rate. The reduced tier (the model on a downsampled crop, its output
upsampled: runtime.serve.tiers) departs further from the re-degraded input, so the same setting gets a
second threshold from that tier's own floor (``min_db_reduced``, never above ``min_db``), with the
blobs' catch rate at it recorded.

Real scans are never a premise here: how the model behaves on a real scanner's frames is what the
checks are for, not something to calibrate them to pass. The bundle's outputs on the real tuning
acquisitions (realscans.TUNE) are scored and the share the threshold sends raw is recorded
(``real_rejected``), whatever it is.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ganrt.runtime.serve.tiers import TierConfig
from ganrt.runtime.trust.fidelity import CALIBRATION_MARGIN_DB, Degrade, FidelityConfig, FidelityMonitor, Method

from .arrays import to_images, to_nchw
from .data.simulator import to_uint8
from .realscans import RealItem, run_bundle
from .tasks import PairSet

log = logging.getLogger(__name__)


# Settings tried. Residual: its detrending scale (Gaussian sigma, cells); a larger one keeps more of
# an invented blob, a smaller one also absorbs faster tone changes (a smoke veil), which lowers the
# floor of faithful frames. Structure: its correlation window (sigma, cells). The first is the
# runtime's default; a later one is taken only when it catches more.
CANDIDATES: tuple[dict, ...] = (
    {"method": Method.RESIDUAL, "detrend_cells": 4.0},
    {"method": Method.RESIDUAL, "detrend_cells": 3.0},
    {"method": Method.RESIDUAL, "detrend_cells": 2.0},
    {"method": Method.STRUCTURE, "window_cells": 1.0},
    {"method": Method.STRUCTURE, "window_cells": 1.5},
    {"method": Method.STRUCTURE, "window_cells": 2.5},
)
BLOB_AMPLITUDES = (0.5, -0.5)  # bright and dark inventions, of full scale
BLOB_SIGMA = 1 / 20  # of the frame's shorter side: a lesion-sized structure
BLOB_SEED = 20_260_101
ULTRASOUND_TASKS = ("us-enhance", "us-sr2x")  # the tasks whose bundles run on the real tuning scans


@dataclass(frozen=True)
class FidelityCalibration:
    config: FidelityConfig
    frames: int
    floor_db: float  # the lowest worst-tile score of any artifact on any frame
    median_db: float
    floor_by_artifact: dict[str, float]
    margin_db: float
    catch_rate: float  # share of synthetic blobs on the reference artifact's outputs that score below min_db
    candidates: tuple[dict, ...] = ()  # every setting tried: its threshold and catch rate
    real: dict | None = None  # the real tuning frames: names, frames, share the threshold sends raw
    reduced_tier: dict | None = None  # the reduced tier's floor, threshold and blob catch rate (reduced_tier())

    def manifest_block(self) -> dict:
        """What the runtime reads (``FidelityConfig.from_manifest``)."""
        c = self.config
        block = {"min_db": round(c.min_db, 2), "degrade": c.degrade.value, "method": c.method.value,
                 "detrend_cells": c.detrend_cells, "window_cells": c.window_cells}
        if c.min_db_reduced is not None:
            block["min_db_reduced"] = round(c.min_db_reduced, 2)
        return block

    def to_dict(self) -> dict:
        return {"frames": self.frames, "floor_db": round(self.floor_db, 2), "median_db": round(self.median_db, 2),
                "floor_by_artifact": {k: round(v, 2) for k, v in self.floor_by_artifact.items()},
                "margin_db": self.margin_db, "min_db": round(self.config.min_db, 2),
                "degrade": self.config.degrade.value, "method": self.config.method.value,
                "detrend_cells": self.config.detrend_cells, "window_cells": self.config.window_cells,
                "blob_catch_rate": round(self.catch_rate, 3), "candidates": list(self.candidates),
                "real_tuning_frames": self.real, "reduced_tier": self.reduced_tier,
                "how": "every artifact on the held-out pairs through ganrt.runtime.trust.fidelity, 8-bit display form, "
                       "the imaging region as the mask; min_db = floor - margin; of the settings tried, the "
                       f"one whose threshold catches most synthetic blobs (amplitudes {list(BLOB_AMPLITUDES)}, "
                       f"sigma {BLOB_SIGMA:g} of the frame) added to the reference artifact's outputs"}


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


def with_blobs(outputs: np.ndarray, regions: np.ndarray, amplitude: float, seed: int = BLOB_SEED) -> np.ndarray:
    """Each output with one Gaussian blob (an invented structure) centred on a random pixel of its region."""
    rng = np.random.default_rng(seed)
    h, w = outputs.shape[1:3]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    sig2 = 2 * (BLOB_SIGMA * min(h, w)) ** 2
    out = outputs.copy()
    for i in range(len(outputs)):
        rr, cc = np.nonzero(regions[i])
        if rr.size == 0:
            continue
        j = int(rng.integers(rr.size))
        g = amplitude * np.exp(-((yy - rr[j]) ** 2 + (xx - cc[j]) ** 2) / sig2)
        out[i] = np.clip(out[i] + (g[..., None] if out.ndim == 4 else g), 0.0, 1.0)
    return out


def _blobbed(outputs_by_artifact: Mapping[str, np.ndarray], pairs: PairSet, reference: str | None) -> list[np.ndarray]:
    """The reference artifact's outputs (default ``fp32`` or the first) with a blob of each amplitude."""
    ref = reference or ("fp32" if "fp32" in outputs_by_artifact else next(iter(outputs_by_artifact)))
    return [with_blobs(outputs_by_artifact[ref], pairs.sector, a, BLOB_SEED + k) for k, a in enumerate(BLOB_AMPLITUDES)]


def _catch_rate(blobbed: Sequence[np.ndarray], pairs: PairSet, scale: int, cfg: FidelityConfig) -> float:
    """Share of the blobbed outputs that score below ``cfg.min_db``."""
    fake = np.concatenate([frame_scores(b, pairs, scale, cfg) for b in blobbed])
    return float(np.mean(fake[~np.isnan(fake)] < cfg.min_db)) if np.isfinite(fake).any() else 0.0


def calibrate(outputs_by_artifact: Mapping[str, np.ndarray], pairs: PairSet, scale: int,
              margin_db: float = CALIBRATION_MARGIN_DB, reference: str | None = None,
              real: Sequence[RealItem] = ()) -> FidelityCalibration:
    """``outputs_by_artifact``: name -> (N, H, W[, 3]) outputs in [0, 1] for ``pairs``' inputs;
    ``reference``: the artifact the synthetic blobs are added to (default: ``fp32`` or the first);
    ``real``: real frames through the model (realscans.run_bundle): only scored and reported."""
    blobbed = _blobbed(outputs_by_artifact, pairs, reference)
    base = FidelityConfig(degrade=Degrade.DOWNSAMPLE if scale > 1 else Degrade.GAUSSIAN)
    best: FidelityCalibration | None = None
    tried = []
    for cand in CANDIDATES:
        cfg = replace(base, **cand)
        per = {k: frame_scores(v, pairs, scale, cfg) for k, v in outputs_by_artifact.items()}
        judged = np.concatenate([v[~np.isnan(v)] for v in per.values()])
        if judged.size == 0:
            raise ValueError("no held-out frame had a region large enough to judge fidelity")
        floor = float(judged.min())
        cfg = replace(cfg, min_db=math.floor((floor - margin_db) * 10) / 10)
        real_rejected = _real_rejected(real, cfg, scale)
        caught = _catch_rate(blobbed, pairs, scale, cfg)
        tried.append({**{k: (v.value if isinstance(v, Method) else v) for k, v in cand.items()},
                      "min_db": cfg.min_db, "floor_db": round(floor, 2), "blob_catch_rate": round(caught, 3),
                      **({"real_rejected": round(real_rejected, 3)} if real_rejected is not None else {})})
        cal = FidelityCalibration(cfg, len(pairs.inputs), floor, float(np.median(judged)),
                                  {k: float(np.nanmin(v)) for k, v in per.items()}, margin_db, caught)
        if best is None or caught > best.catch_rate:  # ties keep the earlier setting
            best = cal
    meta = None
    if real:
        meta = {"acquisitions": sorted({r.name for r in real}), "frames": len(real),
                "rejected": round(_real_rejected(real, best.config, scale), 3)}
    return replace(best, candidates=tuple(tried), real=meta)


def reduced_tier(cal: FidelityCalibration, reduced_by_artifact: Mapping[str, np.ndarray], pairs: PairSet,
                 scale: int, factor: int, reference: str | None = None) -> FidelityCalibration:
    """``cal`` with the reduced tier's own threshold. ``reduced_by_artifact``: the outputs of the
    reduced tier for ``pairs`` (the model on the input area-downsampled ``factor`` times, its output
    upsampled back, as runtime.model.ops.Enhancer does). Same setting as the full tier; its floor
    minus the margin, never above the full tier's threshold; the synthetic blobs are added to the
    reduced reference outputs and the share caught is recorded beside it."""
    cfg = cal.config
    per = {k: frame_scores(v, pairs, scale, cfg) for k, v in reduced_by_artifact.items()}
    judged = np.concatenate([v[~np.isnan(v)] for v in per.values()])
    if judged.size == 0:
        return cal
    floor = float(judged.min())
    min_db = min(math.floor((floor - cal.margin_db) * 10) / 10, cfg.min_db)
    caught = _catch_rate(_blobbed(reduced_by_artifact, pairs, reference), pairs, scale, replace(cfg, min_db=min_db))
    meta = {"factor": factor, "floor_db": round(floor, 2), "min_db": min_db, "blob_catch_rate": round(caught, 3),
            "floor_by_artifact": {k: round(float(np.nanmin(v)), 2) for k, v in per.items()}}
    return replace(cal, config=replace(cfg, min_db_reduced=min_db), reduced_tier=meta)


def reduced_outputs(path: Path, inputs: np.ndarray, factor: int, scale: int, semantics) -> np.ndarray:
    """One artifact's reduced-tier outputs for (N, h, w[, 3]) inputs, at full output size."""
    from . import gate as gating

    h, w = inputs.shape[1:3]
    small = np.stack([cv2.resize(x, (w // factor, h // factor), interpolation=cv2.INTER_AREA) for x in inputs])
    outs = to_images(gating.outputs(path, to_nchw(small), semantics))
    return np.stack([np.clip(cv2.resize(o, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
                     for o in outs])


def _real_rejected(real: Sequence[RealItem], config: FidelityConfig, scale: int) -> float | None:
    """Share of the real frames whose fidelity score falls below ``config.min_db`` (None: no frames)."""
    if not real:
        return None
    mon = FidelityMonitor(config, scale)
    scores = [mon.score(r.raw_in, r.out, r.mask_in, frame_hw=(r.shown_hw[0] // scale, r.shown_hw[1] // scale))
              for r in real]
    return float(np.mean([not sc.passes(config.min_db) for sc in scores]))


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
    real = run_bundle(Path(model_dir)) if task.name in ULTRASOUND_TASKS else []
    x = to_nchw(pairs.inputs)
    factor = TierConfig().factor
    outs, reduced = {}, {}
    for name, art in m["artifacts"].items():
        sem = gating.Semantics.QDQ_REFERENCE if name == "int8-trt" else gating.Semantics.KERNELS
        outs[name] = to_images(gating.outputs(Path(model_dir) / art["file"], x, sem))
        reduced[name] = reduced_outputs(Path(model_dir) / art["file"], pairs.inputs, factor, task.scale, sem)
    cal = reduced_tier(calibrate(outs, pairs, task.scale, real=real), reduced, pairs, task.scale, factor)
    write_into_manifest(path, cal)
    return cal
