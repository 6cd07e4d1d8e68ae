"""In-memory paired data and random patch batches for training.

Inputs and targets may differ in size by an integer ``scale`` (super-resolution: targets are
``scale`` times the inputs' H and W). Crops are taken at the same place in both: an input crop of
``patch`` pixels and the target crop of ``scale * patch`` pixels over the same tissue. The region
masks live at target resolution, where the outputs are compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PairBank:
    inputs: np.ndarray  # (N, h, w) or (N, h, w, C) float32 in [0, 1]
    targets: np.ndarray  # (N, H, W[, C]) with H = scale * h, W = scale * w
    valid: np.ndarray | None = None  # (N, H, W) bool: imaging region (sector) of each pair
    lesion: np.ndarray | None = None  # (N, H, W) bool: lesion pixels (contrast loss), may be empty
    background: np.ndarray | None = None  # (N, H, W) bool: tissue ring around the lesions
    scale: int = field(init=False)

    def __post_init__(self) -> None:
        if self.inputs.shape[0] != self.targets.shape[0] or self.inputs.shape[0] == 0:
            raise ValueError("inputs and targets must be non-empty and paired")
        (h, w), (H, W) = self.inputs.shape[1:3], self.targets.shape[1:3]
        s = H // h
        if s < 1 or H != s * h or W != s * w or self.inputs.shape[3:] != self.targets.shape[3:]:
            raise ValueError(f"targets {self.targets.shape[1:]} are not an integer scale of inputs {self.inputs.shape[1:]}")
        for name in ("valid", "lesion", "background"):
            m = getattr(self, name)
            if m is not None and m.shape[:3] != self.targets.shape[:3]:
                raise ValueError(f"{name} mask {m.shape} must match the targets' (N, H, W) {self.targets.shape[:3]}")
        self.scale = s

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def batch(self, rng: np.random.Generator, size: int, patch: int, min_valid: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
        """Random crops (NCHW float32): ``patch``-pixel inputs and ``scale * patch``-pixel targets;
        crops mostly outside the imaging region are resampled."""
        n, h, w = self.inputs.shape[:3]
        s = self.scale
        xs, ys = [], []
        while len(xs) < size:
            i = int(rng.integers(n))
            r, c = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
            tr, tc, tp = r * s, c * s, patch * s
            if self.valid is not None and self.valid[i, tr : tr + tp, tc : tc + tp].mean() < min_valid:
                continue
            x = self.inputs[i, r : r + patch, c : c + patch]
            y = self.targets[i, tr : tr + tp, tc : tc + tp]
            if rng.random() < 0.5:  # lateral mirror keeps the physics (depth axis untouched)
                x, y = x[:, ::-1], y[:, ::-1]
            xs.append(x)
            ys.append(y)
        return _nchw(np.stack(xs)), _nchw(np.stack(ys))


    def lesion_batch(self, rng: np.random.Generator, size: int, patch: int, min_px: int = 32
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Crops around a random lesion pixel with their lesion/background masks (NCHW; targets and
        masks at target resolution), or None when the bank has no lesions. Crops with fewer than
        ``min_px`` pixels of either region are resampled (a bounded number of times)."""
        if self.lesion is None or self.background is None:
            return None
        has = np.flatnonzero(self.lesion.reshape(len(self), -1).any(1))
        if has.size == 0:
            return None
        n, h, w = self.inputs.shape[:3]
        s = self.scale
        out: list[tuple[np.ndarray, ...]] = []
        for _ in range(size * 20):
            if len(out) == size:
                break
            i = int(has[rng.integers(has.size)])
            rr, cc = np.nonzero(self.lesion[i])
            j = int(rng.integers(rr.size))
            r = int(np.clip(rr[j] // s - patch // 2 + rng.integers(-patch // 4, patch // 4 + 1), 0, h - patch))
            c = int(np.clip(cc[j] // s - patch // 2 + rng.integers(-patch // 4, patch // 4 + 1), 0, w - patch))
            sl = (i, slice(r, r + patch), slice(c, c + patch))
            tsl = (i, slice(r * s, (r + patch) * s), slice(c * s, (c + patch) * s))
            ml, mb = self.lesion[tsl], self.background[tsl]
            if ml.sum() < min_px or mb.sum() < min_px:
                continue
            crops = (self.inputs[sl], self.targets[tsl], ml, mb)
            if rng.random() < 0.5:
                crops = tuple(a[:, ::-1] for a in crops)
            out.append(crops)
        if not out:
            return None
        x, y, ml, mb = (np.stack([o[k] for o in out]) for k in range(4))
        return _nchw(x), _nchw(y), _nchw(ml.astype(np.float32)), _nchw(mb.astype(np.float32))


def _nchw(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2).copy()
