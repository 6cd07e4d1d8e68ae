"""Student distillation (GAN Compression / OMGD recipe, see docs/bundle-and-export.md, Distillation).

Loss = L1(target) + L1(teacher) + w * (1 - SSIM) + feature distillation
(MSE, normalised by the teacher activation energy, through 1x1 adapters from the student's body to the teacher's 1/4-resolution
body activations), then a short adversarial fine-tune with the teacher's
discriminator as the starting point.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .archs import PatchDiscriminator, ResnetGenerator, StudentConfig, StudentGenerator, icnr_
from .checkpoint import atomic_torch_save, load_state
from .data.pairs import PairBank
from .losses import lsgan, ssim
from .progress import LossLog, bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    steps: int = 600
    adv_steps: int = 200  # adversarial fine-tune at the end (part of `steps`)
    batch: int = 8
    patch: int = 96
    lr: float = 2e-3
    w_target: float = 1.0
    w_teacher: float = 1.0
    # The published recipe weighs SSIM x10 with raw feature MSE; on speckle at this step budget
    # that stalled the student at L1 0.10 (input: 0.21), while SSIM x1 and scale-free feature
    # terms reached 0.06 in 200 steps. Feature terms are normalised by the teacher's energy.
    w_ssim: float = 1.0
    w_feat: float = 0.5
    w_adv: float = 0.01  # small: texture losses can invent speckle
    # MSE on the target: PSNR's own loss. Super-resolution is judged by PSNR on real frames (the 2x check),
    # and L1 + SSIM alone left us-sr2x level with bicubic there. With w_teacher = w_feat = 0 the teacher is
    # not run at all.
    w_mse: float = 0.0
    seed: int = 1
    checkpoint_every: int = 100
    threads: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _adapters(student: StudentGenerator, teacher: ResnetGenerator) -> nn.ModuleList:
    s_ch, t_ch = student.feature_channels, teacher.feature_channels
    # Pair the last len(t) student blocks with the teacher's (bodies at 1/4 of the input, or 1/2 for
    # a super-resolution student: see _to_size).
    pairs = list(zip(s_ch[-len(t_ch):], t_ch)) if len(s_ch) >= len(t_ch) else list(zip(s_ch, t_ch[-len(s_ch):]))
    return nn.ModuleList(nn.Conv2d(s, t, 1) for s, t in pairs)


def _to_size(f: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Student features onto the teacher's grid: a super-resolution student's body runs at 1/2 of
    its input while the teacher's runs at 1/4, so its features are average-pooled (equal sizes pass)."""
    return f if f.shape[-2:] == like.shape[-2:] else F.adaptive_avg_pool2d(f, like.shape[-2:])


def _teacher_terms(teacher: ResnetGenerator, A: nn.ModuleList, x: torch.Tensor, s_out: torch.Tensor,
                   s_feats: list[torch.Tensor], cfg: DistillConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 to the teacher's output, normalised feature MSE); zeros without running the teacher when
    neither term is weighted."""
    if not (cfg.w_teacher or cfg.w_feat):
        return torch.zeros(()), torch.zeros(())
    with torch.no_grad():
        t_out, t_feats = teacher.forward_features(x)
    t_feats = t_feats[-len(A):] if len(A) else []
    l_feat = sum(F.mse_loss(_to_size(a(sf), tf), tf) / (tf.pow(2).mean() + 1e-6)
                 for a, sf, tf in zip(A, s_feats, t_feats)) / max(len(A), 1)
    return F.l1_loss(s_out, t_out), torch.as_tensor(l_feat)


def distill_student(
    bank: PairBank,
    teacher: ResnetGenerator,
    disc: PatchDiscriminator,
    run_dir: Path,
    arch: StudentConfig,
    cfg: DistillConfig,
    resume: bool = True,
    progress: bool = True,
    init: dict[str, torch.Tensor] | None = None,
) -> tuple[StudentGenerator, dict]:
    """``init``: student weights to start from (an earlier stage's) instead of a fresh initialisation."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    teacher.eval().requires_grad_(False)
    S = StudentGenerator(arch)
    if init is not None:
        S.load_state_dict(init)
    else:
        icnr_(S.tail, arch.down * arch.scale)  # no sub-pixel grid at the start
    A = _adapters(S, teacher)
    D = copy.deepcopy(disc).train()  # initialised from the teacher's discriminator
    opt = torch.optim.Adam(list(S.parameters()) + list(A.parameters()), cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.05)
    opt_d = torch.optim.Adam(D.parameters(), 1e-4, betas=(0.5, 0.999))
    state_path, curve = run_dir / "student_state.pt", LossLog(run_dir / "student_loss")
    start, earlier_s = 0, 0.0
    if resume and state_path.exists():
        st = load_state(state_path)
        S.load_state_dict(st["S"]), A.load_state_dict(st["A"]), D.load_state_dict(st["D"])
        opt.load_state_dict(st["opt"]), opt_d.load_state_dict(st["opt_d"]), sched.load_state_dict(st["sched"])
        start = int(st["step"])
        earlier_s = float(st.get("seconds", 0.0))  # training time of earlier, interrupted invocations
        curve.truncate(start)
    rng = np.random.default_rng([cfg.seed, start])
    n_feat = len(A)
    t0 = time.perf_counter()
    train_s = earlier_s  # through the last finished step (what a checkpoint records)
    S.train()
    with bar(cfg.steps, start, "student", progress) as pb:
        for step in range(start, cfg.steps):
            x_np, y_np = bank.batch(rng, cfg.batch, cfg.patch)
            x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
            s_out, s_feats = S.forward_features(x)
            l_tch, l_feat = _teacher_terms(teacher, A, x, s_out, s_feats[-n_feat:], cfg)
            l_tgt = F.l1_loss(s_out, y)
            l_ssim = 1.0 - ssim(s_out, y)
            loss = (cfg.w_target * l_tgt + cfg.w_teacher * l_tch + cfg.w_ssim * l_ssim + cfg.w_feat * l_feat
                    + cfg.w_mse * F.mse_loss(s_out, y))
            adversarial = step >= cfg.steps - cfg.adv_steps
            l_adv = torch.zeros(())
            if adversarial:
                l_adv = lsgan(D(x, s_out), True)
                loss = loss + cfg.w_adv * l_adv
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if adversarial:
                d_loss = 0.5 * (lsgan(D(x, y), True) + lsgan(D(x, s_out.detach()), False))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            curve.add(step, l1_target=l_tgt.item(), l1_teacher=l_tch.item(), ssim_loss=l_ssim.item(),
                      feat=float(l_feat.detach()), adv=l_adv.item())
            pb.update(1)
            pb.set_postfix(l1=f"{l_tgt.item():.4f}", ssim=f"{1 - l_ssim.item():.3f}")
            train_s = earlier_s + time.perf_counter() - t0
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                atomic_torch_save(
                    {"S": S.state_dict(), "A": A.state_dict(), "D": D.state_dict(), "opt": opt.state_dict(),
                     "opt_d": opt_d.state_dict(), "sched": sched.state_dict(), "step": step + 1,
                     "seconds": train_s},
                    state_path,
                )
                curve.save()
    curve.save()
    S.eval()
    return S, {"seconds": train_s, "steps": cfg.steps, "loss_tail": curve.summary() if curve.rows else {}}
