"""Human-readable outputs of an export: model card and a side-by-side comparison image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def side_by_side(inputs, student, teacher, targets, path: Path) -> Path:
    rows = []
    for row in zip(inputs, student, teacher, targets):
        tiles = [np.clip(t * 255 + 0.5, 0, 255).astype(np.uint8) for t in row]
        rows.append(np.hstack(tiles))
    img = cv2.cvtColor(np.vstack(rows), cv2.COLOR_GRAY2BGR)
    w = img.shape[1] // 4
    for i, name in enumerate(("input", "student", "teacher", "target")):
        cv2.putText(img, name, (i * w + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 220, 255), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def model_card(m: dict) -> str:
    q = m["metrics"]["held_out"]
    rows = ["| output | PSNR dB | SSIM | gCNR | speckle SNR |", "|---|---|---|---|---|"]
    for k in ("input", "teacher", "student_fp32", "student_fp16", "student_int8-trt", "student_int8-cpu", "target"):
        if k in q:
            r = q[k]
            rows.append(f"| {k} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['gcnr']:.3f} | {r['speckle_snr']:.2f} |")
    gates = ["| artifact | vs fp32 dB | task drop dB | recipe |", "|---|---|---|---|"]
    for k, g in m["metrics"]["gates"].items():
        rec = m["artifacts"][k]["recipe"]
        gates.append(f"| {k} | {g['psnr_vs_fp32']:.1f} | {g['task_drop_db']:+.3f} | {rec} |")
    c = m["cost"]
    ratios = m["metrics"]["student_gain_ratio_vs_teacher"]
    return "\n".join([
        f"# {m['task']} student — model card",
        "",
        m["description"] + ".",
        "",
        "Trained only on simulated pseudo-B-mode ultrasound (ganrt's physics simulator); not validated on",
        "patient data and not a diagnostic device. Enhanced frames must stay labelled as AI-enhanced.",
        "",
        f"Held-out set: {q['frames']} simulated scenes ({q['hw'][0]}x{q['hw'][1]}), seeds from {q['seed0']}, never used in training.",
        "",
        *rows,
        "",
        f"Student gain over input as a fraction of the teacher's: PSNR {_fmt(ratios['psnr'])}, SSIM {_fmt(ratios['ssim'])}.",
        "",
        "Artifacts (gate: >= 40 dB vs fp32 and <= 0.3 dB task PSNR drop):",
        "",
        *gates,
        "",
        f"Cost at 512x512: student {c['student']['params']:,} params, {c['student']['macs_512'] / 1e9:.2f} GMAC; "
        f"teacher {c['teacher']['params']:,} params, {c['teacher']['macs_512'] / 1e9:.1f} GMAC "
        f"({c['mac_ratio_teacher_over_student']:.0f}x more).",
        "",
        f"Tools: {m['tools']}",
        "",
        "Reproduce: `make bundle` (see README).",
        "",
    ])
