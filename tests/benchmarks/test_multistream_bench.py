"""The multi-stream benchmark script writes what its result files promise (tiny bundle, a few frames)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from bundles import make_bundle

from ganrt.benchmarks import multistream_bench as mb
from ganrt.benchmarks.env import ENV_FIELDS


def test_two_stream_result_has_each_stream_the_combined_numbers_load_and_environment(tmp_path: Path):
    video = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (40, 32))
    for v in range(4):
        vw.write(np.full((32, 40, 3), 40 * v, np.uint8))
    vw.release()
    rc = mb.main(["--model", str(make_bundle(tmp_path / "bundle")), "--source", str(video), "--source", str(video),
                  "--frames", "4", "--precision", "fp32", "--budget-ms", "5000", "--out", str(tmp_path / "res"),
                  "--note", "test run"])
    assert rc == 0
    r = json.loads((tmp_path / "res" / "multistream_cpu.json").read_text())
    assert set(r["streams"]) == {"stream0", "stream1"}
    for s in (*r["streams"].values(), r["single_stream_reference"]):
        assert s["frames_in"] == 4 == s["enhanced"] + s["passthrough"] + s["dropped"]
        assert s["fps"] > 0 and s["capture_to_output_ms"]["p99"] is not None
    assert r["combined"]["frames_in"] == 8 and r["scheduler"]["mode"] == "serial"
    assert len(r["load"]["load_avg_before"]) == 3 and r["note"] == "test run"
    assert set(ENV_FIELDS) <= set(r["environment"])
    md = (tmp_path / "res" / "multistream_cpu.md").read_text()
    assert "| stream0 |" in md and "**combined**" in md and "load average" in md and "test run" in md
