"""Hostile input through the real command line, one subprocess per case.

Every case: the documented exit code, one line on stderr naming the problem (for errors), never
a traceback, and every byte of every input unchanged (sha256 of each file before and after).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path

import cv2
import numpy as np
import pytest
from workspace import Workspace, digests, make_workspace, run_cli


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Workspace], list[str]]  # may also plant files in the workspace
    rc: int
    says: str  # a fragment of the one error line ("" for a successful run)


def run_args(ws: Workspace, *extra: str, source: Path | str | None = None) -> list[str]:
    return ["run", "--source", str(source or ws.video), "--model", str(ws.bundle), "--out", str(ws.out),
            "--sink", "null", "--max-frames", "2", *extra]


def _profile(ws: Workspace, body: str) -> str:
    return str(ws.file("cart.toml", 'name = "cart"\nbudget_ms = 33\ninput_hw = [256, 256]\nprecision = "fp32"\n'
                                    'backends = ["onnxruntime"]\n' + body))


def _manifest_with(ws: Workspace, edit: Callable[[dict], object]) -> list[str]:
    m = ws.manifest()
    ws.write_manifest(edit(m) or m)
    return run_args(ws)


def _artifact_file(name: str) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        for a in m["artifacts"].values():
            a["file"] = name
    return edit


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _tamper(ws: Workspace) -> list[str]:
    art = next(ws.bundle.glob("*.onnx"))
    art.write_bytes(art.read_bytes() + b"\0")
    return run_args(ws)


def _link(ws: Workspace, kind: str) -> list[str]:
    target = ws.root / f"{kind}.avi"
    if kind == "sym":
        target.symlink_to(ws.video)
    else:
        os.link(ws.video, target)
    return run_args(ws)[:-4] + ["--sink", f"video:{target}"]


def _bad_ring(ws: Workspace) -> list[str]:
    """A segment that looks like a ganrt ring whose metadata length runs past the segment."""
    from ganrt.runtime.sinks.ipc.ring import DTYPES, FIXED_HEADER, H_META_BYTES, MAGIC, VERSION

    name = f"ganrt_hostile_{os.getpid()}"
    shm = shared_memory.SharedMemory(name=name, create=True, size=4096)
    struct.pack_into("<8sII", shm.buf, 0, MAGIC, VERSION, FIXED_HEADER)
    struct.pack_into("<IIIIIIII", shm.buf, 16, 8, 8, 1, next(iter(DTYPES)), 1, 64, 64, 0)
    struct.pack_into("<I", shm.buf, H_META_BYTES, 1 << 30)
    ws.rings.append(shm)
    return ["shm-read", name, "--wait", "0"]


def _image(ws: Workspace, name: str, data: bytes) -> Path:
    d = ws.root / name
    d.mkdir()
    (d / "a.png").write_bytes(data)
    return d


CASES = [
    # --- options (2) -------------------------------------------------------------------------
    Case("budget-zero", lambda ws: run_args(ws, "--budget-ms", "0"), 2, "--budget-ms"),
    Case("budget-inf", lambda ws: run_args(ws, "--budget-ms", "inf"), 2, "--budget-ms"),
    Case("budget-huge", lambda ws: run_args(ws, "--budget-ms", "1e300"), 2, "--budget-ms"),
    Case("budget-nan", lambda ws: run_args(ws, "--budget-ms", "nan"), 2, "--budget-ms"),
    Case("budget-negative", lambda ws: run_args(ws, "--budget-ms=-5"), 2, "--budget-ms"),
    Case("budget-text", lambda ws: run_args(ws, "--budget-ms", "fast"), 2, "--budget-ms"),
    Case("budget-count-mismatch", lambda ws: run_args(ws, "--budget-ms", "30", "--budget-ms", "40"), 2,
         "--budget-ms"),
    Case("max-frames-zero", lambda ws: run_args(ws)[:-2] + ["--max-frames", "0"], 2, "--max-frames"),
    Case("record-format", lambda ws: run_args(ws, "--record", "xml"), 2, "--record"),
    Case("unknown-command", lambda ws: ["enhance-everything"], 2, "invalid choice"),
    Case("unknown-sink", lambda ws: run_args(ws, "--sink", "tape"), 2, "unknown sink"),
    Case("sink-option", lambda ws: run_args(ws, "--sink", "png?colour=1"), 2, "unknown option"),
    Case("shm-without-name", lambda ws: run_args(ws, "--sink", "shm"), 2, "needs a target"),
    Case("two-stdout-pipes", lambda ws: run_args(ws, "--sink", "pipe:-", "--sink", "pipe:-"), 2, "stdout"),
    Case("unknown-backend", lambda ws: run_args(ws, "--backend", "cuda-magic"), 2, "cuda-magic"),
    Case("precision-unknown", lambda ws: run_args(ws, "--precision", "fp7"), 2, "precision"),
    Case("bad-region", lambda ws: run_args(ws, "--region", "1,2,three"), 2, "region"),
    Case("bad-temporal", lambda ws: run_args(ws, "--temporal-filter", "median:9"), 2, "temporal"),
    # --- profiles (2) ------------------------------------------------------------------------
    Case("profile-missing-path", lambda ws: run_args(ws, "--profile", "/nonexistent/dir/desktop-rtx.toml"), 2,
         "no such profile file"),
    Case("profile-unknown-name", lambda ws: run_args(ws, "--profile", "no-such-cart"), 2, "no such profile"),
    Case("profile-threads-text", lambda ws: run_args(ws, "--profile", _profile(ws, '[threads]\nintra_op = "two"\n')),
         2, "threads.intra_op"),
    Case("profile-bad-toml", lambda ws: run_args(ws, "--profile", _profile(ws, "budget_ms = [\n")), 2, "TOML"),
    Case("profile-unknown-key", lambda ws: run_args(ws, "--profile", _profile(ws, "turbo = true\n")), 2, "turbo"),
    Case("profile-budget-zero", lambda ws: run_args(ws, "--profile", str(ws.file(
        "z.toml", 'name = "z"\nbudget_ms = 0\ninput_hw = [8, 8]\nprecision = "fp32"\nbackends = ["onnxruntime"]\n'))),
         2, "budget_ms"),
    # --- outputs onto inputs (2) --------------------------------------------------------------
    Case("change-map-onto-input", lambda ws: run_args(ws, "--change-map", str(ws.video)), 2, "overwrite its input"),
    Case("png-into-input-folder", lambda ws: run_args(ws, "--sink", f"png:{ws.frames}", source=ws.frames), 2,
         "overwrite its input"),
    Case("video-onto-input", lambda ws: run_args(ws, "--sink", f"video:{ws.video}"), 2, "overwrite its input"),
    Case("video-via-symlink", lambda ws: _link(ws, "sym"), 2, "overwrite its input"),
    Case("video-via-hard-link", lambda ws: _link(ws, "hard"), 2, "overwrite its input"),
    Case("out-is-the-input", lambda ws: run_args(ws)[:5] + ["--out", str(ws.video), "--sink", "null"], 2,
         "overwrite its input"),
    Case("out-inside-input-folder", lambda ws: ["run", "--source", str(ws.frames), "--model", str(ws.bundle),
                                                "--out", str(ws.frames / "o"), "--sink", "null"], 2,
         "overwrite its input"),
    Case("dicom-onto-input", lambda ws: run_args(ws, "--sink", f"dicom:{ws.video}"), 2, "overwrite its input"),
    # --- outputs that cannot be written (8) --------------------------------------------------
    Case("out-under-a-file", lambda ws: run_args(ws)[:5] + ["--out", str(ws.file("plain.txt", "x") / "o"),
                                                            "--sink", "null"], 8, "cannot create"),
    Case("out-read-only-fs", lambda ws: run_args(ws)[:5] + ["--out", "/proc/ganrt-out", "--sink", "null"], 8,
         "cannot create"),
    # --- models (3) ---------------------------------------------------------------------------
    Case("model-missing", lambda ws: run_args(ws)[:3] + ["--model", str(ws.root / "nope"), "--out", str(ws.out)],
         3, "no model bundle"),
    Case("manifest-absolute-path", lambda ws: _manifest_with(ws, _artifact_file("/etc/hostname")), 3,
         "outside the bundle"),
    Case("manifest-dotdot-path", lambda ws: _manifest_with(ws, _artifact_file("../in.avi")), 3, "outside the bundle"),
    Case("manifest-artifacts-list", lambda ws: _manifest_with(ws, lambda m: {**m, "artifacts": [1, 2]}), 3,
         "malformed"),
    Case("manifest-io-list", lambda ws: _manifest_with(ws, lambda m: {**m, "io": ["input"]}), 3, "malformed"),
    Case("manifest-number-as-text", lambda ws: _manifest_with(
        ws, lambda m: {**m, "io": {**m["io"], "size_multiple": "eight"}}), 3, "malformed"),
    Case("manifest-deep-nesting", lambda ws: (ws.write_manifest(_nested(100_000)), run_args(ws))[1], 3,
         "manifest"),
    Case("manifest-not-json", lambda ws: (ws.write_manifest("{not json"), run_args(ws))[1], 3, "manifest"),
    Case("artifact-tampered", _tamper, 3, "sha256 mismatch"),
    # --- sources (6) --------------------------------------------------------------------------
    Case("source-missing", lambda ws: run_args(ws, source=ws.root / "nope.mp4"), 6, "nope.mp4"),
    Case("source-empty-file", lambda ws: run_args(ws, source=ws.file("empty.mp4", b"")), 6, "empty.mp4"),
    Case("source-text-as-video", lambda ws: run_args(ws, source=ws.file("notes.mp4", "not a video")), 6,
         "notes.mp4"),
    Case("source-garbage-dicom", lambda ws: run_args(ws, source=ws.file("x.dcm", os.urandom(2048))), 6, "x.dcm"),
    Case("source-empty-folder", lambda ws: run_args(ws, source=(ws.root / "void").mkdir() or ws.root / "void"), 6,
         "no images"),
    Case("source-only-corrupt-image", lambda ws: run_args(ws, source=_image(ws, "bad", b"\x89PNG broken")), 6,
         "not a readable image"),
    # --- other commands ------------------------------------------------------------------------
    Case("bench-huge-shape", lambda ws: ["bench", "--model", str(ws.bundle), "--shape", "1x1x100000x100000"], 2,
         "--shape"),
    Case("shm-name-with-slash", lambda ws: ["shm-read", "a/b", "--wait", "0"], 2, "bad shm ring name"),
    Case("shm-bad-metadata", _bad_ring, 2, "header sizes"),
    Case("profile-validate-missing", lambda ws: ["profile", "validate", str(ws.root / "none.toml")], 2,
         "no such profile file"),
    # --- hostile but valid: the run goes on ---------------------------------------------------
    Case("folder-with-a-corrupt-frame", lambda ws: (
        (ws.frames / "frame_000001.png").write_bytes(b"\x89PNG truncated"),
        ["run", "--source", str(ws.frames), "--model", str(ws.bundle), "--out", str(ws.out), "--sink", "png"])[1],
         0, ""),
    Case("odd-size-frames", lambda ws: run_args(ws, source=_odd_video(ws)), 0, ""),
]


def _odd_video(ws: Workspace) -> Path:
    p = ws.root / "odd.avi"
    vw = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (31, 17))
    for i in range(2):
        vw.write(np.full((17, 31, 3), 90 * i, np.uint8))
    vw.release()
    return p


def test_at_least_forty_cases():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path):
    ws = make_workspace(tmp_path)
    ws.rings = []
    try:
        argv = case.argv(ws)
        before = digests(tmp_path)
        res = run_cli(argv, tmp_path)
    finally:
        for shm in ws.rings:
            shm.close()
            shm.unlink()
    err = res.stderr
    assert "Traceback" not in err and "terminate called" not in err, err
    assert res.returncode == case.rc, (res.returncode, err)
    after = digests(tmp_path)
    assert {p: h for p, h in after.items() if p in before} == before  # no input byte changed
    if case.rc:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("ganrt") and case.says in lines[0], err
    else:
        report = json.loads((ws.out / "report.json").read_text())
        rows = [json.loads(ln) for ln in (ws.out / "record.jsonl").read_text().splitlines()]
        assert [r["index"] for r in rows] == list(range(report["frames_in"]))
