"""Where, and how much, the model changed the frame.

Per frame the record carries ``change_score``: the mean |shown - raw| inside the imaging
region in 8-bit levels (0 for an identity model). ``ChangeMapSink`` writes the picture of
it: |shown - raw| colour-mapped (inferno, black = unchanged; full colour at
``FULL_SCALE_LEVELS``), laid over the dimmed raw frame, into any sink (a video file by
default). Outside the region it is black by construction.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from ..frames import Frame, FrameResult
from ..model.ops import to_uint8
from ..sinks.overlay import FONT, to_bgr

FULL_SCALE_LEVELS = 64  # a change of 64 grey levels (a quarter of the range) is shown at full colour
RAW_WEIGHT = 0.35  # the raw frame under the heat map, for orientation
LEGEND = f"|out-in|, full colour = {FULL_SCALE_LEVELS} levels"


def change_heatmap(raw: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """BGR uint8: |shown - raw| (the larger of the colour channels) colour-mapped over the dimmed raw.
    ``raw`` is resized to ``shown`` when they differ (a super-resolution model)."""
    raw_bgr, shown_bgr = to_bgr(raw), to_bgr(shown)
    if raw_bgr.shape != shown_bgr.shape:
        raw_bgr = cv2.resize(raw_bgr, (shown_bgr.shape[1], shown_bgr.shape[0]), interpolation=cv2.INTER_LINEAR)
    diff = cv2.absdiff(shown_bgr, raw_bgr).max(axis=2)
    heat = cv2.applyColorMap(cv2.convertScaleAbs(diff, alpha=255.0 / FULL_SCALE_LEVELS), cv2.COLORMAP_INFERNO)
    gray = cv2.cvtColor(cv2.cvtColor(raw_bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    out = cv2.addWeighted(heat, 1.0, gray, RAW_WEIGHT, 0.0)
    s = max(0.3, min(out.shape[:2]) / 900.0)
    cv2.putText(out, LEGEND, (4, out.shape[0] - 6), FONT, s, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class ChangeMapSink:
    """Feeds ``inner`` (e.g. a VideoSink with overlay=False) the change heat map instead of the frame."""

    def __init__(self, inner, bits: int = 16) -> None:
        self.inner, self.bits = inner, bits

    @classmethod
    def video(cls, path: str | Path, fps: float, provenance=None) -> ChangeMapSink:
        from ..sinks.files import VideoSink

        return cls(VideoSink(path, fps, overlay=False, provenance=provenance))

    @property
    def quit_requested(self) -> bool:
        return bool(getattr(self.inner, "quit_requested", False))

    def write(self, frame: Frame, result: FrameResult) -> None:
        heat = change_heatmap(to_uint8(frame.pixels, self.bits), result.pixels)
        self.inner.write(frame, replace(result, pixels=heat))

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> ChangeMapSink:
        self.inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)
