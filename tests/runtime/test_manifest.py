import json
from pathlib import Path

import numpy as np
import pytest
from bundles import make_bundle

from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner
from ganrt.runtime.errors import ModelError
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir


def test_load_by_dir_or_file(tmp_path: Path):
    b = make_bundle(tmp_path / "b")
    m1, m2 = Manifest.load(b), Manifest.load(b / "manifest.json")
    assert m1.task == m2.task == "us-enhance"
    assert m1.artifact_for(Precision.INT8_CPU).path.name == "tiny_int8-cpu.onnx"
    assert len(m1.model_id) == 12


def test_tampered_artifact_is_refused(tmp_path: Path):
    b = make_bundle(tmp_path / "b")
    f = b / "tiny_fp32.onnx"
    f.write_bytes(f.read_bytes() + b"\0")
    m = Manifest.load(b)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        m.artifact("fp32").verified_bytes()
    with pytest.raises(ModelError, match="sha256 mismatch"):
        OnnxRuntimeRunner(m.artifact("fp32")).activate()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("artifacts"), "missing key"),
    (lambda d: d.update(format="other"), "not a ganrt bundle"),
    (lambda d: d["artifacts"]["fp32"].update(precision="int4"), "unknown precision"),
])
def test_malformed_manifest(tmp_path: Path, mutate, message):
    b = make_bundle(tmp_path / "b")
    d = json.loads((b / "manifest.json").read_text())
    mutate(d)
    (b / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ModelError, match=message):
        Manifest.load(b)


def test_missing_bundle_and_artifact(tmp_path: Path):
    with pytest.raises(ModelError, match="no model bundle"):
        Manifest.load(tmp_path / "nothing")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a readable manifest"):
        Manifest.load(tmp_path)
    m = Manifest.load(make_bundle(tmp_path / "b", precisions=("fp32",)))
    with pytest.raises(ModelError, match="no fp16 artifact"):
        m.artifact_for(Precision.FP16)


def test_ort_runner_runs_dynamic_sizes(tmp_path: Path):
    m = Manifest.load(make_bundle(tmp_path / "b"))
    with OnnxRuntimeRunner(m.artifact("fp32")) as r:
        for hw in ((32, 48), (64, 20)):
            x = np.random.default_rng(0).random((1, 1, *hw), dtype=np.float32)
            y = r.infer({r.io.input_name: x})[r.io.output_name]
            assert y.shape == x.shape and np.isfinite(y).all()
    assert not r.active


def test_bundled_model_is_complete_and_verified():
    root = bundled_model_dir()  # committed package data: the runtime's default must always be there
    m = Manifest.load(root)
    for art in m.artifacts.values():
        assert art.verified_bytes()
    assert {p.value for p in (a.precision for a in m.artifacts.values())} == {"fp32", "fp16", "int8-cpu", "int8-trt"}
