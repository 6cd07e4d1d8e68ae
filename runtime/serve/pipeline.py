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

Inference runs in one worker thread so a hanging runner cannot stop the stream: at the
frame's deadline the frame is shown raw (TIMEOUT; a result that comes later is never shown: LATE)
and, while that call is still stuck, later frames are shown raw at once (BACKOFF).

Around the model, ``guard`` (see trust/guard.py) limits it to the imaging region (the model sees
only the region's box; everything outside is the raw frame), checks its fidelity, measures
change and flicker, and masks PHI before the sinks. With the default ``GuardConfig`` the
region is the whole frame and there is no fidelity check or masking.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, TimeoutError as FutureTimeout
from contextlib import ExitStack
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Callable, Iterator, Sequence

import numpy as np

from .clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError, GanrtError, OutputError, RemoteUnavailable
from ..frames import Frame, FrameResult, Outcome, Reason, Tier
from ..trust.guard import Guard, GuardConfig, Rejected
from ..model.ops import BadOutput, Enhancer, IncompatibleFrame, StageTimes
from .fairness import StreamShare
from .policy import DeadlinePolicy, PolicyConfig
from .handover import CaptureThread, LatestFrameQueue, SyncFrames
from ..records.record import Record
from ..trust.region import RegionOutside
from ..records.report import Report
from ..sinks.files import Sink
from .tiers import TierConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # budget, prediction, timeout, backoff
    realtime: bool | None = None  # None: follow the source (camera / realtime replay -> live)
    queue_depth: int = 1  # live: frames that may wait; more wait -> the oldest is dropped
    prefetch: int = 0  # offline: frames decoded ahead in a thread (0 = synchronous, deterministic)
    warmup: int = 2  # untimed inferences on the first frame (first calls allocate; they would teach
    #                  the predictor that the model is slow and show raw frames for the first second)
    guard: GuardConfig = field(default_factory=GuardConfig)  # imaging region, fidelity, temporal filter, PHI

    def __post_init__(self) -> None:
        if self.queue_depth < 1 or self.prefetch < 0 or self.warmup < 0:
            raise ConfigError("queue_depth must be >= 1, prefetch and warmup >= 0")

    @classmethod
    def with_budget(cls, budget_ms: float, tiers: TierConfig | None = None, **kw) -> "PipelineConfig":
        """``tiers``: the profile's [tiers] (None: the defaults)."""
        return cls(policy=PolicyConfig(budget_ms=budget_ms, tiers=tiers or TierConfig()), **kw)

    @property
    def budget_ms(self) -> float:
        return self.policy.budget_ms


class InferenceTimeout(Exception):
    pass


class InferenceWorker:
    """One daemon thread running the enhancer. A call that outlives its timeout is abandoned
    (its result discarded); ``busy`` stays True until it returns. Daemon, never joined: a
    stuck runner must not keep the process alive."""

    def __init__(self, fn: Callable) -> None:
        self._fn = fn
        self._jobs: SimpleQueue = SimpleQueue()
        self._current: Future | None = None
        threading.Thread(target=self._loop, name="ganrt-infer", daemon=True).start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            fut, args = job
            try:
                fut.set_result(self._fn(*args))
            except BaseException as exc:  # noqa: BLE001 - delivered to the caller
                fut.set_exception(exc)

    @property
    def busy(self) -> bool:
        return self._current is not None and not self._current.done()

    def call(self, *args, timeout_s: float):
        fut: Future = Future()
        self._current = fut
        self._jobs.put((fut, args))
        try:
            return fut.result(timeout_s)
        except FutureTimeout:
            raise InferenceTimeout(f"inference did not return by the frame's deadline ({timeout_s * 1e3:.1f} ms after "
                                   "it started)") from None

    def close(self) -> None:
        self._jobs.put(None)


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


class _Once:
    """Log the first occurrence of each kind of failure; the per-frame path only counts."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, key: str, msg: str, *args) -> None:
        if key not in self.seen:
            self.seen.add(key)
            log.warning(msg + " (further occurrences are only counted)", *args)


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
            except Exception as exc:  # noqa: BLE001
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
    """Run the model on the first frame without recording it; with tiers, once more at the reduced
    tier's size (a new input size allocates too). Failures are only logged: the per-frame path
    deals with a broken backend (and a stuck warm-up leaves the worker busy)."""
    try:
        enhancer.check(frame)
        for _ in range(runs):
            worker.call(frame, StageTimes(), timeout_s=WARMUP_TIMEOUT_S)
        if tiers.enabled:
            worker.call(frame, StageTimes(), tiers.factor, timeout_s=WARMUP_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001
        log.warning("warm-up inference failed: %s: %s", type(exc).__name__, exc)


def _enhance_or_passthrough(frame: Frame, origin_ns: int, enhancer: Enhancer, guard: Guard, policy: DeadlinePolicy,
                            worker: InferenceWorker, clock: Clock, once: _Once,
                            share: StreamShare | None = None) -> FrameResult:
    result = FrameResult(frame.index, Outcome.PASSTHROUGH)
    if frame.signal_lost:  # the source's own NO SIGNAL card: the model, region detection and policy never see it
        guard.passthrough()
        result.reason, result.pixels, result.guard_ms = Reason.NO_SIGNAL, enhancer.passthrough(frame), 0.0
        result.tier = Tier.RAW
        return result
    t0 = clock.now_ns()
    region = model_in = box = None
    try:
        enhancer.check(frame)
        region = guard.region_for(frame)  # None while auto-detection collects frames
        reason = Reason.REGION_PENDING if region is None else None
        if region is not None:
            model_in, box = guard.crop(frame, region)  # the region's box: all the model sees
    except IncompatibleFrame as exc:
        once("incompatible", "frame %d shown raw: %s", frame.index, exc)
        reason = Reason.INCOMPATIBLE
    except RegionOutside as exc:
        once("no-region", "frame %d shown raw: %s", frame.index, exc)
        reason = Reason.NO_REGION
    except Rejected as exc:  # the input lies outside the model's domain
        once(exc.reason.value, "frame %d shown raw: %s", frame.index, exc)
        reason = exc.reason
    except Exception as exc:  # noqa: BLE001 - a failing check means: show the raw frame
        once(f"check:{type(exc).__name__}", "frame %d shown raw, region check failed: %s: %s", frame.index,
             type(exc).__name__, exc)
        reason = Reason.CHECK_ERROR
    guard_ns = clock.now_ns() - t0
    tier = Tier.RAW
    if reason is None:
        tier, reason = policy.choose(origin_ns, clock.now_ns(), busy=worker.busy)
        if share is not None:  # several streams on one runner: take turns (runtime.fairness)
            reason = share.arbitrate(reason)
    if reason is None:
        factor = policy.config.tiers.factor if tier is Tier.REDUCED else 1
        times = StageTimes()
        enhanced, finish_ns, came_late = None, 0, False
        try:
            wait_start, wait_s = clock.now_ns(), policy.wait_s(origin_ns, clock.now_ns())
            enhanced = worker.call(model_in, times, factor, timeout_s=wait_s)
            if clock.now_ns() > policy.deadline_ns(origin_ns):  # a result after the deadline is never shown
                once("late", "frame %d shown raw: the model's result came after the frame's deadline", frame.index)
                reason, came_late = Reason.LATE, True
        except BadOutput as exc:
            once("bad-output", "frame %d shown raw, bad model output: %s", frame.index, exc)
            reason = Reason.BAD_OUTPUT
        except InferenceTimeout as exc:
            waited_ms = (clock.now_ns() - wait_start) / 1e6
            policy.observe_wake(waited_ms - wait_s * 1e3)
            once("timeout", "frame %d shown raw: %s", frame.index, exc)
            reason = Reason.TIMEOUT
        except RemoteUnavailable as exc:
            once("remote", "frame %d shown raw: %s", frame.index, exc)
            reason = Reason.REMOTE_UNAVAILABLE
        except Exception as exc:  # noqa: BLE001 - any backend failure means: show the raw frame
            once(f"error:{type(exc).__name__}", "frame %d shown raw, backend error: %s: %s", frame.index,
                 type(exc).__name__, exc)
            reason = Reason.BACKEND_ERROR
        result.pre_ms, result.infer_ms, result.post_ms = times.pre_ms, times.infer_ms, times.post_ms
        if reason is None:
            t1 = clock.now_ns()
            try:
                result.pixels = guard.finish(frame, region, box, enhanced, result)
            except Rejected as exc:
                once("rejected", "frame %d shown raw: %s", frame.index, exc)
                reason = exc.reason
            except Exception as exc:  # noqa: BLE001 - unchecked output is never shown
                once(f"check:{type(exc).__name__}", "frame %d shown raw, output check failed: %s: %s",
                     frame.index, type(exc).__name__, exc)
                reason = Reason.CHECK_ERROR
            finish_ns = clock.now_ns() - t1
            guard_ns += finish_ns
        if reason is None:
            result.outcome, result.tier = Outcome.ENHANCED, tier
            policy.succeeded(times.total_ms + finish_ns / 1e6)
        elif reason in (Reason.FIDELITY, Reason.MEAN_SHIFT) or came_late:  # the model ran (late or unfaithful): learn its time
            result.pixels = None
            policy.succeeded(times.total_ms + finish_ns / 1e6, late=came_late)
        else:
            result.pixels = None
            if reason is Reason.TIMEOUT:
                policy.failed(reason, waited_ms)
            elif reason is not Reason.REMOTE_UNAVAILABLE:  # a remote runner backs off and reconnects on its own
                policy.failed(reason)
    result.reason = reason or Reason.NONE
    if result.pixels is None:
        guard.passthrough()
        result.pixels = enhancer.passthrough(frame)
        result.enhanced_fraction, result.tier = 0.0, Tier.RAW
    result.guard_ms = guard_ns / 1e6
    return result


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
    policy = DeadlinePolicy(config.policy)
    try:
        guard = Guard(config.guard, enhancer, expected_frames=_expected_frames(source))
        guard.regions.prime(lookahead)
    except BaseException:  # e.g. an unreadable region mask: this run owns the source and the record
        source.close()
        record.close()
        raise
    worker = InferenceWorker(enhancer.enhance)
    feed = _Feed(source, live, config, record.add_dropped)
    once, interrupted, warmup = _Once(), False, config.warmup
    outputs = _Outputs()
    opened = False  # the sinks have written a frame
    t_start = clock.now_ns()
    try:
        with ExitStack() as stack:
            stack.enter_context(source)
            outputs.sinks = list(sinks)
            stack.callback(outputs.close)
            for s in outputs.sinks:
                s.__enter__()
            try:
                for frame in feed:
                    if warmup and not frame.signal_lost:
                        _warm_up(frame, enhancer, worker, warmup, config.policy.tiers)
                        policy.calibrate_wake()
                        warmup = 0
                    t_deq = clock.now_ns()
                    origin = frame.t_capture_ns if live else t_deq  # budget origin: see the module docstring
                    result = _enhance_or_passthrough(frame, origin, enhancer, guard, policy, worker, clock, once,
                                                     share)
                    result.wait_ms = (t_deq - frame.t_capture_ns) / 1e6
                    t_out = clock.now_ns()
                    # flicker measure, PHI mask; a NO SIGNAL card is ganrt's own drawing: nothing to measure or mask
                    shown = frame if result.reason is Reason.NO_SIGNAL else guard.outgoing(frame, result)
                    t_sink = clock.now_ns()
                    result.guard_ms += (t_sink - t_out) / 1e6
                    try:
                        outputs.write(shown, result)
                    finally:  # recorded even when a sink raises a user error that ends the run
                        result.t_output_ns = clock.now_ns()
                        result.sink_ms = (result.t_output_ns - t_sink) / 1e6
                        result.late = policy.is_late(origin, result.t_output_ns)
                        if opened:  # sinks open their files on the first write: a cost no later frame pays
                            policy.observe_output((result.t_output_ns - t_out) / 1e6)
                            if result.reason in RAW_AT_ONCE:  # what showing a raw frame costs, start to end
                                policy.observe_raw((result.t_output_ns - t_deq) / 1e6)
                        opened = True
                        record.add(frame, result)
                        _record_skipped(source, record)
                    if outputs.quit_requested or (stop is not None and stop.is_set()):
                        log.info("stop requested by %s", "a sink" if outputs.quit_requested else "the caller")
                        interrupted = True
                        break
            except KeyboardInterrupt:
                interrupted = True
                log.info("interrupted; finishing the record")
            finally:
                for f in feed.stop():
                    record.add_dropped(f, Reason.STOPPED)
                _record_skipped(source, record)
    finally:
        worker.close()
        record.close()
    info = source.info() if hasattr(source, "info") else {"source_id": getattr(source, "source_id", "?")}
    info = {**info, "read_errors": feed.errors, "live": live}
    return Report.from_record(record, wall_s=(clock.now_ns() - t_start) / 1e9, budget_ms=config.budget_ms,
                              source=info, sink_errors=outputs.errors, interrupted=interrupted,
                              guard=guard.summary())
