"""us-enhance against bilateral and non-local means on real scans, at equal edge preservation.

    python -m ganrt.benchmarks.despeckle_frontier --out benchmarks/results/realscan

One fixed filter setting is one point of a trade-off: stronger smoothing removes more speckle
(lower speckle energy ratio) and keeps fewer edges (lower EPI). `ganrt bench realscan` compares
the student with one moderate setting each; here each filter's strength is swept on every
acquisition, from nothing (the input: ratio 1, EPI 1) to strong, and its speckle energy ratio is
read off that curve at the student's EPI (linear between the two sweep points around it). The
student beats a filter on an acquisition when its ratio is lower than the filter's at the same
EPI, i.e. it removes more speckle for the same edge loss. Also reported: the filter's EPI at
the student's speckle energy (the same comparison on the other axis).

Measures are `ganrt bench realscan`'s (realscan_metrics: speckle energy over the tissue patches,
EPI over the imaging area), the filters run on the luma as there. Held-out acquisitions only (the
real frames export/realscans.TUNE calibrates on are listed but not counted in the medians).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ganrt.export.realscans import TUNE

from . import realscan_rows as rr
from .filters import FilterKind, FilterSpec
from .realscan_data import Acquisition, load_annotations, locate, read_frames
from .realscan_metrics import FrameMeasures, colour_mask, region_masks

MAX_FRAMES = 10
BUNDLE = "us-enhance"
PRECISIONS = ("int8-cpu", "fp32")
# strength sweeps, weakest first (the realscan rows' fixed settings are sigma_color 40 and h 10)
SWEEPS: dict[str, list[FilterSpec]] = {
    "bilateral": [FilterSpec(FilterKind.BILATERAL, (("d", 7), ("sigma_color", s), ("sigma_space", 3.0)))
                  for s in (2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 40.0, 80.0)],
    "nlmeans": [FilterSpec(FilterKind.NLMEANS, (("h", h), ("template", 7), ("search", 21)))
                for h in (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 15.0)],
}


BLEND_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


class Blend:
    """``w`` x a filter's output + (1 - w) x the input: a filter's strength knob as a scanner's smoothing
    control works, and the fair match for a model that attenuates speckle rather than flattening it
    (EPI, a correlation, barely drops when the high-pass is only scaled down)."""

    def __init__(self, spec: FilterSpec, w: float) -> None:
        self.spec, self.w = spec, w
        self.params = (*spec.params, ("blend", w))

    def apply(self, img: np.ndarray) -> np.ndarray:
        f = self.spec.apply(img).astype(np.float32)
        return np.clip(self.w * f + (1 - self.w) * img.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


BLENDS: dict[str, list[Blend]] = {f"{k} blend": [Blend(rr.FILTERS[k], w) for w in BLEND_WEIGHTS]
                                  for k in ("bilateral", "nlmeans")}


def held_out(acq: Acquisition) -> bool:
    return acq.file_name not in TUNE


def _measure(acq: Acquisition, frames: list[np.ndarray], run: Callable[[rr.Emit], object]) -> dict:
    m, fixed = FrameMeasures(), region_masks(acq)
    run(lambda _i, inp, out: m.add(acq, {**fixed, "colour": colour_mask(inp)}, inp, out))
    s = m.summary()
    return {"speckle": s["speckle_energy_ratio"], "epi": s["epi"]}


def curve(points: list[dict]) -> list[tuple[float, float]]:
    """(EPI, speckle ratio) from the input's (1, 1) down to the strongest setting, EPI decreasing."""
    pts = [(1.0, 1.0)] + [(p["epi"], p["speckle"]) for p in points]
    return sorted(pts, key=lambda t: -t[0])


def interp(pts: list[tuple[float, float]], x: float, axis: int) -> float | None:
    """The other coordinate of the curve where coordinate ``axis`` (0: EPI, 1: speckle) equals ``x``;
    linear between neighbours; None outside the swept range."""
    for a, b in zip(pts, pts[1:]):
        lo, hi = sorted((a[axis], b[axis]))
        if lo <= x <= hi:
            if hi == lo:
                return min(a[1 - axis], b[1 - axis])
            t = (x - a[axis]) / (b[axis] - a[axis])
            return a[1 - axis] + t * (b[1 - axis] - a[1 - axis])
    return None


def acquisition(acq: Acquisition, profile: str) -> dict:
    path, why = locate(acq)
    if path is None:
        return {"name": acq.name, "skipped": why}
    frames, _ = read_frames(path, MAX_FRAMES)
    out: dict = {"name": acq.name, "held_out": held_out(acq), "frames": len(frames), "filters": {}, "student": {}}
    for name, specs in {**SWEEPS, **BLENDS}.items():
        rows = [rr.Row(name, rr.RowKind.FILTER, spec=s) for s in specs]
        out["filters"][name] = [{"params": dict(row.spec.params), **_measure(
            acq, frames, lambda e, row=row: rr.run_frames(row, frames, e, profile))} for row in rows]
    for p in PRECISIONS:
        row = rr.Row(f"{BUNDLE} bare {p}", rr.RowKind.BARE, BUNDLE, p)
        st = out["student"][p] = _measure(acq, frames, lambda e, row=row: rr.run_frames(row, frames, e, profile))
        st["filters_at_equal_epi"] = {}
        for name, pts in out["filters"].items():
            c = curve(pts)
            at_epi, at_speckle = interp(c, st["epi"], 0), interp(c, st["speckle"], 1)
            st["filters_at_equal_epi"][name] = {
                "speckle": None if at_epi is None else round(at_epi, 4),
                "epi_at_equal_speckle": None if at_speckle is None else round(at_speckle, 4),
                "beats": None if at_epi is None else bool(st["speckle"] < at_epi)}
    return out


def summary(results: list[dict]) -> dict:
    """Per precision and filter, over the held-out acquisitions: medians and how many the student beats."""
    held = [r for r in results if r.get("held_out")]
    out: dict = {}
    for p in PRECISIONS:
        out[p] = {"student_speckle_median": float(np.median([r["student"][p]["speckle"] for r in held])),
                  "student_epi_median": float(np.median([r["student"][p]["epi"] for r in held]))}
        for name in (*SWEEPS, *BLENDS):
            cmp = [r["student"][p]["filters_at_equal_epi"][name] for r in held]
            sp = [c["speckle"] for c in cmp if c["speckle"] is not None]
            out[p][name] = {"speckle_at_equal_epi_median": float(np.median(sp)) if sp else None,
                            "beaten_in": sum(bool(c["beats"]) for c in cmp), "of": len(cmp)}
    return out


def to_markdown(r: dict) -> str:
    from .env import describe

    families = (*SWEEPS, *BLENDS)
    lines = ["# Despeckling at equal edge preservation: us-enhance vs bilateral and non-local means, real scans", "",
             " ".join((__doc__ or "").split("\n\n")[1].split()), "",
             f"{describe(r['environment'])}; load {r['environment'].get('load_avg')}; {r['seconds']:.0f} s. "
             f"Up to {MAX_FRAMES} frames per acquisition. Strength sweeps: bilateral d 7, sigma_space 3, sigma_color "
             f"{[s.p['sigma_color'] for s in SWEEPS['bilateral']]}; NLM template 7, search 21, h "
             f"{[s.p['h'] for s in SWEEPS['nlmeans']]}; blends: w x (the realscan rows' setting: bilateral "
             f"sigma_color 40, NLM h 10) + (1 - w) x the input, w {list(BLEND_WEIGHTS)}.", "",
             "## Medians over the held-out acquisitions", "",
             "| student | speckle ratio | EPI | filter family | its speckle ratio at that EPI | student lower in |",
             "|---|---|---|---|---|---|"]
    for p, s in r["summary"].items():
        for k in families:
            lines.append(f"| {BUNDLE} {p} | {s['student_speckle_median']:.3f} | {s['student_epi_median']:.3f} | {k} | "
                         f"{_f(s[k]['speckle_at_equal_epi_median'])} | {s[k]['beaten_in']} / {s[k]['of']} |")
    lines += ["", "## Per acquisition (int8-cpu, the CPU cart's artifact)", "",
              "| acquisition | set | student speckle / EPI | " + " | ".join(families) + " |",
              "|---|---|---|" + "---|" * len(families)]
    for a in r["acquisitions"]:
        if "skipped" in a:
            lines.append(f"| {a['name']} | skipped: {a['skipped']} |" + " |" * (len(families) + 1))
            continue
        st = a["student"][PRECISIONS[0]]
        f = st["filters_at_equal_epi"]
        lines.append(f"| {a['name']} | {'held out' if a['held_out'] else 'tuning'} | {st['speckle']:.3f} / "
                     f"{st['epi']:.3f} | " + " | ".join(f"{_f(f[k]['speckle'])} (EPI {_f(f[k]['epi_at_equal_speckle'])} "
                                                       f"at equal speckle)" for k in families) + " |")
    lines += ["", "## The sweeps (speckle ratio / EPI per setting, weakest first)", ""]
    for a in r["acquisitions"]:
        for name, pts in a.get("filters", {}).items():
            lines.append(f"- {a['name']}, {name}: " + ", ".join(f"{q['speckle']:.2f}/{q['epi']:.2f}" for q in pts))
    return "\n".join(lines) + "\n"


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def run(profile: str = "cpu-x86-2core", names: tuple[str, ...] = ()) -> dict:
    from .env import environment

    t0 = time.perf_counter()
    acqs = [a for a in load_annotations() if not names or a.name in names]
    results = [acquisition(a, profile) for a in acqs]
    done = [r for r in results if "skipped" not in r]
    return {"benchmark": "despeckle_frontier", "bundle": BUNDLE, "acquisitions": results,
            "summary": summary(done), "seconds": time.perf_counter() - t0, "environment": environment({})}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/realscan"))
    ap.add_argument("--profile", default="cpu-x86-2core")
    a = ap.parse_args(argv)
    r = run(a.profile)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "despeckle_frontier.json").write_text(json.dumps(r, indent=1) + "\n")
    md = to_markdown(r)
    (a.out / "despeckle_frontier.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
