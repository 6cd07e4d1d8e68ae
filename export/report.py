"""Human-readable outputs of an export: model card and a side-by-side comparison image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def _tile(img: np.ndarray) -> np.ndarray:
    """[0, 1] gray (H,W) or RGB (H,W,3) -> BGR uint8."""
    u8 = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(u8, cv2.COLOR_GRAY2BGR if u8.ndim == 2 else cv2.COLOR_RGB2BGR)


def side_by_side(inputs, student, teacher, targets, path: Path) -> Path:
    """Rows of input | student | teacher | target, all at the target's size (a super-resolution
    input arrives already enlarged)."""
    rows = [np.hstack([_tile(t) for t in row]) for row in zip(inputs, student, teacher, targets)]
    img = np.vstack(rows)
    w = img.shape[1] // 4
    for i, name in enumerate(("input", "student", "teacher", "target")):
        cv2.putText(img, name, (i * w + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 220, 255), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def model_card(m: dict, data_note: str) -> str:
    """The bundle's MODEL_CARD.md from its manifest; ``data_note`` says what it was trained on."""
    q = m["metrics"]["held_out"]
    colour = int(m["io"]["input"]["channels"]) == 3
    head = "| output | PSNR dB | SSIM | gCNR (luma) | SNR (luma) |" if colour else "| output | PSNR dB | SSIM | gCNR | speckle SNR |"
    rows = [head, "|---|---|---|---|---|"]
    for k in ("input", "teacher", "student_fp32", "student_fp16", "student_int8-trt", "student_int8-cpu", "target"):
        if k in q:
            r = q[k]
            rows.append(f"| {k} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['gcnr']:.3f} | {r['speckle_snr']:.2f} |")
    gates = ["| artifact | vs fp32 dB | worst frame dB | task drop dB | evaluated as | kept float | ranges |",
             "|---|---|---|---|---|---|---|"]
    for k, g in m["metrics"]["gates"].items():
        rec = m["artifacts"][k]["recipe"]
        kept = ", ".join(rec.get("kept_float", [])) or "none"
        gates.append(f"| {k} | {g['psnr_vs_fp32']:.1f} | {g['worst_frame_psnr_vs_fp32']:.1f} | {g['task_drop_db']:+.3f} | "
                     f"{g.get('semantics', 'onnxruntime-cpu-kernels')} | {kept if k.startswith('int8') else '-'} | "
                     f"{rec.get('ranges', '-')} |")
    gates += ["", "`qdq-reference`: the Q/DQ graph run as written (exact int8 products, int32 sums), which is what "
              "TensorRT computes. `onnxruntime-cpu-kernels`: ONNX Runtime's fused CPU kernels, which is what the CPU "
              "artifact runs."]
    c = m["cost"]
    ratios = m["metrics"]["student_gain_ratio_vs_teacher"]
    scale = int(m["io"].get("scale", 1))
    baseline = [f"For this {scale}x super-resolution model the input row is the {m['metrics']['input_row']}; "
                f"every row is compared with the target at full resolution.", ""] if scale != 1 else []
    reproduce = "`make bundle` (see README)" if m["task"] == "us-enhance" else f"`ganrt export pipeline --task {m['task']}`"
    return "\n".join([
        f"# {m['task']} student — model card",
        "",
        m["description"] + ".",
        "",
        data_note + " Enhanced frames must stay labelled as AI-enhanced.",
        "",
        f"Held-out set: {q['frames']} simulated scenes ({q['hw'][0]}x{q['hw'][1]}), seeds from {q['seed0']}, never used in training.",
        "",
        *baseline,
        *rows,
        "",
        f"Student gain over input as a fraction of the teacher's: PSNR {_fmt(ratios['psnr'])}, SSIM {_fmt(ratios['ssim'])}.",
        "",
        "Artifacts (gate: >= 40 dB vs fp32 and <= 0.3 dB task PSNR drop):",
        "",
        *gates,
        "",
        f"Cost at 512x512{' output' if scale != 1 else ''}: student {c['student']['params']:,} params, {c['student']['macs_512'] / 1e9:.2f} GMAC; "
        f"teacher {c['teacher']['params']:,} params, {c['teacher']['macs_512'] / 1e9:.1f} GMAC "
        f"({c['mac_ratio_teacher_over_student']:.0f}x more).",
        "",
        f"Tools: {m['tools']}",
        "",
        f"Reproduce: {reproduce}.",
        "",
    ])
