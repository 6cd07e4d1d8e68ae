"""In-memory paired data and random patch batches for training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PairBank:
    inputs: np.ndarray  # (N, H, W) or (N, H, W, C) float32 in [0, 1]
    targets: np.ndarray  # same shape as inputs (times scale for SR tasks)
    valid: np.ndarray | None = None  # (N, H, W) bool: imaging region (sector) of each pair

    def __post_init__(self) -> None:
        if self.inputs.shape[0] != self.targets.shape[0] or self.inputs.shape[0] == 0:
            raise ValueError("inputs and targets must be non-empty and paired")

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def batch(self, rng: np.random.Generator, size: int, patch: int, min_valid: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
        """Random crops (NCHW float32); crops mostly outside the imaging region are resampled."""
        n, h, w = self.inputs.shape[:3]
        xs, ys = [], []
        while len(xs) < size:
            i = int(rng.integers(n))
            r, c = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
            if self.valid is not None and self.valid[i, r : r + patch, c : c + patch].mean() < min_valid:
                continue
            x = self.inputs[i, r : r + patch, c : c + patch]
            y = self.targets[i, r : r + patch, c : c + patch]
            if rng.random() < 0.5:  # lateral mirror keeps the physics (depth axis untouched)
                x, y = x[:, ::-1], y[:, ::-1]
            xs.append(x)
            ys.append(y)
        return _nchw(np.stack(xs)), _nchw(np.stack(ys))


def _nchw(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2).copy()
