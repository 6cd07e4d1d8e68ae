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

from ..errors import ConfigError
from ..sinks.specs import check_several_streams, parse_sinks, writes_stdout
from ..serve.stream import DEIDENTIFIED_SOURCE, RunSetup, StreamSpec, stream_once


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
    from .demo import guard_config
    from . import _load

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be >= 1")
    sinks = parse_sinks(args.sink)  # a bad --sink fails before anything is opened
    if len(sources) > 1:
        check_several_streams(sinks, args.change_map)
    manifest, profile, selection = _load(args)
    guard = guard_config(profile, manifest, region=args.region, mask_phi=args.mask_phi,
                         fidelity=not args.no_fidelity, temporal=args.temporal_filter)
    return RunSetup(manifest, profile, selection, sinks=sinks, guard=guard, overlay=not args.no_overlay,
                    record_fmt=args.record, deidentify=args.deidentify, change_map=args.change_map)


def run_stream(args: argparse.Namespace) -> int:
    from .demo import _print

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
        _print(report, args, title)
    return 0


def _run_several(args: argparse.Namespace, setup: RunSetup, sources: list[str], per_stream: list[float | None]) -> int:
    from ..serve.multistream import run_streams

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
