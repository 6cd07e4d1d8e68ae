"""Output to a second process: the shared-memory ring (seqlock), the raw pipe, and the --sink registry."""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import struct
import subprocess
import sys
import uuid

import numpy as np
import pytest
from bundles import make_bundle
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest

from ganrt.runtime.cli import main
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.sinks.files import NullSink
from ganrt.runtime.sinks.ipc.reader import RingError, ShmRingReader, read_framed
from ganrt.runtime.sinks.ipc.ring import H_WRITER_PID, SLOT_HEADER, ShmRingWriter, attach
from ganrt.runtime.sinks.ipc.sink import PipeFormat, PipeSink, ShmRingSink
from ganrt.runtime.sinks.provenance import Provenance
from ganrt.runtime.sinks.specs import SinkContext, SinkKind, SinkSpec, build_sinks, parse_sinks

PROV = Provenance(model_sha="0123456789abcdef", artifact="tiny.onnx", backend="fake", profile="test")
SPAWN = mp.get_context("spawn")


@pytest.fixture
def ring_name():
    name = f"ganrt_test_{uuid.uuid4().hex[:10]}"
    yield name
    try:  # a failed test may leave it behind
        from ganrt.runtime.sinks.ipc.ring import attach, unlink_attached

        s = attach(name)
        unlink_attached(s)
        s.close()
    except FileNotFoundError:
        pass


def uniform(number: int, hw=(6, 8)) -> np.ndarray:
    return np.full((*hw, 3), number % 251, np.uint8)


class Recorder(NullSink):
    """What the other sinks of the run were given (clean pixels)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = []

    def write(self, frame, result) -> None:
        self.rows.append((frame.index, result.outcome.value, result.pixels.copy()))


def run_pipeline(sinks, n=6, fail_on=(), channels=3):
    clock = ManualClock()
    runner = FakeRunner(latency_ms=1.0, clock=clock, fail_on=fail_on)
    src = FakeSource(n=n, hw=(16, 20), channels=channels, clock=clock)
    with runner:
        enh = Enhancer(runner, fake_manifest(channels=channels), clock=clock)
        return run(src, enh, sinks, PipelineConfig.with_budget(1000.0, warmup=0), clock=clock)


# --- the ring, in one process ------------------------------------------------------------------------
def test_ring_header_slots_and_lapping(ring_name):
    w = ShmRingWriter(ring_name, slots=3, checksum=True, fps=25.0, meta={"provenance": PROV.to_dict()})
    try:
        w.publish(uniform(1), frame_index=10, t_capture_ns=5, outcome=0)
        with ShmRingReader(ring_name) as r:
            g = r.geometry
            assert (g.height, g.width, g.channels, g.dtype, g.slots) == (6, 8, 3, np.dtype(np.uint8), 3)
            assert r.fps == 25.0 and r.meta["provenance"]["model_sha"] == PROV.model_sha and r.checksum
            f = r.read(1)
            assert (f.number, f.frame_index, f.t_capture_ns, f.outcome, f.late) == (1, 10, 5, "enhanced", False)
            np.testing.assert_array_equal(f.pixels, uniform(1))
            for k in range(2, 6):
                w.publish(uniform(k), frame_index=10 + k, outcome=1, late=k == 5)
            assert r.read(1) is None and r.read(2) is None  # overwritten (3 slots)
            latest = r.latest()
            assert latest.number == 5 and latest.outcome == "passthrough" and latest.late
            got = [r.next(timeout_s=0).number for _ in range(3)]
            assert got == [3, 4, 5] and r.missed == 2  # frames 1 and 2 were lost to this reader, and counted
            assert r.next(timeout_s=0) is None and not r.closed
        w.close()
    finally:
        w.close()


def test_reader_rejects_a_copy_the_writer_changed_midway(ring_name):
    w = ShmRingWriter(ring_name, slots=2, checksum=False)
    w.publish(uniform(1))

    class Racing(ShmRingReader):
        raced = False

        def _copy_pixels(self, off):
            pixels = super()._copy_pixels(off)
            if not self.raced:  # the writer laps this slot while the reader copies it
                self.raced = True
                w.publish(uniform(2))
                w.publish(uniform(3))
            return pixels

    try:
        with Racing(ring_name) as r:
            assert r.read(1) is None  # never a mix of frame 1 and frame 3
            assert r.torn == 1
            f = r.read(3)
            assert f.number == 3 and (f.pixels == 3).all()
    finally:
        w.close()


def test_crc_catches_pixels_changed_without_the_seqlock(ring_name):
    w = ShmRingWriter(ring_name, slots=2, checksum=True)
    w.publish(uniform(7))
    try:
        with ShmRingReader(ring_name) as r:
            off = r._slot_offset(1) + SLOT_HEADER
            r._shm.buf[off] = 99  # as if a reordered store landed after the reader's check
            assert r.read(1) is None and r.torn > 0
    finally:
        w.close()


def test_a_slot_being_written_is_not_returned(ring_name):
    w = ShmRingWriter(ring_name, slots=2, checksum=False)
    w.publish(uniform(1))
    try:
        with ShmRingReader(ring_name) as r:
            seq_off = r._slot_offset(1)
            seq = struct.unpack_from("<Q", r._shm.buf, seq_off)[0]
            struct.pack_into("<Q", r._shm.buf, seq_off, seq + 1)  # odd: mid-write
            assert r.read(1) is None  # gives up after its retries instead of spinning forever
            struct.pack_into("<Q", r._shm.buf, seq_off, seq)
            assert r.read(1).number == 1
    finally:
        w.close()


def test_stale_ring_is_replaced_live_or_foreign_one_refused(ring_name):
    from multiprocessing import shared_memory

    w = ShmRingWriter(ring_name, slots=2, unlink_on_close=False)
    w.publish(uniform(1))
    w.close()  # left behind, as by a crashed writer
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    shm = attach(ring_name)
    try:
        struct.pack_into("<Q", shm.buf, H_WRITER_PID, os.getppid())  # a live process owns it
    finally:
        shm.close()
    with pytest.raises(ConfigError, match="in use by a running writer"):
        ShmRingWriter(ring_name, slots=2).publish(uniform(1))
    shm = attach(ring_name)
    try:
        struct.pack_into("<Q", shm.buf, H_WRITER_PID, int(dead.stdout))
    finally:
        shm.close()
    w2 = ShmRingWriter(ring_name, slots=4)
    w2.publish(uniform(2))  # the stale ring (dead writer) was replaced
    with ShmRingReader(ring_name) as r:
        assert r.geometry.slots == 4 and r.latest().number == 1
    w2.close()
    foreign = shared_memory.SharedMemory(name=ring_name, create=True, size=4096)
    try:
        with pytest.raises(ConfigError, match="not a ganrt ring"):
            ShmRingWriter(ring_name).publish(uniform(1))
    finally:
        foreign.close()
        foreign.unlink()


def test_reader_of_a_missing_ring():
    with pytest.raises(RingError, match="no ganrt shm ring"):
        ShmRingReader(f"ganrt_absent_{uuid.uuid4().hex[:8]}")


# --- the ring, across processes ----------------------------------------------------------------------
def _reader_process(name, attached, results, stress):
    """Runs in a spawned process: attach, signal, read until the writer closes."""
    r = ShmRingReader(name, wait_s=30)
    attached.set()
    rows, bad = [], 0
    for f in r.frames(timeout_s=60):
        if stress:
            bad += int(not (f.pixels == f.number % 251).all())  # a torn frame would mix two values
            rows.append(f.number)
        else:
            rows.append((f.number, f.frame_index, f.outcome, f.pixels.tobytes()))
    results.put((rows, bad, r.missed, r.meta))
    r.close()


def _start_reader(name, stress=False):
    attached, results = SPAWN.Event(), SPAWN.Queue()
    p = SPAWN.Process(target=_reader_process, args=(name, attached, results, stress))
    p.start()
    assert attached.wait(60), "reader process did not attach"
    return p, results


def test_pipeline_frames_reach_a_reader_in_another_process(ring_name):
    sink = ShmRingSink(ring_name, slots=8, overlay=False, provenance=PROV, fps=30.0)
    sink.ring.create(16, 20, 3, np.uint8)  # the reader may attach before the first frame
    proc, results = _start_reader(ring_name)
    rec = Recorder()
    report = run_pipeline([sink, rec], n=6, fail_on=[2])  # the third inference fails: shown raw
    rows, bad, missed, meta = results.get(timeout=60)
    proc.join(30)
    assert proc.exitcode == 0 and missed == 0
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6] and [r[1] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert [r[2] for r in rows] == [o for _, o, _ in rec.rows] and rows[2][2] == "passthrough"
    assert [r[3] for r in rows] == [p.tobytes() for _, _, p in rec.rows]  # the exact pixels
    assert meta["provenance"]["model_sha"] == PROV.model_sha and report.frames_out == 6


def test_a_reader_racing_the_writer_never_keeps_a_torn_frame(ring_name):
    w = ShmRingWriter(ring_name, slots=2, checksum=False)  # the seqlock alone
    w.create(120, 160, 3, np.uint8)
    proc, results = _start_reader(ring_name, stress=True)
    for k in range(1, 401):
        w.publish(uniform(k, (120, 160)), frame_index=k)
    w.close()
    numbers, bad, missed, _ = results.get(timeout=60)
    proc.join(30)
    assert bad == 0 and numbers and numbers == sorted(numbers)
    assert numbers[-1] == 400 and len(numbers) + missed == 400  # every frame read or counted as missed


def test_shm_read_command(ring_name, capsys, tmp_path):
    w = ShmRingWriter(ring_name, slots=4, unlink_on_close=False, meta={"provenance": PROV.to_dict()})
    for k in range(1, 4):
        w.publish(uniform(k), frame_index=k - 1, outcome=k == 2)
    w.close()
    assert main(["shm-read", ring_name, "--wait", "0", "--png", str(tmp_path / "png")]) == 0
    out = capsys.readouterr().out
    assert "8x6x3 uint8, 4 slots" in out and "#2 frame 1 passthrough" in out and "read 3 frame(s), missed 0" in out
    assert len(list((tmp_path / "png").glob("ring_*.png"))) == 3
    assert main(["shm-read", ring_name, "--info", "--wait", "0"]) == 0
    assert PROV.model_sha in capsys.readouterr().out
    assert main(["shm-read", "ganrt_absent_x1", "--wait", "0"]) == ConfigError.exit_code


# --- the pipe ----------------------------------------------------------------------------------------
def test_raw_pipe_is_plain_concatenated_frames():
    buf, hint = io.BytesIO(), io.StringIO()
    rec = Recorder()
    run_pipeline([PipeSink("-", overlay=False, fps=25.0, stdout=buf, hint=hint), rec], n=4)
    data = buf.getvalue()
    assert data == b"".join(p.tobytes() for _, _, p in rec.rows)
    assert "raw bgr24 20x16 @ 25 fps" in hint.getvalue() and "-video_size 20x16" in hint.getvalue()


def test_framed_pipe_through_a_fifo_to_another_process(tmp_path):
    fifo = tmp_path / "frames.fifo"
    os.mkfifo(fifo)
    code = ("import sys, hashlib\nfrom ganrt.runtime.sinks.ipc.reader import read_framed\n"
            f"fh = open({str(fifo)!r}, 'rb')\nheader, frames = read_framed(fh)\n"
            "print(header['width'], header['height'], header['provenance']['model_sha'])\n"
            "for f in frames: print(f.number, f.frame_index, f.outcome, hashlib.sha256(f.pixels.tobytes()).hexdigest())\n")
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    rec = Recorder()
    run_pipeline([PipeSink(str(fifo), fmt=PipeFormat.FRAMED, overlay=False, provenance=PROV, hint=io.StringIO()), rec],
                 n=5, fail_on=[1])
    out, _ = reader.communicate(timeout=60)
    lines = out.splitlines()
    assert lines[0] == f"20 16 {PROV.model_sha}"
    import hashlib

    want = [f"{i + 1} {idx} {o} {hashlib.sha256(p.tobytes()).hexdigest()}" for i, (idx, o, p) in enumerate(rec.rows)]
    assert lines[1:] == want and "passthrough" in lines[2]


def test_framed_parser_round_trip_and_bad_magic():
    buf = io.BytesIO()
    run_pipeline([PipeSink("-", fmt=PipeFormat.FRAMED, overlay=True, stdout=buf, hint=io.StringIO())], n=3)
    buf.seek(0)
    header, frames = read_framed(buf)
    got = list(frames)
    assert header["overlay"] and [f.number for f in got] == [1, 2, 3] and got[0].pixels.shape == (16, 20, 3)
    with pytest.raises(RingError):
        read_framed(io.BytesIO(b"nonsense" * 4))


class _Broken(io.RawIOBase):
    def writable(self):
        return True

    def write(self, b):
        raise BrokenPipeError(32, "Broken pipe")


def test_reader_going_away_disables_the_pipe_not_the_run(tmp_path):
    rec = Recorder()
    report = run_pipeline([PipeSink("-", stdout=_Broken(), hint=io.StringIO()), rec], n=5)
    assert report.sink_errors == 1 and len(rec.rows) == 5 and report.frames_out == 5


def test_pipe_to_stdout_through_the_cli_keeps_stdout_for_frames(tmp_path):
    bundle = make_bundle(tmp_path / "bundle")
    folder = tmp_path / "imgs"
    folder.mkdir()
    import cv2

    for i in range(3):
        cv2.imwrite(str(folder / f"f{i}.png"), np.full((12, 16), 30 * i, np.uint8))
    res = subprocess.run([sys.executable, "-m", "ganrt.runtime.cli", "run", "--source", str(folder), "--model",
                          str(bundle), "--out", str(tmp_path / "o"), "--sink", "pipe:-", "--no-overlay",
                          "--budget-ms", "5000", "--json"], capture_output=True)
    assert res.returncode == 0, res.stderr.decode()
    assert len(res.stdout) == 3 * 12 * 16  # gray frames, nothing else on stdout
    assert b'"frames_out": 3' in res.stderr and b"raw gray 16x12" in res.stderr


# --- the --sink registry -----------------------------------------------------------------------------
def test_sink_specs_parse_and_refuse_clearly(tmp_path):
    specs = parse_sinks(["video", "dicom:out/series.dcm", "shm:ganrt_us?slots=8&crc=1", "pipe:-?format=framed",
                         "side-by-side:cmp.avi?overlay=0"])
    assert [s.kind for s in specs] == [SinkKind.VIDEO, SinkKind.DICOM, SinkKind.SHM, SinkKind.PIPE,
                                       SinkKind.SIDE_BY_SIDE]
    assert specs[1].target == "out/series.dcm" and specs[2].number("slots", 4) == 8 and specs[2].flag("crc", False)
    assert [s.kind for s in parse_sinks(None)] == [SinkKind.VIDEO, SinkKind.SIDE_BY_SIDE]
    for bad, frag in [("webm", "unknown sink 'webm'"), ("shm", "needs a target"), ("null:x", "takes no target"),
                      ("video?fps=3", "unknown option"), ("shm:x?slots=many", "whole number")]:
        with pytest.raises(ConfigError, match=frag):
            [s.number("slots", 4) for s in parse_sinks([bad])]
    with pytest.raises(ConfigError, match="only one"):
        parse_sinks(["pipe:-", "pipe"])


def test_sinks_are_built_with_targets_and_provenance(tmp_path, ring_name):
    ctx = SinkContext(tmp_path / "out", PROV, fps=20.0, overlay=True)
    sinks = build_sinks(parse_sinks(["video", f"video:{tmp_path}/x.avi", "png", f"shm:{ring_name}?slots=3",
                                     "pipe:" + str(tmp_path / "raw.bin")]), ctx)
    assert sinks[0].path == tmp_path / "out" / "enhanced.mp4" and sinks[1].path.suffix == ".avi"
    assert sinks[3].ring.slots == 3
    report = run_pipeline(sinks, n=2)
    assert report.sink_errors == 0
    assert (tmp_path / "out" / "enhanced.mp4.provenance.json").exists()
    assert (tmp_path / "x.avi.provenance.json").exists()
    from ganrt.runtime.sinks.provenance import png_text

    text = png_text((tmp_path / "out" / "frames" / "frame_000001.png").read_bytes())
    assert text["ganrt:model_sha"] == PROV.model_sha and text["ganrt:outcome"] == "enhanced"
    assert (tmp_path / "raw.bin").stat().st_size == 2 * 16 * 20 * 3


def test_a_sink_that_cannot_be_made_closes_the_others(tmp_path, ring_name):
    ctx = SinkContext(tmp_path, PROV)
    with pytest.raises(ConfigError):
        build_sinks([SinkSpec(SinkKind.SHM, ring_name), SinkSpec(SinkKind.SHM, "bad/name")], ctx)
