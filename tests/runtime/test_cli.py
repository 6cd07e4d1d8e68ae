"""`ganrt run` / `bench` / `profile` on bad input: one clear line, a documented exit code, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from bundles import blur_model, make_bundle

from ganrt.runtime.cli import main
from ganrt.runtime.errors import BackendUnavailable, ConfigError, ModelError, SourceError


def _video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        vw.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    vw.release()
    return path


def _frames(n: int, hw=(64, 80)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (*hw, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line_error(err: str, fragment: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ganrt: error: ") and fragment in lines[0]
    assert "Traceback" not in err


def test_run_writes_video_record_and_report(tmp_path, bundle, capsys):
    src = _video(tmp_path / "in.avi", _frames(6))
    rc, out, err = _run(capsys, "run", "--source", str(src), "--model", str(bundle), "--out", str(tmp_path / "o"),
                        "--sink", "video", "--sink", "png", "--budget-ms", "1000")
    assert rc == 0, err
    rows = [json.loads(x) for x in (tmp_path / "o" / "record.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(6))
    assert all(r["outcome"] == "enhanced" for r in rows)
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["frames_in"] == 6 and rep["enhanced"] == 6
    assert (tmp_path / "o" / "enhanced.mp4").stat().st_size > 0
    assert len(list((tmp_path / "o" / "frames").glob("*.png"))) == 6
    assert "capture_to_output" in out


def test_odd_changing_sizes_and_16_bit_frames(tmp_path, bundle, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    cv2.imwrite(str(folder / "a0.png"), rng.integers(0, 255, (33, 47), dtype=np.uint8))
    cv2.imwrite(str(folder / "a1.png"), rng.integers(0, 65535, (61, 29), dtype=np.uint16))
    cv2.imwrite(str(folder / "a2.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    # the whole frame: an ultrasound bundle's default region detection would restart at each new size
    rc, _, err = _run(capsys, "run", "--source", str(folder), "--model", str(bundle), "--out", str(tmp_path / "o"),
                      "--sink", "png", "--budget-ms", "1000", "--json", "--region", "full")
    assert rc == 0, err
    rows = [json.loads(x) for x in (tmp_path / "o" / "record.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["enhanced"] * 3
    shapes = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape for p in sorted((tmp_path / "o" / "frames").glob("*.png"))]
    assert shapes[0] == (33, 47) and shapes[1] == (61, 29) and shapes[2] == (40, 40, 3)


def test_colour_model_with_gray_input_runs(tmp_path, capsys):
    rgb = make_bundle(tmp_path / "rgb", channels=3, model=blur_model(3))
    folder = tmp_path / "gray"
    folder.mkdir()
    cv2.imwrite(str(folder / "g.png"), np.full((20, 24), 100, np.uint8))
    rc, _, err = _run(capsys, "run", "--source", str(folder), "--model", str(rgb), "--out", str(tmp_path / "o"),
                      "--sink", "null", "--budget-ms", "1000")
    assert rc == 0, err


@pytest.mark.parametrize("case", ["missing", "text", "zero", "truncated"])
def test_bad_sources(tmp_path, bundle, capsys, case):
    if case == "missing":
        src = tmp_path / "nope.mp4"
    elif case == "text":
        src = tmp_path / "notes.mp4"
        src.write_text("this is not a video\n" * 50)
    elif case == "zero":
        src = tmp_path / "empty.avi"
        src.write_bytes(b"")
    else:
        full = _video(tmp_path / "full.avi", _frames(30))
        src = tmp_path / "cut.avi"
        src.write_bytes(full.read_bytes()[: 4096])
    rc, _, err = _run(capsys, "run", "--source", str(src), "--model", str(bundle), "--out", str(tmp_path / "o"),
                      "--sink", "null")
    if case == "truncated" and rc == 0:  # FFmpeg may open a cut file: then it must end cleanly, not crash
        assert "Traceback" not in err
        return
    assert rc == SourceError.exit_code
    _one_line_error(err, "")


def test_unknown_backend_and_precision(tmp_path, bundle, capsys):
    src = _video(tmp_path / "in.avi", _frames(2))
    rc, _, err = _run(capsys, "run", "--source", str(src), "--model", str(bundle), "--backend", "cuda-magic")
    assert rc == ConfigError.exit_code
    _one_line_error(err, "unknown backend 'cuda-magic'")
    rc, _, err = _run(capsys, "run", "--source", str(src), "--model", str(bundle), "--backend", "tensorrt")
    assert rc == BackendUnavailable.exit_code
    _one_line_error(err, "tensorrt")
    rc, _, err = _run(capsys, "bench", "--model", str(bundle), "--precision", "int3")
    assert rc == ConfigError.exit_code
    _one_line_error(err, "unknown precision")


def test_malformed_profile(tmp_path, bundle, capsys):
    prof = tmp_path / "cart.toml"
    prof.write_text('name = "cart"\nbudget_ms = 33\nbudgte = 1\n')
    src = _video(tmp_path / "in.avi", _frames(2))
    rc, _, err = _run(capsys, "run", "--source", str(src), "--model", str(bundle), "--profile", str(prof))
    assert rc == ConfigError.exit_code
    _one_line_error(err, "cart.toml: unknown key 'budgte'")
    rc, _, err = _run(capsys, "profile", "validate", str(prof))
    assert rc == ConfigError.exit_code


def test_tampered_bundle(tmp_path, bundle, capsys):
    art = bundle / "tiny_int8-cpu.onnx"
    art.write_bytes(art.read_bytes()[:-8] + b"tampered")
    src = _video(tmp_path / "in.avi", _frames(2))
    rc, _, err = _run(capsys, "run", "--source", str(src), "--model", str(bundle), "--out", str(tmp_path / "o"))
    assert rc == ModelError.exit_code
    _one_line_error(err, "sha256 mismatch")


def test_bench_runs_on_a_bundle(bundle, capsys):
    rc, out, err = _run(capsys, "bench", "--model", str(bundle), "--shape", "1x1x64x64", "--iterations", "5",
                        "--warmup", "1", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["latency_ms"]["n"] == 5 and r["precision"] == "int8-cpu"
    rc, _, err = _run(capsys, "bench", "--model", str(bundle), "--shape", "64x64")
    assert rc == ConfigError.exit_code
    _one_line_error(err, "--shape")


def test_dicom_cine_source(capsys):
    pydicom_data = pytest.importorskip("pydicom.data")
    from ganrt.runtime.sources import open_source

    with open_source(pydicom_data.get_testdata_file("examples_ybr_color.dcm")) as src:
        frames = list(iter(src.read, None))
    assert len(frames) == 30 and frames[0].pixels.shape == (240, 320, 3)
    assert abs(src.fps - 30.0) < 0.1
