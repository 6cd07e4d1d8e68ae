"""Second student stage: lesion-contrast fine-tune, then quantization-aware fine-tune.

Runs after distillation, from the distilled weights, with the teacher still in the loss:

1. contrast phase: the distillation losses plus a one-sided lesion-contrast term (soft gCNR of
   the output must not fall short of the cart-quality target's, on crops around simulated
   lesions). Distillation alone left the student 0.02-0.05 gCNR below the teacher: L1/SSIM on
   random crops barely see the few hundred lesion pixels of a frame.
2. QAT phase: the same losses on the fake-int8 forward *and* the float forward, plus an L1 tying
   the two together, with learned per-tensor clipping ranges (``export.qat``). The float weights
   are the fp32 artifact, the ranges go to the int8 quantizer, so the gate compares two forwards
   that training already pulled together.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import qat
from .archs import ResnetGenerator, StudentConfig, StudentGenerator
from .checkpoint import atomic_torch_save, load_state
from .data.pairs import PairBank
from .losses import contrast_shortfall, ssim
from .progress import LossLog, bar


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 500  # 0 skips the stage (no QAT ranges: the quantizer calibrates on its own)
    qat_start: int = 150  # steps of the contrast phase before fake quantization switches on
    batch: int = 8
    patch: int = 96
    lesion_batch: int = 6
    lr: float = 3e-4
    range_lr: float = 1e-2  # log-range parameters: about 1% per step at most
    w_target: float = 1.0
    w_teacher: float = 1.0
    w_ssim: float = 1.0
    w_contrast: float = 0.5
    w_consistency: float = 2.0
    w_mse: float = 0.0  # MSE on the target (see DistillConfig.w_mse); w_teacher = 0 skips the teacher
    seed: int = 2
    checkpoint_every: int = 100

    def to_dict(self) -> dict:
        return asdict(self)


def _task_loss(out, y, t_out, cfg: FinetuneConfig):
    loss = cfg.w_target * F.l1_loss(out, y) + cfg.w_ssim * (1.0 - ssim(out, y)) + cfg.w_mse * F.mse_loss(out, y)
    return loss if t_out is None else loss + cfg.w_teacher * F.l1_loss(out, t_out)


def finetune_student(bank: PairBank, teacher: ResnetGenerator, student: StudentGenerator, run_dir: Path,
                     arch: StudentConfig, cfg: FinetuneConfig, resume: bool = True, progress: bool = True,
                     ) -> tuple[StudentGenerator, list[qat.ConvRange] | None, dict]:
    """Returns the plain (float) student, the learned int8 ranges (None when QAT did not run) and a summary."""
    if cfg.steps <= 0:
        return student, None, {"steps": 0}
    torch.manual_seed(cfg.seed)
    teacher.eval().requires_grad_(False)
    rng0 = np.random.default_rng([cfg.seed, 0])
    calib = [torch.from_numpy(bank.batch(rng0, cfg.batch, cfg.patch)[0]) for _ in range(4)]
    Q = qat.prepare_qat(student, calib)
    qat.set_quantize(Q, False)
    opt = torch.optim.Adam([{"params": qat.weight_parameters(Q), "lr": cfg.lr},
                            {"params": qat.range_parameters(Q), "lr": cfg.range_lr}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.1)
    state_path, curve = run_dir / "finetune_state.pt", LossLog(run_dir / "finetune_loss")
    start, earlier_s = 0, 0.0
    if resume and state_path.exists():
        st = load_state(state_path)
        Q.load_state_dict(st["Q"]), opt.load_state_dict(st["opt"]), sched.load_state_dict(st["sched"])
        start, earlier_s = int(st["step"]), float(st.get("seconds", 0.0))
        curve.truncate(start)
    rng = np.random.default_rng([cfg.seed, start])
    t0, train_s = time.perf_counter(), earlier_s
    Q.train()
    with bar(cfg.steps, start, "finetune", progress) as pb:
        for step in range(start, cfg.steps):
            in_qat = step >= cfg.qat_start
            if step == cfg.qat_start:  # ranges from the weights as they are now, then learned
                qat.set_quantize(Q, False)
                Q.eval()
                fresh = qat.observe_ranges(Q, calib)
                Q.train()
                with torch.no_grad():
                    for m, (r_in, r_out) in zip((m for m in Q.modules() if isinstance(m, qat.QatConv2d)), fresh):
                        m.log_in.fill_(float(np.log(r_in))), m.log_out.fill_(float(np.log(r_out)))
            x_np, y_np = bank.batch(rng, cfg.batch, cfg.patch)
            x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
            with torch.no_grad():
                t_out = teacher(x) if cfg.w_teacher else None
            lb = bank.lesion_batch(rng, cfg.lesion_batch, cfg.patch)
            qat.set_quantize(Q, in_qat)
            out = Q(x)
            loss = _task_loss(out, y, t_out, cfg)
            l_con = torch.zeros(())
            if lb is not None and cfg.w_contrast > 0:
                xl, yl, ml, mb = (torch.from_numpy(a) for a in lb)
                l_con = contrast_shortfall(Q(xl), yl, ml, mb)
                loss = loss + cfg.w_contrast * l_con
            l_cons = torch.zeros(())
            if in_qat:
                qat.set_quantize(Q, False)
                out_f = Q(x)
                l_cons = F.l1_loss(out, out_f)
                loss = 0.5 * (loss + _task_loss(out_f, y, t_out, cfg)) + cfg.w_consistency * l_cons
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            curve.add(step, l1_target=F.l1_loss(out.detach(), y).item(), contrast=l_con.item(),
                      consistency=l_cons.item(), qat=float(in_qat))
            pb.update(1)
            pb.set_postfix(l1=f"{F.l1_loss(out.detach(), y).item():.4f}", con=f"{l_con.item():.3f}",
                           qdiff=f"{l_cons.item():.4f}")
            train_s = earlier_s + time.perf_counter() - t0
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                atomic_torch_save({"Q": Q.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                                   "step": step + 1, "seconds": train_s}, state_path)
                curve.save()
    curve.save()
    Q.eval()
    ranges = qat.conv_ranges(Q) if cfg.steps > cfg.qat_start else None
    plain = qat.strip_qat(Q, StudentGenerator(arch)).eval()
    summary = {"seconds": train_s, "steps": cfg.steps, "qat_steps": max(cfg.steps - cfg.qat_start, 0),
               "ranges": [r.to_dict() for r in ranges] if ranges else None,
               "loss_tail": curve.summary() if curve.rows else {}}
    return plain, ranges, summary
