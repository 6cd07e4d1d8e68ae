"""One stream through the model: the single path that `ganrt run` and `ganrt demo` share.

``RunSetup`` is what a run configures once, whatever its streams: model and backend, sink
specs, the checks around the model (imaging region, fidelity, temporal filter, PHI), labels,
record format, de-identification, change map. ``StreamSpec`` is one source and where its
outputs go. ``prepare`` builds what a stream needs around an activated runner (Enhancer,
provenance, sinks from the registry -- every file they write carries the provenance -- and
the record); ``StreamRun.run`` streams it and writes its report. ``stream_once`` does both
for one stream on its own runner; ``multistream.run_streams`` prepares each of several
streams the same way around one shared runner.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..backends.registry import Selection
from ..errors import OutputError
from ..model.manifest import Manifest
from ..model.profiles import DeviceProfile
from ..records.record import Record
from ..records.report import Report
from ..sinks.files import Sink
from ..sinks.outpaths import check_output, make_dir, protect, write_atomic
from ..sinks.provenance import Provenance
from ..sinks.specs import SinkContext, SinkSpec, build_sinks, fill_stream, for_stream, parse_sinks
from ..sources import open_source
from ..trust.changemap import ChangeMapSink
from ..trust.guard import GuardConfig
from ..trust.region import RegionMode
from . import signals
from .clock import SYSTEM_CLOCK, Clock
from .fairness import StreamShare
from .pipeline import PipelineConfig, run

log = logging.getLogger(__name__)

DEIDENTIFIED_SOURCE = "(de-identified)"


@dataclass(frozen=True)
class RunSetup:
    manifest: Manifest
    profile: DeviceProfile
    selection: Selection  # the runner (not yet activated) and its artifact
    sinks: tuple[SinkSpec, ...] = field(default_factory=lambda: parse_sinks(None))
    guard: GuardConfig = field(default_factory=GuardConfig)
    budget_ms: float | None = None  # None: the profile's
    overlay: bool = True
    record_fmt: str = "jsonl"
    deidentify: bool = False  # the source's name kept out of every output and the report
    change_map: str | None = None  # None: none; "": OUT/<stem>change_map.mp4; else its path

    def pipeline_config(self, spec: StreamSpec, source: object = None) -> PipelineConfig:
        """The pipeline's settings for one stream; ``source``'s own description of its image areas
        (a DICOM file's ultrasound regions) goes to the region detection."""
        budget = spec.budget_ms or self.budget_ms or self.profile.budget_ms
        guard = replace(self.guard, region=self.guard.region.for_source(source))
        return PipelineConfig.with_budget(budget, self.profile.tiers, guard=guard)


@dataclass(frozen=True)
class StreamSpec:
    source: str
    out: Path  # this stream's output folder
    stem: str = ""  # output file prefix
    realtime: bool = False
    loop: bool = False
    max_frames: int | None = None
    budget_ms: float | None = None  # None: the run's
    name: str = ""  # several streams: "stream0", ... (fills {stream} in sink targets)


SinkFactory = Callable[[SinkContext], list[Sink]]


def make_sinks(setup: RunSetup, ctx: SinkContext) -> list[Sink]:
    """The run's ``--sink`` specs (and change map) for one stream, each carrying ``ctx.provenance``."""
    sinks = build_sinks(for_stream(setup.sinks, ctx.stream), ctx)
    if setup.change_map is not None:
        target = fill_stream(setup.change_map, ctx.stream)
        path = check_output(target if target else ctx.out / f"{ctx.stem}change_map.mp4", "--change-map")
        sinks.append(ChangeMapSink.video(path, ctx.fps, ctx.provenance))
    return sinks


def scrub(report: Report) -> Report:
    source = dict(report.source)
    if "source_id" in source:
        source["source_id"] = DEIDENTIFIED_SOURCE
    return replace(report, source=source)


def open_stream_source(spec: StreamSpec, clock: Clock = SYSTEM_CLOCK):
    """``spec.source`` opened (the default ``SourceOpener``; tests pass fakes)."""
    source = open_source(spec.source, realtime=spec.realtime, loop=spec.loop, max_frames=spec.max_frames,
                         clock=clock)
    if hasattr(source, "describe"):  # a camera: what was requested and what the driver granted
        print(source.describe(), file=sys.stderr)
    return source


SourceOpener = Callable[[StreamSpec, Clock], object]


def read_ahead(spec: StreamSpec, setup: RunSetup, source, opener: SourceOpener, clock: Clock) -> list:
    """Under ``--region auto``, a file source's first frames read through a second opening of it, so
    the region is detected before the first frame is shown (on the 30-frame echo cine the stream
    otherwise starts with half a second of raw frames). A camera cannot be read twice (its source
    is not ``replayable``): nothing is read ahead and detection collects frames as they come.
    Best effort: any failure here only means the frames are collected the usual way."""
    region = setup.guard.region
    if region.mode is not RegionMode.AUTO or not getattr(source, "replayable", False):
        return []
    try:
        ahead = opener(replace(spec, realtime=False, loop=False, max_frames=region.frames), clock)
    except Exception as exc:  # noqa: BLE001 - the stream's own opening already succeeded
        log.debug("no look-ahead for %s: %s", spec.source, exc)
        return []
    frames: list = []
    try:
        if not getattr(ahead, "replayable", False):
            return []
        while len(frames) < region.frames:
            f = ahead.read()
            if f is None:
                break
            if not f.signal_lost:
                frames.append(f.pixels)
    except Exception as exc:  # noqa: BLE001
        log.debug("look-ahead of %s stopped after %d frames: %s", spec.source, len(frames), exc)
    finally:
        ahead.close()
    return frames


@dataclass
class StreamRun:
    """A prepared stream. ``run`` owns (and closes) its source, sinks and record."""

    spec: StreamSpec
    source: object
    enhancer: object
    sinks: list[Sink]
    record: Record
    config: PipelineConfig
    deidentify: bool
    clock: Clock
    share: StreamShare | None = None  # fair turns with the other streams on a shared runner
    lookahead: list = field(default_factory=list)  # first frames read ahead for region detection
    started: bool = False

    def run(self, stop: threading.Event | None = None) -> Report:
        """``stop``: set by the caller to end the stream; None: a SIGINT/SIGTERM/SIGHUP does (signals)."""
        self.started = True
        stop = stop if stop is not None else signals.streaming()
        report = run(self.source, self.enhancer, self.sinks, self.config, clock=self.clock, record=self.record,
                     stop=stop, share=self.share, lookahead=self.lookahead)
        remote = getattr(self.enhancer.runner, "remote_stats", None)  # a remote runner (triton) reports its own
        if remote is not None:
            report = replace(report, remote=remote())
        if self.deidentify:
            report = scrub(report)
        write_atomic(self.spec.out / f"{self.spec.stem}report.json", json.dumps(report.to_dict(), indent=2) + "\n",
                     "report")
        if self.record.write_error:  # the report is written; the record kept every row that reached the disk
            raise OutputError(f"the record is incomplete: {self.record.write_error}")
        return report

    def discard(self) -> None:
        """Close what was opened, without streaming (another stream could not be prepared)."""
        if self.started:
            return
        self.started = True
        for closeable in (self.source, *self.sinks, self.record):
            try:
                closeable.close()
            except Exception as exc:  # noqa: BLE001 - the error that stopped the run is the one to report
                log.debug("closing %s: %s", type(closeable).__name__, exc)


def prepare(spec: StreamSpec, setup: RunSetup, source, runner, *, clock: Clock = SYSTEM_CLOCK,
            sinks: SinkFactory | None = None, share: StreamShare | None = None,
            opener: SourceOpener | None = None) -> StreamRun:
    """Everything one stream needs around an activated ``runner``. The caller still owns ``source``
    if this raises; sinks made before the failure are closed. ``opener``: how ``source`` was opened,
    to read a file source's first frames ahead (``read_ahead``); None reads nothing ahead."""
    from ..model.ops import Enhancer

    protect(spec.source)
    make_dir(spec.out, "--out")
    enhancer = Enhancer(runner, setup.manifest, artifact=setup.selection.artifact, clock=clock)
    provenance = Provenance.for_run(setup.manifest, enhancer, setup.profile, setup.selection.artifact,
                                    source=spec.source)
    if setup.deidentify:
        provenance = provenance.deidentified()
    ctx = SinkContext(spec.out, provenance, fps=source.fps if source.fps > 0 else 30.0, overlay=setup.overlay,
                      stem=spec.stem, source=source, deidentify=setup.deidentify, stream=spec.name)
    built = (sinks or (lambda c: make_sinks(setup, c)))(ctx)
    try:
        record = Record.for_enhancer(enhancer, spec.out / f"{spec.stem}record.{setup.record_fmt}",
                                     fmt=setup.record_fmt)
        config = setup.pipeline_config(spec, source)
    except BaseException:
        for s in built:
            s.close()
        raise
    ahead = read_ahead(spec, setup, source, opener, clock) if opener is not None else []
    return StreamRun(spec, source, enhancer, built, record, config, setup.deidentify, clock, share, ahead)


def stream_once(spec: StreamSpec, setup: RunSetup, *, clock: Clock = SYSTEM_CLOCK, sinks: SinkFactory | None = None,
                opener: SourceOpener = open_stream_source) -> Report:
    """One source through its own runner (activated here) into its sinks; writes the record and report."""
    source = opener(spec, clock)
    owned = True
    try:
        with setup.selection.runner as runner:
            stream = prepare(spec, setup, source, runner, clock=clock, sinks=sinks, opener=opener)
            owned = False  # the pipeline closes the source from here
            return stream.run()
    finally:
        if owned:
            source.close()
