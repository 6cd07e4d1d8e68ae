"""Is a repeated run's median inside the spread the first run reported? Two `ganrt bench --compare`
results of the same combos, side by side."""

from __future__ import annotations

from typing import Any

from ganrt.runtime.records.stats import ratio


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Per combo: both medians, their difference, and whether run b's median lies inside run a's
    block-median range (and the other way round); the same for the ratio vs the baseline."""
    rows_b = {r["label"]: r for r in b["candidates"]}
    rows = []
    for ra in a["candidates"]:
        rb = rows_b.get(ra["label"])
        if rb is None:
            continue
        ma, mb = ra["latency_ms"]["median"], rb["latency_ms"]["median"]
        sa, sb = ra["spread_blocks"], rb["spread_blocks"]
        va, vb = ra["vs_baseline"], rb["vs_baseline"]
        rows.append({
            "label": ra["label"],
            "median_ms": [ma, mb],
            "diff_pct": 100.0 * (mb - ma) / ma if ma else float("nan"),
            "spread_pct": [sa["range_pct"], sb["range_pct"]],
            "b_median_in_a_blocks": sa["min"] <= mb <= sa["max"],
            "a_median_in_b_blocks": sb["min"] <= ma <= sb["max"],
            "within_spread": abs(mb - ma) <= max(sa["max"] - sa["min"], sb["max"] - sb["min"]),
            "ratio": [va["median_ratio"], vb["median_ratio"]],
            "ratio_block_range": [[va["block_ratio_min"], va["block_ratio_max"]],
                                  [vb["block_ratio_min"], vb["block_ratio_max"]]],
            "ratio_diff_pct": 100.0 * (ratio(vb["median_ratio"], va["median_ratio"]) - 1.0),
        })
    n_in = sum(r["within_spread"] for r in rows)
    return {
        "what": "the same `ganrt bench --compare` run twice (separate processes): run 2's medians against "
                "the run-to-run spread (range of block medians) each run reported",
        "rule": "within_spread: |median2 - median1| <= the larger of the two runs' block-median ranges",
        "rows": rows,
        "within": n_in,
        "total": len(rows),
        "max_abs_diff_pct": max((abs(r["diff_pct"]) for r in rows), default=float("nan")),
        "max_spread_pct": max((max(r["spread_pct"]) for r in rows), default=float("nan")),
        "max_abs_ratio_diff_pct": max((abs(r["ratio_diff_pct"]) for r in rows if r["ratio"][0] != 1.0),
                                      default=float("nan")),
        "timestamps": [a["environment"].get("timestamp_utc"), b["environment"].get("timestamp_utc")],
        "load_avg": [a["environment"].get("load_avg"), b["environment"].get("load_avg")],
        "environment": a["environment"],  # run 1's; run 2's is in its own file
    }


def to_markdown(r: dict[str, Any]) -> str:
    lines = ["# Run-to-run repeatability of `ganrt bench --compare`", "", r["what"] + ".", r["rule"] + ".", "",
             "| combo | median run 1 | median run 2 | diff % | spread % run 1 / run 2 | within | ratio run 1 / run 2 |",
             "|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        lines.append(f"| {x['label']} | {x['median_ms'][0]:.2f} | {x['median_ms'][1]:.2f} | {x['diff_pct']:+.1f} | "
                     f"{x['spread_pct'][0]:.1f} / {x['spread_pct'][1]:.1f} | {'yes' if x['within_spread'] else 'NO'} | "
                     f"{x['ratio'][0]:.3f} / {x['ratio'][1]:.3f} |")
    lines += ["", f"{r['within']} of {r['total']} medians within the reported spread; largest median difference "
              f"{r['max_abs_diff_pct']:.1f}%, largest spread {r['max_spread_pct']:.1f}%, largest change of a ratio "
              f"{r['max_abs_ratio_diff_pct']:.1f}%. Load average at the start of each run: {r['load_avg']}."]
    return "\n".join(lines) + "\n"
