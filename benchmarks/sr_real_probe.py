"""Can one us-sr2x student beat bicubic on real scans and keep its simulated quality? A probe.

    python -m ganrt.benchmarks.sr_real_probe --out benchmarks/results [--pairs resolution]

Not the export. A fresh student of the bundle's architecture with a bicubic base (``StudentConfig.base``)
learns the 2x real-reference task on the real *tuning* cine only
(examples_ybr_color.dcm: area-downsampled frame -> frame, scale-jittered 0.6-1.4 so the grain
varies), mixed with a fraction of simulated us-sr2x pairs (export/data/us_domain.py), either
``restoration`` pairs (the point-of-care render reduced 2x -> the cart render: resolution, speckle,
noise and clutter at once; the us-sr2x pairs until the resolution-only redefinition) or
``resolution`` pairs (the cart render reduced 2x -> itself: what the task's pairs are now). Each
mixture is scored on (1) the 2x real-reference check of the real-scan benchmark
(benchmarks/realscan.py ``sr_check``: PSNR over the annotated imaging area, luma) on every
acquisition that is *not* tuned on, and (2) the held-out set of the same simulated pairs (seeds
900000.., 256^2; export/evaluate.quality).

The tuning split is stricter than export/realscans.py's: examples_jpeg2k.dcm is the same GE scene
as the reported examples_rgb_color.dcm at twice the size, so it is left out of the tuning here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

TUNE = ("echo-ybr",)  # annotation names (benchmarks/realscan_annotations.json)
NOT_REPORTED = ("echo-ybr", "ge-doppler-j2k")  # tuned on, or the same scene as a reported acquisition
EVAL_SEED0, EVAL_FRAMES, SIM_TRAIN = 900_000, 64, 300
PATCH = 48  # low-resolution patch side


def sim_pairs(kind: str, seeds: range):
    """Simulated us-sr2x pairs at 256^2: ``restoration`` or ``resolution`` (see the module docstring)."""
    from ganrt.export.data.simulator import SimConfig
    from ganrt.export.data.us_domain import render_domain_pair
    from ganrt.export.tasks import pair_set

    cfg = SimConfig(out_hw=(256, 256))
    return pair_set([render_domain_pair(s, cfg, 2, resolution_only=kind == "resolution") for s in seeds])


def _student(torch, bundle: Path, fresh: bool):
    from safetensors.torch import load_file

    from ganrt.runtime.backends.torch.models import build_student

    man = json.loads((bundle / "manifest.json").read_text())
    if not fresh:
        model = build_student(torch, man["weights"]["config"])
        model.load_state_dict(load_file(str(bundle / man["weights"]["file"])))
        return model
    model = build_student(torch, {**man["weights"]["config"], "base": "bicubic"})
    # start at the bicubic enlargement: a near-zero tail (the residual is then ~0)
    torch.nn.init.normal_(model.tail.weight, std=1e-3)
    torch.nn.init.zeros_(model.tail.bias)
    return model


def _luma_frames(names: tuple[str, ...]) -> dict[str, list[np.ndarray]]:
    from ganrt.runtime.model.ops import to_uint8

    from .realscan_data import load_annotations, locate, read_frames
    from .realscan_metrics import luma

    out = {}
    for acq in load_annotations():
        if acq.name in names or not names:
            path, _why = locate(acq)
            if path is not None:
                out[acq.name] = [luma(to_uint8(f)) for f in read_frames(path, 30)[0]]
    return out


def _upscale(torch, model, small: np.ndarray) -> np.ndarray:
    h, w = small.shape
    x = np.pad(small, ((0, h % 2), (0, w % 2)), mode="edge").astype(np.float32) / 255
    with torch.no_grad():
        y = model(torch.from_numpy(x)[None, None])[0, 0].numpy()
    return np.clip(y[: 2 * h, : 2 * w] * 255 + 0.5, 0, 255).astype(np.uint8)


def real_check(torch, model, frames: dict[str, list[np.ndarray]]) -> dict[str, dict[str, float]]:
    """Per acquisition: mean PSNR (imaging area) of the model and of bicubic, as realscan.sr_check."""
    from .realscan import SR_FRAMES
    from .realscan_data import load_annotations

    masks = {a.name: a.imaging_mask() for a in load_annotations()}
    res = {}
    for name, fr in frames.items():
        ps: dict[str, list[float]] = {"model": [], "bicubic": []}
        for i in np.linspace(0, len(fr) - 1, min(SR_FRAMES, len(fr))).astype(int):
            o = fr[i]
            h, w = o.shape
            s = cv2.resize(o, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            for k, r in (("bicubic", cv2.resize(s, (w, h), interpolation=cv2.INTER_CUBIC)),
                         ("model", _upscale(torch, model, s))):
                r = r if r.shape == o.shape else cv2.resize(r, (w, h), interpolation=cv2.INTER_AREA)
                m = masks[name]
                ps[k].append(10 * np.log10(255.0 ** 2 / float(((o[m].astype(np.float64) - r[m]) ** 2).mean())))
        res[name] = {k: round(float(np.mean(v)), 2) for k, v in ps.items()}
        res[name]["gain_db"] = round(res[name]["model"] - res[name]["bicubic"], 2)
    return res


def sim_quality(torch, model, held) -> dict[str, float]:
    from ganrt.export.evaluate import quality

    with torch.no_grad():
        outs = np.concatenate([model(torch.from_numpy(held.inputs[i:i + 16])[:, None])[:, 0].numpy()
                               for i in range(0, len(held.inputs), 16)])
    return {k: round(v, 4) for k, v in quality(outs, held).items()}


class _Patches:
    """Low/high-resolution patch pairs: real (area 2x of a scale-jittered tuning frame) or simulated."""

    def __init__(self, tune: list[np.ndarray], sim, sim_fraction: float, seed: int) -> None:
        self.tune, self.sim, self.frac = tune, sim, sim_fraction
        self.rng = np.random.default_rng(seed)

    def real(self) -> tuple[np.ndarray, np.ndarray]:
        rng, p = self.rng, PATCH
        while True:
            f = self.tune[rng.integers(len(self.tune))]
            s = rng.uniform(0.6, 1.4)
            g = cv2.resize(f, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
            if min(g.shape) < 2 * p:
                continue
            y0, x0 = rng.integers(0, g.shape[0] - 2 * p + 1), rng.integers(0, g.shape[1] - 2 * p + 1)
            hr = g[y0:y0 + 2 * p, x0:x0 + 2 * p]
            if hr.mean() < 8 and rng.random() < 0.8:  # mostly tissue, some black surround
                continue
            hr = np.ascontiguousarray(hr[:, ::-1] if rng.random() < 0.5 else hr)
            lr = cv2.resize(hr, (p, p), interpolation=cv2.INTER_AREA)
            return lr.astype(np.float32) / 255, hr.astype(np.float32) / 255

    def simulated(self) -> tuple[np.ndarray, np.ndarray]:
        rng, p = self.rng, PATCH
        i = rng.integers(len(self.sim.inputs))
        y0, x0 = rng.integers(0, self.sim.inputs.shape[1] - p + 1, 2)
        return (self.sim.inputs[i, y0:y0 + p, x0:x0 + p],
                self.sim.targets[i, 2 * y0:2 * y0 + 2 * p, 2 * x0:2 * x0 + 2 * p])

    def batch(self, torch, n: int):
        pairs = [self.simulated() if self.rng.random() < self.frac else self.real() for _ in range(n)]
        return tuple(torch.from_numpy(np.stack([q[j] for q in pairs]))[:, None] for j in (0, 1))


def train(torch, model, patches: _Patches, steps: int, lr: float) -> list[float]:
    """L1 + 10 x MSE (the check is PSNR), Adam with cosine decay, gradients clipped at 1."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    model.train()
    for _ in range(steps):
        x, y = patches.batch(torch, 16)
        out = model(x)
        loss = torch.nn.functional.l1_loss(out, y) + 10 * torch.nn.functional.mse_loss(out, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _summary(torch, model, frames, held) -> dict:
    check = real_check(torch, model, frames)
    reported = {k: v for k, v in check.items() if k not in NOT_REPORTED}
    gains = [v["gain_db"] for v in reported.values()]
    return {"real_2x_check": check, "reported_mean_gain_db": round(float(np.mean(gains)), 2),
            "reported_min_gain_db": round(float(np.min(gains)), 2), "simulated_held_out": sim_quality(torch, model, held)}


def to_markdown(r: dict) -> str:
    env = r["environment"]
    lines = ["# us-sr2x real-scan probe (benchmarks/sr_real_probe.py)", "",
             f"Fresh bicubic-base students of the bundle's architecture, {r['steps']} steps each (lr {r['lr']}), "
             f"on the real tuning cine ({', '.join(TUNE)}) mixed with a fraction of simulated us-sr2x "
             f"{r.get('pairs', 'restoration')} pairs. "
             f"{r['seconds']} s on {env.get('cpu')} {env.get('cpu_flags')} (load {env.get('load_avg')}). "
             "Not a bundle: fp32 torch, no teacher, no QAT.", "",
             f"Reported acquisitions (never tuned on): {', '.join(r['reported'])}. "
             f"Simulated: the held-out set of the same {r.get('pairs', 'restoration')} pairs (64 x 256^2).", "",
             "| student | 2x real check: gain over bicubic, mean / min over reported (dB) | per acquisition (dB) "
             "| simulated PSNR / SSIM / gCNR |", "|---|---|---|---|"]
    for name, s in r["students"].items():
        per = ", ".join(f"{k} {v['gain_db']:+.2f}" for k, v in s["real_2x_check"].items() if k in r["reported"])
        q = s["simulated_held_out"]
        lines.append(f"| {name} | {s['reported_mean_gain_db']:+.2f} / {s['reported_min_gain_db']:+.2f} | {per} "
                     f"| {q['psnr']:.2f} / {q['ssim']:.4f} / {q['gcnr']:.3f} |")
    q = r["bicubic_simulated_held_out"]
    lines += ["", f"Bicubic on the simulated held-out set: {q['psnr']:.2f} / {q['ssim']:.4f} / {q['gcnr']:.3f}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    from .env import environment, save_result

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("runtime/models/us-sr2x"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--sim-fractions", type=float, nargs="+", default=[0.0, 0.15, 0.5])
    ap.add_argument("--pairs", choices=("restoration", "resolution"), default="restoration")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    frames = _luma_frames(())
    held = sim_pairs(a.pairs, range(EVAL_SEED0, EVAL_SEED0 + EVAL_FRAMES))
    sim = sim_pairs(a.pairs, range(0, SIM_TRAIN))
    bic = type("Bicubic", (torch.nn.Module,), {"forward": lambda self, x: torch.clamp(
        torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False), 0, 1)})()
    base = json.loads((a.bundle / "manifest.json").read_text())["weights"]["config"].get("base", "bilinear")
    students = {f"bundled us-sr2x ({base} base)": _summary(torch, _student(torch, a.bundle, False).eval(), frames, held)}
    for frac in a.sim_fractions:
        torch.manual_seed(0)
        model = _student(torch, a.bundle, True)
        train(torch, model, _Patches(frames[TUNE[0]], sim, frac, seed=1), a.steps, a.lr)
        students[f"bicubic base, {frac:.0%} simulated pairs"] = _summary(torch, model, frames, held)
    result = {"probe": "us-sr2x real", "pairs": a.pairs, "steps": a.steps, "lr": a.lr, "tune": list(TUNE),
              "reported": [k for k in frames if k not in NOT_REPORTED], "students": students,
              "bicubic_simulated_held_out": sim_quality(torch, bic, held),
              "seconds": round(time.perf_counter() - t0, 1), "environment": environment()}
    stem = "sr_real_probe" if a.pairs == "restoration" else f"sr_real_probe_{a.pairs}"
    print(save_result(a.out, stem, result, to_markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
