"""The results section of docs/benchmarks.md, generated from the committed result files (never typed by hand).

    python -m ganrt.benchmarks.readme_table            # rewrite the block in docs/benchmarks.md
    python -m ganrt.benchmarks.readme_table --check    # exit 1 when docs/benchmarks.md is out of date

The block sits between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``; everything else in the
page is left alone. Its links are relative to docs/. A missing result file leaves its part out and says which file is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "benchmarks.md"
LINK = "../benchmarks/results"  # the result files as docs/benchmarks.md links them

COMPARE_1, COMPARE_2 = "compare_cpu_run1.json", "compare_cpu_run2.json"
REPEAT, PIPELINE, ROOFLINE = "compare_cpu_repeatability.json", "pipeline_cpu.json", "roofline.json"
PIPELINE_BARE_LOOP = "pipeline_cpu_nochecks.json"  # `ganrt bench pipeline --no-checks`
BASELINES = "us-enhance_baselines.json"
SCATTER = "us-enhance_baselines_quality_vs_latency.png"
PLOTS = ("compare_cpu_latency.png", "pipeline_cpu_latency.png", SCATTER)


def _load(results: Path, name: str) -> dict[str, Any] | None:
    p = results / name
    return json.loads(p.read_text()) if p.is_file() else None


def _f(v: Any, fmt: str = ".2f") -> str:
    return "–" if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))) else format(v, fmt)


def _compare(c: dict, rep: dict | None) -> list[str]:
    from ganrt.benchmarks.env import describe

    plan = c["plan"]
    reps = {r["label"]: r for r in (rep or {}).get("rows", [])}
    n = c["candidates"][0]["latency_ms"]["n"]
    out = [f"**Model only** (`ganrt bench --compare --sizes 256,512`), {describe(c['environment'])}: {n} timed calls "
           f"per combo after warm-up, interleaved round-robin over {plan['rounds']} rounds; host wall time around "
           f"`runner.infer`. Ratio = median / fp32 median at the same size (block range in brackets: the ratio in each "
           f"of {plan['blocks']} blocks of rounds). Spread = range of the block medians: differences smaller than it "
           f"are noise.", "",
           "| combo | median ms | p90 | p99 | p99.9 | cv | fps | spread % | ratio vs fp32 | run 2 median | run 2 diff |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in c["candidates"]:
        s, v = r["latency_ms"], r["vs_baseline"]
        x = reps.get(r["label"])
        r2 = f"{x['median_ms'][1]:.2f}" if x else "–"
        d2 = (f"{x['diff_pct']:+.1f}%{'' if x['within_spread'] else ' (outside)'}") if x else "–"
        out.append(f"| {r['label']} | {s['median']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | {s['p99_9']:.2f} | "
                   f"{s['cv']:.3f} | {r['throughput_fps']:.1f} | {r['spread_blocks']['range_pct']:.1f} | "
                   f"{v['median_ratio']:.3f} ({v['block_ratio_min']:.2f}–{v['block_ratio_max']:.2f}) | {r2} | {d2} |")
    if rep:
        out += ["", f"Repeat check (a second run in a separate process): {rep['within']} of {rep['total']} medians "
                    f"within the spread the runs reported; largest median difference {rep['max_abs_diff_pct']:.1f}% "
                    f"against spreads up to {rep['max_spread_pct']:.1f}%; the ratios moved by at most "
                    f"{rep['max_abs_ratio_diff_pct']:.1f}%."]
    return out


def _pipeline(p: dict, bare_loop: dict | None = None) -> list[str]:
    out = [f"**Pipeline** (`ganrt bench pipeline`, {p['backend'].split(' [')[0]} {p['precision']}, {p['source']}, "
           f"{p['frames']} frames per mode, budget {p['budget_ms']:g} ms); capture→output = source returned the decoded "
           f"frame → last sink's write returned:", ""]
    out += ["| mode | fps | capture→output p50 / p99 ms | infer p50 ms | enhanced / raw / dropped | deadline misses | "
            "CPU % of one core | peak RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    for name, m in p["modes"].items():
        c2o, inf = m["latency_ms"]["capture_to_output_ms"], m["latency_ms"]["infer_ms"]
        out.append(f"| {name} ({m['sink']} sink) | {m['fps']:.1f} | {_f(c2o['median'])} / {_f(c2o['p99'])} | "
                   f"{_f(inf['median'])} | {m['enhanced']} / {m['passthrough']} / {m['dropped']} | "
                   f"{100 * m['deadline_miss_rate']:.1f}% | {m['resources']['cpu_util_pct_one_core']} | "
                   f"{m['resources']['rss_peak_mib']} |")
    if "bare_infer_ms" in p:
        b = p["bare_infer_ms"]["latency_ms"]
        out += ["", f"Bare model on the same frames: median {b['median']:.2f} ms, p99 {b['p99']:.2f} ms."]
    out += _timing_line(p)
    if bare_loop is not None:
        out += _timing_line(bare_loop)
    return out


def _timing_line(p: dict) -> list[str]:
    rt = p["modes"].get("realtime", {})
    if "raw_or_dropped_for_time" not in rt:
        return []
    cost = p.get("ratios", {}).get("fast_frame_cost_median_over_bare_median")
    return ["", f"Real time {'with the output checks' if p.get('checks') else 'without output checks (the bare loop)'}: "
                f"frames shown by tier {rt['tiers']}; raw for time or dropped {100 * rt['raw_or_dropped_for_time']:.1f}% "
                f"({100 * rt['raw_or_dropped_for_time_after_startup']:.1f}% after the {rt['startup_frames']} "
                f"start-up frames); shortest run between two switches of in-time and raw-for-time frames: "
                f"{rt['min_run_between_time_switches'] or 'no two switches'}"
                + (f"; fast-mode cost per full-resolution frame / bare model {cost:.2f}" if cost else "") + "."]


def _baselines(b: dict) -> list[str]:
    q = b["quality_set"]
    out = [f"**Quality vs latency** (`ganrt bench baselines`): {q['frames']} held-out simulated scenes at "
           f"{q['hw'][0]}² (seeds {q['seeds'][0]}..{q['seeds'][1]}); filter settings chosen on calibration seeds "
           f"{b['calibration_set']['seeds'][0]}..{b['calibration_set']['seeds'][1]}; flicker on a held-out cine "
           f"(output minus input frame-to-frame change, lower is steadier); latency uint8 frame → uint8 frame at "
           f"{b['speed']['hw'][0]}², same interleaved harness.", "",
           "| method | PSNR dB | SSIM | gCNR | speckle SNR | flicker | median ms |", "|---|---|---|---|---|---|---|"]
    for name, ref in b["reference"].items():
        out.append(f"| {name} | {_f(ref['psnr'])} | {_f(ref['ssim'], '.3f')} | {_f(ref['gcnr'], '.3f')} | "
                   f"{_f(ref['speckle_snr'])} | | |")
    for m in b["methods"]:
        ql = m["quality"]
        label = m["name"] + (" (deployed)" if m.get("deployed") else "") + (f" `{m['call']}`" if m.get("call") else "")
        out.append(f"| {label} | {_f(ql['psnr'])} | {_f(ql['ssim'], '.3f')} | {_f(ql['gcnr'], '.3f')} | "
                   f"{_f(ql['speckle_snr'])} | {_f(m['flicker']['excess'], '+.4f')} | {_f(m['latency_ms']['median'])} |")
    out += ["", b["note"]]
    return out


def _roofline(r: dict) -> list[str]:
    devs = [d for d in r["devices"]]
    here = devs[0]["name"]
    out = [f"**Roofline** (floor = max(MACs / peak rate, weights+frames bytes / bandwidth); this CPU measured with "
           f"ONNX Runtime: {devs[0]['gmac_per_s']['fp32']:.0f} GMAC/s fp32, {devs[0]['gmac_per_s']['int8']:.0f} "
           f"GMAC/s int8, {devs[0]['memory_gb_per_s']:.0f} GB/s; Jetson columns are *estimates* from published peaks):",
           "", "| model @512² | GMAC | floor here ms | measured ms | "
           + " | ".join(f"{d['name']} floor ms*" for d in devs[1:]) + " |", "|---|---|---|---|" + "---|" * (len(devs) - 1)]
    for row in r["rows"]:
        if row["hw"][0] != 512:
            continue
        by = {f["device"]: f for f in row["floors"]}
        h = by.get(here, {})
        out.append(f"| {row['model']} | {row['cost']['total_macs'] / 1e9:.2f} | {_f(h.get('floor_ms'))} | "
                   f"{_f(h.get('measured_median_ms'))} | "
                   + " | ".join(_f(by[d['name']]['floor_ms'], '.3f') if d["name"] in by else "n/a" for d in devs[1:]) + " |")
    return out


def render(results: Path = RESULTS) -> str:
    """The Markdown between the markers, from the files in ``results``."""
    parts: list[list[str]] = []
    missing = []
    c1, rep = _load(results, COMPARE_1), _load(results, REPEAT)
    sections = ((COMPARE_1, c1, lambda d: _compare(d, rep)), (PIPELINE, _load(results, PIPELINE),
                                                                lambda d: _pipeline(d, _load(results, PIPELINE_BARE_LOOP))),
                (BASELINES, _load(results, BASELINES), _baselines), (ROOFLINE, _load(results, ROOFLINE), _roofline))
    for name, data, fn in sections:
        if data is None:
            missing.append(name)
        else:
            parts.append(fn(data))
    lines = ["Generated by `python -m ganrt.benchmarks.readme_table` from `benchmarks/results/` "
             "(regenerate everything with `make bench`, i.e. `python -m ganrt.benchmarks.run_all`).", ""]
    for p in parts:
        lines += p + [""]
    if (results / SCATTER).is_file():
        lines += [f"![quality vs latency of the student, the teacher and classic filters]({LINK}/{SCATTER})", ""]
    plots = [n for n in PLOTS if (results / n).is_file()]
    if plots:
        lines.append("Plots: " + ", ".join(f"[`{n}`]({LINK}/{n})" for n in plots) + ".")
    if missing:
        lines.append("Not yet measured (file missing): " + ", ".join(f"`{m}`" for m in missing) + ".")
    return "\n".join(lines).rstrip() + "\n"


def replace_block(text: str, block: str) -> str:
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"the page must contain exactly one {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}{END}{tail}"


def current_block(text: str) -> str:
    return text.split(BEGIN, 1)[1].split(END, 1)[0].lstrip("\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--doc", "--readme", dest="doc", type=Path, default=DOC)
    ap.add_argument("--check", action="store_true", help="exit 1 when the results block is out of date")
    ap.add_argument("--print", action="store_true", help="print the block instead of writing it")
    a = ap.parse_args(argv)
    block = render(a.results)
    if a.print:
        print(block)
        return 0
    text = a.doc.read_text()
    new = replace_block(text, block)
    if a.check:
        if new != text:
            print(f"{a.doc}: results block is out of date; run python -m ganrt.benchmarks.readme_table", file=sys.stderr)
            return 1
        return 0
    if new != text:
        a.doc.write_text(new)
        print(f"updated {a.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
