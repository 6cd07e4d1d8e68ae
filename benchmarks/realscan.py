"""`ganrt bench realscan`: every method on every installed real ultrasound acquisition.

    ganrt bench realscan --out benchmarks/results/realscan   # = make bench-realscan

For each acquisition (``realscan_data``) and each method (``realscan_rows``) the measures of
``realscan_metrics`` over up to ``max_frames`` frames; for the super-resolution bundle a
real-reference check (a frame area-downsampled 2x, restored, compared with the original,
against bicubic and Lanczos); a montage per acquisition (``realscan_report``). Missing
optional acquisitions are skipped with a note.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ganrt.runtime.model.ops import to_uint8

from . import realscan_rows as rr
from .realscan_data import Acquisition, load_annotations, locate, read_frames
from .realscan_metrics import FrameMeasures, colour_mask, luma, region_masks

DEFAULT_BUDGET_MS = 1000.0  # generous: the pipeline rows judge the runtime's checks, not this CPU's speed
SR_FRAMES = 3  # frames per acquisition in the 2x real-reference check
MONTAGE_ROWS = ("us-enhance bare fp32", "us-sr2x bare fp32", "us-enhance pipeline (defaults)",
                "us-sr2x pipeline (defaults)")


@dataclass(frozen=True)
class RealscanConfig:
    out: Path | None = None  # where the montages go (None: none written)
    max_frames: int = 30
    acquisitions: tuple[str, ...] = ()  # () = all
    bundles: tuple[str, ...] = rr.BUNDLES
    precisions: tuple[str, ...] = rr.BARE_PRECISIONS
    pipeline: bool = True
    budget_ms: float | None = DEFAULT_BUDGET_MS  # None: the profile's (then the CPU's speed decides raw frames)
    profile: str = "cpu-x86-2core"
    montage: bool = True


@dataclass
class _Shots:
    """The frame each montage shows, per method."""

    index: int
    taken: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # a pipeline frame's outcome


def _measure_row(row: rr.Row, acq: Acquisition, frames: list[np.ndarray], path: Path, cfg: RealscanConfig,
                 shots: _Shots) -> dict:
    measures = FrameMeasures()
    fixed = region_masks(acq)

    def emit(i: int, inp: np.ndarray, out: np.ndarray) -> None:
        measures.add(acq, {**fixed, "colour": colour_mask(inp)}, inp, out)
        if i == shots.index and row.name in MONTAGE_ROWS + ("input",):
            shots.taken[row.name] = (inp, out)

    t0 = time.perf_counter()
    if row.kind is rr.RowKind.PIPELINE:
        extra = rr.run_pipeline(row, path, len(frames), cfg.budget_ms, emit)
        shown = next((r for r in extra["record"] if r["index"] == shots.index), None)
        if shown is not None:
            shots.labels[row.name] = shown["outcome"] + (f" ({shown['reason']})" if shown["reason"] else "") + ": "
    else:
        extra = rr.run_frames(row, frames, emit, cfg.profile)
    return {"row": row.name, "kind": row.kind.value, "bundle": row.bundle, "precision": row.precision,
            **measures.summary(), "seconds": round(time.perf_counter() - t0, 2), **extra}


def sr_check(acq: Acquisition, frames: list[np.ndarray], profile: str) -> dict:
    """us-sr2x against bicubic and Lanczos on real frames: area-downsample 2x, restore, compare
    with the original (PSNR over the imaging area, SSIM averaged over it; skimage.metrics)."""
    try:
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    except ImportError:
        return {"skipped": "scikit-image is not installed (ganrt[export])"}

    mask = acq.imaging_mask()
    picks = [frames[i] for i in np.linspace(0, len(frames) - 1, min(SR_FRAMES, len(frames))).astype(int)]
    originals = [to_uint8(f) for f in picks]
    h, w = originals[0].shape[:2]
    smalls = [cv2.resize(o, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for o in originals]
    restored: dict[str, list[np.ndarray]] = {
        "bicubic": [cv2.resize(s, (w, h), interpolation=cv2.INTER_CUBIC) for s in smalls],
        "lanczos": [cv2.resize(s, (w, h), interpolation=cv2.INTER_LANCZOS4) for s in smalls]}
    for p in rr.BARE_PRECISIONS:
        outs: list[np.ndarray] = []
        rr.run_frames(rr.Row(f"us-sr2x {p}", rr.RowKind.BARE, "us-sr2x", p), smalls,
                      lambda i, _inp, out, outs=outs: outs.append(cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
                                                       if out.shape[:2] != (h, w) else out), profile)
        restored[f"us-sr2x {p}"] = outs
    result = {}
    for name, outs in restored.items():
        psnrs, ssims = [], []
        for o, r in zip(originals, outs):
            go, gr = luma(o), luma(r)
            mse = float(((go[mask].astype(np.float64) - gr[mask]) ** 2).mean())
            psnrs.append(10 * np.log10(255.0 ** 2 / mse) if mse > 0 else float("inf"))
            _, smap = structural_similarity(go, gr, data_range=255, full=True)
            ssims.append(float(smap[mask].mean()))
        result[name] = {"psnr_db": round(float(np.mean(psnrs)), 2), "ssim": round(float(np.mean(ssims)), 4),
                        "psnr_whole_frame_db": round(float(np.mean([peak_signal_noise_ratio(luma(o), luma(r))
                                                                    for o, r in zip(originals, outs)])), 2)}
    result["frames"] = len(originals)
    return result


def run_acquisition(acq: Acquisition, cfg: RealscanConfig) -> dict:
    path, why = locate(acq)
    base = {"name": acq.name, "source": acq.source, "what": acq.what}
    if path is None:
        return {**base, "skipped": why}
    frames, info = read_frames(path, cfg.max_frames)
    if not frames:
        return {**base, "skipped": f"{path.name}: no frame decoded"}
    if frames[0].shape[:2] != acq.frame_hw:
        return {**base, "skipped": f"{path.name}: frame {frames[0].shape[:2]} is not the annotated {acq.frame_hw}"}
    shots = _Shots(index=len(frames) // 2)
    rows = [_measure_row(r, acq, frames, path, cfg, shots)
            for r in rr.all_rows(cfg.bundles, cfg.precisions, cfg.pipeline)]
    result = {**base, "frames": len(frames), "frame_hw": list(acq.frame_hw), "dtype": str(frames[0].dtype),
              "decoded": {k: info[k] for k in ("fps", "frame_count") if k in info}, "rows": rows}
    if "us-sr2x" in cfg.bundles:
        result["sr2x_real_reference"] = sr_check(acq, frames, cfg.profile)
    if cfg.montage and cfg.out is not None and len(shots.taken) > 1:
        from .realscan_report import montage

        result["montage"] = montage(acq, shots.index, shots.taken, shots.labels, cfg.out).name
    return result


def run(cfg: RealscanConfig) -> dict:
    from .env import environment

    acqs = [a for a in load_annotations() if not cfg.acquisitions or a.name in cfg.acquisitions]
    unknown = set(cfg.acquisitions) - {a.name for a in acqs}
    if unknown:
        from ganrt.runtime.errors import ConfigError

        raise ConfigError(f"unknown acquisition(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(a.name for a in load_annotations())}")
    if cfg.out is not None:
        cfg.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = [run_acquisition(a, cfg) for a in acqs]
    return {"benchmark": "realscan", "config": {
        "max_frames": cfg.max_frames, "budget_ms": cfg.budget_ms, "profile": cfg.profile,
        "bundles": list(cfg.bundles), "precisions": list(cfg.precisions), "pipeline": cfg.pipeline,
        "pipeline_command": rr.command_line(cfg.max_frames, cfg.budget_ms)},
        "acquisitions": results, "seconds": round(time.perf_counter() - t0, 1), "environment": environment()}


NOTES = Path(__file__).with_name("realscan_notes.md")  # hand-written: packages checked, what the montages show


def write(cfg: RealscanConfig) -> tuple[dict, str]:
    """Run, then write ``realscan.json`` and ``realscan.md`` (with the hand-written notes) to ``cfg.out``."""
    import json

    from .realscan_report import to_markdown

    result = run(cfg)
    md = to_markdown(result, NOTES.read_text() if NOTES.exists() else "")
    if cfg.out is not None:
        (cfg.out / "realscan.json").write_text(json.dumps(result, indent=1) + "\n")
        (cfg.out / "realscan.md").write_text(md)
    return result, md
