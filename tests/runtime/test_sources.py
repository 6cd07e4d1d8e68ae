"""Sources: video files, image folders, cameras and the errors a user can cause."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import ManualClock

from ganrt.runtime.errors import SourceError
from ganrt.runtime.sources import open_source

MS = 1_000_000


def make_video(path: Path, n: int = 10, hw=(48, 64), fps: float = 25.0, fourcc: str = "mp4v") -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (hw[1], hw[0]), True)
    assert w.isOpened()
    for i in range(n):
        img = np.full((*hw, 3), 20 + 20 * (i % 10), np.uint8)
        cv2.putText(img, str(i), (5, hw[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        w.write(img)
    w.release()
    return path


def read_all(src) -> list:
    frames = []
    with src:
        while (f := src.read()) is not None:
            frames.append(f)
    return frames


def test_video_file_reads_every_frame_with_clock_stamps(tmp_path):
    clock = ManualClock()
    src = open_source(str(make_video(tmp_path / "a.mp4")), clock=clock)
    assert src.fps == pytest.approx(25.0) and src.frame_count == 10 and not src.live
    frames = read_all(src)
    assert [f.index for f in frames] == list(range(10))
    assert all(f.pixels.shape == (48, 64, 3) and f.pixels.dtype == np.uint8 for f in frames)
    assert all(f.t_capture_ns == clock.now_ns() for f in frames)  # as fast as possible: no pacing
    assert frames[0].meta.source_id.endswith("a.mp4")


def test_realtime_replay_is_paced_by_the_clock(tmp_path):
    clock = ManualClock()
    src = open_source(str(make_video(tmp_path / "a.mp4")), clock=clock, realtime=True)
    assert src.live
    t = [f.t_capture_ns for f in read_all(src)]
    assert np.diff(t).tolist() == [40 * MS] * 9  # 25 fps, without sleeping


def test_loop_and_max_frames(tmp_path):
    src = open_source(str(make_video(tmp_path / "a.mp4", n=4)), loop=True, max_frames=10, clock=ManualClock())
    assert [f.index for f in read_all(src)] == list(range(10))


def test_mjpg_avi_also_reads(tmp_path):
    assert len(read_all(open_source(str(make_video(tmp_path / "a.avi", fourcc="MJPG"))))) == 10


@pytest.mark.parametrize("name,fourcc", [("a.mp4", "mp4v"), ("a.avi", "MJPG")])
def test_truncated_video_ends_cleanly_or_refuses_to_open(tmp_path, name, fourcc):
    path = make_video(tmp_path / name, n=30, fourcc=fourcc)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        src = open_source(str(path))
    except SourceError as exc:
        assert "\n" not in str(exc)
        return
    frames = read_all(src)  # never raises
    assert 0 < len(frames) < 30
    assert [f.index for f in frames] == list(range(len(frames)))


def test_text_file_named_mp4(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n")
    with pytest.raises(SourceError, match="not a video") as e:
        open_source(str(p))
    assert "\n" not in str(e.value)


def test_zero_frame_video(tmp_path):
    p = tmp_path / "empty.mp4"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48), True)
    w.release()
    if not p.exists():
        p.write_bytes(b"")
    with pytest.raises(SourceError):
        open_source(str(p))


def test_missing_path_and_unknown_spec(tmp_path):
    with pytest.raises(SourceError, match="no such file or device"):
        open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(SourceError, match="no such file or device"):
        open_source("rtsp-ish-nonsense")


def test_missing_camera_is_a_source_error():
    with pytest.raises(SourceError, match="camera"):
        open_source("/dev/video97")
    with pytest.raises(SourceError, match="camera"):
        open_source("97")


def test_dicom_hook_without_the_extra(tmp_path, monkeypatch):
    p = tmp_path / "cine.dcm"
    p.write_bytes(b"DICM")
    monkeypatch.setitem(sys.modules, "ganrt.runtime.sources.dicom", None)  # as if not installed
    with pytest.raises(SourceError, match=r"DICOM input needs ganrt\[dicom\]"):
        open_source(str(p))


def test_image_folder_8_and_16_bit_natural_order(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    a8 = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    a16 = (np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 500)
    bgra = np.dstack([a8, a8, a8, np.full_like(a8, 7)])
    cv2.imwrite(str(d / "f10.png"), a8)
    cv2.imwrite(str(d / "f2.png"), a16)
    cv2.imwrite(str(d / "f3.tif"), a16)
    cv2.imwrite(str(d / "f11.png"), bgra)
    (d / "f12.png").write_bytes(b"broken")  # mid-stream junk: skipped and counted, its index kept
    cv2.imwrite(str(d / "f13.bmp"), cv2.cvtColor(a8, cv2.COLOR_GRAY2BGR))
    (d / "readme.txt").write_text("ignored")
    src = open_source(str(d), clock=ManualClock())
    assert src.frame_count == 6
    frames = read_all(src)
    assert [(f.pixels.dtype, f.pixels.shape) for f in frames] == [
        (np.uint16, (12, 10)), (np.uint16, (12, 10)), (np.uint8, (12, 10)), (np.uint8, (12, 10, 3)),
        (np.uint8, (12, 10, 3))]
    np.testing.assert_array_equal(frames[0].pixels, a16)
    np.testing.assert_array_equal(frames[2].pixels, a8)
    assert [f.index for f in frames] == [0, 1, 2, 3, 5] and src.decode_errors == 1 and list(src.skipped) == [4]


def test_empty_folder(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path / "e"))
