"""Read ganrt's shared-memory frame ring from another process (the reader behind ``ganrt shm-read``).

    from ganrt.runtime.sinks.ipc.reader import ShmRingReader

    with ShmRingReader("ganrt_us", wait_s=10) as ring:      # waits for the writer to appear
        for f in ring.frames():                              # every frame it can get, in order
            show(f.pixels, f.outcome)                        # HxW or HxWx3 BGR, a private copy
        print(ring.missed, "frames overwritten before they were read")

Only numpy and the standard library: a consumer process does not need the rest of ganrt.
The format is in docs/shm_ring.md; the writer is ``ganrt.runtime.sinks.ipc.ring``.
"""

from __future__ import annotations

import json
import re
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ring import (
    DTYPES,
    FIXED_HEADER,
    FLAG_CLOSED,
    FLAG_CRC,
    FRAME_HEADER,
    FRAME_MAGIC,
    H_FLAGS,
    H_FPS,
    H_MAGIC,
    H_META_BYTES,
    H_WRITE_COUNT,
    H_WRITER_PID,
    MAGIC,
    OUTCOMES,
    PIPE_MAGIC,
    S_OUTCOME,
    SLOT_HEADER,
    SLOT_LATE,
    VERSION,
    RingGeometry,
    attach,
)

READ_TRIES = 64  # seqlock retries before giving up on one slot (the writer keeps lapping it)


_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")


class RingError(Exception):
    """The ring is missing, not a ganrt ring, or of an unknown version."""


@dataclass(frozen=True)
class RingFrame:
    number: int  # publish number: 1, 2, ... (gaps = frames this reader missed)
    frame_index: int  # the source frame's index (the run's record has the same index)
    t_capture_ns: int  # the writer's pipeline clock
    t_publish_ns: int  # CLOCK_MONOTONIC (time.monotonic_ns) when published: comparable across processes
    outcome: str  # "enhanced" | "passthrough"
    late: bool
    pixels: np.ndarray


class ShmRingReader:
    def __init__(self, name: str, *, wait_s: float = 0.0, poll_s: float = 0.005) -> None:
        self.name = name.strip("/")
        if not _NAME.fullmatch(self.name):
            raise RingError(f"bad shm ring name {name!r} (letters, digits, '.', '_', '-'; no '/')")
        self.poll_s = poll_s
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            try:
                self._shm = attach(self.name)
                if self._shm.size >= FIXED_HEADER and bytes(self._shm.buf[:8]) == MAGIC:
                    break
                self._shm.close()  # created but not yet initialised, or not ours
            except FileNotFoundError:
                pass
            if time.monotonic() >= deadline:
                raise RingError(f"no ganrt shm ring named {self.name!r} (is the writer running?)")
            time.sleep(poll_s)
        try:
            self._read_header()
        except RingError:
            self._shm.close()
            raise
        except (struct.error, ValueError, TypeError) as exc:  # json, utf-8 and numpy errors are ValueErrors
            self._shm.close()
            raise RingError(f"shm ring {self.name!r} has a corrupt header ({exc})") from None
        self.last_number = max(0, self.write_count - self.geometry.slots)  # frames gone before we came: not missed
        self.missed = 0  # frames overwritten after attaching, before this reader got to them
        self.torn = 0  # copies rejected (seq changed or CRC mismatch) and retried

    def _read_header(self) -> None:
        buf = self._shm.buf
        magic, version, self.header_bytes = struct.unpack_from("<8sII", buf, H_MAGIC)
        if version != VERSION:
            self._shm.close()
            raise RingError(f"shm ring {self.name!r} has format version {version}; this reader knows {VERSION}")
        width, height, channels, code, slots, self.slot_bytes, self.frame_bytes, flags = \
            struct.unpack_from("<IIIIIIII", buf, 16)
        if code not in DTYPES:
            raise RingError(f"shm ring {self.name!r}: unknown dtype code {code}")
        self.geometry = RingGeometry(height, width, channels, DTYPES[code], slots)
        self.writer_pid = struct.unpack_from("<Q", buf, H_WRITER_PID)[0]
        self.fps = struct.unpack_from("<d", buf, H_FPS)[0]
        n_meta = struct.unpack_from("<I", buf, H_META_BYTES)[0]
        if FIXED_HEADER + n_meta > self.header_bytes or self.header_bytes + slots * self.slot_bytes > self._shm.size \
                or not slots or self.frame_bytes > self.slot_bytes:
            raise RingError(f"shm ring {self.name!r}: header sizes do not fit the segment")
        self.meta: dict[str, Any] = json.loads(bytes(buf[FIXED_HEADER:FIXED_HEADER + n_meta]) or b"{}")
        if not isinstance(self.meta, dict):
            raise RingError(f"shm ring {self.name!r}: metadata is not an object")
        self.checksum = bool(flags & FLAG_CRC)
        self._u64 = np.ndarray((self._shm.size // 8,), dtype="<u8", buffer=buf)

    # --- header -----------------------------------------------------------------------------
    @property
    def write_count(self) -> int:
        return int(self._u64[H_WRITE_COUNT // 8])

    @property
    def closed(self) -> bool:
        return bool(struct.unpack_from("<I", self._shm.buf, H_FLAGS)[0] & FLAG_CLOSED)

    def _slot_offset(self, number: int) -> int:
        return self.header_bytes + ((number - 1) % self.geometry.slots) * self.slot_bytes

    # --- reading ----------------------------------------------------------------------------
    def _copy_pixels(self, off: int) -> np.ndarray:
        start = off + SLOT_HEADER
        raw = np.frombuffer(self._shm.buf, np.uint8, self.frame_bytes, start).copy()
        return raw.view(self.geometry.dtype).reshape(self.geometry.shape)

    def read(self, number: int) -> RingFrame | None:
        """Frame ``number`` if it is still in the ring (None: not yet written or overwritten)."""
        if number < 1 or number > self.write_count:
            return None
        off = self._slot_offset(number)
        w = off // 8
        for _ in range(READ_TRIES):
            s1 = int(self._u64[w])
            if s1 & 1:  # the writer is in this slot right now
                time.sleep(0)
                continue
            got = int(self._u64[w + 1])
            if got != number:
                return None  # lapped: the slot holds a newer frame (or an older one: not yet written)
            frame_index, t_cap, t_pub = (int(v) for v in self._u64[w + 2:w + 5])
            outcome, flags, crc = struct.unpack_from("<III", self._shm.buf, off + S_OUTCOME)
            pixels = self._copy_pixels(off)
            if int(self._u64[w]) != s1 or (self.checksum and zlib.crc32(pixels) & 0xFFFFFFFF != crc):
                self.torn += 1
                continue
            return RingFrame(number, frame_index, t_cap, t_pub,
                             OUTCOMES[outcome] if outcome < len(OUTCOMES) else str(outcome),
                             bool(flags & SLOT_LATE), pixels)
        return None

    def latest(self) -> RingFrame | None:
        """The newest frame (what a display wants); None before the first one."""
        while (n := self.write_count) > 0:
            f = self.read(n)
            if f is not None:
                return f
            if self.write_count == n:  # not lapped yet could not read: give up for now
                return None
        return None

    def next(self, timeout_s: float | None = None) -> RingFrame | None:
        """The frame after the last one returned (skipping, and counting, overwritten ones);
        None at the end of the stream (writer closed) or after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            count = self.write_count
            if count > self.last_number:
                want = max(self.last_number + 1, count - self.geometry.slots + 1)  # older ones are gone
                f = self.read(want)
                if f is not None:
                    self.missed += want - self.last_number - 1
                    self.last_number = want
                    return f
                self.missed += want - self.last_number  # overwritten while we tried: move on
                self.last_number = want
                continue
            if self.closed:
                return None
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(self.poll_s)

    def frames(self, timeout_s: float | None = None) -> Iterator[RingFrame]:
        """Every frame this reader can get, in order, until the writer closes the ring."""
        while (f := self.next(timeout_s)) is not None:
            yield f

    def close(self) -> None:
        if getattr(self, "_shm", None) is not None:
            self._u64 = None  # type: ignore[assignment]
            self._shm.close()
            self._shm = None  # type: ignore[assignment]

    def __enter__(self) -> ShmRingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the framed pipe format (--sink pipe:...?format=framed) -------------------------------------
def _read_exact(fh: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = fh.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def read_framed(fh: Any) -> tuple[dict[str, Any], Iterator[RingFrame]]:
    """Parse a framed pipe stream: (its JSON header, an iterator of frames until EOF)."""
    head = _read_exact(fh, 16)
    if len(head) < 16 or head[:8] != PIPE_MAGIC:
        raise RingError("not a ganrt framed pipe stream (bad magic)")
    _version, n = struct.unpack("<II", head[8:])
    header = json.loads(_read_exact(fh, n))

    def frames() -> Iterator[RingFrame]:
        while len(h := _read_exact(fh, FRAME_HEADER.size)) == FRAME_HEADER.size:
            magic, _hb, number, index, t_cap, nbytes, outcome, flags, w, hgt, ch, itemsize = FRAME_HEADER.unpack(h)
            if magic != FRAME_MAGIC:
                raise RingError(f"framed pipe: bad frame magic at frame {number}")
            data = _read_exact(fh, nbytes)
            if len(data) < nbytes:
                return  # the writer stopped mid-frame
            dtype = np.dtype(np.uint8) if itemsize == 1 else np.dtype("<u2")
            shape = (hgt, w) if ch == 1 else (hgt, w, ch)
            yield RingFrame(number, index, t_cap, 0, OUTCOMES[outcome] if outcome < len(OUTCOMES) else str(outcome),
                            bool(flags & SLOT_LATE), np.frombuffer(data, dtype).reshape(shape))

    return header, frames()

