"""Quality of any frame -> frame method on simulated data the student never saw.

Seed ranges (export): 0.. training, 100000.. calibration, 900000.. the export's own evaluation.
Benchmarks use 950000.. for held-out pairs and cines, and tune classic filters on the
*calibration* seeds only, so no number here is measured on data anything was fitted to.

Every method is judged the way the pipeline shows it: uint8 frame in, uint8 frame out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ganrt.export.evaluate import quality
from ganrt.export.onnx_export import psnr
from ganrt.export.tasks import PairSet, Task

HELD_OUT_SEED0 = 950_000
CINE_SEED = 951_000  # one held-out scene under motion, for flicker
CALIBRATION_SEED0 = 100_000

FrameFn = Callable[[np.ndarray], np.ndarray]  # uint8 HxW -> uint8 HxW


def to_u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def from_u8(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0


@dataclass
class Cine:
    inputs: np.ndarray  # (T, H, W) float32
    targets: np.ndarray
    sector: np.ndarray  # (H, W) bool


def pairs(task: Task, seed0: int, n: int, hw: int) -> PairSet:
    return task.make_pairs(range(seed0, seed0 + n), (hw, hw))


def cine(seed: int, n: int, hw: int) -> Cine:
    from ganrt.export.data.simulator import SimConfig
    from ganrt.export.data.simulator import cine as render_cine

    frames = list(render_cine(seed, n, SimConfig(out_hw=(hw, hw))))
    return Cine(np.stack([f.input for f in frames]).astype(np.float32),
                np.stack([f.target for f in frames]).astype(np.float32), frames[0].sector.copy())


def outputs(fn: FrameFn, frames: np.ndarray) -> np.ndarray:
    """(N, H, W) float inputs -> (N, H, W) float outputs of ``fn`` through uint8."""
    return np.stack([from_u8(fn(to_u8(f))) for f in frames])


def frame_change(frames: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute frame-to-frame change inside ``mask`` (0..1 units)."""
    if len(frames) < 2:
        return float("nan")
    d = np.abs(np.diff(frames.astype(np.float64), axis=0))
    return float(d[:, mask].mean())


def flicker(fn: FrameFn | None, c: Cine) -> dict[str, float]:
    """Temporal flicker (docs/benchmarks.md, Metrics): the output's mean abs frame-to-frame change minus the input's.
    Negative: steadier than the input. The target's change is the part real motion explains."""
    inp = frame_change(outputs(lambda u8: u8, c.inputs), c.sector)  # the uint8 frames every method sees
    out = frame_change(outputs(fn, c.inputs), c.sector) if fn is not None else inp
    return {"output": out, "input": inp, "target": frame_change(c.targets, c.sector), "excess": out - inp}


def judge(fn: FrameFn, held: PairSet) -> dict[str, float]:
    """PSNR / SSIM / gCNR / speckle SNR of ``fn``'s outputs against the held-out targets."""
    return quality(outputs(fn, held.inputs), held)


def sweep(specs: Sequence, calib: PairSet) -> tuple[object, list[dict]]:
    """Pick the spec with the best mean PSNR on the calibration pairs; return it and the whole table."""
    table = []
    for spec in specs:
        out = outputs(spec.apply, calib.inputs)
        table.append({"params": dict(spec.params), "psnr": float(np.mean([psnr(o, t) for o, t in zip(out, calib.targets)]))})
    best = max(range(len(specs)), key=lambda i: table[i]["psnr"])
    return specs[best], table
