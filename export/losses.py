"""Losses for training and distillation (no pretrained networks: none are reachable offline)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gauss(ch: int, size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum())[:, None] @ (g / g.sum())[None, :]
    return g.expand(ch, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM with an 11x11 Gaussian window, sigma 1.5 (Wang et al.; skimage's gaussian mode)."""
    ch = a.shape[1]
    w = _gauss(ch, device=a.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = F.conv2d(a, w, groups=ch), F.conv2d(b, w, groups=ch)
    saa = F.conv2d(a * a, w, groups=ch) - mu_a**2
    sbb = F.conv2d(b * b, w, groups=ch) - mu_b**2
    sab = F.conv2d(a * b, w, groups=ch) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.mean()


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))
