"""The streaming loop: source -> queue -> [pre -> infer -> post] -> sinks, one record row per frame.

Two feeds, one loop:

- live (a camera, or a file replayed at its native rate): a capture thread fills a
  ``LatestFrameQueue``; the newest frame wins and overtaken frames are recorded as
  DROPPED. The budget runs from the frame's capture time, so queueing counts.
- offline (a file processed as fast as possible; the default for files): no drops,
  every frame is processed. The budget runs from the moment the frame is handed to
  processing. In the default synchronous feed that *is* the moment the source produced
  it; with ``prefetch`` > 0 (decode ahead in a thread) a frame that waited in the
  prefetch queue is not charged for the wait, which is an artefact of reading ahead,
  not latency a viewer would see.

Inference runs in one worker thread (worker.py) so a hanging runner cannot stop the stream: at the
frame's deadline the frame is shown raw (TIMEOUT; a result that comes later is never shown: LATE)
and, while that call is still stuck, later frames are shown raw at once (BACKOFF). What happens to
one frame between the queue and the sinks, step by step, is frame_steps.py.

Around the model, ``guard`` (see trust/guard.py) limits it to the imaging region (the model sees
only the region's box; everything outside is the raw frame), checks its fidelity, measures
change and flicker, and masks PHI before the sinks. With the default ``GuardConfig`` the
region is the whole frame and there is no fidelity check or masking.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, GanrtError, OutputError
from ..frames import Frame, FrameResult, Reason
from ..model.ops import Enhancer, StageTimes
from ..records.record import Record
from ..records.report import Report
from ..sinks.files import Sink
from ..trust.guard import Guard, GuardConfig
from .clock import SYSTEM_CLOCK, Clock
from .fairness import StreamShare
from .frame_steps import Once, StreamContext, enhance_or_passthrough
from .handover import CaptureThread, LatestFrameQueue, SyncFrames
from .policy import DeadlinePolicy, PolicyConfig
from .tiers import TierConfig
from .worker import InferenceWorker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # budget, prediction, timeout, backoff
    realtime: bool | None = None  # None: follow the source (camera / realtime replay -> live)
    queue_depth: int = 1  # live: frames that may wait; more wait -> the oldest is dropped
    prefetch: int = 0  # offline: frames decoded ahead in a thread (0 = synchronous, deterministic)
    warmup: int = 2  # untimed inferences per new model input shape (first calls allocate; they would teach
    #                  the predictor that the model is slow and show raw frames for the first second)
    guard: GuardConfig = field(default_factory=GuardConfig)  # imaging region, fidelity, temporal filter, PHI

    def __post_init__(self) -> None:
        if self.queue_depth < 1 or self.prefetch < 0 or self.warmup < 0:
            raise ConfigError("queue_depth must be >= 1, prefetch and warmup >= 0")

    @classmethod
    def with_budget(cls, budget_ms: float, tiers: TierConfig | None = None, **kw) -> PipelineConfig:
        """``tiers``: the profile's [tiers] (None: the defaults)."""
        return cls(policy=PolicyConfig(budget_ms=budget_ms, tiers=tiers or TierConfig()), **kw)

    @property
    def budget_ms(self) -> float:
        return self.policy.budget_ms


class _Feed:
    """Frames in: a capture thread + queue (live, or offline with prefetch) or synchronous reads."""

    def __init__(self, source, live: bool, config: PipelineConfig, on_drop: Callable[[Frame], None]) -> None:
        self.threaded = live or config.prefetch > 0
        if self.threaded:
            self.queue = LatestFrameQueue(config.queue_depth if live else config.prefetch, drop=live,
                                          on_drop=on_drop)
            self.capture = CaptureThread(source, self.queue)
        else:
            self.sync = SyncFrames(source)

    def __iter__(self) -> Iterator[Frame]:
        if self.threaded:
            self.capture.start()
            yield from self.queue
        else:
            yield from self.sync

    def stop(self) -> list[Frame]:
        """Stop reading; return frames captured but never processed (they go in the record)."""
        if not self.threaded:
            self.sync.stop()
            return []
        leftovers = self.queue.drain()
        if self.capture.ident is not None:  # started
            self.capture.stop()
        leftovers += self.queue.drain() + self.capture.unqueued
        return leftovers

    @property
    def errors(self) -> int:
        return self.capture.errors if self.threaded else self.sync.errors


class _Outputs:
    """The sinks of a run. A sink that fails to write or to close (disk full, ...) is disabled
    and counted, so the others (the screen) keep getting frames and are finished; a GanrtError
    other than an OutputError (a user's mistake) ends the run."""

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self.broken: set[int] = set()
        self.errors = 0

    def write(self, frame: Frame, result: FrameResult) -> None:
        for i, sink in enumerate(self.sinks):
            if i in self.broken:
                continue
            try:
                sink.write(frame, result)
            except Exception as exc:
                if isinstance(exc, GanrtError) and not isinstance(exc, OutputError):  # a user's mistake
                    raise
                self.broken.add(i)
                self.errors += 1
                log.error("sink %s failed and is disabled: %s: %s", type(sink).__name__, type(exc).__name__, exc)

    @property
    def quit_requested(self) -> bool:
        return any(getattr(s, "quit_requested", False) for s in self.sinks)

    def close(self) -> None:
        """Close every sink; one that fails to finish (disk full) is counted, the others still close."""
        for sink in self.sinks:
            try:
                sink.__exit__(None, None, None)
            except Exception as exc:  # noqa: BLE001
                self.errors += 1
                log.error("sink %s failed to close: %s: %s", type(sink).__name__, type(exc).__name__, exc)


WARMUP_TIMEOUT_S = 30.0  # first calls may build kernels or a CUDA context
RAW_AT_ONCE = (Reason.BACKOFF, Reason.PREDICTED_MISS)  # raw without waiting for the model


def _warm_up(frame: Frame, enhancer: Enhancer, worker: InferenceWorker, runs: int, tiers: TierConfig) -> None:
    """Run the model on ``frame`` (what it will be given: the region's crop) without recording it;
    with tiers, once more at the reduced tier's size (a new input size allocates too). Failures are
    only logged: the per-frame path deals with a broken backend (and a stuck warm-up leaves the
    worker busy)."""
    try:
        enhancer.check(frame)
        for _ in range(runs):
            worker.call(frame, StageTimes(), timeout_s=WARMUP_TIMEOUT_S)
        if tiers.enabled:
            worker.call(frame, StageTimes(), tiers.factor, timeout_s=WARMUP_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001
        log.warning("warm-up inference failed: %s: %s", type(exc).__name__, exc)


def _model_input(guard: Guard, frame: Frame) -> Frame | None:
    """What the model will be given for ``frame``: the crop of its region; None while an auto region
    is still being collected (no inference runs then) or when no region fits the frame. Asking for the
    region here is what the frame's own check does next (the tracker collects each frame once)."""
    try:
        region = guard.region_for(frame)
    except Exception:  # noqa: BLE001 - the frame's own check reports it
        return None
    return None if region is None else guard.cut(frame, region)


def _record_skipped(source, record: Record) -> None:
    """Frames the source could not decode keep their indices: one DROPPED/UNREADABLE row each."""
    skipped = getattr(source, "skipped", None)
    while skipped:
        index = skipped.popleft()
        record.add_dropped(Frame(index, 0, np.zeros((1, 1), np.uint8)), Reason.UNREADABLE)


def _expected_frames(source) -> int | None:
    """Frames the source will deliver when it says (a file, a capped stream); None for a camera."""
    known = [n for n in (getattr(source, "frame_count", None), getattr(source, "max_frames", None))
             if isinstance(n, int) and n > 0]
    return min(known) if known else None


class _Loop:
    """One run's frames: each goes through the model's steps, out to the sinks and into the record."""

    def __init__(self, ctx: StreamContext, record: Record, source, live: bool, warmup: int, tiers: TierConfig) -> None:
        self.ctx, self.record, self.source, self.live = ctx, record, source, live
        self.warmup, self.tiers = warmup, tiers
        self.warmed: set[tuple[int, ...]] = set()  # model input shapes run untimed already
        self._warmed_for = None  # the region whose crop was warmed last
        self.outputs = _Outputs()
        self.opened = False  # the sinks have written a frame
        self.interrupted = False

    def serve(self, feed: _Feed, sinks: Sequence[Sink], stop: threading.Event | None) -> None:
        """Enter the source and the sinks, stream every frame, close them; frames captured but not
        processed and frames the source could not decode still go in the record."""
        with ExitStack() as stack:
            stack.enter_context(self.source)
            self.outputs.sinks = list(sinks)
            stack.callback(self.outputs.close)
            for s in self.outputs.sinks:
                s.__enter__()
            try:
                self.interrupted = self._frames(feed, stop)
            except KeyboardInterrupt:
                self.interrupted = True
                log.info("interrupted; finishing the record")
            finally:
                for f in feed.stop():
                    self.record.add_dropped(f, Reason.STOPPED)
                _record_skipped(self.source, self.record)

    def _frames(self, feed: _Feed, stop: threading.Event | None) -> bool:
        """Every frame until the feed ends (False) or a sink or ``stop`` asks to stop (True)."""
        for frame in feed:
            self._one(frame)
            if self.outputs.quit_requested or (stop is not None and stop.is_set()):
                log.info("stop requested by %s", "a sink" if self.outputs.quit_requested else "the caller")
                return True
        return False

    def _one(self, frame: Frame) -> None:
        ctx, clock = self.ctx, self.ctx.clock
        self.warm(frame)
        t_deq = clock.now_ns()
        origin = frame.t_capture_ns if self.live else t_deq  # budget origin: see the module docstring
        result = enhance_or_passthrough(ctx, frame, origin)
        result.wait_ms = (t_deq - frame.t_capture_ns) / 1e6
        t_out = clock.now_ns()
        # flicker measure, PHI mask; a NO SIGNAL card is ganrt's own drawing: nothing to measure or mask
        shown = frame if result.reason is Reason.NO_SIGNAL else ctx.guard.outgoing(frame, result)
        t_sink = clock.now_ns()
        result.guard_ms += (t_sink - t_out) / 1e6
        try:
            self.outputs.write(shown, result)
        finally:  # recorded even when a sink raises a user error that ends the run
            self._record(frame, result, origin, t_deq, t_out, t_sink)

    def warm(self, frame: Frame) -> None:
        """Warm-up runs (``_warm_up``) on each new model input shape before it is timed: the first
        frame's crop, and the crop of an auto region on the frame that completes its detection (the
        pending frames before it ran no model)."""
        current = self.ctx.guard.regions.current
        if not self.warmup or frame.signal_lost or (current is not None and current is self._warmed_for
                                                    and current.hw == frame.hw):
            return  # the region in use was warmed: no look at the frame (the common case, every frame)
        model_in = _model_input(self.ctx.guard, frame)
        self._warmed_for = self.ctx.guard.regions.current
        if model_in is None or model_in.pixels.shape in self.warmed:
            return
        first = not self.warmed
        self.warmed.add(model_in.pixels.shape)
        _warm_up(model_in, self.ctx.enhancer, self.ctx.worker, self.warmup, self.tiers)
        if first:
            self.ctx.policy.calibrate_wake()

    def _record(self, frame: Frame, result: FrameResult, origin: int, t_deq: int, t_out: int, t_sink: int) -> None:
        """The frame's output time and lateness into its row; the policy learns what output costs."""
        policy = self.ctx.policy
        result.t_output_ns = self.ctx.clock.now_ns()
        result.sink_ms = (result.t_output_ns - t_sink) / 1e6
        result.late = policy.is_late(origin, result.t_output_ns)
        if self.opened:  # sinks open their files on the first write: a cost no later frame pays
            policy.observe_output((result.t_output_ns - t_out) / 1e6)
            if result.reason in RAW_AT_ONCE:  # what showing a raw frame costs, start to end
                policy.observe_raw((result.t_output_ns - t_deq) / 1e6)
        self.opened = True
        self.record.add(frame, result)
        _record_skipped(self.source, self.record)


def _guard_for(source, enhancer: Enhancer, config: PipelineConfig, record: Record,
               lookahead: Sequence[np.ndarray]) -> Guard:
    try:
        guard = Guard(config.guard, enhancer, expected_frames=_expected_frames(source))
        guard.regions.prime(lookahead)
    except BaseException:  # e.g. an unreadable region mask: this run owns the source and the record
        source.close()
        record.close()
        raise
    return guard


def run(source, enhancer: Enhancer, sinks: Sequence[Sink] = (), config: PipelineConfig = PipelineConfig(),
        clock: Clock = SYSTEM_CLOCK, record: Record | None = None, stop: threading.Event | None = None,
        share: StreamShare | None = None, lookahead: Sequence[np.ndarray] = ()) -> Report:
    """Stream ``source`` through ``enhancer`` into ``sinks``; every frame ends in ``record``.

    Enters (and so closes) the source and the sinks, and closes the record. Ctrl-C, a sink's
    quit request or ``stop`` (set by another thread: several streams stop together) ends the
    run normally after the frame in hand: the report says ``interrupted``. ``share``: this stream's
    handle on the fair turns between streams that share one runner. ``lookahead``: the source's
    first frames read ahead (a file opened twice): auto region detection starts from them."""
    record = record if record is not None else Record.for_enhancer(enhancer)
    live = config.realtime if config.realtime is not None else bool(getattr(source, "live", False))
    policy = DeadlinePolicy(config.policy, live=live)
    guard = _guard_for(source, enhancer, config, record, lookahead)
    worker = InferenceWorker(enhancer.enhance)
    feed = _Feed(source, live, config, record.add_dropped)
    ctx = StreamContext(enhancer, guard, policy, worker, clock, Once(log), share)
    loop = _Loop(ctx, record, source, live, config.warmup, config.policy.tiers)
    if len(lookahead):  # warmed before the capture starts: a live source's first frames would queue behind it
        loop.warm(Frame(0, clock.now_ns(), np.ascontiguousarray(lookahead[0])))
    t_start = clock.now_ns()
    try:
        loop.serve(feed, sinks, stop)
    finally:
        worker.close()
        record.close()
    info = source.info() if hasattr(source, "info") else {"source_id": getattr(source, "source_id", "?")}
    info = {**info, "read_errors": feed.errors, "live": live}
    return Report.from_record(record, wall_s=(clock.now_ns() - t_start) / 1e9, budget_ms=config.budget_ms,
                              source=info, sink_errors=loop.outputs.errors, interrupted=loop.interrupted,
                              guard=guard.summary())
