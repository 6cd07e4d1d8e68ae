"""`python -m ganrt.benchmarks.run_all --quick` on a tiny bundle writes every result file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundles import make_bundle

from ganrt.benchmarks import readme_table, run_all
from ganrt.benchmarks.env import ENV_FIELDS

EXPECTED = ("cpu_peak.json", "compare_cpu_run1.json", "compare_cpu_run1.md", "compare_cpu_run2.json",
            "compare_cpu_repeatability.json", "compare_cpu_repeatability.md", "pipeline_cpu.json", "pipeline_cpu.md",
            "pipeline_cpu_nochecks.json", "pipeline_cpu_nochecks.md",
            "us-enhance_baselines.json", "us-enhance_baselines.md", "roofline.json", "roofline.md",
            "realscan/realscan.json", "realscan/realscan.md", "realscan/despeckle_frontier.json",
            "realscan/despeckle_frontier.md")


def test_quick_run_writes_every_file(tmp_path: Path, capsys):
    pytest.importorskip("skimage", reason="the baselines step needs the export extra (scikit-image)")
    bundle = make_bundle(tmp_path / "bundle", precisions=("fp32", "int8-cpu"))
    out = tmp_path / "results"
    rc = run_all.main(["--quick", "--model", str(bundle), "--out", str(out), "--no-plots"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    for name in EXPECTED:
        assert (out / name).is_file(), name
    for name in EXPECTED:
        if name.endswith(".json"):
            data = json.loads((out / name).read_text())
            assert set(ENV_FIELDS) <= set(data["environment"]), name  # every JSON says where it was measured
    rep = json.loads((out / "compare_cpu_repeatability.json").read_text())
    assert rep["total"] == 4  # 2 precisions x 2 sizes, in both runs
    assert readme_table.render(out) in printed  # --quick prints the block instead of writing docs/benchmarks.md
    assert "Not yet measured" not in readme_table.render(out)
