"""Frame stacks between the PairSet layout ((N,H,W) gray, (N,H,W,3) colour) and NCHW model tensors."""

from __future__ import annotations

import numpy as np


def to_nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2), dtype=np.float32)


def to_images(nchw: np.ndarray) -> np.ndarray:
    """NCHW -> (N,H,W) gray or (N,H,W,3): the layout of a PairSet's frames."""
    return nchw[:, 0] if nchw.shape[1] == 1 else np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))
