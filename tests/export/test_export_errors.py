"""Bad input to the export side: one clear error each, mapped to an exit code by the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from ganrt.export.archs import StudentConfig, StudentGenerator  # noqa: E402
from ganrt.export.checkpoint import load_state, load_weights, save_weights  # noqa: E402
from ganrt.export.tasks import get_task  # noqa: E402
from ganrt.runtime.errors import ConfigError, ModelError  # noqa: E402


def test_missing_and_corrupt_checkpoint(tmp_path: Path):
    with pytest.raises(ModelError, match="checkpoint not found"):
        load_state(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError, match="corrupt"):
        load_state(bad)
    with pytest.raises(ModelError, match="weights not found"):
        load_weights(StudentGenerator(), tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="corrupt"):
        load_weights(StudentGenerator(), junk)


def test_pickled_code_is_not_executed(tmp_path: Path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    f = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, f)  # a checkpoint that would run code under plain pickle loading
    with pytest.raises(ModelError):
        load_state(f)
    assert pickle  # (imported to document the threat model)


def test_wrong_channel_count_weights(tmp_path: Path):
    rgb = StudentGenerator(StudentConfig(channels=3, width=8, n_blocks=1))
    f = tmp_path / "rgb.safetensors"
    save_weights(rgb, f)
    with pytest.raises(ModelError, match="do not fit the architecture"):
        load_weights(StudentGenerator(StudentConfig(channels=1, width=8, n_blocks=1)), f)


def test_unknown_task():
    with pytest.raises(ConfigError, match="unknown task 'us-nope'.*us-enhance"):
        get_task("us-nope")


def test_cli_unknown_task_is_one_line(tmp_path: Path):
    res = subprocess.run([sys.executable, "-m", "ganrt.runtime.cli", "export", "pipeline", "--task", "us-nope",
                          "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert res.returncode == ConfigError.exit_code
    assert res.stderr.strip().count("\n") == 0 and "unknown task" in res.stderr
    assert "Traceback" not in res.stderr
