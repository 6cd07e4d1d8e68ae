"""The environment block: fields always present; nvidia-smi and nvpmodel read when they exist."""

from __future__ import annotations

import json
import os
import stat

from ganrt.benchmarks import env as env_mod
from ganrt.benchmarks.env import ENV_FIELDS, describe, environment


def _tool(folder, name: str, body: str) -> None:
    p = folder / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


def test_block_has_every_field_and_is_json(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi, no nvpmodel
    e = environment({"intra_op": 2})
    assert set(ENV_FIELDS) <= set(e)
    assert e["inference_threads"] == {"intra_op": 2}
    assert e["gpu"] == {"available": False, "reason": "nvidia-smi not found"}
    assert e["cores"] >= 1 and e["affinity_cpus"] >= 1 and e["onnxruntime"]
    assert "ganrt" in e["libraries"] and "numpy" in e["libraries"]
    json.dumps(e)
    assert "no GPU" in describe(e)


def test_gpu_fields_come_from_nvidia_smi(monkeypatch, tmp_path):
    _tool(tmp_path, "nvidia-smi", 'echo "NVIDIA H100, 560.35, P0, 1980, 2619, 1980, 2619, 41, 120.5, 700.0, 81559, 3"\n')
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    g = env_mod.gpu_info()
    assert g["available"] is True
    gpu = g["gpus"][0]
    assert gpu["name"] == "NVIDIA H100" and gpu["clocks.sm"] == "1980" and gpu["temperature.gpu"] == "41"
    assert "NVIDIA H100" in describe({**environment(), "gpu": g})


def test_failing_tools_say_why(monkeypatch, tmp_path):
    _tool(tmp_path, "nvidia-smi", "echo 'NVIDIA-SMI has failed' >&2; exit 9\n")
    _tool(tmp_path, "nvpmodel", "echo 'NV Power Mode: MAXN'; echo 0\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    g = env_mod.gpu_info()
    assert g["available"] is False and "exit 9" in g["reason"]
    j = env_mod.jetson_info()
    assert j["present"] is True and "MAXN" in j["nvpmodel"]
