"""Several sources through one model at once: `ganrt run --source A --source B`.

Each stream is prepared exactly like a single one (``stream.prepare``: its own Enhancer,
deadline policy, sinks, record and report in its own folder) and runs the ordinary pipeline
loop in its own thread; only the runner is shared, through ``scheduler.SharedRunner``, which
makes every model call from one thread and batches streams whose frames agree, and the
streams take fair turns on it (``fairness.FairShare``).

Sources are opened before the runner is activated, so a bad one fails in one line before
anything slow starts. While running, a stream that fails (its source breaks, a sink raises)
ends alone and the others go on; a quit request (a window's 'q') or Ctrl-C ends them all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from ..records.multi_report import MultiReport, StreamResult
from ..records.report import Report
from ..sinks.outpaths import protect
from . import signals
from .clock import SYSTEM_CLOCK, Clock
from .fairness import FairConfig, FairShare, StreamShare
from .scheduler import SchedulerConfig, SharedRunner
from .stream import (
    DEIDENTIFIED_SOURCE,
    RunSetup,
    SinkFactory,
    SourceOpener,
    StreamRun,
    StreamSpec,
    open_stream_source,
    prepare,
)

log = logging.getLogger(__name__)

JOIN_POLL_S = 0.25  # the main thread wakes this often, so Ctrl-C reaches it


def _run_all(streams: list[StreamRun], stop: threading.Event) -> list[Report | BaseException]:
    results: list[Report | BaseException | None] = [None] * len(streams)

    def body(i: int) -> None:
        try:
            results[i] = streams[i].run(stop)
        except BaseException as exc:  # noqa: BLE001 - one stream's failure ends that stream only
            results[i] = exc
            log.error("stream%d stopped: %s: %s", i, type(exc).__name__, exc)
        else:
            if results[i].interrupted:  # a quit key in one window ends every stream
                stop.set()

    threads = [threading.Thread(target=body, args=(i,), name=f"ganrt-stream{i}", daemon=True)
               for i in range(len(streams))]
    for t in threads:
        t.start()
    by_signal = signals.streaming()  # SIGINT/SIGTERM/SIGHUP: every stream finishes its outputs
    try:
        for t in threads:
            while t.is_alive():
                t.join(JOIN_POLL_S)
                if by_signal.is_set():
                    stop.set()
    except KeyboardInterrupt:  # only the main thread hears Ctrl-C: pass it on, let the records finish
        log.info("interrupted; finishing every stream's record")
        stop.set()
        for t in threads:
            t.join()
    return [r if r is not None else RuntimeError("stream thread ended without a result") for r in results]


def run_streams(specs: Sequence[StreamSpec], setup: RunSetup, *, clock: Clock = SYSTEM_CLOCK,
                sinks: SinkFactory | None = None, scheduler: SchedulerConfig = SchedulerConfig(),
                stop: threading.Event | None = None,
                opener: SourceOpener = open_stream_source,
                fair: FairConfig | None = FairConfig()) -> tuple[MultiReport, list[BaseException]]:
    """Run ``specs`` together on one runner. Returns the combined report and the failures of
    streams that ended with an error (their frames are still in their records). ``fair``: the
    turn-taking between streams (``runtime.fairness``); None lets each stream's policy decide alone."""
    sources: list = []
    streams: list[StreamRun] = []
    for spec in specs:  # no stream may write onto another stream's input either
        protect(spec.source)
    try:
        for spec in specs:
            sources.append(opener(spec, clock))
        shares = FairShare(len(specs), fair) if fair is not None and len(specs) > 1 else None
        with setup.selection.runner as runner, SharedRunner(runner, scheduler) as shared:
            for i, (spec, source) in enumerate(zip(specs, sources)):
                streams.append(prepare(spec, setup, source, shared.client(i), clock=clock, sinks=sinks,
                                       share=StreamShare(shares, i) if shares else None, opener=opener))
            sources = []  # each stream's pipeline closes its source from here
            t0 = clock.now_ns()
            results = _run_all(streams, stop or threading.Event())
            wall_s = (clock.now_ns() - t0) / 1e9
        sched = {"mode": shared.mode.value, "why_serial": shared.why_serial, "max_batch": shared.max_batch,
                 **shared.stats.to_dict(), "fair_share": shares.to_dict() if shares else None}
        remote = getattr(setup.selection.runner, "remote_stats", None)  # the server's batches (triton)
        if remote is not None:
            sched["remote"] = remote()
    except BaseException:
        for s in streams:
            s.discard()
        raise
    finally:
        for source in sources:
            source.close()
    out, failures, c2o = [], [], []
    for spec, stream, res in zip(specs, streams, results):
        name = DEIDENTIFIED_SOURCE if setup.deidentify else spec.source
        c2o.extend(stream.record.stats.latency["capture_to_output_ms"].samples())
        if isinstance(res, Report):
            out.append(StreamResult(spec.name, name, res))
        else:
            failures.append(res)
            out.append(StreamResult(spec.name, name, None, f"{type(res).__name__}: {res}"))
    return MultiReport.build(out, c2o, wall_s=wall_s, scheduler=sched), failures
