"""Frames and per-frame outcomes: the data that flows through the pipeline."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

SIGNAL_LOST = "lost"  # FrameMeta.extra["signal"] of the cards a live source shows while its device is away


class Outcome(Enum):
    ENHANCED = "enhanced"
    PASSTHROUGH = "passthrough"
    DROPPED = "dropped"


class Reason(Enum):
    """Why a frame was not enhanced (recorded next to the outcome)."""

    NONE = ""
    PREDICTED_MISS = "predicted-miss"
    BACKEND_ERROR = "backend-error"
    BAD_OUTPUT = "bad-output"
    TIMEOUT = "timeout"
    BACKOFF = "backoff"
    OVERTAKEN = "overtaken"
    INCOMPATIBLE = "incompatible-frame"
    LATE = "late"  # the model's result came after the frame's deadline: never shown
    UNREADABLE = "unreadable"  # the source could not decode this frame (a corrupt file in a folder)
    STOPPED = "stopped"  # captured, still queued when the run was stopped (Ctrl-C, quit key)
    REGION_PENDING = "region-pending"  # auto imaging-region detection is still collecting frames
    NO_REGION = "no-region"  # the configured imaging region does not fit this frame
    FIDELITY = "fidelity"  # the enhanced frame, degraded back, does not explain the input
    CHECK_ERROR = "check-error"  # the region/fidelity checks themselves failed: never show unchecked output
    NO_SIGNAL = "no-signal"  # a live source's NO SIGNAL card: shown as it is, never sent to the model
    FAIR_SHARE = "fair-share"  # another stream sharing the runner was owed the turn (runtime.fairness)
    MEAN_SHIFT = "mean-shift"  # the output moved the local mean in too much of the region (runtime.tone)
    OUT_OF_DISTRIBUTION = "out-of-distribution"  # the input lies outside the model's declared domain (runtime.domain)
    REMOTE_UNAVAILABLE = "remote-unavailable"  # the inference server is down, unreachable or slow (triton runner)
    PROBE = "probe"  # a try of the reduced tier from raw that did not earn the move up: run, shown raw (runtime.tiers)


class Tier(Enum):
    """What the shown frame came from (runtime.tiers): the model at full resolution, the model on the
    crop downsampled (a cheaper tier near the budget), or the raw frame."""

    FULL = "full"
    REDUCED = "reduced"
    RAW = "raw"
    NONE = ""  # a dropped frame: nothing shown


@dataclass(frozen=True, slots=True)
class FrameMeta:
    source_id: str = "unknown"
    fps: float = 0.0
    modality: str = "US"
    pixel_spacing_mm: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Frame:
    index: int
    t_capture_ns: int  # time.monotonic_ns() (or the pipeline clock) when the source produced it
    pixels: np.ndarray  # HxW (gray) or HxWx3 BGR, uint8 or uint16
    meta: FrameMeta = FrameMeta()

    @property
    def channels(self) -> int:
        return 1 if self.pixels.ndim == 2 else int(self.pixels.shape[2])

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    @property
    def signal_lost(self) -> bool:
        """A NO SIGNAL card (sources/live.py), not a picture of the patient."""
        extra = self.meta.extra
        return bool(extra) and extra.get("signal") == SIGNAL_LOST


@dataclass(slots=True)
class FrameResult:
    """What happened to one frame. ``pixels`` is what sinks show: the enhanced image, or the
    raw frame as uint8 in the same layout when passed through; None only for dropped frames.
    Stage times are ms (NaN when the stage did not run)."""

    index: int
    outcome: Outcome
    reason: Reason = Reason.NONE
    pixels: np.ndarray | None = None
    tier: Tier = Tier.NONE  # what the shown pixels came from (set for every frame that is shown)
    wait_ms: float = math.nan  # capture -> dequeue
    pre_ms: float = math.nan
    infer_ms: float = math.nan
    post_ms: float = math.nan
    sink_ms: float = math.nan  # all sinks' write()
    guard_ms: float = math.nan  # imaging region, fidelity, change score, temporal filter, PHI mask, flicker
    late: bool = False  # output after the deadline (a deadline miss; the frame is still shown)
    t_output_ns: int | None = None  # clock time after the last sink wrote it
    change_score: float = math.nan  # enhanced frames: mean |shown - raw| inside the region, 8-bit levels
    fidelity_db: float = math.nan  # worst-tile score of the fidelity check (NaN: not checked)
    enhanced_fraction: float = math.nan  # share of the region showing the model's output (0 for raw frames)
    tone_worst_p95: float = math.nan  # worst tile's p95 local mean shift, grey levels (NaN: not checked)
    flicker_in: float = math.nan  # mean |raw - previous raw| inside the region, 8-bit levels
    flicker_out: float = math.nan  # the same for the shown frames
    # Where viewer labels may go: the imaging region's mask (uint8 0/255, at the shown frame's size),
    # so a label never touches the scanner's pixels outside it. None: a frame corner.
    label_mask: np.ndarray | None = None
