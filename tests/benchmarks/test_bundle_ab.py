"""bundle_ab: both bundles, every precision, one interleaved run; each new candidate against the old one
of its own precision."""

from __future__ import annotations

import json

from ganrt.benchmarks import bundle_ab
from ganrt.runtime.model.manifest import bundled_model_dir


def test_same_bundle_twice_gives_every_pair_and_its_ratio(tmp_path):
    old = bundled_model_dir("us-enhance")
    rc = bundle_ab.main(["--old", str(old), "--new", str(old), "--bundle", "us-enhance", "--size", "64",
                         "--iterations", "10", "--precisions", "fp32,int8-cpu", "--out", str(tmp_path)])
    assert rc == 0
    r = json.loads((tmp_path / "bundle_ab_us-enhance.json").read_text())
    assert list(r["candidates"]) == ["old fp32", "new fp32", "old int8-cpu", "new int8-cpu"]
    for name, c in r["candidates"].items():
        assert c["vs_baseline"]["baseline"] == "old " + name.split()[1]
        assert c["latency_ms"]["n"] == 10 and c["vs_baseline"]["median_ratio"] > 0
    assert r["env"]["cpu_flags"] is not None
    assert "| new int8-cpu |" in (tmp_path / "bundle_ab_us-enhance.md").read_text()
