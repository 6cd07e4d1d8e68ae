"""Cheaper tiers near the budget, with hysteresis: full resolution, reduced resolution, raw.

When the full-resolution model is predicted to miss a frame's deadline, the region's crop is
area-downsampled by ``factor``, enhanced and upsampled back (``Enhancer.enhance`` with a factor);
only when that too is predicted to miss is the frame shown raw. Switching is damped so that a
viewer never sees the picture flip between tiers from one frame to the next:

- down: at once when the current tier is predicted to miss, except within ``hold_frames``
  frames after a switch up (a probe earned that switch with margin): then only a real miss
  moves down;
- up: never within ``hold_frames`` frames of a switch down, and only through a probe: the next
  tier up runs on one frame, at most every ``probe_every`` frames, and only when its estimate
  at its worst fits with margin (from the raw tier, which measures nothing, every ``probe_every``
  frames); a probe that finishes within ``up_margin`` of the time the frame had left moves up,
  a slower one doubles the wait;
- a real miss (a timed-out or late result) moves the full tier down at once; the reduced tier,
  the last before raw, only at its second real miss within ``hold_frames`` frames (one stall of
  the machine is one raw frame, not a raw stretch). A frame the policy sends raw by itself at the
  reduced level (it queued behind a stall) counts as such a miss: two within the hold would be raw
  frames between enhanced ones, so the level goes raw instead;
- a real miss at a tier reached by moving up doubles the wait before the next probe up (up to
  ``MAX_HOLD_DOUBLINGS`` times): on a machine whose stalls the higher tier cannot absorb, each
  try costs a raw frame, so tries get rarer; a stay up as long as that wait forgets it.

A live stream starts at the reduced tier and moves up through a probe like any other stay there:
before its first frame nothing says what the full tier costs with the checks and the sinks, and a
wrong first guess is a raw frame between enhanced ones (a file read as fast as possible, or a still,
starts at full resolution: it has no frame period to miss).

A probe that finishes in time without the margin is still shown when it tries full from the
reduced tier (one frame of the higher tier, both enhanced); from raw it is shown raw (reason
``probe``): one enhanced frame between raw ones every ``probe_every`` frames is the very flicker the
hysteresis is there to prevent. ``DeadlinePolicy`` adds one thing the ladder does not see: a frame that already
queued behind a stall runs a tier lower (or raw) by itself, without moving the level.

``TierLadder`` is the state machine only (no clock, no measurements): ``DeadlinePolicy`` asks it
which tier to run and tells it what happened. A runner with a smallest input shape (a TensorRT
engine's profile, ``[tensorrt] min_hw``) needs crops of at least ``factor`` times that size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..frames import Tier

MAX_HOLD_DOUBLINGS = 5  # 10 frames -> at most 320 (about 10 s at 30 fps) between tries up
MAX_FACTOR = 4  # beyond 4x fewer pixels per side the model's output is too coarse to call enhanced
LADDER = (Tier.FULL, Tier.REDUCED, Tier.RAW)  # best first


@dataclass(frozen=True)
class TierConfig:
    """The profile's [tiers]. ``enabled = false``: full resolution or raw, no hysteresis (the
    policy's single-tier probing only)."""

    enabled: bool = True
    factor: int = 2  # reduced tier: the crop's sides divided by this before the model
    hold_frames: int = 10  # the shortest stay at a tier after a switch (unless a probe/real miss)
    up_margin: float = 0.8  # a probe moves up when it finished within this share of the time left

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"tiers.enabled must be true or false (got {self.enabled!r})")
        if not isinstance(self.factor, int) or not 2 <= self.factor <= MAX_FACTOR:
            raise ConfigError(f"tiers.factor must be an integer in [2, {MAX_FACTOR}] (got {self.factor!r})")
        if not isinstance(self.hold_frames, int) or self.hold_frames < 0:
            raise ConfigError(f"tiers.hold_frames must be an integer >= 0 (got {self.hold_frames!r})")
        if not (isinstance(self.up_margin, (int, float)) and math.isfinite(self.up_margin)
                and 0 < self.up_margin <= 1):
            raise ConfigError(f"tiers.up_margin must be in (0, 1] (got {self.up_margin!r})")

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> TierConfig:
        unknown = set(raw) - {"enabled", "factor", "hold_frames", "up_margin"}
        if unknown:
            raise ConfigError(f"{where}: unknown key 'tiers.{sorted(unknown)[0]}'")
        try:
            return cls(**raw)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    # Before both tiers have run, the full tier is taken as ``factor`` times the reduced one's work:
    # conservative for the reduced tier (its area is factor**2 smaller, but pre/post and per-call
    # costs do not shrink with it), the direction in which a wrong guess costs a raw frame.


@dataclass(frozen=True)
class Choice:
    tier: Tier  # what to run (RAW: nothing)
    probe: bool = False  # a higher tier tried on this frame; see ``TierLadder.probed``


class TierLadder:
    """Which tier runs: the current level with the switching rules of the module docstring.
    ``fits(tier)`` says whether ``tier`` is predicted to finish in the time the frame has left,
    ``fits_up(tier)`` whether it would even at its worst, with ``up_margin`` to spare (both True
    when nothing is known about it yet)."""

    def __init__(self, config: TierConfig, probe_every: int, start: Tier = Tier.FULL) -> None:
        self.config, self.probe_every = config, probe_every
        self.level = start  # a live stream starts a tier down (DeadlinePolicy): up is earned by a probe
        self.held = 0  # frames at this level since the last switch
        self.went_up = False  # the last switch was up: within the hold only a real miss moves down
        self.up_hold = config.hold_frames  # frames at a lower tier before probing up (doubles per failed try)
        self.switches = 0
        self._since_miss: int | None = None  # frames since the last real miss at the reduced tier

    def _switch(self, level: Tier) -> None:
        self.went_up = LADDER.index(level) < LADDER.index(self.level)
        self.level, self.held = level, 0
        self.switches += 1

    def choose(self, fits: Callable[[Tier], bool], fits_up: Callable[[Tier], bool]) -> Choice:
        self.held += 1
        if self._since_miss is not None:
            self._since_miss += 1
        if self.went_up and self.held > self.up_hold:  # stayed up as long as it waited: the try paid off
            self.up_hold = self.config.hold_frames
        if self.level is not Tier.RAW and not fits(self.level):
            if self.went_up and self.held <= self.config.hold_frames:
                return Choice(self.level)  # the probe showed margin: a prediction alone does not undo it
            lower = next(t for t in LADDER[LADDER.index(self.level) + 1:] if t is Tier.RAW or fits(t))
            self._switch(lower)
            self.held = 1
            return Choice(lower)
        if self.level is Tier.FULL or self.held <= self.up_hold:
            return Choice(self.level)
        higher, slot = LADDER[LADDER.index(self.level) - 1], self.held - self.up_hold - 1
        if slot % self.probe_every == 0 and (self.level is Tier.RAW or fits_up(higher)):
            return Choice(higher, probe=True)
        return Choice(self.level)

    def probed(self, tier: Tier, with_margin: bool) -> None:
        """A probe of ``tier`` came back: within ``up_margin`` of the time left -> move up; slower, late
        or timed out -> stay, and (above raw, where a failed try can cost a raw frame) wait twice as long."""
        if LADDER.index(tier) >= LADDER.index(self.level):
            return
        if with_margin:
            self._switch(tier)
        elif self.level is not Tier.RAW:
            self._back_off()
            self.held = 0

    def _back_off(self) -> None:
        self.up_hold = min(self.up_hold * 2, self.config.hold_frames << MAX_HOLD_DOUBLINGS)

    def missed(self, tier: Tier) -> None:
        """A real miss (timeout, late result) at ``tier``, the current level: it steps down (see the module)."""
        if tier is not self.level or tier is Tier.RAW:
            return
        if tier is Tier.REDUCED:  # the last tier before raw: one stall is not yet a reason to go raw
            isolated = self._since_miss is None or self._since_miss > self.config.hold_frames
            self._since_miss = 0
            if isolated:
                return
        if self.went_up and self.held <= self.up_hold:  # the try up failed: wait longer before the next
            self._back_off()
        self._switch(LADDER[LADDER.index(tier) + 1])
