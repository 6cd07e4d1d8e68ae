"""`ganrt bench realscan`: annotations fit their frames, the report has its structure, and the
measures behave (the input row changes nothing; a bilateral filter barely moves local brightness;
a method that brightens is caught). No timed assertions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ganrt.benchmarks import realscan_metrics as rm
from ganrt.benchmarks.realscan_data import load_annotations, locate
from ganrt.runtime.cli import main

pytest.importorskip("pydicom", reason="the real acquisitions are DICOM files (ganrt[dicom])")

ACQS = load_annotations()


@pytest.mark.parametrize("acq", ACQS, ids=[a.name for a in ACQS])
def test_annotations_lie_inside_their_frames(acq):
    h, w = acq.frame_hw
    boxes = [*acq.tissue, acq.homogeneous, *acq.ui, *acq.graphics] + [b for b in (acq.dark, acq.dark_ref) if b]
    for x, y, bw, bh in boxes:
        assert bw > 0 and bh > 0 and x >= 0 and y >= 0 and x + bw <= w and y + bh <= h, (acq.name, (x, y, bw, bh))
    for x, y in acq.imaging:
        assert 0 <= x < w and 0 <= y < h, (acq.name, (x, y))
    mask = acq.imaging_mask()
    for x, y, bw, bh in acq.tissue + (acq.homogeneous,):  # measured patches are imaging area, not UI
        assert mask[y:y + bh, x:x + bw].mean() > 0.95, (acq.name, (x, y, bw, bh))


@pytest.mark.parametrize("acq", ACQS, ids=[a.name for a in ACQS])
def test_installed_acquisitions_decode_at_the_annotated_size(acq):
    from ganrt.benchmarks.realscan_data import read_frames

    path, why = locate(acq)
    if path is None:
        pytest.skip(why)
    frames, _ = read_frames(path, 1)
    assert frames[0].shape[:2] == acq.frame_hw


def test_missing_acquisition_is_skipped_with_a_note(monkeypatch):
    from ganrt.benchmarks import realscan
    from ganrt.benchmarks.realscan_data import Acquisition

    fake = Acquisition("nowhere", "pydicom-data:no_such_file.dcm", "absent", (10, 10), ((0, 0), (9, 0), (9, 9)),
                       ((0, 0, 2, 2),), (0, 0, 2, 2), None, None, (), ())
    res = realscan.run_acquisition(fake, realscan.RealscanConfig(max_frames=1))
    assert "not installed" in res["skipped"] and "rows" not in res


def test_a_brightening_method_is_caught():
    acq = next(a for a in ACQS if a.name == "echo-ybr")
    rng = np.random.default_rng(0)
    inp = rng.integers(0, 120, acq.frame_hw + (3,), dtype=np.uint8)
    masks = {**rm.region_masks(acq), "colour": rm.colour_mask(inp)}
    same, bright = rm.FrameMeasures(), rm.FrameMeasures()
    same.add(acq, masks, inp, inp.copy())
    bright.add(acq, masks, inp, np.clip(inp.astype(int) + 30, 0, 255).astype(np.uint8))
    s, b = same.summary(), bright.summary()
    assert s["local_mean_shift"]["tissue_area"]["p95"] == 0 and s["changed"]["ui"]["pixels"] == 0
    assert b["local_mean_shift"]["tissue_area"]["median"] == pytest.approx(30, abs=0.5)
    assert b["changed"]["ui"]["fraction"] == 1.0 and b["local_mean_shift"]["enhanced_area"]["pixels"] > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("realscan")
    rc = main(["bench", "realscan", "--out", str(out), "--frames", "2", "--acquisitions", "echo-ybr,ge-doppler"])
    assert rc == 0
    return json.loads((out / "realscan.json").read_text()), out


def test_report_structure(report):
    result, out = report
    assert [a["name"] for a in result["acquisitions"]] == ["echo-ybr", "ge-doppler"]
    md = (out / "realscan.md").read_text()
    for acq in result["acquisitions"]:
        rows = {r["row"]: r for r in acq["rows"]}
        assert {"input", "bilateral", "nlmeans", "median", "us-enhance bare fp32", "us-sr2x bare int8-cpu",
                "us-enhance pipeline (defaults)", "us-sr2x pipeline (defaults)"} <= set(rows)
        for r in rows.values():
            assert r["frames"] == acq["frames"] and f"| {r['row']} |" in md
        pipe = rows["us-enhance pipeline (defaults)"]
        assert pipe["frames_recorded"] == acq["frames"] and len(pipe["record"]) == acq["frames"]
        assert pipe["enhanced_fraction"] + pipe["raw_fraction"] == pytest.approx(1.0)
        sr = acq["sr2x_real_reference"]
        assert {"bicubic", "lanczos", "us-sr2x fp32"} <= set(sr) and sr["frames"] >= 1
        montage = out / acq["montage"]
        assert montage.is_file() and montage.stat().st_size < 400_000


def test_input_row_changes_nothing_and_bilateral_barely_moves_brightness(report):
    result, _ = report
    for acq in result["acquisitions"]:
        rows = {r["row"]: r for r in acq["rows"]}
        inp = rows["input"]
        assert inp["local_mean_shift"]["tissue_area"]["max"] == 0
        assert all(c["pixels"] == 0 for c in inp["changed"].values())
        assert inp["speckle_energy_ratio"] == 1 and inp["epi"] == pytest.approx(1.0)
        bil = rows["bilateral"]
        assert bil["local_mean_shift"]["tissue_area"]["median"] < 1.0  # brightness kept ...
        assert bil["speckle_energy_ratio"] < 0.9  # ... speckle reduced


def test_unknown_acquisition_is_one_line_error(capsys, tmp_path):
    rc = main(["bench", "realscan", "--out", str(tmp_path), "--acquisitions", "nope"])
    err = capsys.readouterr().err
    assert rc != 0 and "unknown acquisition" in err and len(err.strip().splitlines()) == 1
