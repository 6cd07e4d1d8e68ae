"""Teacher GAN training: ResNet generator + PatchGAN, LSGAN + L1 x100 (pix2pix)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .archs import PatchDiscriminator, ResnetGenerator, TeacherConfig
from .checkpoint import atomic_torch_save, load_state
from .data.pairs import PairBank
from .losses import lsgan
from .progress import LossLog, bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherTrainConfig:
    steps: int = 800
    batch: int = 2
    patch: int = 128
    lr: float = 2e-4
    l1_weight: float = 100.0
    warmup_l1_steps: int = 100  # L1-only start: the generator gets the anatomy before D pushes texture
    seed: int = 0
    checkpoint_every: int = 100
    threads: int = 0  # 0 = torch default

    def to_dict(self) -> dict:
        return asdict(self)


def train_teacher(
    bank: PairBank,
    run_dir: Path,
    arch: TeacherConfig,
    cfg: TeacherTrainConfig,
    resume: bool = True,
    progress: bool = True,
) -> tuple[ResnetGenerator, PatchDiscriminator, dict]:
    """Train (or resume) the teacher; returns G, D and a summary with the loss-curve tail."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    G, D = ResnetGenerator(arch), PatchDiscriminator(arch.channels)
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr, betas=(0.5, 0.999))
    state_path, curve = run_dir / "teacher_state.pt", LossLog(run_dir / "teacher_loss")
    start, earlier_s = 0, 0.0
    if resume and state_path.exists():
        st = load_state(state_path)
        G.load_state_dict(st["G"]), D.load_state_dict(st["D"])
        opt_g.load_state_dict(st["opt_g"]), opt_d.load_state_dict(st["opt_d"])
        start = int(st["step"])
        earlier_s = float(st.get("seconds", 0.0))  # training time of earlier, interrupted invocations
        curve.truncate(start)
        log.info("teacher: resumed at step %d", start)
    rng = np.random.default_rng([cfg.seed, start])  # resumed runs draw fresh, still deterministic batches
    G.train(), D.train()
    t0 = time.perf_counter()
    train_s = earlier_s  # through the last finished step (what a checkpoint records)
    with bar(cfg.steps, start, "teacher", progress) as pb:
        for step in range(start, cfg.steps):
            x_np, y_np = bank.batch(rng, cfg.batch, cfg.patch)
            x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
            fake = G(x)
            adversarial = step >= cfg.warmup_l1_steps
            d_loss = torch.zeros(())
            if adversarial:
                d_loss = 0.5 * (lsgan(D(x, y), True) + lsgan(D(x, fake.detach()), False))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            l1 = F.l1_loss(fake, y)
            g_adv = lsgan(D(x, fake), True) if adversarial else torch.zeros(())
            g_loss = g_adv + cfg.l1_weight * l1
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            curve.add(step, l1=l1.item(), g_adv=g_adv.item(), d=d_loss.item())
            pb.update(1)
            pb.set_postfix(l1=f"{l1.item():.4f}", d=f"{d_loss.item():.3f}")
            train_s = earlier_s + time.perf_counter() - t0
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                atomic_torch_save(
                    {"G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(),
                     "opt_d": opt_d.state_dict(), "step": step + 1,
                     "seconds": train_s},
                    state_path,
                )
                curve.save()
    curve.save()
    G.eval(), D.eval()
    return G, D, {"seconds": train_s, "steps": cfg.steps, "loss_tail": curve.summary() if curve.rows else {},
                  "stability": stability_report(curve)}


def stability_report(curve: LossLog) -> dict:
    """Flags the classic GAN failure signs in the recorded curve (D wins outright; L1 diverges)."""
    if not curve.rows:
        return {}
    d = np.array([r.get("d", 0.0) for r in curve.rows])
    l1 = np.array([r["l1"] for r in curve.rows])
    adv = d[d > 0]
    q = max(1, len(l1) // 10)
    return {
        "l1_first_10pct": float(l1[:q].mean()),
        "l1_last_10pct": float(l1[-q:].mean()),
        "d_loss_last_10pct": float(adv[-max(1, len(adv) // 10):].mean()) if adv.size else None,
        "d_collapsed": bool(adv.size and adv[-max(1, len(adv) // 10):].mean() < 0.02),
        "l1_diverged": bool(l1[-q:].mean() > 1.5 * l1[:q].mean()),
    }
