"""`ganrt bench realscan`'s outputs: the montage PNG of each acquisition and the Markdown table.

Montage: the input frame and the same frame with the annotated regions drawn on it, then one
row per method (the bare students and the default pipelines): its output | the signed
difference of the luma against what the runtime shows for an untouched frame (mid grey =
unchanged, brighter = the output is brighter, amplified ``DIFF_GAIN`` times). Panels are
shrunk until the PNG is under ``MAX_PNG_BYTES``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .realscan_data import Acquisition
from .realscan_metrics import luma, untouched

DIFF_GAIN = 2.0
DIFF_STEP = 6  # display levels: the difference panel is posterised (1.5 grey levels of change a step) to stay small
PANEL_W = 480
MAX_PNG_BYTES = 400_000
LABEL_H = 18
REGION_COLOURS = {"imaging": (0, 255, 255), "tissue": (0, 255, 0), "homogeneous": (255, 255, 0),
                  "dark": (0, 0, 255), "dark_ref": (255, 128, 0), "ui": (255, 0, 255), "graphics": (0, 128, 255)}


def _bgr(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img


def _panel(img: np.ndarray, w: int, label: str) -> np.ndarray:
    h = int(round(img.shape[0] * w / img.shape[1]))
    p = cv2.resize(_bgr(img), (w, h), interpolation=cv2.INTER_AREA)
    bar = np.zeros((LABEL_H, w, 3), np.uint8)
    cv2.putText(bar, label, (4, LABEL_H - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([bar, p])


def signed_diff(inp: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Luma of ``out`` minus that of the untouched frame at ``out``'s size, around mid grey."""
    d = luma(out).astype(np.float32) - luma(untouched(inp, out.shape[:2])).astype(np.float32)
    shown = np.round(DIFF_GAIN * d / DIFF_STEP) * DIFF_STEP
    return np.clip(128.0 + shown, 0, 255).astype(np.uint8)


def regions_drawn(acq: Acquisition, inp: np.ndarray) -> np.ndarray:
    img = _bgr(inp).copy()
    cv2.polylines(img, [np.array(acq.imaging, np.int32)], True, REGION_COLOURS["imaging"], 1)
    boxes = [("tissue", b) for b in acq.tissue] + [("ui", b) for b in acq.ui] + \
        [("graphics", b) for b in acq.graphics] + [(k, getattr(acq, k)) for k in ("homogeneous", "dark", "dark_ref")]
    for kind, b in boxes:
        if b is not None:
            x, y, w, h = b
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), REGION_COLOURS[kind], 1)
    return img


def _grid(acq: Acquisition, index: int, shots: dict[str, tuple[np.ndarray, np.ndarray]], labels: dict[str, str],
          w: int) -> np.ndarray:
    inp = next(iter(shots.values()))[0]
    lines = [np.hstack([_panel(inp, w, f"{acq.name} frame {index}: input ({inp.shape[1]}x{inp.shape[0]})"),
                        _panel(regions_drawn(acq, inp), w, "annotated regions (tissue green, UI magenta)")])]
    for row, (rin, out) in shots.items():
        if row == "input":
            continue
        lines.append(np.hstack([_panel(out, w, f"{row}, {out.shape[1]}x{out.shape[0]}"),
                                _panel(signed_diff(rin, out), w, f"{labels.get(row, '')}out - untouched, x{DIFF_GAIN:g}")]))
    return np.vstack(lines)


def montage(acq: Acquisition, index: int, shots: dict[str, tuple[np.ndarray, np.ndarray]], labels: dict[str, str],
            out_dir: Path) -> Path:
    path = out_dir / f"{acq.name}_montage.png"
    w = PANEL_W
    while True:
        ok, buf = cv2.imencode(".png", _grid(acq, index, shots, labels, w), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise OSError(f"could not encode {path.name}")
        if len(buf) < MAX_PNG_BYTES or w <= 160:
            break
        w = int(w * 0.9)
    path.write_bytes(buf.tobytes())
    return path


def _f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


ROW_HEADER = ("| method | Δ local mean, tissue area: median / p95 | Δ local mean, enhanced area: median / p95 "
              "| speckle energy out/in | ENL in → out | EPI | gCNR in → out | changed: imaging area / UI / graphics / colour "
              "| shown raw |\n|---|---|---|---|---|---|---|---|---|")


def row_line(r: dict) -> str:
    lm = r["local_mean_shift"]
    t, e = lm["tissue_area"], lm["enhanced_area"]
    ch = r["changed"]
    g = r.get("gcnr")
    raw = "-"
    if r["kind"] == "pipeline":
        reasons = ", ".join(f"{k} {v}" for k, v in r.get("raw_by_reason", {}).items())
        raw = f"{_pct(r.get('raw_fraction'))}" + (f" ({reasons})" if reasons else "")
    changed = " / ".join(_pct(ch[k]["fraction"]) if ch[k]["of"] else "-" for k in ("tissue", "ui", "graphics", "colour"))
    return (f"| {r['row']} | {_f(t['median'], 2)} / {_f(t['p95'], 1)} | {_f(e['median'], 2)} / {_f(e['p95'], 1)} "
            f"| {_f(r['speckle_energy_ratio'], 2)} | {_f(r['enl']['input'], 1)} → {_f(r['enl']['output'], 1)} "
            f"| {_f(r['epi'], 3)} | {(_f(g['input'], 3) + ' → ' + _f(g['output'], 3)) if g else '-'} "
            f"| {changed} | {raw} |")


def sr_lines(sr: dict) -> list[str]:
    if "skipped" in sr:
        return [f"2x real-reference check skipped: {sr['skipped']}."]
    lines = ["| 2x restore of the area-downsampled frame | PSNR (imaging area) dB | SSIM (imaging area) "
             "| PSNR (whole frame) dB |", "|---|---|---|---|"]
    for k, v in sr.items():
        if isinstance(v, dict):
            lines.append(f"| {k} | {v['psnr_db']:.2f} | {v['ssim']:.4f} | {v['psnr_whole_frame_db']:.2f} |")
    return lines


HEADLINE_ROWS = ("bilateral", "us-enhance pipeline (defaults)", "us-sr2x pipeline (defaults)")


def headline(acqs: list[dict]) -> list[str]:
    """Per acquisition: local-mean shift over the tissue area (median / p95) and frames shown raw,
    for the bilateral filter and each bundle's default pipeline; us-sr2x's 2x PSNR vs bicubic."""
    head = " | ".join(f"{r}: Δ local mean med / p95" + (", raw" if "pipeline" in r else "") for r in HEADLINE_ROWS)
    lines = ["## Headline", "", f"| acquisition | {head} | 2x real reference: us-sr2x int8-cpu vs bicubic, PSNR dB |",
             "|---|" + "---|" * (len(HEADLINE_ROWS) + 1)]
    for acq in acqs:
        if "skipped" in acq:
            lines.append(f"| {acq['name']} | skipped: {acq['skipped']} |" + " |" * len(HEADLINE_ROWS))
            continue
        rows = {r["row"]: r for r in acq["rows"]}
        cells = []
        for name in HEADLINE_ROWS:
            r = rows.get(name)
            if r is None:
                cells.append("-")
                continue
            t = r["local_mean_shift"]["tissue_area"]
            cell = f"{_f(t['median'], 2)} / {_f(t['p95'], 1)}"
            cells.append(cell + (f", {_pct(r.get('raw_fraction'))}" if r["kind"] == "pipeline" else ""))
        sr = acq.get("sr2x_real_reference", {})
        srs = f"{sr['us-sr2x int8-cpu']['psnr_db']:.1f} vs {sr['bicubic']['psnr_db']:.1f}" \
            if "us-sr2x int8-cpu" in sr else "-"
        lines.append(f"| {acq['name']} | " + " | ".join(cells) + f" | {srs} |")
    return lines + [""]


def to_markdown(result: dict, notes: str = "") -> str:
    """The tables (one per acquisition) under a short header; ``notes``: hand-written text kept
    with the results (what the montages show, which packages were checked)."""
    from .env import describe

    cfg = result["config"]
    env = result["environment"]
    lines = ["# Real-scan benchmark (`ganrt bench realscan`)", "",
             f"Measured {env['timestamp_utc']} on {describe(env)}, load {env.get('load_avg')}; "
             f"{result['seconds']} s in all. Up to {cfg['max_frames']} frames per acquisition. Pipeline rows: "
             f"`{cfg['pipeline_command']}` (the CLI's defaults for the bundle; "
             f"the deadline is set generously so that the runtime's checks, not this CPU's speed, "
             f"decide which frames are shown raw).", "",
             "Δ local mean: |G(out) − G(in)| in grey levels, G a Gaussian of σ = 1.5 % of the frame width; "
             "*tissue area* = the hand-drawn imaging area minus UI/graphics boxes, *enhanced area* = its pixels "
             "the method changed (> 2 levels). Speckle energy: high-pass energy out/in in the tissue patches. "
             "ENL in the homogeneous patch. EPI: Laplacian correlation over the imaging area. gCNR: dark "
             "structure vs tissue. Changed: fraction of pixels in the imaging area / UI boxes / graphics-caliper "
             "boxes / colour pixels of the input (chroma > 40) that moved by more than 2 levels. Definitions in "
             "`benchmarks/realscan_metrics.py`; regions in `benchmarks/realscan_annotations.json`.", ""]
    lines += headline(result["acquisitions"])
    if notes:
        lines += [notes.rstrip(), ""]
    for acq in result["acquisitions"]:
        lines.append(f"## {acq['name']}: {acq['what']}")
        lines.append("")
        if "skipped" in acq:
            lines += [f"Skipped: {acq['skipped']}.", ""]
            continue
        lines += [f"`{acq['source']}`, {acq['frames']} frame(s) of {acq['frame_hw'][1]}x{acq['frame_hw'][0]} "
                  f"{acq['dtype']}" + (f"; montage `{acq['montage']}`" if acq.get("montage") else "") + ".", "",
                  ROW_HEADER]
        lines += [row_line(r) for r in acq["rows"]]
        if "sr2x_real_reference" in acq:
            lines += ["", *sr_lines(acq["sr2x_real_reference"])]
        lines.append("")
    return "\n".join(lines)
