"""A shared-memory frame ring for a second process (telemedicine encoder, display): the writer.

Layout (all little-endian; docs/shm_ring.md is the reference for readers in any language):
a 128-byte fixed header, the writer's metadata as JSON, then ``slots`` fixed-size slots of a
64-byte slot header followed by the frame's pixels. Each slot is a seqlock: the writer makes
its ``seq`` odd, writes the pixels and fields, makes it even again, and only then bumps the
header's ``write_count``. A reader copies a slot between two reads of ``seq`` and keeps the
copy only if both reads are the same even number, so it never keeps a torn frame and never
blocks the writer (a lagging reader loses frames, counted, instead of slowing the stream).

Memory ordering: aligned 8-byte stores and loads are single instructions here; x86-64 keeps
stores in order (TSO), which the seqlock relies on. On weakly ordered CPUs (ARM: Jetson)
CPython cannot emit fences, so the writer also stores a CRC32 of the pixels (``checksum``,
on by default off x86) and readers reject a copy whose CRC does not match.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import struct
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from ...errors import ConfigError

log = logging.getLogger(__name__)

MAGIC = b"GANRTRNG"
VERSION = 1
FIXED_HEADER = 128
SLOT_HEADER = 64
ALIGN = 64
MAX_META = 16384

# header fields: (byte offset, struct format)
H_MAGIC, H_VERSION, H_HEADER_BYTES = 0, 8, 12
H_WIDTH, H_HEIGHT, H_CHANNELS, H_DTYPE = 16, 20, 24, 28
H_SLOTS, H_SLOT_BYTES, H_FRAME_BYTES, H_FLAGS = 32, 36, 40, 44
H_WRITE_COUNT, H_WRITER_PID, H_FPS, H_META_BYTES = 48, 56, 64, 72

# slot header fields (byte offset inside the slot)
S_SEQ, S_NUMBER, S_FRAME_INDEX, S_T_CAPTURE, S_T_PUBLISH = 0, 8, 16, 24, 32
S_OUTCOME, S_FLAGS, S_CRC = 40, 44, 48

FLAG_CLOSED = 1
FLAG_CRC = 2
SLOT_LATE = 1

# The framed pipe format (sinks_ipc.PipeSink, shm_reader.read_framed) shares the codes above.
PIPE_MAGIC = b"GANRTPIP"
PIPE_VERSION = 1
FRAME_MAGIC = b"GFRM"
FRAME_HEADER = struct.Struct("<4sIQQQQIIIIII")  # 64 bytes per frame: docs/shm_ring.md, "Raw pipe"

DTYPES: dict[int, np.dtype] = {1: np.dtype(np.uint8), 2: np.dtype("<u2")}
OUTCOMES = ("enhanced", "passthrough")  # slot outcome code -> name


def dtype_code(dtype: np.dtype) -> int:
    for code, dt in DTYPES.items():
        if np.dtype(dtype) == dt:
            return code
    raise ConfigError(f"shm ring carries uint8 or uint16 frames (got {dtype})")


def _round_up(n: int, k: int = ALIGN) -> int:
    return (n + k - 1) // k * k


@dataclass(frozen=True)
class RingGeometry:
    height: int
    width: int
    channels: int
    dtype: np.dtype
    slots: int

    @property
    def frame_bytes(self) -> int:
        return self.height * self.width * self.channels * self.dtype.itemsize

    @property
    def slot_bytes(self) -> int:
        return SLOT_HEADER + _round_up(self.frame_bytes)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.height, self.width) if self.channels == 1 else (self.height, self.width, self.channels)


def default_checksum() -> bool:
    """CRC32 per frame where stores may be reordered (anything but x86)."""
    return platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TRACKER_LOCK = threading.Lock()


def attach(name: str) -> shared_memory.SharedMemory:
    """Open an existing segment without registering it with this process's resource tracker.

    Before Python 3.13 attaching registered the segment as if this process owned it, so the
    tracker unlinked it when a *reader* exited (and a spawned child shares its parent's
    tracker, so unregistering afterwards would drop the writer's own registration too).
    The only way around it there is to skip the registration while attaching."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]
    from multiprocessing import resource_tracker

    with _TRACKER_LOCK:
        register = resource_tracker.register
        resource_tracker.register = lambda *_a, **_k: None  # type: ignore[assignment]
        try:
            return shared_memory.SharedMemory(name=name)
        finally:
            resource_tracker.register = register  # type: ignore[assignment]


def unlink_attached(shm: shared_memory.SharedMemory) -> None:
    """Unlink a segment opened with ``attach`` (balancing the tracker's bookkeeping)."""
    if sys.version_info < (3, 13):
        from multiprocessing import resource_tracker

        resource_tracker.register(shm._name, "shared_memory")  # type: ignore[attr-defined]
    shm.unlink()


class ShmRingWriter:
    """Publishes frames into the ring ``name`` (POSIX shared memory: /dev/shm/NAME on Linux).

    The segment is created at the first ``publish`` (its geometry is the first frame's). A stale
    segment of a ganrt writer that died is replaced; one whose writer is alive is an error.
    ``close`` marks the ring closed (readers finish) and unlinks the name; readers that are
    attached keep their mapping."""

    def __init__(self, name: str, *, slots: int = 4, checksum: bool | None = None, fps: float = 0.0,
                 meta: dict[str, Any] | None = None, unlink_on_close: bool = True) -> None:
        if not name or "/" in name.strip("/") or len(name) > 200:
            raise ConfigError(f"shm ring name must be a plain name like ganrt_us (got {name!r})")
        if not 2 <= slots <= 1024:
            raise ConfigError(f"shm ring needs 2..1024 slots (got {slots})")
        self.name = name.strip("/")
        self.slots = slots
        self.checksum = default_checksum() if checksum is None else checksum
        self.fps = fps
        self.unlink_on_close = unlink_on_close
        meta_bytes = json.dumps(meta or {}, sort_keys=True).encode()
        if len(meta_bytes) > MAX_META:
            raise ConfigError(f"shm ring metadata is {len(meta_bytes)} bytes (max {MAX_META})")
        self._meta = meta_bytes
        self.geometry: RingGeometry | None = None
        self._shm: shared_memory.SharedMemory | None = None
        self._u64: np.ndarray | None = None  # the whole segment as little-endian uint64 words
        self.count = 0
        self._closed = False

    # --- creation ---------------------------------------------------------------------------
    @property
    def header_bytes(self) -> int:
        return _round_up(FIXED_HEADER + len(self._meta))

    def create(self, height: int, width: int, channels: int, dtype: np.dtype) -> RingGeometry:
        if self._shm is not None:
            raise RuntimeError("ring already created")
        if channels not in (1, 3, 4):
            raise ConfigError(f"shm ring frames have 1, 3 or 4 channels (got {channels})")
        geo = RingGeometry(height, width, channels, np.dtype(dtype), self.slots)
        code = dtype_code(geo.dtype)
        size = self.header_bytes + geo.slots * geo.slot_bytes
        self._shm = self._create_segment(size)
        buf = self._shm.buf
        buf[:self.header_bytes] = bytes(self.header_bytes)
        struct.pack_into("<8sII", buf, H_MAGIC, MAGIC, VERSION, self.header_bytes)
        struct.pack_into("<IIIIIIII", buf, H_WIDTH, width, height, channels, code, geo.slots, geo.slot_bytes,
                         geo.frame_bytes, FLAG_CRC if self.checksum else 0)
        struct.pack_into("<QQdI", buf, H_WRITE_COUNT, 0, os.getpid(), float(self.fps), len(self._meta))
        buf[FIXED_HEADER:FIXED_HEADER + len(self._meta)] = self._meta
        for i in range(geo.slots):  # slots start stable and empty
            off = self.header_bytes + i * geo.slot_bytes
            buf[off:off + SLOT_HEADER] = bytes(SLOT_HEADER)
        self._u64 = np.ndarray((size // 8,), dtype="<u8", buffer=buf)
        self.geometry = geo
        log.info("shm ring %s: %d slots of %dx%dx%d %s (%.1f MiB)", self.name, geo.slots, width, height, channels,
                 geo.dtype.name, size / 2**20)
        return geo

    def _create_segment(self, size: int) -> shared_memory.SharedMemory:
        try:
            return shared_memory.SharedMemory(name=self.name, create=True, size=size)
        except FileExistsError:
            pass
        old = attach(self.name)
        try:
            head = bytes(old.buf[:FIXED_HEADER]) if old.size >= FIXED_HEADER else b""
        finally:
            old.close()
        if head[:8] != MAGIC:
            raise ConfigError(f"shared memory {self.name!r} exists and is not a ganrt ring; choose another name")
        pid = struct.unpack_from("<Q", head, H_WRITER_PID)[0]
        if pid != os.getpid() and pid_alive(pid):
            raise ConfigError(f"shm ring {self.name!r} is in use by a running writer (pid {pid})")
        log.warning("shm ring %s: replacing a stale ring left by pid %d", self.name, pid)
        stale = attach(self.name)
        unlink_attached(stale)
        stale.close()
        return shared_memory.SharedMemory(name=self.name, create=True, size=size)

    # --- publishing -------------------------------------------------------------------------
    def publish(self, pixels: np.ndarray, *, frame_index: int = 0, t_capture_ns: int = 0,
                outcome: int = 0, late: bool = False) -> int:
        """Write one frame into the next slot; returns its publish number (1, 2, ...)."""
        if self._closed:
            raise RuntimeError("ring is closed")
        if self.geometry is None:
            ch = 1 if pixels.ndim == 2 else pixels.shape[2]
            self.create(pixels.shape[0], pixels.shape[1], ch, pixels.dtype)
        geo, u64, buf = self.geometry, self._u64, self._shm.buf  # type: ignore[union-attr]
        assert geo is not None and u64 is not None
        if pixels.shape != geo.shape or pixels.dtype != geo.dtype:
            raise ValueError(f"frame {pixels.shape} {pixels.dtype} does not fit the ring {geo.shape} {geo.dtype}")
        number = self.count + 1
        off = self.header_bytes + ((number - 1) % geo.slots) * geo.slot_bytes
        w = off // 8
        seq = int(u64[w])
        u64[w] = seq + 1  # odd: being written
        data = np.ascontiguousarray(pixels)
        buf[off + SLOT_HEADER:off + SLOT_HEADER + geo.frame_bytes] = data.reshape(-1).view(np.uint8)
        u64[w + 1] = number
        u64[w + 2] = max(0, int(frame_index))
        u64[w + 3] = max(0, int(t_capture_ns))
        u64[w + 4] = time.monotonic_ns()
        crc = zlib.crc32(data) & 0xFFFFFFFF if self.checksum else 0
        struct.pack_into("<III", buf, off + S_OUTCOME, int(outcome), SLOT_LATE if late else 0, crc)
        u64[w] = seq + 2  # even: stable
        u64[H_WRITE_COUNT // 8] = number
        self.count = number
        return number

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._shm is None:
            return
        flags = struct.unpack_from("<I", self._shm.buf, H_FLAGS)[0]
        struct.pack_into("<I", self._shm.buf, H_FLAGS, flags | FLAG_CLOSED)
        self._u64 = None
        self._shm.close()
        if self.unlink_on_close:
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass
