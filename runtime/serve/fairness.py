"""Fair turns on one shared runner: two probes on one model must not end as one enhanced, one raw.

Each stream's deadline policy predicts from its own recent timings, and those include the time
its requests waited behind the other streams'. Left alone that feeds on itself: the stream that
waited predicts misses, goes raw, so the others never wait and keep predicting hits. Measured on
two 512^2 streams on 2 cores: 177 and 45 of 300 frames enhanced.

``FairShare`` evens this out. For every frame a stream *wanted* to enhance (the policy ran or
predicted a miss) it records whether the frame got the runner, over the stream's last ``window``
such frames. Between streams that are both contending:

- a stream the policy lets run *yields* (``Reason.FAIR_SHARE``, the raw frame) while another
  stream's share is more than ``margin`` below its own and that stream's latest frame was refused
  (it wants the runner now): the runner is then free for that one. A yield to a stream that would
  not use the room is a frame lost for nothing, so there is none;
- a stream the policy holds back (``Reason.PREDICTED_MISS``) runs anyway when its share is more
  than ``margin`` below every other's and each of those yielded its latest frame: its turn, in
  the room the yields left (its prediction was learned while it queued behind them).

A yield goes only to a stream that wants the runner, and a turn only into room a yield left, so
the runner carries about the load the policies allowed, shared out more evenly
(``benchmarks/multistream_bench.py`` measures both, with and without fair turns, in one run). A
stream that stops wanting frames (ended, or its region still pending) stops counting after
``window`` other decisions.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

from ..errors import ConfigError
from ..frames import Reason


@dataclass(frozen=True)
class FairConfig:
    window: int = 30  # a stream's recent wanted frames that count (about 1 s at 30 fps)
    margin: float = 0.05  # share difference tolerated before turns are taken

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ConfigError(f"fair-share window must be >= 2 frames (got {self.window})")
        if not 0.0 <= self.margin < 1.0:
            raise ConfigError(f"fair-share margin must be in [0, 1) (got {self.margin})")


class FairShare:
    """Thread-safe: every stream's pipeline thread calls ``arbitrate`` for its own frames."""

    def __init__(self, streams: int, config: FairConfig = FairConfig()) -> None:
        if streams < 1:
            raise ConfigError(f"fair share needs at least one stream (got {streams})")
        self.config = config
        self._served = [collections.deque(maxlen=config.window) for _ in range(streams)]
        self._last = [-1] * streams  # tick of each stream's last wanted frame
        self._yielded = [False] * streams  # the stream's latest wanted frame gave way to another
        self._refused = [False] * streams  # the stream's latest wanted frame did not get the runner
        self._tick = 0
        self._lock = threading.Lock()
        self.yields = [0] * streams  # frames a stream gave up to another
        self.turns = [0] * streams  # predicted misses run because the stream was owed a turn

    def share(self, stream: int) -> float | None:
        """Fraction of the stream's recent wanted frames that got the runner; None before any."""
        h = self._served[stream]
        return sum(h) / len(h) if h else None

    def _rivals(self, stream: int) -> list[int]:
        """The other streams still contending (a wanted frame within the last window of decisions)."""
        horizon = self.config.window * len(self._served)
        return [o for o in range(len(self._served))
                if o != stream and self._served[o] and self._tick - self._last[o] <= horizon]

    def arbitrate(self, stream: int, reason: Reason | None) -> Reason | None:
        """The policy's verdict for this frame (None: run) -> the verdict after fair turns, recorded."""
        if reason not in (None, Reason.PREDICTED_MISS):
            return reason  # not a frame the stream could have run: nothing to share
        with self._lock:
            mine, rivals = self.share(stream), self._rivals(stream)
            if mine is not None and rivals:
                m, theirs = self.config.margin, [self.share(o) for o in rivals]
                owed = [o for o, t in zip(rivals, theirs) if t < mine - m]
                if reason is None and any(self._refused[o] for o in owed):
                    reason = Reason.FAIR_SHARE
                    self.yields[stream] += 1
                elif (reason is Reason.PREDICTED_MISS and mine < min(theirs) - m
                      and all(self._yielded[o] for o in rivals)):
                    reason = None
                    self.turns[stream] += 1
            self._served[stream].append(reason is None)
            self._yielded[stream] = reason is Reason.FAIR_SHARE
            self._refused[stream] = reason is not None
            self._tick += 1
            self._last[stream] = self._tick
        return reason

    def to_dict(self) -> dict:
        return {"window": self.config.window, "margin": self.config.margin,
                "yields_by_stream": {str(i): n for i, n in enumerate(self.yields)},
                "turns_by_stream": {str(i): n for i, n in enumerate(self.turns)}}


class StreamShare:
    """One stream's handle: what its pipeline calls."""

    def __init__(self, fair: FairShare, stream: int) -> None:
        self.fair, self.stream = fair, stream

    def arbitrate(self, reason: Reason | None) -> Reason | None:
        return self.fair.arbitrate(self.stream, reason)
