"""PNG plots drawn from the benchmark result dicts (never by hand): latency CDFs and histograms,
per candidate or per pipeline stage, and quality vs latency of every method.

matplotlib is optional (``ganrt[bench]``); it is imported only here, when a plot is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.runtime.errors import BackendUnavailable

_STAGE_ORDER = ("wait_ms", "pre_ms", "infer_ms", "post_ms", "sink_ms", "capture_to_output_ms")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise BackendUnavailable("plots need matplotlib; install ganrt[bench] (pip install 'ganrt[bench]')") from None
    return plt


def _cdf(ax, values: Sequence[float], label: str) -> None:
    v = np.sort(np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float))
    if v.size:
        ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=label)


def _hist(ax, series: dict[str, Sequence[float]]) -> None:
    clean = {k: np.asarray([x for x in v if x is not None and not math.isnan(x)], float) for k, v in series.items()}
    clean = {k: v for k, v in clean.items() if v.size}
    if not clean:
        return
    lo = min(v.min() for v in clean.values())
    hi = max(v.max() for v in clean.values())
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 60)
    for k, v in clean.items():
        ax.hist(v, bins=bins, histtype="step", label=k)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def model_plots(result: dict[str, Any], out: Path, stem: str) -> list[Path]:
    """CDF + histogram of each compared combo's host latency (needs the samples in the result)."""
    plt = _pyplot()
    rows = [r for r in result["candidates"] if r.get("samples_ms")]
    if not rows:
        return []
    sizes = sorted({tuple(r["shape"][2:]) for r in rows})
    fig, axes = plt.subplots(1, 1 + len(sizes), figsize=(5.5 * (1 + len(sizes)), 4.5), squeeze=False)
    a = axes[0][0]
    for r in rows:
        _cdf(a, r["samples_ms"], r["label"])
    a.set(xlabel="latency (ms, host wall time around runner.infer)", ylabel="fraction of calls",
          title="model-only latency CDF", xscale="log")
    a.grid(alpha=0.3, which="both")
    a.legend(fontsize=8)
    for hw, b in zip(sizes, axes[0][1:]):  # one histogram per size: one scale per panel
        _hist(b, {r["label"]: r["samples_ms"] for r in rows if tuple(r["shape"][2:]) == hw})
        b.set(title=f"histogram at {hw[0]}x{hw[1]}", xlabel="latency (ms)", ylabel="calls")
        b.legend(fontsize=8)
    written = [_save(fig, out / f"{stem}_latency.png")]
    plt.close(fig)
    return written


def pipeline_plots(result: dict[str, Any], out: Path, stem: str) -> list[Path]:
    """Per mode: CDF and histogram of every stage's per-frame latency."""
    plt = _pyplot()
    modes = [(k, m) for k, m in result["modes"].items() if m.get("per_frame")]
    if not modes:
        return []
    fig, axes = plt.subplots(len(modes), 2, figsize=(12, 4.2 * len(modes)), squeeze=False)
    for (name, m), (a, b) in zip(modes, axes):
        pf = m["per_frame"]
        series = {k.removesuffix("_ms"): pf[k] for k in _STAGE_ORDER if k in pf and any(v is not None for v in pf[k])}
        for k, v in series.items():
            _cdf(a, v, k)
        a.axvline(m["budget_ms"], color="red", ls="--", lw=1, label=f"budget {m['budget_ms']:g} ms")
        a.set(title=f"{name}: per-stage latency CDF ({m['fps']:.1f} fps, {m['sink']} sink)", xlabel="ms (log)",
              ylabel="fraction of frames shown", xscale="log")
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=8)
        _hist(b, {k: v for k, v in series.items() if k in ("infer", "capture_to_output", "sink", "wait")})
        b.set(title=f"{name}: histogram", xlabel="ms", ylabel="frames")
        b.legend(fontsize=8)
    written = [_save(fig, out / f"{stem}_latency.png")]
    plt.close(fig)
    return written


def quality_latency_plot(result: dict[str, Any], out: Path, stem: str) -> list[Path]:
    """Quality metrics of every method vs its median latency (log scale), student highlighted."""
    plt = _pyplot()
    methods = [m for m in result["methods"] if m.get("latency_ms") and m.get("quality")]
    panels = (("psnr", "PSNR vs target (dB, higher is better)"), ("ssim", "SSIM vs target (higher is better)"),
              ("gcnr", "lesion gCNR (higher is better)"), ("flicker", "flicker: output minus input (lower is steadier)"))
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ref = result.get("reference", {})
    for (key, title), ax in zip(panels, axes.ravel()):
        n_student = 0
        for m in methods:
            x = m["latency_ms"]["median"]
            y = m["quality"].get(key) if key != "flicker" else m.get("flicker", {}).get("excess")
            if y is None or (isinstance(y, float) and math.isnan(y)):
                continue
            kind = m["kind"]
            style = {"student": dict(marker="*", s=160, c="tab:red"), "teacher": dict(marker="D", s=70, c="tab:purple"),
                     "filter": dict(marker="o", s=45, c="tab:blue")}[kind]
            ax.scatter([x], [y], zorder=3, **style)
            if kind == "student":  # students sit on top of each other: stagger their labels
                label = m["name"].replace("student ", "student " if n_student == 0 else "") + (
                    " (deployed)" if m.get("deployed") else "")
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(8, 10 - 9 * n_student), fontsize=7,
                            color="tab:red")
                n_student += 1
            else:
                ax.annotate(m["name"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
        inp, tgt = ref.get("input", {}), ref.get("target", {})
        if key in inp:
            ax.axhline(inp[key], color="gray", ls=":", lw=1, label="input (no processing)")
        if key == "gcnr" and key in tgt:
            ax.axhline(tgt[key], color="green", ls="--", lw=1, label="cart-quality target")
        if key == "flicker":
            ax.axhline(0.0, color="gray", ls=":", lw=1, label="input (no processing)")
            if "flicker_change" in tgt and "flicker_change" in inp:
                ax.axhline(tgt["flicker_change"] - inp["flicker_change"], color="green", ls="--", lw=1,
                           label="target (real motion only)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
        ax.set(xscale="log", xlabel=f"median latency per {result['speed']['hw'][0]}x{result['speed']['hw'][1]} frame (ms)",
               title=title)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"quality ({result['quality_set']['frames']} held-out simulated scenes, "
                 f"{result['quality_set']['hw'][0]}x{result['quality_set']['hw'][1]}) vs latency", fontsize=11)
    written = [_save(fig, out / f"{stem}_quality_vs_latency.png")]
    plt.close(fig)
    return written
