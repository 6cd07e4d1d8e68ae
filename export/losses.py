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


def soft_gcnr(img: torch.Tensor, a_mask: torch.Tensor, b_mask: torch.Tensor, bins: int = 64,
              sigma: float | None = None) -> torch.Tensor:
    """Differentiable gCNR per sample (N,): 1 - overlap of Gaussian-smoothed histograms on [0, 1].

    ``img`` (N,1,H,W); masks (N,1,H,W) float/bool. The metric (export.data.simulator.gcnr) uses hard
    256-bin histograms; soft bins of width ~1/64 keep the gradient informative on small patches.
    """
    sigma = sigma if sigma is not None else 1.0 / bins
    centers = torch.linspace(0.0, 1.0, bins, device=img.device)
    v = img.flatten(1)[..., None]  # (N, P, 1)
    k = torch.exp(-0.5 * ((v - centers) / sigma) ** 2)  # (N, P, bins)

    def hist(m: torch.Tensor) -> torch.Tensor:
        w = m.flatten(1).to(img.dtype)[..., None]
        h = (k * w).sum(1)
        return h / h.sum(1, keepdim=True).clamp_min(1e-8)

    return 1.0 - torch.minimum(hist(a_mask), hist(b_mask)).sum(1)


def luma(img: torch.Tensor) -> torch.Tensor:
    """(N,1,H,W) as is; (N,3,H,W) RGB -> Rec. 601 luma (N,1,H,W)."""
    if img.shape[1] == 1:
        return img
    w = torch.tensor([0.299, 0.587, 0.114], dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return (img * w).sum(1, keepdim=True)


def contrast_shortfall(out: torch.Tensor, target: torch.Tensor, lesion: torch.Tensor,
                       background: torch.Tensor) -> torch.Tensor:
    """How far the output's lesion/background separation (soft gCNR) falls short of the target's.

    One-sided on purpose: separating a lesion *more* than the cart-quality target does would be
    invented contrast, so only a shortfall is penalised. Colour images are compared on luma (as
    the gCNR metric is).
    """
    with torch.no_grad():
        g_t = soft_gcnr(luma(target), lesion, background)
    return torch.relu(g_t - soft_gcnr(luma(out), lesion, background)).mean()
