"""`ganrt run`: the command line -> one ``RunSetup`` and a ``StreamSpec`` per ``--source``.

One source runs on its own runner (``stream.stream_once``, the path `ganrt demo` takes too)
and writes into ``--out``. Several sources run together on one shared runner
(``multistream.run_streams``): each stream writes into ``OUT/streamN/`` and ``OUT/report.json``
holds every stream's rate and latency and the combined ones. With ``pipe:-`` stdout carries
frames only, so the report goes to stderr. With ``--deidentify`` the source's name is kept
out of the outputs and the report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .common import add_model_args, budget_ms, load_model, print_report
from .demo import guard_config
from .registry import Command

if TYPE_CHECKING:
    from ..serve.stream import RunSetup


def _add_args(r: argparse.ArgumentParser) -> None:
    r.add_argument("--source", required=True, action="append",
                   help="video file, image folder, DICOM file, camera (0, /dev/videoN[?fourcc=MJPG&size=WxH&fps=N]) "
                        "or gst:PIPELINE (ending in appsink); repeat for several streams through one model "
                        "(outputs in OUT/streamN/)")
    add_model_args(r)
    r.add_argument("--out", type=Path, default=Path("out"))
    r.add_argument("--budget-ms", type=budget_ms, action="append", default=None,
                   help="deadline per frame (default: the profile's); once for every stream or once per --source")
    r.add_argument("--realtime", action="store_true", help="replay a file at its native frame rate (drops allowed)")
    r.add_argument("--max-frames", type=int, default=None)
    r.add_argument("--no-overlay", action="store_true", help="no labels drawn on any output")
    r.add_argument("--sink", action="append", default=None, metavar="KIND[:TARGET][?OPT=V]",
                   help="video|mjpg|lossless|side-by-side[:PATH], png[:DIR], dicom[:PATH.dcm], shm:NAME, "
                        "pipe:-|FIFO|FILE, display, null (repeatable; default: video, side-by-side; with several "
                        "sources a TARGET must contain {stream})")
    r.add_argument("--deidentify", action="store_true",
                   help="DICOM output per PS3.15 basic profile (header only); source name kept out of all outputs")
    r.add_argument("--record", choices=("jsonl", "csv"), default="jsonl")
    _add_check_args(r)
    r.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_check_args(r: argparse.ArgumentParser) -> None:
    """What runs around the model: region, PHI masking, output checks, smoothing, change map."""
    r.add_argument("--region", default=None, metavar="auto[:N]|full|X,Y,W,H",
                   help="imaging region the model may change; outside it the output is the input "
                        "(default: the profile's [region], else auto for ultrasound bundles and full for others; "
                        "auto detects it over the first N frames, or uses a DICOM file's ultrasound regions)")
    r.add_argument("--mask-phi", action="store_true",
                   help="blank everything outside the imaging region (except the profile's [phi] keep boxes) "
                        "in every output")
    r.add_argument("--no-fidelity", action="store_true",
                   help="show the model's output unchecked: no fidelity, local-mean or input-domain check "
                        "(the checks send unfaithful frames, or tiles, raw)")
    r.add_argument("--temporal-filter", default=None, metavar="none|ema[:ALPHA]",
                   help="light smoothing of enhanced frames inside the region (default: the profile's, else none)")
    r.add_argument("--change-map", nargs="?", const="", default=None, metavar="PATH",
                   help="also write a heat-map video of |output - input| (default PATH: OUT/change_map.mp4)")


def budgets(values: list[float] | None, streams: int) -> list[float | None]:
    """``--budget-ms``: none (the profile's), one for every stream, or one per ``--source`` in order."""
    if not values:
        return [None] * streams
    if len(values) == 1:
        return list(values) * streams
    if len(values) != streams:
        raise ConfigError(f"--budget-ms given {len(values)} times for {streams} sources; give it once "
                          "(every stream) or once per --source")
    return list(values)


def _setup(args: argparse.Namespace, sources: list[str]) -> RunSetup:
    from ..serve.stream import RunSetup
    from ..sinks.specs import check_several_streams, parse_sinks

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be >= 1")
    sinks = parse_sinks(args.sink)  # a bad --sink fails before anything is opened
    if len(sources) > 1:
        check_several_streams(sinks, args.change_map)
    manifest, profile, selection = load_model(args)
    guard = guard_config(profile, manifest, region=args.region, mask_phi=args.mask_phi,
                         fidelity=not args.no_fidelity, temporal=args.temporal_filter)
    return RunSetup(manifest, profile, selection, sinks=sinks, guard=guard, overlay=not args.no_overlay,
                    record_fmt=args.record, deidentify=args.deidentify, change_map=args.change_map)


def run_stream(args: argparse.Namespace) -> int:
    """The handler of `ganrt run`."""
    from ..serve.stream import DEIDENTIFIED_SOURCE, StreamSpec, stream_once
    from ..sinks.specs import writes_stdout

    sources: list[str] = args.source
    setup = _setup(args, sources)
    per_stream = budgets(args.budget_ms, len(sources))
    out: Path = args.out
    if len(sources) > 1:
        return _run_several(args, setup, sources, per_stream)
    spec = StreamSpec(sources[0], out, realtime=args.realtime, max_frames=args.max_frames, budget_ms=per_stream[0])
    report = stream_once(spec, setup)
    title = f"{DEIDENTIFIED_SOURCE if setup.deidentify else sources[0]} -> {out}"
    with contextlib.redirect_stdout(sys.stderr) if writes_stdout(setup.sinks) else contextlib.nullcontext():
        print_report(report, args, title)
    return 0


def _run_several(args: argparse.Namespace, setup: RunSetup, sources: list[str], per_stream: list[float | None]) -> int:
    from ..serve.multistream import run_streams
    from ..serve.stream import StreamSpec

    specs = [StreamSpec(src, args.out / f"stream{i}", realtime=args.realtime, max_frames=args.max_frames,
                        budget_ms=per_stream[i], name=f"stream{i}") for i, src in enumerate(sources)]
    report, failures = run_streams(specs, setup)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"== {len(specs)} streams -> {args.out}/stream0..{len(specs) - 1}/")
        print(report.format_table())
    if failures:  # reported above; the first one decides the exit code (one line, see cli.main)
        raise failures[0]
    return 0


COMMANDS = (
    Command("run", "enhance a video file, image folder, DICOM cine or camera", build=_add_args, handler=run_stream,
            epilog=True),
)
