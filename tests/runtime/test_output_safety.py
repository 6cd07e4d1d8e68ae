"""No output ever lands on an input (paths, links, hard links) or goes through a planted link."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from bundles import make_bundle

from ganrt.runtime.cli import main
from ganrt.runtime.errors import ConfigError, OutputError
from ganrt.runtime.records.record import Record
from ganrt.runtime.sinks import outpaths
from ganrt.runtime.sinks.provenance import Provenance, write_sidecar


@pytest.fixture(autouse=True)
def _fresh_registry():
    outpaths.clear()
    yield
    outpaths.clear()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle")


def _digest(path: Path) -> dict[str, str]:
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def _video(path: Path, n: int = 3) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (32, 24))
    for i in range(n):
        vw.write(np.full((24, 32, 3), 40 * i, np.uint8))
    vw.release()
    return path


def _frames_dir(path: Path, n: int = 3) -> Path:
    path.mkdir()
    for i in range(n):
        cv2.imwrite(str(path / f"frame_{i:06d}.png"), np.full((24, 32), 30 * i, np.uint8))
    return path


def _run(capsys, *argv) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def test_change_map_onto_the_input_is_refused(tmp_path, bundle, capsys):
    src = _video(tmp_path / "in.mp4")
    before = _digest(src)
    rc, err = _run(capsys, "run", "--source", src, "--model", bundle, "--out", tmp_path / "o", "--sink", "null",
                   "--change-map", src)
    assert rc == 2 and "--change-map" in err and "overwrite its input" in err
    assert _digest(src) == before


def test_png_sink_into_the_input_folder_is_refused(tmp_path, bundle, capsys):
    src = _frames_dir(tmp_path / "frames")
    before = _digest(src)
    rc, err = _run(capsys, "run", "--source", src, "--model", bundle, "--out", tmp_path / "o",
                   "--sink", f"png:{src}")
    assert rc == 2 and "overwrite its input" in err
    rc, err = _run(capsys, "run", "--source", src, "--model", bundle, "--out", src / "sub", "--sink", "null")
    assert rc == 2 and "--out" in err  # nothing inside an input folder, not even the record
    assert _digest(src) == before and not (src / "sub").exists()


def test_symlinked_and_hard_linked_targets_are_refused(tmp_path, bundle, capsys):
    src = _video(tmp_path / "in.mp4")
    before = _digest(src)
    (tmp_path / "link.mp4").symlink_to(src)
    os.link(src, tmp_path / "hard.mp4")
    for target in ("link.mp4", "hard.mp4"):
        rc, err = _run(capsys, "run", "--source", src, "--model", bundle, "--out", tmp_path / "o",
                       "--sink", f"video:{tmp_path / target}")
        assert rc == 2 and "overwrite its input" in err, target
    assert _digest(src) == before


def test_out_equal_to_the_input_file(tmp_path, bundle, capsys):
    src = _video(tmp_path / "in.mp4")
    before = _digest(src)
    rc, err = _run(capsys, "run", "--source", src, "--model", bundle, "--out", src, "--sink", "null")
    assert rc == 2 and err.count("\n") == 1 and "overwrite its input" in err
    assert _digest(src) == before


def test_every_output_kind_is_checked(tmp_path):
    """Record, sidecar and report go through the same check as the sinks."""
    src = tmp_path / "in.jsonl"
    src.write_text("x\n")
    outpaths.protect(src)
    with pytest.raises(ConfigError, match="record"):
        Record(src)
    with pytest.raises(ConfigError, match="report .* overwrite its input"):
        outpaths.write_atomic(src, "y", "report")
    side = tmp_path / "v.mp4.provenance.json"
    side.write_text("{}")
    outpaths.protect(side)
    with pytest.raises(ConfigError, match="provenance sidecar"):
        write_sidecar(tmp_path / "v.mp4", Provenance("abc"))
    assert src.read_text() == "x\n" and side.read_text() == "{}"


def test_planted_symlink_at_a_temporary_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "o"
    out.mkdir()
    (out / "record.jsonl.partial").symlink_to(victim)
    (out / "v.mp4.provenance.json.partial").symlink_to(victim)
    rec = Record(out / "record.jsonl")
    rec.close()
    write_sidecar(out / "v.mp4", Provenance("abc"))
    assert victim.read_text() == "precious\n"
    assert (out / "record.jsonl").exists() and not (out / "record.jsonl").is_symlink()
    assert (out / "v.mp4.provenance.json").exists()


def test_open_exclusive_refuses_a_link_created_in_between(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = tmp_path / "t.partial"
    real_open = os.open

    def racing_open(path, flags, mode=0o777, **kw):  # the attacker wins the race after the unlink
        if Path(path) == target and not target.is_symlink():
            target.symlink_to(victim)
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", racing_open)
    with pytest.raises(OutputError, match="refusing to write"):
        outpaths.open_exclusive(target)
    assert victim.read_text() == "precious\n"


def test_one_stream_never_writes_onto_another_streams_input(tmp_path, bundle, capsys):
    a = _video(tmp_path / "a.mp4")
    b = _video(tmp_path / "stream0.mp4")  # stream 0's change map would be named like stream 1's input
    before = {**_digest(a), **_digest(b)}
    rc, err = _run(capsys, "run", "--source", a, "--source", b, "--model", bundle, "--out", tmp_path / "o",
                   "--sink", "null", "--change-map", f"{tmp_path}/{{stream}}.mp4")
    assert rc == 2 and "overwrite its input" in err and str(b) in err
    assert {**_digest(a), **_digest(b)} == before
