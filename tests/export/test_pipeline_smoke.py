"""The whole export chain at smoke size: simulate -> teacher -> student -> ONNX -> quantize -> gate -> bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from ganrt.export.gate import lint_qdq_for_tensorrt
from ganrt.export.pipeline import run_export, smoke_config
from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner
from ganrt.runtime.model.manifest import Manifest, Precision


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("export")
    out, run = root / "bundle", root / "run"
    m = run_export(smoke_config("us-enhance"), out, run, progress=False)
    return out, run, m


def test_bundle_contents_and_contract(exported):
    out, run, m = exported
    man = Manifest.load(out)
    assert {a.precision for a in man.artifacts.values()} == set(Precision)
    for art in man.artifacts.values():
        art.verified_bytes()
    assert man.input.channels == 1 and man.size_multiple == 4
    raw = json.loads((out / "manifest.json").read_text())
    for key in ("metrics", "cost", "calibration", "tools", "source_checkpoint", "weights"):
        assert key in raw
    assert raw["cost"]["mac_ratio_teacher_over_student"] > 1
    for name in ("fp16", "int8-trt", "int8-cpu"):
        g = raw["metrics"]["gates"][name]
        assert g["passed"] and g["psnr_vs_fp32"] >= 40 and g["task_drop_db"] <= 0.3
    assert raw["metrics"]["onnx_parity_db"]["student"] >= 60
    assert (out / "MODEL_CARD.md").exists() and (run / "side_by_side.png").exists()
    assert (run / "teacher_loss.csv").exists() and (run / "student_loss.png").exists()
    assert not (out.parent / (out.name + ".staging")).exists()


def test_int8_trt_follows_tensorrt_qdq_rules(exported):
    out, _, _ = exported
    assert lint_qdq_for_tensorrt(out / "student_int8_trt.onnx") == []


def test_bundle_runs_in_the_runtime(exported):
    out, _, _ = exported
    man = Manifest.load(out)
    for prec in Precision:
        with OnnxRuntimeRunner(man.artifact_for(prec)) as r:
            x = np.random.default_rng(0).random((1, 1, 36, 52), dtype=np.float32)
            y = r.infer({r.io.input_name: x})[r.io.output_name]
            assert y.shape == x.shape and np.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


def test_resume_skips_finished_training(exported):
    out, run, m = exported
    cfg = smoke_config("us-enhance")
    again = run_export(cfg, out, run, progress=False)
    # resumed from the saved final state: same weights, and the loss curve is not duplicated
    assert again["source_checkpoint"]["student_sha256"] == m["source_checkpoint"]["student_sha256"]
    rows = (run / "teacher_loss.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + cfg.teacher_train.steps
    # training time accumulates across invocations instead of restarting at the resumed one
    for part in ("teacher", "student"):
        assert again["training"][part]["seconds"] == pytest.approx(m["training"][part]["seconds"])
        assert m["training"][part]["seconds"] > 0


def test_manifest_carries_a_fidelity_threshold_calibrated_on_its_own_outputs(exported, tmp_path):
    import shutil

    from ganrt.export.fidelity_cal import calibrate_bundle
    from ganrt.runtime.trust.fidelity import FidelityConfig

    out, _, m = exported
    cal = m["metrics"]["fidelity_calibration"]
    assert set(cal["floor_by_artifact"]) == {"fp32", "fp16", "int8-trt", "int8-cpu"}
    assert cal["floor_db"] == min(cal["floor_by_artifact"].values())
    assert cal["floor_db"] - cal["margin_db"] - 0.1 <= cal["min_db"] <= cal["floor_db"] - cal["margin_db"]
    red = cal["reduced_tier"]  # the reduced tier's own floor, at most the full threshold
    assert red["factor"] == 2 and red["min_db"] <= cal["min_db"] and 0.0 <= red["blob_catch_rate"] <= 1.0
    assert m["fidelity"] == {"min_db": cal["min_db"], "degrade": "gaussian", "method": cal["method"],
                             "detrend_cells": cal["detrend_cells"], "window_cells": cal["window_cells"],
                             "min_db_reduced": red["min_db"]}
    assert 0.0 <= cal["blob_catch_rate"] <= 1.0 and len(cal["candidates"]) == 6
    # the real tuning scans through the model are scored and reported, never part of the floor (pydicom is a
    # test dependency): the floor above is the simulated artifacts' own
    from ganrt.export.realscans import TUNE

    real = cal["real_tuning_frames"]
    assert real["acquisitions"] == sorted(TUNE) and real["frames"] == 31  # 30 echo frames, one still
    assert all(0.0 <= c["real_rejected"] <= 1.0 for c in cal["candidates"]) and 0.0 <= real["rejected"] <= 1.0
    assert FidelityConfig.from_manifest(Manifest.load(out)).min_db == cal["min_db"]  # what the runtime applies
    # `ganrt export fidelity` re-creates the same held-out pairs and reaches the same threshold
    again = tmp_path / "b"
    shutil.copytree(out, again)
    raw = json.loads((again / "manifest.json").read_text())
    del raw["fidelity"]
    (again / "manifest.json").write_text(json.dumps(raw))
    assert calibrate_bundle(again).config.min_db == pytest.approx(cal["min_db"], abs=0.11)
    assert json.loads((again / "manifest.json").read_text())["fidelity"]["min_db"] == pytest.approx(cal["min_db"], abs=0.11)
