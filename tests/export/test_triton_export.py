"""`ganrt export triton`: the model repository, its config (parsed with tritonclient's ModelConfig
protobuf) and the contract check the triton runner applies to a served config."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed (ganrt[triton])")

from google.protobuf import json_format

from ganrt.export.triton_repo import Instances, RepoConfig, parse_config, write_repository
from ganrt.runtime.backends.triton.contract import check_model_config
from ganrt.runtime.cli import main
from ganrt.runtime.errors import ConfigError, ModelError
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir

BUNDLE = bundled_model_dir("us-enhance")


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest.load(BUNDLE)


def _config(model_dir):
    return parse_config((model_dir / "config.pbtxt").read_text(), str(model_dir))


def _as_json(msg) -> dict:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def test_repository_layout_and_config(manifest, tmp_path):
    dirs = write_repository(manifest, tmp_path, RepoConfig(max_batch=6, instances=Instances.parse("cpu:2")))
    assert sorted(d.name for d in dirs) == ["us-enhance-fp16", "us-enhance-fp32", "us-enhance-int8-cpu"]
    for d in dirs:
        art = manifest.artifact_for(Precision(d.name.removeprefix("us-enhance-")))
        assert (d / "1" / "model.onnx").read_bytes() == art.verified_bytes()
        cfg = _config(d)
        assert cfg.name == d.name and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 6
        assert [(t.name, list(t.dims)) for t in cfg.input] == [("input", [1, -1, -1])]
        assert [(t.name, list(t.dims)) for t in cfg.output] == [("output", [1, -1, -1])]
        assert cfg.input[0].data_type == cfg.output[0].data_type == 11  # TYPE_FP32
        assert 0 < cfg.dynamic_batching.max_queue_delay_microseconds <= 5000
        assert [(g.count, g.kind) for g in cfg.instance_group] == [(2, 2)]  # KIND_CPU
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        assert params["ganrt.sha256"] == art.sha256
        assert params["ganrt.input.layout"] == "NCHW" and params["ganrt.input.color_order"] == "gray"
        assert params["ganrt.input.range"] == "0,1" and params["ganrt.scale"] == "1"
        assert check_model_config(_as_json(cfg), manifest, art, d.name) == 6


def test_tensorrt_plan_variant(manifest, tmp_path):
    plan = tmp_path / "student.plan"
    plan.write_bytes(b"not really an engine")
    dirs = write_repository(manifest, tmp_path / "repo", RepoConfig(precisions=(Precision.FP16,), engine=plan,
                                                                    instances=Instances.parse("gpu:1")))
    assert [d.name for d in dirs] == ["us-enhance-fp16", "us-enhance-fp16-trt"]
    cfg = _config(dirs[1])
    assert cfg.platform == "tensorrt_plan" and (dirs[1] / "1" / "model.plan").read_bytes() == plan.read_bytes()
    assert [g.kind for g in cfg.instance_group] == [1]  # KIND_GPU
    assert cfg.parameters["ganrt.sha256"].string_value == manifest.artifact_for(Precision.FP16).sha256
    assert len(cfg.parameters["ganrt.plan_sha256"].string_value) == 64


def test_contract_check_refuses_a_different_model(manifest, tmp_path):
    (d,) = write_repository(manifest, tmp_path, RepoConfig(precisions=(Precision.FP32,)))
    cfg = _as_json(_config(d))
    fp32, int8 = manifest.artifact_for(Precision.FP32), manifest.artifact_for(Precision.INT8_CPU)
    with pytest.raises(ModelError, match="sha256"):
        check_model_config(cfg, manifest, int8, "server")
    bad = {**cfg, "parameters": {**cfg["parameters"], "ganrt.input.color_order": {"string_value": "rgb"}}}
    with pytest.raises(ModelError, match="color_order"):
        check_model_config(bad, manifest, fp32, "server")
    bad = {**cfg, "input": [{**cfg["input"][0], "dims": ["3", "-1", "-1"]}]}
    with pytest.raises(ModelError, match="channel"):
        check_model_config(bad, manifest, fp32, "server")
    with pytest.raises(ModelError, match="no ganrt.sha256"):
        check_model_config({**cfg, "parameters": {}}, manifest, fp32, "server")


def test_written_config_must_parse():
    with pytest.raises(ConfigError, match="not a valid Triton model config"):
        parse_config("name: 'x'\nmax_batch_size: lots\n", "x/config.pbtxt")


@pytest.mark.parametrize("bad", ["tpu:1", "cpu:0", "cpu:x"])
def test_bad_instances(bad):
    with pytest.raises(ConfigError):
        Instances.parse(bad)


def test_cli_without_torch(tmp_path):
    code = ("import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\nfrom ganrt.runtime.cli import main\n"
            f"rc = main(['export', 'triton', {str(BUNDLE)!r}, '--out', {str(tmp_path)!r}, '--precision', 'int8-cpu'])\n"
            "assert 'torch' not in sys.modules\nraise SystemExit(rc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "us-enhance-int8-cpu" / "config.pbtxt").is_file()
    assert res.stdout.strip().endswith("us-enhance-int8-cpu/config.pbtxt")


@pytest.mark.parametrize("extra,code", [(["--instances", "tpu:1"], 2), (["--max-batch", "0"], 2),
                                        (["--precision", "int4"], 2), (["--engine", "missing.plan"], 3)])
def test_cli_errors(tmp_path, capsys, extra, code):
    assert main(["export", "triton", str(BUNDLE), "--out", str(tmp_path)] + extra) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ganrt: error:")

