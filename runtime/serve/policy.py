"""Per-frame deadline policy: enhance, or show the raw frame and say why.

All timing decisions live here so the pipeline loop has no scattered ``if``s:

- budget is measured from the frame's origin (its capture time in live mode);
- predicted finish = now + p95 of recent processing times (pre+infer+post) + the median
  of recent output (sink) times; past the deadline -> PREDICTED_MISS, except that every
  ``probe_every``-th consecutive predicted miss still runs, so the prediction can
  recover when the machine calms down (a probe that fits the budget resets history);
- with ``tiers`` enabled (the default) a frame that would miss at full resolution runs the model
  at reduced resolution when that is predicted to fit, and switching between tiers is damped
  (runtime.tiers): each tier has its own recent times, and a tier not running now is
  estimated from the running one;
- ``fail_threshold`` consecutive failures (error, bad output, timeout) -> skip the
  backend for ``backoff_frames`` frames, doubling each time up to ``backoff_max_frames``;
  one success resets everything.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..frames import Reason, Tier
from .tiers import TierConfig, TierLadder

log = logging.getLogger(__name__)


MAX_BUDGET_MS = 10_000.0  # as a profile's budget_ms: longer is no longer a real-time deadline


MIN_RAW_SAMPLES = 5  # raw frames timed before their quantile bounds the inference wait

RAW_MARGIN_MS = 1.0  # what the measures above miss (a first warning logged, a garbage collection)


def check_budget(value: float, what: str = "budget") -> float:
    """A finite deadline in (0, MAX_BUDGET_MS] ms; 0, inf, NaN and 1e300 are refused, never replaced."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= MAX_BUDGET_MS):
        raise ConfigError(f"{what} must be a number of milliseconds in (0, {MAX_BUDGET_MS:g}] (got {value!r})")
    return float(value)


@dataclass(frozen=True)
class PolicyConfig:
    budget_ms: float = 33.0  # capture -> output, e.g. one frame period at 30 fps
    history: int = 30  # samples the predictor looks at
    quantile: float = 95.0
    probe_every: int = 15  # every Nth consecutive predicted miss still runs inference
    timeout_ms: float | None = None  # a shorter cap on one inference wait; None: the frame's deadline only
    fail_threshold: int = 3  # consecutive failures before backing off
    backoff_frames: int = 8  # first backoff length; doubles per failed retry
    backoff_max_frames: int = 256  # cap (~8.5 s at 30 fps)
    tiers: TierConfig = field(default_factory=TierConfig)  # reduced-resolution tier and hysteresis

    def __post_init__(self) -> None:
        check_budget(self.budget_ms)
        if self.history < 1 or self.probe_every < 1 or self.fail_threshold < 1:
            raise ConfigError("policy history, probe_every and fail_threshold must be >= 1")
        if not 0 < self.quantile <= 100:
            raise ConfigError(f"policy quantile must be in (0, 100] (got {self.quantile})")
        if self.backoff_frames < 1 or self.backoff_max_frames < self.backoff_frames:
            raise ConfigError("policy needs 1 <= backoff_frames <= backoff_max_frames")

    @property
    def timeout_s(self) -> float:
        """The longest one inference is waited for: never past the budget (see ``DeadlinePolicy.wait_s``)."""
        ms = self.budget_ms if self.timeout_ms is None else min(self.timeout_ms, self.budget_ms)
        return ms / 1e3


class DeadlinePolicy:
    def __init__(self, config: PolicyConfig = PolicyConfig(), *, live: bool = False) -> None:
        """``live``: frames arrive at the source's rate (a camera, a replay); with tiers the stream then
        starts at the reduced tier (runtime.tiers)."""
        self.config = config
        self._budget_ns = int(round(config.budget_ms * 1e6))
        self._tier_ms = {t: collections.deque(maxlen=config.history) for t in (Tier.FULL, Tier.REDUCED)}
        self._process_ms = self._tier_ms[Tier.FULL]  # the single-tier policy's history
        start = Tier.REDUCED if live and config.tiers.enabled else Tier.FULL
        self.ladder = TierLadder(config.tiers, config.probe_every, start)
        self._running = start  # the tier of the last inference started
        self._probe_left_ms: float | None = None  # set while that inference is a tier probe
        self._frames = 0  # frames the tiers were chosen for
        self._sampled_at = {Tier.FULL: 0, Tier.REDUCED: 0}  # the frame of each tier's newest time
        self._full_over_reduced = float(config.tiers.factor)  # work ratio; before both ran: see TierConfig
        self._output_ms: collections.deque[float] = collections.deque(maxlen=config.history)
        self._wake_ms: collections.deque[float] = collections.deque(maxlen=config.history)
        self._raw_ms: collections.deque[float] = collections.deque(maxlen=config.history)
        self._misses = 0  # consecutive predicted misses
        self._probing = False
        self._failures = 0  # consecutive failures
        self._backoff_level = 0
        self._skip = 0  # frames left to skip in the current backoff
        self.probes = 0
        self.backoffs = 0

    def deadline_ns(self, origin_ns: int) -> int:
        return origin_ns + self._budget_ns

    def wait_s(self, origin_ns: int, now_ns: int) -> float:
        """How long an inference started at ``now_ns`` may be waited for: until the frame's deadline,
        less what showing the raw frame then takes (recent raw frames, start to output; before any:
        the sinks' median; the policy's quantile) and how late a timed wait has been waking up here
        (the worst of the recent ones) and ``RAW_MARGIN_MS``, and ``timeout_ms`` at most. Then the frame goes out raw, by its deadline: a stall is one budget."""
        wake_ms = max(self._wake_ms, default=0.0)  # the bound is hard: the worst recent wake-up
        # a quantile of a few samples is their maximum: one first raw frame that paid a one-off cost
        # (under load, 30 ms) would leave the model no time for many frames; until then, the sinks' median
        enough = len(self._raw_ms) >= MIN_RAW_SAMPLES
        raw_ms = float(np.percentile(self._raw_ms, self.config.quantile)) if enough else None
        slack_ms = (raw_ms if raw_ms is not None else self.predicted_output_ms() or 0.0) + wake_ms + RAW_MARGIN_MS
        left = (self.deadline_ns(origin_ns) - now_ns) / 1e9 - slack_ms / 1e3
        return max(0.0, min(left, self.config.timeout_s))

    def _process_p(self) -> float:
        return float(np.percentile(self._process_ms, self.config.quantile))

    def predicted_ms(self, tier: Tier = Tier.FULL) -> float | None:
        """Expected time from 'start enhancing now' at ``tier`` to 'out of the sinks'; None until learned.
        A tier other than the one running now is estimated from the running one's recent times
        (its own are from another moment of the machine's load) times the measured ratio."""
        process = self._tier_process_ms(tier)
        return None if process is None else process + (self.predicted_output_ms() or 0.0)

    def _tier_process_ms(self, tier: Tier, worst: bool = False, median: bool = False,
                         untried_fits: bool = False) -> float | None:
        """The quantile (``worst``: the maximum; ``median``: the median) of ``tier``'s recent processing
        times. The reduced tier, the last before raw, is judged by its median: running it and missing
        costs one raw frame, going raw costs ``hold_frames`` of them, so raw pays only when most of its
        calls would miss. A tier not running now has only times from another moment: it is estimated
        from the running tier's, as the work (the running median times the tiers' work ratio) plus the
        running tier's stalls (its quantile above its median), which a busy machine adds to either tier
        alike. None: nothing known (``untried_fits``: also for a tier that never ran)."""
        q = 100.0 if worst else 50.0 if median else self.config.quantile
        own = self._tier_ms[tier]
        level = self.ladder.level
        other = self._tier_ms[Tier.REDUCED if tier is Tier.FULL else Tier.FULL]
        if not own and (untried_fits or not other):
            return None  # never ran: nothing known, try it
        if own and (tier is level or level is Tier.RAW or not other):
            return float(np.percentile(own, q))
        mid = float(np.median(other))
        stalls = float(np.percentile(other, q)) - mid
        return mid * (self._full_over_reduced if tier is Tier.FULL else 1.0 / self._full_over_reduced) + stalls

    def _add_sample(self, tier: Tier, process_ms: float) -> None:
        """One processing time at ``tier``. While both tiers have times from within ``history`` frames of
        each other (around a switch, a probe) their medians' ratio is the work ratio; later it is kept."""
        self._tier_ms[tier].append(process_ms)
        self._sampled_at[tier] = self._frames
        full, reduced = self._tier_ms[Tier.FULL], self._tier_ms[Tier.REDUCED]
        if full and reduced and abs(self._sampled_at[Tier.FULL] - self._sampled_at[Tier.REDUCED]) \
                <= self.config.history:
            ratio = float(np.median(full)) / max(1e-3, float(np.median(reduced)))
            # the work shrinks at most with the pixel count: a larger ratio is a stall in the few full times
            self._full_over_reduced = min(float(self.config.tiers.factor ** 2), max(1.0, ratio))

    def choose(self, origin_ns: int, now_ns: int, *, busy: bool = False) -> tuple[Tier, Reason | None]:
        """The tier to run on this frame, or (RAW, why the raw frame is shown)."""
        if busy:  # the inference worker is still stuck in an earlier call
            return Tier.RAW, Reason.BACKOFF
        if self._skip > 0:
            self._skip -= 1
            return Tier.RAW, Reason.BACKOFF
        if now_ns >= self.deadline_ns(origin_ns):  # the budget is gone before inference could start
            return Tier.RAW, Reason.PREDICTED_MISS
        self._probe_left_ms = None
        if not self.config.tiers.enabled:
            reason = self._single_tier(origin_ns, now_ns)
            self._running = Tier.FULL
            return (Tier.RAW, reason) if reason else (Tier.FULL, None)
        # the ladder judges the machine: the wait a frame that has not queued would get; this frame's
        # own wait (it may have queued behind a stall) only moves this frame down, not the level
        typical_ms, left_ms = self.wait_s(now_ns, now_ns) * 1e3, self.wait_s(origin_ns, now_ns) * 1e3
        self._frames += 1
        choice = self.ladder.choose(lambda t: self._fits(t, typical_ms, untried_fits=True),
                                    lambda t: self._fits(t, self.config.tiers.up_margin * typical_ms, worst=True))
        tier = choice.tier
        if choice.probe and left_ms >= self.config.tiers.up_margin * typical_ms:
            self.probes += 1  # a try: it runs whatever the estimates say (they may be what keeps the level down)
            self._probe_left_ms = left_ms
            self._running = tier
            return tier, None
        if choice.probe:
            tier = self.ladder.level  # this frame queued too long to be a fair try
        while tier is not Tier.RAW and not self._fits(tier, left_ms):
            tier = Tier.REDUCED if tier is Tier.FULL else Tier.RAW
        if tier is Tier.RAW:
            if self.ladder.level is Tier.REDUCED:  # raw by itself: a miss of the last tier before raw, so that
                self.ladder.missed(Tier.REDUCED)  # frequent ones give a raw stretch, not raw frames between enhanced
            return Tier.RAW, Reason.PREDICTED_MISS
        self._running = tier
        return tier, None

    def _fits(self, tier: Tier, limit_ms: float, worst: bool = False, untried_fits: bool = False) -> bool:
        """``tier`` predicted to finish within ``limit_ms`` (True before anything is known about either
        tier; ``untried_fits``: also before ``tier`` itself ran -- the level tries it, a late frame does
        not); the reduced tier, the last before raw, by its median (see ``_tier_process_ms``)."""
        process = self._tier_process_ms(tier, worst=worst, median=not worst and tier is Tier.REDUCED,
                                        untried_fits=untried_fits)
        return process is None or process <= limit_ms

    def decide(self, origin_ns: int, now_ns: int, *, busy: bool = False) -> Reason | None:
        """None: run inference (at ``choose``'s tier). A Reason: pass the raw frame through for that reason."""
        return self.choose(origin_ns, now_ns, busy=busy)[1]

    def _single_tier(self, origin_ns: int, now_ns: int) -> Reason | None:
        """Full resolution or raw (tiers disabled): every ``probe_every``-th consecutive predicted miss still runs."""
        predicted = self.predicted_ms()
        # also a miss when the call would outlast the wait ``wait_s`` allows (it keeps room to show the raw
        # frame on time): starting it would only end in a timeout
        if predicted is not None and (now_ns + predicted * 1e6 > self.deadline_ns(origin_ns)
                                      or self._process_p() > self.wait_s(origin_ns, now_ns) * 1e3):
            self._misses += 1
            if self._misses % self.config.probe_every:
                return Reason.PREDICTED_MISS
            self._probing = True
            self.probes += 1
            return None
        self._misses = 0
        return None

    def succeeded(self, process_ms: float, *, late: bool = False) -> bool:
        """The model ran on the chosen tier in ``process_ms`` (``late``: its result came after the deadline).
        False: the result is not to be shown -- a probe from raw that did not move the level up (one enhanced
        frame between raw ones is the flicker the ladder's hysteresis is there to prevent)."""
        tier, samples = self._running, self._tier_ms[self._running]
        show = True
        total_ms = process_ms + (self.predicted_output_ms() or 0.0)
        if self._probing and total_ms <= self.config.budget_ms:
            samples.clear()  # the machine calmed down: forget the slow past
            self._misses = 0
        if self._probe_left_ms is not None:  # a tier probe: up with margin, else stay
            with_margin = not late and process_ms <= self.config.tiers.up_margin * self._probe_left_ms
            if with_margin:
                samples.clear()  # the times from before the switch down are from another load
            show = with_margin or self.ladder.level is not Tier.RAW
            self.ladder.probed(tier, with_margin)
        elif late and self.config.tiers.enabled:
            self.ladder.missed(tier)
        self._probing, self._probe_left_ms = False, None
        self._add_sample(tier, process_ms)
        self._failures = 0
        self._backoff_level = 0
        return show

    def failed(self, reason: Reason, waited_ms: float | None = None) -> None:
        """The model failed (``reason``); a TIMEOUT after ``waited_ms``. A timeout is a matter of time, not
        a failure that backs the model off: with tiers the ladder steps (a real miss, or a failed try up);
        a machine that stays slow shows it in the calls that do return. A call that never returns keeps
        the worker busy, and its frames raw as ``backoff``, anyway."""
        if reason is Reason.TIMEOUT:
            # ``waited_ms`` is only a lower bound of the call's time, and a stall is usually one call: kept
            # out of the history, where one sample would hold the predictor's quantile (and the ladder's
            # worst case) over the budget until it ages out -- with no calls running to age it at raw
            if self.config.tiers.enabled:
                if self._probe_left_ms is None:
                    self.ladder.missed(self._running)
                else:
                    self.ladder.probed(self._running, with_margin=False)
            self._probing, self._probe_left_ms = False, None
            return
        self._probing, self._probe_left_ms = False, None
        self._failures += 1
        if self._failures >= self.config.fail_threshold:
            self._skip = min(self.config.backoff_frames << self._backoff_level, self.config.backoff_max_frames)
            self._backoff_level += 1
            self.backoffs += 1
            log.warning("%d consecutive enhancement failures (last: %s); raw frames for the next %d frames",
                        self._failures, reason.value, self._skip)

    def calibrate_wake(self, samples: int = 5, wait_s: float = 0.002) -> None:
        """A first estimate of the wake-up delay, before any inference has timed out: a few
        short timed waits on this machine as it is loaded now."""
        for _ in range(samples):
            t0 = time.perf_counter()
            threading.Event().wait(wait_s)
            self.observe_wake((time.perf_counter() - t0 - wait_s) * 1e3)

    def observe_raw(self, ms: float) -> None:
        """A frame shown raw without waiting for the model took ``ms`` from dequeue to output."""
        self._raw_ms.append(ms)

    def observe_wake(self, overshoot_ms: float) -> None:
        """A timed-out wait came back ``overshoot_ms`` after it was due (scheduling on a busy machine)."""
        self._wake_ms.append(max(0.0, overshoot_ms))

    def observe_output(self, sink_ms: float) -> None:
        self._output_ms.append(sink_ms)

    def predicted_output_ms(self) -> float | None:
        """Median, not p95: a raw frame pays the sinks' I/O spikes too (file open, flush), so
        predicting them would only turn enhancement off without making anything faster."""
        return float(np.median(self._output_ms)) if self._output_ms else None

    def is_late(self, origin_ns: int, t_output_ns: int) -> bool:
        return t_output_ns > self.deadline_ns(origin_ns)
