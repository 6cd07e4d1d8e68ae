"""The checks around the model, in the order the pipeline calls them:

1. ``region_for(frame)``: the imaging region (None while auto-detection collects frames);
   ``crop(frame, region)``: the model's input, the region's box grown to the size multiple;
   an input outside the model's declared domain is ``Rejected`` (domain.py) before inference.
2. ``finish(...)``: on the model's output for that crop: temporal filter, compose into the
   raw frame (the very last pixel operation, in uint8: outside the region, and on the frame's
   own colour pixels and burned-in graphics inside it, every pixel *is* the raw frame's), local mean check (tone.py: failed tiles shown raw, blended at their
   seams; too many -> ``Rejected``), fidelity check (``Rejected`` -> the frame goes raw),
   change score.
3. ``outgoing(frame, result)``: on whatever is shown: flicker measure, then PHI masking of
   the frame and the result before any sink sees them.

"Raw" is the display form of the input: the frame itself for 8-bit frames, scaled to
8 bits for 16-bit ones, enlarged for a super-resolution model (``Enhancer.passthrough``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError
from ..frames import Frame, FrameResult, Reason
from ..model.ops import Enhancer
from .domain import DomainConfig, DomainMonitor
from .fidelity import FidelityConfig, FidelityMonitor
from .phi import PhiConfig, PhiMasker
from .region import Box, Region, RegionConfig, RegionMode, RegionTracker, luma_u8
from .temporal import EmaFilter, FlickerMeter, TemporalConfig, mean_abs_diff
from .tone import ToneCheck, ToneConfig, blend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardConfig:
    region: RegionConfig = field(default_factory=RegionConfig)  # default: the whole frame
    fidelity: FidelityConfig | None = None  # None: no fidelity check
    tone: ToneConfig | None = None  # local mean preservation (tone.py); None: not checked
    domain: DomainConfig | None = None  # the model's input domain (domain.py); None: not checked
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    phi: PhiConfig = field(default_factory=PhiConfig)

    def __post_init__(self) -> None:
        if self.phi.enabled and self.region.mode is RegionMode.FULL:
            raise ConfigError("PHI masking needs an imaging region (--region auto or X,Y,W,H, or the profile's "
                              "[region]); with the whole frame as the region nothing would be masked")

    def to_dict(self) -> dict[str, Any]:
        return {"region_mode": self.region.mode.value,
                "fidelity": self.fidelity.to_dict() if self.fidelity and self.fidelity.enabled else None,
                "tone": self.tone.to_dict() if self.tone and self.tone.enabled else None,
                "input_domain": {k: list(v) for k, v in self.domain.ranges.items()} if self.domain else None,
                "temporal_filter": self.temporal.filter.value if not self.temporal.on
                else f"{self.temporal.filter.value}:{self.temporal.alpha:g}",
                "phi_masked": self.phi.enabled}


class Rejected(Exception):
    def __init__(self, reason: Reason, msg: str) -> None:
        super().__init__(msg)
        self.reason = reason


class Guard:
    def __init__(self, config: GuardConfig, enhancer: Enhancer, *, expected_frames: int | None = None) -> None:
        self.config = config
        self.enhancer = enhancer
        self.scale = enhancer.post.scale
        self.multiple = enhancer.pre.multiple
        self.regions = RegionTracker(config.region, expected_frames=expected_frames, bits=enhancer.bits)
        fid = config.fidelity
        self.fidelity = FidelityMonitor(fid, self.scale) if fid is not None and fid.enabled else None
        self.graphics = enhancer.pre.spec.channels == 1
        self.tone = ToneCheck(config.tone) if config.tone is not None and config.tone.enabled else None
        self.colour_tone = enhancer.pre.spec.channels == 3  # a colour model's shift is judged in CIELAB (tone.py)
        self.domain = DomainMonitor(config.domain) if config.domain is not None else None
        self.ema = EmaFilter(config.temporal.alpha) if config.temporal.on else None
        self.phi = PhiMasker(config.phi) if config.phi.enabled else None
        self.flicker = FlickerMeter()
        self._provisional: dict[tuple[int, int], Region | None] = {}

    # --- 1. before inference ------------------------------------------------------------------
    def region_for(self, frame: Frame) -> Region | None:
        return self.regions.region_for(frame.index, frame.pixels)

    def crop(self, frame: Frame, region: Region) -> tuple[Frame, Box]:
        """The model's input (the region's box grown to the size multiple). Raises ``Rejected``
        (out-of-distribution) when the input lies outside the model's declared domain."""
        box = region.crop_box(self.multiple)
        if self.domain is not None:
            outside = self.domain.check((id(region), box), luma_u8(frame.pixels[box.slices], self.enhancer.bits),
                                        region.mask_in(box))
            if outside:
                raise Rejected(Reason.OUT_OF_DISTRIBUTION, "input outside the model's domain: " + "; ".join(outside))
        return self.cut(frame, region, box), box

    def cut(self, frame: Frame, region: Region, box: Box | None = None) -> Frame:
        """The part of ``frame`` the model is given for ``region`` (no checks): its grown box, or the frame."""
        if region.full:
            return frame
        box = box if box is not None else region.crop_box(self.multiple)
        return replace(frame, pixels=frame.pixels[box.slices])

    # --- 2. after inference -------------------------------------------------------------------
    def _compose(self, shown: np.ndarray, box: Box, enhanced: np.ndarray, mask: np.ndarray) -> None:
        """``enhanced`` into ``shown[box]`` where ``mask`` is set (uint8 copies, no arithmetic).
        cv2.copyTo writes into the ROI view (30x faster than a broadcast np.copyto on colour)."""
        roi = shown[box.slices]
        out = cv2.copyTo(enhanced, mask, roi)
        if not np.shares_memory(out, roi):  # OpenCV made a new array instead: copy it back
            np.copyto(roi, out.reshape(roi.shape))

    def finish(self, frame: Frame, region: Region, box: Box, enhanced: np.ndarray, result: FrameResult,
               reduced: bool = False) -> np.ndarray:
        """The frame to show: ``enhanced`` (the model's output for ``box``) inside the region, the raw
        frame everywhere else. Sets ``result.fidelity_db`` and ``result.change_score``; raises
        ``Rejected`` when the fidelity check fails (at the reduced tier's threshold when ``reduced``)."""
        key = (id(region), box, enhanced.shape)
        if self.ema is not None:
            enhanced = self.ema(key, enhanced)
        raw = self.enhancer.passthrough(frame)
        ob = box.scaled(self.scale)
        # the region less this frame's own graphics (colour, calipers, text: graphics.overlay_mask) for a grey
        # (ultrasound) model; a colour model's frames are colour content, and `full` means the whole frame
        if self.graphics and not region.full:
            keep = region.enhance_mask(box, frame.pixels[box.slices], self.scale, self.enhancer.bits)
        else:
            keep = region.mask_in(box, self.scale)
        if keep is None:  # the whole frame, nothing drawn on it
            shown = enhanced
        else:
            shown = raw.copy()
            self._compose(shown, ob, enhanced, keep)
        shown_crop, raw_crop = shown[ob.slices], raw[ob.slices]
        result.enhanced_fraction = 1.0
        if self.tone is not None:
            shown, shown_crop = self._tone(shown, ob, raw_crop, region, box, frame.hw, result)
        if self.fidelity is not None:
            raw_in = raw_crop if self.scale == 1 else luma_u8(frame.pixels[box.slices], self.enhancer.bits)
            score = self.fidelity.score(raw_in, shown_crop, region.mask_in(box), frame_hw=frame.hw)
            result.fidelity_db = score.worst_db
            limit = self.fidelity.config.threshold(reduced)
            if not score.passes(limit):
                if self.ema is not None:
                    self.ema.reset()
                raise Rejected(Reason.FIDELITY, f"fidelity {score.worst_db:.1f} dB < {limit:g} dB")
        result.change_score = mean_abs_diff(shown_crop, raw_crop, region.mask_in(box, self.scale))
        return shown

    def _tone(self, shown: np.ndarray, ob: Box, raw_crop: np.ndarray, region: Region, box: Box,
              frame_hw: tuple[int, int], result: FrameResult) -> tuple[np.ndarray, np.ndarray]:
        """Local mean preservation (tone.py): failed tiles shown raw, blended at their seams;
        too many failed tiles: ``Rejected``. Returns the (possibly new) shown frame and its crop."""
        mask = region.mask_in(box, self.scale)
        a, b = raw_crop, shown[ob.slices]
        colour = self.colour_tone and a.ndim == 3 and b.ndim == 3
        if not colour:
            a, b = luma_u8(a), luma_u8(b)
        verdict = self.tone.check(a, b, mask, frame_hw[1] * self.scale, min(frame_hw) * self.scale)
        result.tone_worst_p95 = verdict.worst_p95
        if verdict.whole_frame_raw:
            what = (f"L* {verdict.worst_median:.1f}/{verdict.worst_p95:.1f}, chroma {verdict.worst_chroma_median:.1f}/"
                    f"{verdict.worst_chroma_p95:.1f} Lab units" if colour else
                    f"{verdict.worst_median:.1f}/{verdict.worst_p95:.1f} grey levels")
            raise Rejected(Reason.MEAN_SHIFT, f"local mean moved in {verdict.failed} of {verdict.tiles} tiles "
                                              f"(worst tile median/p95 {what})")
        if verdict.weights is None:
            return shown, shown[ob.slices]
        if region.full:
            shown = shown.copy()  # the model's own buffer (the temporal filter may hold it)
        crop = shown[ob.slices]
        crop[...] = blend(raw_crop, crop, verdict.weights)
        inside = verdict.weights if mask is None else verdict.weights * (mask > 0)
        result.enhanced_fraction = float(inside.sum()) / float(max(1, inside.size if mask is None
                                                                    else cv2.countNonZero(mask)))
        return shown, crop

    def passthrough(self) -> None:
        """A raw frame is being shown: the temporal filter starts again after it."""
        if self.ema is not None:
            self.ema.reset()

    # --- 3. before the sinks ------------------------------------------------------------------
    def _phi_region(self, frame: Frame) -> Region | None:
        """The region PHI masking keeps; None keeps only the profile's boxes (fail closed)."""
        cur = self.regions.current
        if cur is not None and cur.hw == frame.hw:
            return cur if cur.found else None  # detection found nothing: no outside to trust either
        if not self.regions.auto:
            return None  # a fixed region that does not fit this frame: blank all but the kept boxes
        if frame.hw not in self._provisional:
            self._provisional[frame.hw] = self.regions.provisional(frame.pixels)
        return self._provisional[frame.hw]

    def outgoing(self, frame: Frame, result: FrameResult) -> Frame:
        """Measures flicker, then masks PHI; returns the frame the sinks get (``result.pixels`` masked in place)."""
        if result.pixels is None:
            return frame
        region = self.regions.current
        if region is not None and region.hw == frame.hw and region.mask is not None \
                and result.pixels.shape[:2] == frame.hw:
            result.label_mask = region.mask  # labels go inside the region (same size frames only)
        try:
            if region is not None and region.hw == frame.hw:
                box = region.box  # outside it the mask is empty: measure only there
                scale = self.scale if result.pixels.shape[:2] != frame.hw else 1
                ob = box.scaled(scale)
                result.flicker_in, result.flicker_out = self.flicker(
                    region, luma_u8(frame.pixels[box.slices], self.enhancer.bits).copy(),
                    luma_u8(result.pixels[ob.slices]).copy(), region.mask_in(box), region.mask_in(box, scale))
        except Exception as exc:  # noqa: BLE001 - a measurement, never a reason to lose a frame
            log.debug("flicker not measured on frame %d: %s", frame.index, exc)
            result.flicker_in = result.flicker_out = math.nan
        if self.phi is not None:
            frame = self.phi.apply(frame, result, self._phi_region(frame))
        return frame

    def summary(self) -> dict[str, Any]:
        return {"settings": self.config.to_dict(), "regions": [r.to_dict() for r in self.regions.history],
                "phi_failures": self.phi.failures if self.phi else 0}
