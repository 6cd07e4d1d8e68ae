"""Pixels <-> model tensors, driven by the manifest's TensorSpec, and the Enhancer.

Layout rule (so every sink sees the same kind of image): the output has the *input
frame's* layout, as uint8. A 3-channel frame through a 1-channel model keeps its colour:
the model enhances the luminance (Y of YCrCb, the same weights as BGR2GRAY) and the
frame's chroma is put back. A gray frame through a 3-channel model is replicated to
3 channels in, and converted back to gray out. Frames are BGR (OpenCV's order); a model
whose manifest says ``color_order: rgb`` gets RGB planes and its output is swapped back.

Size rule: a model with ``scale`` s (super-resolution) returns frames s times the input's
height and width; the padding to ``size_multiple`` is added at input resolution and cut
off at output resolution. Raw frames shown instead of an enhanced one (passthrough) are
enlarged to the same size, so sinks get one frame size per stream whatever the outcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ConfigError, ModelError
from ..frames import Frame
from ..serve.clock import SYSTEM_CLOCK, Clock
from .manifest import Artifact, Manifest, TensorSpec

log = logging.getLogger(__name__)

OUT_OF_RANGE_MARGIN = 0.05  # fraction of the value range tolerated beyond each end
OUT_OF_RANGE_MAX_FRACTION = 0.05  # more pixels than this beyond the margin -> BadOutput
MIN_SIDE = 2


class BadOutput(ModelError):
    """The model produced something that must not be shown (non-finite, far out of range, wrong shape)."""


class IncompatibleFrame(ModelError):
    """The model cannot take this frame (channels, dtype, size); it is shown raw."""


def to_uint8(pixels: np.ndarray, bits: int = 16) -> np.ndarray:
    """Display form of a raw frame: uint8 in the same layout (uint16 scaled by its bit depth)."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return cv2.convertScaleAbs(pixels, alpha=255.0 / ((1 << bits) - 1))
    return np.clip(pixels, 0, 255).astype(np.uint8)  # not expected from our sources


def _squeeze(pixels: np.ndarray) -> np.ndarray:
    return pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels


@dataclass(frozen=True)
class Undo:
    """What the postprocessor needs to give back the input's size and layout."""

    hw: tuple[int, int]
    channels: int
    source: np.ndarray  # the frame's pixels (not copied): chroma for the luminance merge


class Preprocessor:
    def __init__(self, spec: TensorSpec, size_multiple: int = 1, *, bits: int = 16,
                 max_hw: tuple[int, int] | None = None, dtype: np.dtype | type = np.float32) -> None:
        if spec.channels not in (1, 3) or spec.layout != "NCHW":
            raise ModelError(f"model input {spec.channels}-channel {spec.layout} is not supported (1 or 3, NCHW)")
        if not 1 <= bits <= 16:
            raise ConfigError(f"bits must be 1..16 (got {bits})")
        self.spec, self.multiple, self.bits, self.max_hw = spec, max(1, size_multiple), bits, max_hw
        self.dtype = np.dtype(dtype)
        lo, hi = spec.value_range
        self._lo, self._span = float(lo), float(hi - lo)
        self._noted: set[str] = set()

    @classmethod
    def from_manifest(cls, manifest: Manifest, **kw) -> Preprocessor:
        return cls(manifest.input, manifest.size_multiple, **kw)

    def check(self, pixels: np.ndarray) -> None:
        p = _squeeze(pixels)
        if p.dtype not in (np.uint8, np.uint16):
            raise IncompatibleFrame(f"pixel type {p.dtype} (model takes uint8/uint16 frames)")
        if p.ndim not in (2, 3) or (p.ndim == 3 and p.shape[2] != 3):
            raise IncompatibleFrame(f"frame shape {p.shape} (model takes gray or 3-channel frames)")
        h, w = p.shape[:2]
        if h < MIN_SIDE or w < MIN_SIDE:
            raise IncompatibleFrame(f"frame {h}x{w} is too small")
        if self.max_hw and (h > self.max_hw[0] or w > self.max_hw[1]):
            raise IncompatibleFrame(f"frame {h}x{w} exceeds the model's maximum {self.max_hw[0]}x{self.max_hw[1]}")

    def _note(self, what: str) -> None:
        if what not in self._noted:  # once per run, not per frame
            self._noted.add(what)
            log.info("preprocessing: %s", what)

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, Undo]:
        self.check(pixels)
        p = _squeeze(pixels)
        in_ch = 1 if p.ndim == 2 else 3
        img = p
        if self.spec.channels == 1 and in_ch == 3:
            self._note("3-channel frames -> luminance for a 1-channel model (chroma restored after)")
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif self.spec.channels == 3:
            if in_ch == 1:
                self._note("gray frames replicated to 3 channels for a 3-channel model")
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            if self.spec.color_order == "rgb":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        full = 255.0 if img.dtype == np.uint8 else float((1 << self.bits) - 1)
        x = np.multiply(img, np.float32(self._span / full), dtype=np.float32)
        if self._lo:
            x += np.float32(self._lo)
        h, w = img.shape[:2]
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:  # pad bottom/right so the crop back is [:h, :w]; reflect needs side > pad
            border = cv2.BORDER_REFLECT_101 if (h > ph and w > pw) else cv2.BORDER_REPLICATE
            x = cv2.copyMakeBorder(x, 0, ph, 0, pw, border)
        t = x[None, None] if x.ndim == 2 else x.transpose(2, 0, 1)[None]
        t = np.ascontiguousarray(t, dtype=self.dtype)
        return t, Undo((h, w), in_ch, p)


class Postprocessor:
    def __init__(self, spec: TensorSpec, scale: int = 1, *, bits: int = 16) -> None:
        if spec.channels not in (1, 3):
            raise ModelError(f"model output with {spec.channels} channels is not supported (1 or 3)")
        self.spec, self.scale, self.bits = spec, max(1, scale), bits
        lo, hi = spec.value_range
        self._lo, self._hi = float(lo), float(hi)

    @classmethod
    def from_manifest(cls, manifest: Manifest, **kw) -> Postprocessor:
        return cls(manifest.output, manifest.scale, **kw)

    def validate(self, y: np.ndarray) -> None:
        if not np.isfinite(y).all():
            raise BadOutput("model output has non-finite values")
        margin = OUT_OF_RANGE_MARGIN * (self._hi - self._lo)
        outside = np.count_nonzero((y < self._lo - margin) | (y > self._hi + margin))
        if outside > OUT_OF_RANGE_MAX_FRACTION * y.size:
            raise BadOutput(f"{100.0 * outside / y.size:.1f}% of output values outside "
                            f"[{self._lo:g}, {self._hi:g}] (+-{margin:g})")

    def __call__(self, out: np.ndarray, undo: Undo) -> np.ndarray:
        out = np.asarray(out)
        h, w = undo.hw[0] * self.scale, undo.hw[1] * self.scale
        if out.ndim != 4 or out.shape[0] != 1 or out.shape[1] != self.spec.channels \
                or out.shape[2] < h or out.shape[3] < w:
            raise BadOutput(f"model output shape {out.shape}, expected (1, {self.spec.channels}, >={h}, >={w})")
        y = out[0, :, :h, :w].astype(np.float32, copy=False)
        self.validate(y)
        a = 255.0 / (self._hi - self._lo)
        u8 = (np.clip((y - self._lo) * a, 0.0, 255.0) + 0.5).astype(np.uint8)  # clamp to range, round
        img = u8[0] if self.spec.channels == 1 else np.ascontiguousarray(u8.transpose(1, 2, 0))
        if self.spec.channels == 3 and self.spec.color_order == "rgb":
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        if undo.channels == 1 and img.ndim == 3:
            return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        if undo.channels == 3 and img.ndim == 2:
            return self._merge_luma(img, undo.source)
        return img

    def _merge_luma(self, luma: np.ndarray, source: np.ndarray) -> np.ndarray:
        ycc = cv2.cvtColor(to_uint8(source, self.bits), cv2.COLOR_BGR2YCrCb)
        if ycc.shape[:2] != luma.shape:
            ycc = cv2.resize(ycc, (luma.shape[1], luma.shape[0]), interpolation=cv2.INTER_CUBIC)
        ycc[:, :, 0] = luma
        return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)


@dataclass
class StageTimes:
    """Filled in as the stages run, so a failure still reports the stages that ran."""

    pre_ms: float = float("nan")
    infer_ms: float = float("nan")
    post_ms: float = float("nan")

    @property
    def total_ms(self) -> float:
        return self.pre_ms + self.infer_ms + self.post_ms


class Enhancer:
    """Preprocessor + an *activated* runner + Postprocessor, timed per stage with the clock."""

    def __init__(self, runner, manifest: Manifest, *, artifact: Artifact | None = None, clock: Clock = SYSTEM_CLOCK,
                 bits: int = 16, max_hw: tuple[int, int] | None = None) -> None:
        io = getattr(runner, "io", None)
        if io is None:
            raise ConfigError("the runner must be activated (runner.activate() or `with runner:`) before Enhancer")
        self.runner, self.io, self.clock, self.bits = runner, io, clock, bits
        self.pre = Preprocessor(manifest.input, manifest.size_multiple, bits=bits, max_hw=max_hw,
                                dtype=np.float16 if np.dtype(io.input_dtype) == np.float16 else np.float32)
        self.post = Postprocessor(manifest.output, manifest.scale, bits=bits)
        self.model_sha = manifest.model_id
        self.backend = getattr(runner, "name", type(runner).__name__)
        self.precision = artifact.precision.value if artifact else ""
        self.artifact = artifact.path.name if artifact else ""

    def check(self, frame: Frame) -> None:
        """Raise IncompatibleFrame when the model cannot take this frame."""
        self.pre.check(frame.pixels)

    def passthrough(self, frame: Frame) -> np.ndarray:
        """The raw frame for display; for a scale-s model enlarged s times (bilinear: no sharpening,
        nothing invented) so it has the size of an enhanced frame."""
        raw = to_uint8(_squeeze(frame.pixels), self.bits)
        s = self.post.scale
        if s == 1 or raw.ndim not in (2, 3) or min(raw.shape[:2]) < 1:
            return raw
        return cv2.resize(raw, (raw.shape[1] * s, raw.shape[0] * s), interpolation=cv2.INTER_LINEAR)

    def enhance(self, frame: Frame, times: StageTimes | None = None, factor: int = 1) -> np.ndarray:
        """The enhanced frame. ``factor`` > 1 (the reduced tier, runtime.tiers): the model runs on the
        frame area-downsampled ``factor`` times per side and its output is upsampled back, so the
        result has the size of a full-resolution one; both resamplings count as pre and post time."""
        times = times if times is not None else StageTimes()
        now = self.clock.now_ns
        t0 = now()
        pixels = frame.pixels
        if factor > 1:
            h, w = pixels.shape[:2]
            pixels = cv2.resize(pixels, (max(MIN_SIDE, w // factor), max(MIN_SIDE, h // factor)),
                                interpolation=cv2.INTER_AREA)
        x, undo = self.pre(pixels)
        t1 = now()
        times.pre_ms = (t1 - t0) / 1e6
        outs = self.runner.infer({self.io.input_name: x})
        t2 = now()
        times.infer_ms = (t2 - t1) / 1e6
        if self.io.output_name not in outs:
            raise BadOutput(f"model returned no output named {self.io.output_name!r}")
        out = self.post(outs[self.io.output_name], undo)
        if factor > 1:  # back to the size a full-resolution output has (scale x the frame)
            s = self.post.scale
            out = cv2.resize(out, (frame.pixels.shape[1] * s, frame.pixels.shape[0] * s),
                             interpolation=cv2.INTER_LINEAR)
        times.post_ms = (now() - t2) / 1e6
        return out
