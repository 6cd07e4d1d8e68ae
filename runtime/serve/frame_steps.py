"""One frame's way through the model, in named steps: check, decide, infer, finish, settle.

Each step may end the frame's chance to be enhanced by giving it a ``Reason``; the later steps
then do nothing and the frame goes out raw (passthrough, marked with the first reason found):

- check: the frame fits the model, the region is known and covers it, the input lies in the
  model's domain; the model's input is the region's box.
- decide: the deadline policy picks the tier (full, reduced) or a reason to show it raw at once
  (predicted miss, back-off while a call is stuck); streams sharing a runner take turns.
- infer: the worker runs the model until the frame's deadline; a result that comes later is LATE.
- finish: the guard pastes the output into the region and checks it (tone, fidelity, change score,
  overlay); unchecked output is never shown.
- settle: the policy learns the model's time (or its failure); a raw frame gets its pixels.

``Guard`` (trust/guard.py) does the pixel work; these steps own the order, the timings and the
handling of every failure, which ``pipeline.run`` records frame by frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import RemoteUnavailable
from ..frames import Frame, FrameResult, Outcome, Reason, Tier
from ..model.ops import BadOutput, Enhancer, IncompatibleFrame, StageTimes
from ..trust.guard import Guard, Rejected
from ..trust.region_mask import Box, Region
from ..trust.region_track import RegionOutside
from .clock import Clock
from .fairness import StreamShare
from .policy import DeadlinePolicy
from .worker import InferenceTimeout, InferenceWorker


class Once:
    """Log the first occurrence of each kind of failure to ``log``; the per-frame path only counts."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.seen: set[str] = set()

    def __call__(self, key: str, msg: str, *args) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.log.warning(msg + " (further occurrences are only counted)", *args)


@dataclass(frozen=True)
class StreamContext:
    """What every frame of one stream goes through: the model, its guard, the deadline policy
    (with its tiers), the inference worker, the clock, the failure log, the fair share of a runner."""

    enhancer: Enhancer
    guard: Guard
    policy: DeadlinePolicy
    worker: InferenceWorker
    clock: Clock
    once: Once
    share: StreamShare | None = None  # several streams on one runner take turns (fairness.py)


@dataclass
class _Work:
    """One frame in progress: what the steps found so far. ``reason`` set: it goes out raw."""

    frame: Frame
    origin_ns: int  # the budget's start (pipeline.py's docstring)
    result: FrameResult
    reason: Reason | None = None
    tier: Tier = Tier.RAW
    region: Region | None = None
    model_in: np.ndarray | None = None
    box: Box | None = None
    guard_ns: int = 0
    times: StageTimes | None = None  # set once the model is called
    enhanced: np.ndarray | None = None
    came_late: bool = False
    waited_ms: float = 0.0  # on a timeout: how long the call was waited for
    finish_ns: int = 0


def enhance_or_passthrough(ctx: StreamContext, frame: Frame, origin_ns: int) -> FrameResult:
    """The frame's result: enhanced, or passthrough (the raw frame) with the reason why."""
    result = FrameResult(frame.index, Outcome.PASSTHROUGH)
    if frame.signal_lost:  # the source's own NO SIGNAL card: the model, region detection and policy never see it
        return _no_signal(ctx, frame, result)
    work = _Work(frame, origin_ns, result)
    t0 = ctx.clock.now_ns()
    check(ctx, work)
    work.guard_ns = ctx.clock.now_ns() - t0
    if work.reason is None:
        decide(ctx, work)
    if work.reason is None:
        infer(ctx, work)
        if work.reason is None:
            finish(ctx, work)
        settle(ctx, work)
    result.reason = work.reason or Reason.NONE
    if result.pixels is None:
        _show_raw(ctx, frame, result)
    result.guard_ms = work.guard_ns / 1e6
    return result


def _no_signal(ctx: StreamContext, frame: Frame, result: FrameResult) -> FrameResult:
    ctx.guard.passthrough()
    result.reason, result.pixels, result.guard_ms = Reason.NO_SIGNAL, ctx.enhancer.passthrough(frame), 0.0
    result.tier = Tier.RAW
    return result


def _show_raw(ctx: StreamContext, frame: Frame, result: FrameResult) -> None:
    ctx.guard.passthrough()
    result.pixels = ctx.enhancer.passthrough(frame)
    result.enhanced_fraction, result.tier = 0.0, Tier.RAW


def check(ctx: StreamContext, work: _Work) -> None:
    """The frame fits the model; its region (None while auto-detection collects frames) and the
    region's box, all the model sees. A failing check means: show the raw frame."""
    frame, once = work.frame, ctx.once
    try:
        ctx.enhancer.check(frame)
        work.region = ctx.guard.region_for(frame)
        if work.region is None:
            work.reason = Reason.REGION_PENDING
        else:
            work.model_in, work.box = ctx.guard.crop(frame, work.region)
    except IncompatibleFrame as exc:
        once("incompatible", "frame %d shown raw: %s", frame.index, exc)
        work.reason = Reason.INCOMPATIBLE
    except RegionOutside as exc:
        once("no-region", "frame %d shown raw: %s", frame.index, exc)
        work.reason = Reason.NO_REGION
    except Rejected as exc:  # the input lies outside the model's domain
        once(exc.reason.value, "frame %d shown raw: %s", frame.index, exc)
        work.reason = exc.reason
    except Exception as exc:  # noqa: BLE001
        once(f"check:{type(exc).__name__}", "frame %d shown raw, region check failed: %s: %s", frame.index,
             type(exc).__name__, exc)
        work.reason = Reason.CHECK_ERROR


def decide(ctx: StreamContext, work: _Work) -> None:
    """The tier to run at, or a reason to show the frame raw without waiting for the model."""
    work.tier, work.reason = ctx.policy.choose(work.origin_ns, ctx.clock.now_ns(), busy=ctx.worker.busy)
    if ctx.share is not None:  # several streams on one runner: take turns (runtime.fairness)
        work.reason = ctx.share.arbitrate(work.reason)


def infer(ctx: StreamContext, work: _Work) -> None:
    """Run the model on the region's box, waiting no longer than the frame's deadline."""
    clock, policy, once, index = ctx.clock, ctx.policy, ctx.once, work.frame.index
    factor = policy.config.tiers.factor if work.tier is Tier.REDUCED else 1
    times = work.times = StageTimes()
    try:
        wait_start, wait_s = clock.now_ns(), policy.wait_s(work.origin_ns, clock.now_ns())
        work.enhanced = ctx.worker.call(work.model_in, times, factor, timeout_s=wait_s)
        if clock.now_ns() > policy.deadline_ns(work.origin_ns):  # a result after the deadline is never shown
            once("late", "frame %d shown raw: the model's result came after the frame's deadline", index)
            work.reason, work.came_late = Reason.LATE, True
    except BadOutput as exc:
        once("bad-output", "frame %d shown raw, bad model output: %s", index, exc)
        work.reason = Reason.BAD_OUTPUT
    except InferenceTimeout as exc:
        work.waited_ms = (clock.now_ns() - wait_start) / 1e6
        policy.observe_wake(work.waited_ms - wait_s * 1e3)
        once("timeout", "frame %d shown raw: %s", index, exc)
        work.reason = Reason.TIMEOUT
    except RemoteUnavailable as exc:
        once("remote", "frame %d shown raw: %s", index, exc)
        work.reason = Reason.REMOTE_UNAVAILABLE
    except Exception as exc:  # noqa: BLE001 - any backend failure means: show the raw frame
        once(f"error:{type(exc).__name__}", "frame %d shown raw, backend error: %s: %s", index,
             type(exc).__name__, exc)
        work.reason = Reason.BACKEND_ERROR
    work.result.pre_ms, work.result.infer_ms, work.result.post_ms = times.pre_ms, times.infer_ms, times.post_ms


def finish(ctx: StreamContext, work: _Work) -> None:
    """The output pasted into the region and checked (tone, fidelity, change score, overlay) by
    the guard; its time counts as the guard's. Unchecked output is never shown."""
    frame, once = work.frame, ctx.once
    t1 = ctx.clock.now_ns()
    try:
        work.result.pixels = ctx.guard.finish(frame, work.region, work.box, work.enhanced, work.result,
                                              reduced=work.tier is Tier.REDUCED)
    except Rejected as exc:
        once("rejected", "frame %d shown raw: %s", frame.index, exc)
        work.reason = exc.reason
    except Exception as exc:  # noqa: BLE001
        once(f"check:{type(exc).__name__}", "frame %d shown raw, output check failed: %s: %s",
             frame.index, type(exc).__name__, exc)
        work.reason = Reason.CHECK_ERROR
    work.finish_ns = ctx.clock.now_ns() - t1
    work.guard_ns += work.finish_ns


def settle(ctx: StreamContext, work: _Work) -> None:
    """The outcome of a frame the model was called for, and what the policy learns from it."""
    policy, result, reason = ctx.policy, work.result, work.reason
    model_ms = work.times.total_ms + work.finish_ns / 1e6
    if reason is None:
        if policy.succeeded(model_ms):
            result.outcome, result.tier = Outcome.ENHANCED, work.tier
        else:  # a try from raw that stays raw
            result.pixels, work.reason = None, Reason.PROBE
    elif reason in (Reason.FIDELITY, Reason.MEAN_SHIFT) or work.came_late:
        # the model ran (late or unfaithful): learn its time
        result.pixels = None
        policy.succeeded(model_ms, late=work.came_late)
    else:
        result.pixels = None
        if reason is Reason.TIMEOUT:
            policy.failed(reason, work.waited_ms)
        elif reason is not Reason.REMOTE_UNAVAILABLE:  # a remote runner backs off and reconnects on its own
            policy.failed(reason)
