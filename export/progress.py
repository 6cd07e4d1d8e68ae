"""Progress bars and loss curves shared by the training loops."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm


class LossLog:
    """Collects per-step losses; writes CSV + a PNG plot so instability is visible after the run."""

    def __init__(self, path_stem: Path) -> None:
        self.stem = path_stem
        self.rows: list[dict[str, float]] = []
        if self.stem.with_suffix(".csv").exists():  # resumed run: keep the earlier curve
            with open(self.stem.with_suffix(".csv")) as fh:
                self.rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]

    def add(self, step: int, **losses: float) -> None:
        self.rows.append({"step": float(step), **{k: float(v) for k, v in losses.items()}})

    def truncate(self, step: int) -> None:
        self.rows = [r for r in self.rows if r["step"] < step]

    def save(self) -> None:
        if not self.rows:
            return
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.rows[0].keys())
        with open(self.stem.with_suffix(".csv"), "w", newline="") as fh:
            w = csv.DictWriter(fh, keys)
            w.writeheader()
            w.writerows(self.rows)
        cv2.imwrite(str(self.stem.with_suffix(".png")), plot_curves(self.rows))

    def summary(self, last: int = 50) -> dict[str, float]:
        tail = self.rows[-last:]
        keys = [k for k in tail[0] if k != "step"] if tail else []
        return {k: float(np.mean([r[k] for r in tail])) for k in keys}


def plot_curves(rows: list[dict[str, float]], size: tuple[int, int] = (420, 720)) -> np.ndarray:
    """Each loss normalised to its own range, smoothed, one colour each, legend with last value."""
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    keys = [k for k in rows[0] if k != "step"]
    colours = [(200, 60, 40), (40, 140, 40), (40, 40, 200), (160, 40, 160), (0, 140, 200), (90, 90, 90)]
    steps = np.array([r["step"] for r in rows])
    span = max(steps.max() - steps.min(), 1.0)
    for j, k in enumerate(keys):
        v = np.array([r[k] for r in rows])
        n = max(1, len(v) // 100)
        v = np.convolve(v, np.ones(n) / n, mode="valid")
        s = steps[: len(v)]
        lo, hi = float(np.min(v)), float(np.max(v))
        ys = (h - 40) - (v - lo) / max(hi - lo, 1e-12) * (h - 80)
        xs = 40 + (s - steps.min()) / span * (w - 80)
        pts = np.stack([xs, ys], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, colours[j % len(colours)], 1, cv2.LINE_AA)
        cv2.putText(img, f"{k}: {v[-1]:.4g} (range {lo:.3g}..{hi:.3g})", (45, 18 + 16 * j),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.42, colours[j % len(colours)], 1, cv2.LINE_AA)
    cv2.putText(img, f"step {int(steps.min())}..{int(steps.max())}", (w - 200, h - 12),
                cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def bar(total: int, initial: int, desc: str, enabled: bool = True) -> tqdm:
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, mininterval=2.0)


def write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
