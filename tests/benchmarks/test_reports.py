"""Repeatability maths, the docs/benchmarks.md block generator (against the committed results) and resources."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ganrt.benchmarks import readme_table
from ganrt.benchmarks.repeatability import compare_runs
from ganrt.benchmarks.resources import ResourceMeter


def _run(medians: dict[str, float], spreads: dict[str, tuple[float, float]]) -> dict:
    rows = []
    for k, m in medians.items():
        lo, hi = spreads[k]
        rows.append({"label": k, "latency_ms": {"median": m},
                     "spread_blocks": {"min": lo, "max": hi, "range_pct": 100 * (hi - lo) / m},
                     "vs_baseline": {"median_ratio": m / medians["a"], "block_ratio_min": 0.9, "block_ratio_max": 1.1}})
    return {"candidates": rows, "environment": {"timestamp_utc": "t", "load_avg": [0, 0, 0]}}


def test_repeat_within_and_outside_the_spread():
    r1 = _run({"a": 10.0, "b": 20.0}, {"a": (9.5, 10.5), "b": (19.8, 20.2)})
    r2 = _run({"a": 10.8, "b": 21.0}, {"a": (10.0, 11.2), "b": (20.9, 21.1)})
    rep = compare_runs(r1, r2)
    a, b = rep["rows"]
    assert a["within_spread"] and a["diff_pct"] == pytest.approx(8.0)
    assert not a["b_median_in_a_blocks"] and a["a_median_in_b_blocks"]
    assert not b["within_spread"]  # 1.0 ms apart, spreads only 0.4 and 0.2 ms wide
    assert rep["within"] == 1 and rep["total"] == 2
    assert rep["max_abs_diff_pct"] == pytest.approx(8.0)
    assert b["ratio_diff_pct"] == pytest.approx(100 * ((21.0 / 10.8) / 2.0 - 1))


def test_replace_block_touches_only_the_block():
    text = "intro\n<!-- bench:begin -->\nold\n<!-- bench:end -->\noutro\n"
    new = readme_table.replace_block(text, "new\n")
    assert new == "intro\n<!-- bench:begin -->\nnew\n<!-- bench:end -->\noutro\n"
    assert readme_table.current_block(new) == "new\n"
    with pytest.raises(ValueError):
        readme_table.replace_block("no markers", "x")


def test_readme_block_matches_the_committed_results():
    """The results block of docs/benchmarks.md is what the generator makes of benchmarks/results/ (run
    `python -m ganrt.benchmarks.readme_table` after changing any result file)."""
    readme = readme_table.DOC.read_text()
    assert readme_table.current_block(readme) == readme_table.render(readme_table.RESULTS)


def test_render_names_missing_files(tmp_path: Path):
    block = readme_table.render(tmp_path)
    assert "Not yet measured" in block and readme_table.COMPARE_1 in block


def test_render_changes_when_a_number_changes(tmp_path: Path):
    import json
    import shutil

    src = readme_table.RESULTS / readme_table.COMPARE_1
    if not src.is_file():
        pytest.fail(f"{src} is missing: run python -m ganrt.benchmarks.run_all")
    shutil.copy(src, tmp_path / src.name)
    before = readme_table.render(tmp_path)
    data = json.loads(src.read_text())
    data["candidates"][0]["latency_ms"]["median"] *= 1.5
    (tmp_path / src.name).write_text(json.dumps(data))
    assert readme_table.render(tmp_path) != before


def test_resource_meter_reports_cpu_and_memory():
    with ResourceMeter() as m:
        sum(i * i for i in range(200_000))
    r = m.result()
    assert r["wall_s"] > 0 and r["cpu_s"] >= 0 and r["cpus"] >= 1
    assert r["cpu_util_pct_all_cores"] == pytest.approx(r["cpu_util_pct_one_core"] / r["cpus"], abs=0.1)
    if Path("/proc/self/status").exists():
        assert r["rss_start_mib"] > 0 and r["rss_peak_mib"] >= r["rss_end_mib"] * 0.99
        assert not math.isnan(r["rss_peak_mib"])
