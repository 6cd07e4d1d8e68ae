"""The methods `ganrt bench realscan` compares, each turning an acquisition's frames into the
frames a viewer would see:

- ``input``: the frame itself (the zero every measure is read against);
- classic OpenCV filters (``benchmarks.filters``) on the luma, chroma kept (the runtime's
  colour rule, ``runtime.ops``);
- a bundle's artifact run bare on the whole frame (what ``--region full`` would give without
  any check), one row per precision;
- a bundle through the runtime exactly as `ganrt run --source FILE --model BUNDLE` sets it up
  (``run_cmd._setup``: the CLI's defaults for region, fidelity, temporal filter and precision),
  offline (fast) mode, every shown frame collected by a sink, its record row kept.

Every method calls ``emit(index, input_u8, shown)`` once per frame it shows.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import cv2
import numpy as np

from ganrt.runtime.model.ops import to_uint8
from ganrt.runtime.sinks.files import SinkBase

from .filters import FilterKind, FilterSpec

Emit = Callable[[int, np.ndarray, np.ndarray], None]

BUNDLES = ("us-enhance", "us-sr2x")
BARE_PRECISIONS = ("fp32", "int8-cpu", "fp16")

# One fixed, moderate setting per filter (the baseline benchmark's grid holds them all).
FILTERS: dict[str, FilterSpec] = {
    "bilateral": FilterSpec(FilterKind.BILATERAL, (("d", 7), ("sigma_color", 40.0), ("sigma_space", 3.0))),
    "nlmeans": FilterSpec(FilterKind.NLMEANS, (("h", 10.0), ("template", 7), ("search", 21))),
    "median": FilterSpec(FilterKind.MEDIAN, (("ksize", 5),)),
}


class RowKind(Enum):
    REFERENCE = "reference"
    FILTER = "filter"
    BARE = "bare model"
    PIPELINE = "pipeline"


@dataclass(frozen=True)
class Row:
    name: str
    kind: RowKind
    bundle: str = ""
    precision: str = ""
    spec: FilterSpec | None = None

    @property
    def scale(self) -> int:
        return 2 if self.bundle == "us-sr2x" else 1


def all_rows(bundles: tuple[str, ...] = BUNDLES, precisions: tuple[str, ...] = BARE_PRECISIONS,
             pipeline: bool = True) -> list[Row]:
    rows = [Row("input", RowKind.REFERENCE)] + [Row(n, RowKind.FILTER, spec=s) for n, s in FILTERS.items()]
    for b in bundles:
        rows += [Row(f"{b} bare {p}", RowKind.BARE, b, p) for p in precisions]
        if pipeline:
            rows.append(Row(f"{b} pipeline (defaults)", RowKind.PIPELINE, b))
    return rows


def on_luma(fn: Callable[[np.ndarray], np.ndarray], img: np.ndarray) -> np.ndarray:
    """A gray filter applied to a BGR frame's luma, its chroma kept (as the runtime does)."""
    if img.ndim == 2:
        return fn(img)
    ycc = cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb)
    ycc[..., 0] = fn(np.ascontiguousarray(ycc[..., 0]))
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)


def bundle_dir(bundle: str) -> Path:
    from ganrt.runtime.model.manifest import bundled_model_dir

    return bundled_model_dir(bundle)


def run_frames(row: Row, frames: list[np.ndarray], emit: Emit, profile_name: str) -> dict:
    """Reference, filter and bare-model rows on already decoded frames."""
    if row.kind is RowKind.REFERENCE:
        for i, f in enumerate(frames):
            u8 = to_uint8(f)
            emit(i, u8, u8)
        return {}
    if row.kind is RowKind.FILTER:
        assert row.spec is not None
        for i, f in enumerate(frames):
            u8 = to_uint8(f)
            emit(i, u8, on_luma(row.spec.apply, u8))
        return {"params": dict(row.spec.params)}
    return _run_bare(row, frames, emit, profile_name)


def _run_bare(row: Row, frames: list[np.ndarray], emit: Emit, profile_name: str) -> dict:
    from ganrt.runtime.backends.base import Backend
    from ganrt.runtime.backends.registry import select
    from ganrt.runtime.frames import Frame
    from ganrt.runtime.model.manifest import Manifest, Precision
    from ganrt.runtime.model.ops import Enhancer
    from ganrt.runtime.model.profiles import DeviceProfile

    manifest = Manifest.load(bundle_dir(row.bundle))
    sel = select(manifest, Backend.ONNXRUNTIME, DeviceProfile.load(profile_name), Precision.parse(row.precision))
    with sel.runner as runner:
        enhancer = Enhancer(runner, manifest, artifact=sel.artifact)
        for i, f in enumerate(frames):
            emit(i, to_uint8(f), enhancer.enhance(Frame(i, 0, f)))
    return {"artifact": sel.artifact.path.name}


class _Collector(SinkBase):
    """A sink that hands every shown frame to ``emit`` and notes its outcome."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.outcomes: dict[int, tuple[str, str]] = {}

    def write(self, frame, result) -> None:
        self.outcomes[frame.index] = (result.outcome.value, result.reason.value)
        if result.pixels is not None:
            self.emit(frame.index, to_uint8(frame.pixels), result.pixels)


def cli_args(source: Path, bundle: str, out: Path, max_frames: int, budget_ms: float | None) -> list[str]:
    """The `ganrt run` command line the pipeline row stands for (only the outputs differ)."""
    argv = ["run", "--source", str(source), "--model", str(bundle_dir(bundle)), "--out", str(out),
            "--sink", "null", "--max-frames", str(max_frames)]
    return argv + (["--budget-ms", f"{budget_ms:g}"] if budget_ms else [])


def command_line(max_frames: int, budget_ms: float | None) -> str:
    args = cli_args(Path("FILE"), "us-enhance", Path("OUT"), max_frames, budget_ms)
    args[args.index("--model") + 1] = "runtime/models/BUNDLE"
    return "ganrt " + " ".join(args)


def run_pipeline(row: Row, source: Path, max_frames: int, budget_ms: float | None, emit: Emit) -> dict:
    """``row.bundle`` through `ganrt run`'s own setup and stream path; the record rows come back."""
    from ganrt.runtime.cli import build_parser
    from ganrt.runtime.cli.run import _setup, budgets
    from ganrt.runtime.serve.stream import StreamSpec, stream_once
    from ganrt.runtime.sinks import outpaths

    # A new run in this process: forget the earlier rows' inputs. Their temporary files are gone, and a new
    # output can get one of their inode numbers; the runtime then refused it as "would overwrite its input".
    outpaths.clear()
    with tempfile.TemporaryDirectory(prefix="ganrt-realscan-") as tmp:
        argv = cli_args(source, row.bundle, Path(tmp), max_frames, budget_ms)
        args = build_parser().parse_args(argv)
        setup = _setup(args, args.source)
        spec = StreamSpec(args.source[0], args.out, realtime=args.realtime, max_frames=args.max_frames,
                          budget_ms=budgets(args.budget_ms, 1)[0])  # as run_cmd.run_stream builds it
        collector = _Collector(emit)
        report = stream_once(spec, setup, sinks=lambda ctx: [collector])
        record = [json.loads(line) for line in (Path(tmp) / "record.jsonl").read_text().splitlines() if line]
    shown = [o for o, _ in collector.outcomes.values()]
    rep = report.to_dict()
    return {"precision": setup.selection.precision.value, "region": setup.guard.region.mode.value,
            "fidelity": setup.guard.fidelity is not None,
            "frames_recorded": len(record), "shown": len(shown),
            "enhanced_fraction": round(shown.count("enhanced") / len(record), 4) if record else None,
            "raw_fraction": round(shown.count("passthrough") / len(record), 4) if record else None,
            "raw_by_reason": rep.get("passthrough_by_reason", {}), "record": record}
