"""`ganrt run` with sink specs: source -> enhancer -> sinks built from ``--sink KIND[:TARGET]``.

It follows ``app.stream_once`` step for step and differs only where sinks are concerned:
they are built from ``sink_specs`` after the Enhancer exists, because DICOM, PNG, video
sidecars and the shm ring all carry the run's provenance (model sha, artifact, backend,
profile), and the DICOM sink needs the source's header. With ``pipe:-`` stdout carries
frames only, so the report goes to stderr. With ``--deidentify`` the source's name is kept
out of the outputs and the report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path

from .errors import ConfigError
from .pipeline import PipelineConfig, run
from .provenance import Provenance
from .record import Record
from .report import Report
from .sink_specs import SinkContext, build_sinks, parse_sinks, writes_stdout
from .sources import open_source

DEIDENTIFIED_SOURCE = "(de-identified)"


def _scrub(report: Report) -> Report:
    source = dict(report.source)
    if "source_id" in source:
        source["source_id"] = DEIDENTIFIED_SOURCE
    return replace(report, source=source)


def run_stream(args: argparse.Namespace) -> int:
    from .app import _print, change_map_sinks, pipeline_config
    from .cli import _load
    from .ops import Enhancer

    manifest, profile, selection = _load(args)
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be >= 1")
    specs = parse_sinks(args.sink)  # a bad --sink fails before anything is opened
    deidentify = bool(getattr(args, "deidentify", False))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    source = open_source(args.source, realtime=args.realtime, max_frames=args.max_frames)
    if hasattr(source, "describe"):  # a camera: what was requested and what the driver granted
        print(source.describe(), file=sys.stderr)
    started = False
    try:
        config = pipeline_config(args, manifest, profile)  # budget, imaging region, fidelity, filter, PHI
        with selection.runner as runner:
            enhancer = Enhancer(runner, manifest, artifact=selection.artifact)
            provenance = Provenance.for_run(manifest, enhancer, profile, selection.artifact, source=args.source)
            if deidentify:
                provenance = provenance.deidentified()
            ctx = SinkContext(out, provenance, fps=source.fps if source.fps > 0 else 30.0,
                              overlay=not args.no_overlay, source=source, deidentify=deidentify)
            sinks = build_sinks(specs, ctx) + change_map_sinks(args, out, ctx.fps, provenance)
            record = Record.for_enhancer(enhancer, out / f"record.{args.record}", fmt=args.record)
            started = True  # run() owns (and closes) the source and the sinks from here
            report = run(source, enhancer, sinks, config, record=record)
    finally:
        if not started:
            source.close()
    if deidentify:
        report = _scrub(report)
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    title = f"{DEIDENTIFIED_SOURCE if deidentify else args.source} -> {args.out}"
    with contextlib.redirect_stdout(sys.stderr) if writes_stdout(specs) else contextlib.nullcontext():
        _print(report, args, title)
    return 0
