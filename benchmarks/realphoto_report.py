"""Markdown and montages for the RGB section of `ganrt bench realscan` (benchmarks/realphoto.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

TILE_W = 200
JPEG_QUALITY = 90
MONTAGE_SKIP = ("intraop-enhance bare int8-cpu",)  # one bare row is enough to see
CLEAN_LIMITS = {"local_l_median": 2.0, "local_chroma_median": 3.0}  # the do-no-harm targets (Lab units)
JUDGED = ("intraop-enhance bare fp32", "intraop-enhance bare int8-cpu", "intraop-enhance pipeline (defaults)")


def _tile(img: np.ndarray, label: str) -> np.ndarray:
    h, w = img.shape[:2]
    t = cv2.resize(img, (TILE_W, max(1, round(h * TILE_W / w))), interpolation=cv2.INTER_AREA)
    band = np.full((18, TILE_W, 3), 255, np.uint8)
    cv2.putText(band, label[:30], (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([band, t])


def montage(name: str, rows: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]], out_dir: Path) -> Path:
    """One row per condition: the original, then each method's output (BGR)."""
    lines = []
    for cond, orig, outs in rows:
        tiles = [_tile(orig, f"{cond}: original")]
        tiles += [_tile(o, f"{cond}: {m.replace('intraop-enhance ', '')}") for m, o in outs if m not in MONTAGE_SKIP]
        lines.append(np.hstack(tiles))
    path = out_dir / f"rgb-{name}_montage.jpg"  # photographs: JPEG keeps the committed files small
    cv2.imwrite(str(path), np.vstack(lines), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return path


def _clean_table(result: dict) -> list[str]:
    out = ["| image | method | local L* median / p95 | local chroma median / p95 | CIEDE2000 median / mean | "
           "detail kept median / p5 |", "|---|---|---|---|---|---|"]
    for name, e in result["images"].items():
        c = e["conditions"]["clean"]
        for m, v in c["methods"].items():
            note = f" ({c['pipeline_outcome']})" if m.endswith("pipeline (defaults)") else ""
            out.append(f"| {name} | {m}{note} | {v['local_l_median']} / {v['local_l_p95']} | "
                       f"{v['local_chroma_median']} / {v['local_chroma_p95']} | "
                       f"{v['ciede2000_median']} / {v['ciede2000_mean']} | "
                       f"{v.get('detail_kept_median', '-')} / {v.get('detail_kept_p5', '-')} |")
    return out


def _degraded_table(result: dict) -> list[str]:
    out = ["| image | degradation | method | PSNR dB | SSIM | CIEDE2000 mean |", "|---|---|---|---|---|---|"]
    for name, e in result["images"].items():
        for cond, c in e["conditions"].items():
            if cond == "clean":
                continue
            for m, v in c["methods"].items():
                note = f" ({c['pipeline_outcome']})" if m.endswith("pipeline (defaults)") else ""
                out.append(f"| {name} | {cond} | {m}{note} | {v['psnr_db']} | {v['ssim']} | {v['ciede2000_mean']} |")
    return out


def verdicts(result: dict) -> dict[str, dict]:
    """Per judged method: images whose clean frame keeps the do-no-harm limits, and degraded
    (image, degradation) cases where it beats CLAHE + NLM on both PSNR and CIEDE2000."""
    res = {}
    for m in JUDGED:
        clean, beat, cases = [], 0, 0
        for name, e in result["images"].items():
            for cond, c in e["conditions"].items():
                v = c["methods"].get(m)
                if v is None:
                    continue
                if cond == "clean":
                    clean.append(name) if all(v[k] <= lim for k, lim in CLEAN_LIMITS.items()) else None
                    continue
                ref = c["methods"]["clahe+nlm"]
                cases += 1
                beat += int(v["psnr_db"] > ref["psnr_db"] and v["ciede2000_mean"] < ref["ciede2000_mean"])
        res[m] = {"clean_within_limits": clean, "images": len(result["images"]),
                  "beats_clahe_nlm": beat, "degraded_cases": cases}
    return res


def to_markdown(result: dict) -> str:
    env = result.get("environment", {})
    lines = ["# Real-reference benchmark, RGB: intraop-enhance on real colour photographs", "",
             "`ganrt bench realscan --task intraop-enhance --out benchmarks/results/realscan` "
             "(benchmarks/realphoto.py; measures in benchmarks/realphoto_metrics.py).", "",
             f"Report images (scikit-image, bundled): {', '.join(result['report_images'])}. "
             f"Tuning images (colour guard, training pairs; not reported): "
             f"{', '.join(result['tuning_images_not_reported'])}.", "",
             f"Baselines: {result['baselines']}.", "",
             f"Degradations (export/data/photo_degrade.py, fixed seed): {result['degradations']}.", "",
             f"Run: {result['seconds']} s; environment: {env}.", "",
             "## Targets", "",
             f"Clean: local L* median <= {CLEAN_LIMITS['local_l_median']} and local chroma median <= "
             f"{CLEAN_LIMITS['local_chroma_median']} (Lab units) per image. Degraded: beats CLAHE + NLM on "
             "PSNR and CIEDE2000 in every (image, degradation).", "",
             "| method | clean images within limits | degraded cases beating CLAHE + NLM |", "|---|---|---|"]
    for m, v in verdicts(result).items():
        lines.append(f"| {m} | {len(v['clean_within_limits'])} / {v['images']} "
                     f"({', '.join(v['clean_within_limits']) or 'none'}) | {v['beats_clahe_nlm']} / {v['degraded_cases']} |")
    lines += ["", "## Clean frames: change against the input", ""] + _clean_table(result)
    lines += ["", "## Degraded frames: restoration against the original", ""] + _degraded_table(result)
    lines += ["", "Montages: " + ", ".join(f"`{e['montage']}`" for e in result["images"].values() if "montage" in e), ""]
    return "\n".join(lines)
