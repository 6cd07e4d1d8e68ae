"""Scenes for the imaging-region, fidelity and PHI tests: simulated cines with scanner UI burned in
around (text, depth scale) and inside (calipers) the sector, ONNX models that keep, change or
invent structure, and a pipeline run over them with a manual clock (no timing in any assert)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
from bundles import make_bundle
from fakes import FakeSource, ManualClock
from onnx import TensorProto, helper, numpy_helper

from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner
from ganrt.runtime.model.manifest import Manifest
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.records.record import Record
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import PolicyConfig
from ganrt.runtime.sinks.files import SinkBase
from ganrt.runtime.trust.guard import GuardConfig
from ganrt.runtime.trust.region import Box

FONT = cv2.FONT_HERSHEY_SIMPLEX
MS = 1_000_000


@functools.lru_cache(maxsize=4)
def _cine(n: int, hw: tuple[int, int], seed: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    from ganrt.export.data.simulator import SimConfig, cine

    frames, sector = [], None
    for s in cine(seed, n, SimConfig(out_hw=hw)):
        frames.append(np.clip(s.input * 255.0 + 0.5, 0, 255).astype(np.uint8))
        sector = s.sector
    return tuple(frames), sector


def sim_cine(n: int = 16, hw: tuple[int, int] = (256, 256), seed: int = 3) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` gray uint8 frames of a simulated B-mode cine (probe drift, breathing) and its sector mask."""
    frames, sector = _cine(n, hw, seed)
    return [f.copy() for f in frames], sector.copy()


@dataclass(frozen=True)
class UI:
    text: tuple[Box, ...]  # bounding boxes of the burned-in text (outside the sector)
    scale: Box  # the depth scale's ticks (outside the sector)
    calipers: tuple[tuple[int, int], ...]  # caliper crosses (inside the sector)


def _put(img: np.ndarray, text: str, org: tuple[int, int], scale: float, ink) -> Box:
    cv2.putText(img, text, org, FONT, scale, ink, 1, cv2.LINE_AA)
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    return Box(org[0] - 1, org[1] - h - 1, w + 3, h + base + 3)


def burn_ui(frame: np.ndarray, colour: bool = False) -> tuple[np.ndarray, UI]:
    """A scanner's screen: patient data and probe text in the corners, a depth scale at the right
    edge, two calipers and a measurement line inside the sector (256x256 layout)."""
    img = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if colour else frame.copy()
    white = (255, 255, 255) if colour else 255
    yellow = (0, 230, 255) if colour else 230
    text = (_put(img, "DOE^JANE 1970-01-01", (3, 11), 0.32, white),
            _put(img, "C5-2 12cm", (192, 11), 0.32, white),
            _put(img, "ID 0012345 D1 1.2cm", (3, 250), 0.32, yellow))
    for y in range(40, 150, 20):
        cv2.line(img, (244, y), (250, y), white, 1)
    calipers = ((110, 150), (150, 165))
    for c in calipers:
        cv2.drawMarker(img, c, white, cv2.MARKER_CROSS, 7, 1)
    return img, UI(text, Box(243, 39, 9, 112), calipers)


def ui_cine(n: int = 16, colour: bool = False, seed: int = 3) -> tuple[list[np.ndarray], np.ndarray, UI]:
    frames, sector = sim_cine(n, seed=seed)
    out = [burn_ui(f, colour) for f in frames]
    return [f for f, _ in out], sector, out[0][1]


def bright_outside(img: np.ndarray, region_mask: np.ndarray, level: int = 100) -> int:
    """A crude burned-in-text detector: bright pixels outside the imaging region."""
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    return int(np.count_nonzero((gray >= level) & (region_mask == 0)))


# --- models ---------------------------------------------------------------------------------
def _model(nodes, inits, channels: int, name: str) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, channels, "H", "W"])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def identity_model(channels: int = 1) -> onnx.ModelProto:
    return _model([helper.make_node("Identity", ["input"], ["output"])], [], channels, "identity")


def blob_model(amp: float = 1.0, grid: int = 7, channels: int = 1) -> onnx.ModelProto:
    """Adds a bright blob in the middle of whatever it is given (any size): a 'hallucinating' model.
    The blob is one hot cell of a grid x grid image resized (linear) to the input's shape: a tent
    about 2/grid of the input wide, peak ``amp``."""
    bump = np.zeros((1, channels, grid, grid), np.float32)
    bump[:, :, grid // 2, grid // 2] = amp
    nodes = [
        helper.make_node("Shape", ["input"], ["shape"]),
        helper.make_node("Resize", ["bump", "", "", "shape"], ["blob"], mode="linear"),
        helper.make_node("Add", ["input", "blob"], ["sum"]),
        helper.make_node("Clip", ["sum", "lo", "hi"], ["output"]),
    ]
    inits = [numpy_helper.from_array(bump, "bump"), numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(1.0, np.float32), "hi")]
    return _model(nodes, inits, channels, "blob")


def bundle(root: Path, model: onnx.ModelProto, channels: int = 1) -> Manifest:
    return Manifest.load(make_bundle(root, channels=channels, model=model, precisions=("fp32",)))


# --- a run ----------------------------------------------------------------------------------
class KeepSink(SinkBase):
    """Keeps what each sink is given: the (possibly masked) frame and the shown pixels."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.shown: list[np.ndarray] = []
        self.results = []

    def write(self, frame, result) -> None:
        self.frames.append(frame.pixels.copy())
        self.shown.append(result.pixels.copy())
        self.results.append(result)


def stream(frames: list[np.ndarray], manifest: Manifest, guard: GuardConfig, sinks=()):
    """All frames through the manifest's fp32 artifact on ONNX Runtime (one thread, manual clock,
    a generous budget: no frame is ever late); returns the report, the record and a KeepSink."""
    clock = ManualClock()
    keep = KeepSink()
    src = FakeSource(frames, clock=clock, interval_ns=33 * MS)
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=1000.0), warmup=0, guard=guard)
    with OnnxRuntimeRunner(manifest.artifact("fp32"), intra_threads=1) as runner:
        enh = Enhancer(runner, manifest, clock=clock)
        rec = Record.for_enhancer(enh)
        report = run(src, enh, [keep, *sinks], cfg, clock=clock, record=rec)
    return report, rec, keep
