"""Per-frame deadline policy: enhance, or show the raw frame and say why.

All timing decisions live here so the pipeline loop has no scattered ``if``s:

- budget is measured from the frame's origin (its capture time in live mode);
- predicted finish = now + p95 of recent processing times (pre+infer+post) + the median
  of recent output (sink) times; past the deadline -> PREDICTED_MISS, except that every
  ``probe_every``-th consecutive predicted miss still runs, so the prediction can
  recover when the machine calms down (a probe that fits the budget resets history);
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
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .frames import Reason

log = logging.getLogger(__name__)


MAX_BUDGET_MS = 10_000.0  # as a profile's budget_ms: longer is no longer a real-time deadline


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
    def __init__(self, config: PolicyConfig = PolicyConfig()) -> None:
        self.config = config
        self._budget_ns = int(round(config.budget_ms * 1e6))
        self._process_ms: collections.deque[float] = collections.deque(maxlen=config.history)
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
        raw_ms = float(np.percentile(self._raw_ms, self.config.quantile)) if self._raw_ms else None
        slack_ms = (raw_ms if raw_ms is not None else self.predicted_output_ms() or 0.0) + wake_ms + RAW_MARGIN_MS
        left = (self.deadline_ns(origin_ns) - now_ns) / 1e9 - slack_ms / 1e3
        return max(0.0, min(left, self.config.timeout_s))

    def _process_p(self) -> float:
        return float(np.percentile(self._process_ms, self.config.quantile))

    def predicted_ms(self) -> float | None:
        """Expected time from 'start enhancing now' to 'out of the sinks'; None until learned."""
        if not self._process_ms:
            return None
        return self._process_p() + (self.predicted_output_ms() or 0.0)

    def decide(self, origin_ns: int, now_ns: int, *, busy: bool = False) -> Reason | None:
        """None: run inference. A Reason: pass the raw frame through for that reason."""
        if busy:  # the inference worker is still stuck in an earlier call
            return Reason.BACKOFF
        if self._skip > 0:
            self._skip -= 1
            return Reason.BACKOFF
        if now_ns >= self.deadline_ns(origin_ns):  # the budget is gone before inference could start
            return Reason.PREDICTED_MISS
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

    def succeeded(self, process_ms: float) -> None:
        if self._probing and process_ms + (self.predicted_output_ms() or 0.0) <= self.config.budget_ms:
            self._process_ms.clear()  # the machine calmed down: forget the slow past
            self._misses = 0
        self._probing = False
        self._process_ms.append(process_ms)
        self._failures = 0
        self._backoff_level = 0

    def timed_out(self, elapsed_ms: float) -> None:
        """The frame's deadline came before the model's result. Not a backend failure (no failure
        backoff: a runner that really hangs keeps the worker busy, and every frame meanwhile goes
        raw as ``backoff``): the call took at least ``elapsed_ms``, which the predictor learns, so
        later frames are predicted to miss instead of timing out one by one."""
        self._probing = False
        self._process_ms.append(elapsed_ms)

    def failed(self, reason: Reason) -> None:
        self._probing = False
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
