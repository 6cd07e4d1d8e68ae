"""Does the real-photograph training data fix intraop-enhance's colour casts? A short, cheap probe.

    python -m ganrt.benchmarks.intraop_data_probe --steps 1500 --threads 2 --out benchmarks/results/intraop_data_probe.json

Not the export: it fine-tunes today's bundled student (fp32 weights, no teacher, no QAT) with
L1 on the mixed training set (tasks._intraop_train_pairs: procedural endoscopy + the tuning
photographs) and compares it with the bundled student on (1) the simulated held-out set of the
export (endoscopy, seeds 900000.., 256x256: PSNR), (2) the clean report photographs (local L* and
chroma shift) and (3) the same photographs degraded as in the RGB benchmark (PSNR, SSIM, CIEDE2000
against the original, with CLAHE + NLM beside them; benchmarks/realphoto.py). The probe says whether the data recipe
moves both in the right direction at a budget this machine affords; the bundle is re-exported by
`ganrt export pipeline --task intraop-enhance`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

EVAL_SEED0, EVAL_FRAMES = 900_000, 64


def _student(torch, bundle: Path):
    from safetensors.torch import load_file

    from ganrt.runtime.backends.torch.models import build_student

    man = json.loads((bundle / "manifest.json").read_text())
    model = build_student(torch, man["weights"]["config"])
    model.load_state_dict(load_file(str(bundle / man["weights"]["file"])))
    return model


def _run(torch, model, rgb: np.ndarray) -> np.ndarray:
    """HxWx3 float RGB -> HxWx3 float RGB."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        return model(x)[0].numpy().transpose(1, 2, 0)


def _bgr(torch, model, bgr: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    out = np.clip(_run(torch, model, rgb) * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_RGB2BGR)


def _measure(torch, model, held, cases) -> dict:
    """Held-out PSNR; on the benchmark's report cases: clean colour shift, degraded restoration."""
    from ganrt.export.evaluate import quality

    from .realphoto_metrics import colour_shift, restoration

    outs = np.stack([_run(torch, model, held.inputs[i]) for i in range(len(held.inputs))])
    clean, degraded = {}, {}
    for name, cond, orig, inp in cases:
        out = _bgr(torch, model, inp)
        if cond == "clean":
            clean[name] = colour_shift(inp, out)
        else:
            degraded[f"{name} {cond}"] = restoration(orig, out)
    return {"held_out_psnr_db": round(quality(outs, held)["psnr"], 3), "clean_report_photos": clean,
            "degraded_report_photos": degraded}


def _finetune(torch, model, train, steps: int, batch: int, patch: int, lr: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n, h, w = train.inputs.shape[:3]
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, n, batch)
        rs, cs = rng.integers(0, h - patch + 1, batch), rng.integers(0, w - patch + 1, batch)
        x = np.stack([train.inputs[i, r:r + patch, c:c + patch] for i, r, c in zip(idx, rs, cs)]).transpose(0, 3, 1, 2)
        y = np.stack([train.targets[i, r:r + patch, c:c + patch] for i, r, c in zip(idx, rs, cs)]).transpose(0, 3, 1, 2)
        loss = torch.nn.functional.l1_loss(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def to_markdown(r: dict) -> str:
    b, f, c = r["bundled_student"], r["fine_tuned_on_mixed_pairs"], r["clahe+nlm_degraded_report_photos"]
    lines = ["# intraop-enhance data probe (benchmarks/intraop_data_probe.py)", "",
             f"Today's student fine-tuned {r['steps']} steps (L1, batch {r['batch']}, patch {r['patch']}, lr {r['lr']}) "
             f"on {r['train_pairs']} mixed pairs; {r['seconds']} s on {r['environment'].get('cpu')} "
             f"(load {r['environment'].get('load_avg')}). Not a bundle: no teacher, no QAT, fp32 torch.", "",
             f"Simulated held-out PSNR (endoscopy, 64 x 256^2): bundled {b['held_out_psnr_db']} dB, "
             f"fine-tuned {f['held_out_psnr_db']} dB.", "",
             "| clean report photo | bundled L* / chroma median | fine-tuned L* / chroma median |", "|---|---|---|"]
    for n, v in b["clean_report_photos"].items():
        w = f["clean_report_photos"][n]
        lines.append(f"| {n} | {v['local_l_median']} / {v['local_chroma_median']} | "
                     f"{w['local_l_median']} / {w['local_chroma_median']} |")
    lines += ["", "| degraded report photo | CLAHE + NLM PSNR / CIEDE2000 | bundled | fine-tuned | fine-tuned beats CLAHE + NLM |",
              "|---|---|---|---|---|"]
    for k, v in c.items():
        x, y = b["degraded_report_photos"][k], f["degraded_report_photos"][k]
        win = y["psnr_db"] > v["psnr_db"] and y["ciede2000_mean"] < v["ciede2000_mean"]
        lines.append(f"| {k} | {v['psnr_db']} / {v['ciede2000_mean']} | {x['psnr_db']} / {x['ciede2000_mean']} | "
                     f"{y['psnr_db']} / {y['ciede2000_mean']} | {'yes' if win else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import torch

    from ganrt.export.tasks import get_task

    from .env import environment
    from .realphoto import clahe_nlm, report_cases
    from .realphoto_metrics import restoration

    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, default=Path("runtime/models/intraop-enhance"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=320)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--save", type=Path, default=None, help="the fine-tuned weights (safetensors)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    task = get_task("intraop-enhance")
    held = task.make_pairs(range(EVAL_SEED0, EVAL_SEED0 + EVAL_FRAMES), (256, 256))
    train = task.make_train_pairs(range(0, a.pairs), (256, 256))
    cases = report_cases()
    baseline = {f"{n} {c}": restoration(o, clahe_nlm(i)) for n, c, o, i in cases if c != "clean"}
    model = _student(torch, a.bundle).eval()
    before = _measure(torch, model, held, cases)
    model.train()
    losses = _finetune(torch, model, train, a.steps, batch=8, patch=96, lr=5e-4, seed=1)
    model.eval()
    after = _measure(torch, model, held, cases)
    if a.save is not None:
        from safetensors.torch import save_file

        save_file(model.state_dict(), str(a.save))
    result = {"probe": "intraop-enhance data", "steps": a.steps, "train_pairs": a.pairs, "batch": 8, "patch": 96,
              "lr": 5e-4, "loss_first_50": round(float(np.mean(losses[:50])), 4),
              "loss_last_50": round(float(np.mean(losses[-50:])), 4), "bundled_student": before,
              "fine_tuned_on_mixed_pairs": after, "clahe+nlm_degraded_report_photos": baseline, "seconds": round(time.perf_counter() - t0, 1),
              "environment": environment()}
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    a.out.with_suffix(".md").write_text(to_markdown(result))
    print(json.dumps({k: result[k] for k in ("bundled_student", "fine_tuned_on_mixed_pairs")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
