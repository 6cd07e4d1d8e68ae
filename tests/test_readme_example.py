"""The README's Python example runs as written and leaves what it says it leaves."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_example() -> str:
    """The one ```python block under the README's "From Python" heading."""
    section = README.read_text().split("## From Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the 'From Python' section has exactly one python block"
    return blocks[0]


def test_readme_example_is_short():
    assert len(readme_python_example().splitlines()) <= 20


def test_readme_example_runs(capsys, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its mkdtemp lands in the test's folder
    scope: dict = {"__name__": "readme_example"}
    exec(compile(readme_python_example(), str(README), "exec"), scope)
    out, report = scope["out"], scope["report"]
    printed = capsys.readouterr().out
    assert out.parent == tmp_path
    rows = [json.loads(line) for line in (out / "record.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and report.frames_in == 30 and report.frames_out == 30  # every frame recorded once
    assert report.enhanced + report.passthrough_total == 30
    assert (out / "side_by_side.mp4").stat().st_size > 0
    assert (out / "side_by_side.mp4.provenance.json").is_file()
    assert json.loads((out / "report.json").read_text())["frames_out"] == 30
    assert "record.jsonl" in printed and "capture_to_output" in printed  # the printed table and file list
