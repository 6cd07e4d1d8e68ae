"""SIGTERM, SIGINT and SIGHUP finish every output and exit 128 + N; at start-up one line, no traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to know when to signal")

CLI = [sys.executable, "-m", "ganrt.runtime.cli"]


def _video(path: Path, n: int = 600) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
    for i in range(n):
        vw.write(np.full((48, 64, 3), (7 * i) % 250, np.uint8))
    vw.release()
    return path


def _wait_for(cond, proc: subprocess.Popen, what: str, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"ganrt ended (rc {proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _rows(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_signal_mid_run_finishes_every_sink(tmp_path, sig, code):
    src = _video(tmp_path / "in.mp4")
    out = tmp_path / "o"
    proc = subprocess.Popen([*CLI, "run", "--source", str(src), "--out", str(out), "--realtime", "--no-overlay",
                             "--sink", "video", "--sink", "dicom", "--sink", "png"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = out / "record.jsonl.partial"
    # rows reach the disk as they happen (a block-buffered file would still be empty after 5 rows)
    _wait_for(lambda: len(_rows(partial)) >= 5, proc, "5 record rows on disk")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("ganrt: interrupted by")
    rows = _rows(out / "record.jsonl")
    assert [r["index"] for r in rows] == list(range(len(rows)))  # every frame read is in the record
    shown = [r for r in rows if r["outcome"] != "dropped"]
    assert len(shown) >= 5
    cap = cv2.VideoCapture(str(out / "enhanced.mp4"))  # a moov atom: the file opens and counts its frames
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(shown)
    assert int(pydicom.dcmread(out / "enhanced.dcm").NumberOfFrames) == len(shown)  # assembled series
    assert len(list((out / "frames").glob("frame_*.png"))) == len(shown)  # the frame in flight reached every sink
    assert not list(out.rglob("*.partial"))
    assert json.loads((out / "report.json").read_text())["interrupted"] is True


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    src = _video(tmp_path / "in.mp4", 30)
    proc = subprocess.Popen([*CLI, "run", "--source", str(src), "--out", str(tmp_path / "o"), "--sink", "null"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{proc.pid}/maps")

    def importing_the_runtime() -> bool:  # the backend's native library is being loaded: start-up is under way
        try:
            return "onnxruntime" in maps.read_text()
        except OSError:
            return False

    _wait_for(importing_the_runtime, proc, "onnxruntime to load")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganrt: interrupted by SIGINT") and "Traceback" not in err
