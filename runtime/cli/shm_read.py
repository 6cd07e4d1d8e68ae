"""`ganrt shm-read NAME`: print (and optionally save) the frames of a running ``--sink shm:NAME``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from .registry import Command


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the ring's name (as in --sink shm:NAME)")
    p.add_argument("--count", type=int, default=None, help="stop after N frames (default: until the writer ends)")
    p.add_argument("--wait", type=float, default=10.0, metavar="S", help="wait up to S s for the writer (default 10)")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="stop after S s without a new frame")
    p.add_argument("--png", type=Path, default=None, metavar="DIR", help="also write each frame as DIR/ring_NNNNNN.png")
    p.add_argument("--info", action="store_true", help="print the ring's header and metadata and exit")


def _read(args: argparse.Namespace) -> int:
    from ..sinks.ipc.reader import RingError, ShmRingReader

    if args.count is not None and args.count < 1:
        raise ConfigError("--count must be >= 1")
    try:
        ring = ShmRingReader(args.name, wait_s=args.wait)
    except RingError as exc:
        raise ConfigError(str(exc)) from None
    with ring:
        g = ring.geometry
        print(f"ring {ring.name}: {g.width}x{g.height}x{g.channels} {g.dtype.name}, {g.slots} slots, "
              f"{ring.fps:g} fps, writer pid {ring.writer_pid}, crc {'on' if ring.checksum else 'off'}")
        if args.info:
            print(json.dumps(ring.meta, indent=2))
            return 0
        if args.png:
            from ..sinks.outpaths import make_dir

            make_dir(args.png, "--png")
        n = 0
        for f in ring.frames(timeout_s=args.timeout):
            print(f"#{f.number} frame {f.frame_index} {f.outcome}{' late' if f.late else ''} "
                  f"mean {float(f.pixels.mean()):.1f}")
            if args.png:
                import cv2

                cv2.imwrite(str(args.png / f"ring_{f.number:06d}.png"), f.pixels)
            n += 1
            if args.count and n >= args.count:
                break
        print(f"read {n} frame(s), missed {ring.missed}")
    return 0


COMMANDS = (
    Command("shm-read", "read frames from a running `--sink shm:NAME` (another process)", build=_add_args,
            handler=_read),
)
