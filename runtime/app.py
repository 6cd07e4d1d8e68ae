"""`ganrt run` and `ganrt demo`: wire source -> runner -> sinks and print the report."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from .changemap import ChangeMapSink
from .errors import ConfigError
from .fidelity import FidelityConfig
from .guard import GuardConfig
from .manifest import Manifest
from .pipeline import PipelineConfig, run
from .region import RegionConfig
from .temporal import TemporalConfig
from .profiles import DeviceProfile
from .record import Record
from .report import Report
from .sinks import DisplaySink, NullSink, PngSink, SideBySideSink, VideoCodec, VideoSink
from .sources import open_source

ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_CINE = ASSETS / "sim_cine_512.mp4"


class SinkKind(Enum):
    VIDEO = "video"
    MJPG = "mjpg"
    LOSSLESS = "lossless"
    PNG = "png"
    SIDE_BY_SIDE = "side-by-side"
    DISPLAY = "display"
    NULL = "null"


DEFAULT_SINKS = (SinkKind.VIDEO, SinkKind.SIDE_BY_SIDE)


def parse_sinks(values: list[str] | None) -> tuple[SinkKind, ...]:
    if not values:
        return DEFAULT_SINKS
    try:
        return tuple(SinkKind(v) for v in values)
    except ValueError as exc:
        raise ConfigError(f"unknown sink ({exc}); choose from: {', '.join(k.value for k in SinkKind)}") from None


def make_sinks(kinds: tuple[SinkKind, ...], out: Path, stem: str, fps: float, overlay: bool) -> list:
    fps = fps if fps > 0 else 30.0
    table = {
        SinkKind.VIDEO: lambda: VideoSink(out / f"{stem}enhanced.mp4", fps, VideoCodec.MP4V, overlay=overlay),
        SinkKind.MJPG: lambda: VideoSink(out / f"{stem}enhanced.avi", fps, VideoCodec.MJPG, overlay=overlay),
        SinkKind.LOSSLESS: lambda: VideoSink(out / f"{stem}enhanced.mkv", fps, VideoCodec.FFV1, overlay=overlay),
        SinkKind.PNG: lambda: PngSink(out / f"{stem}frames"),
        SinkKind.SIDE_BY_SIDE: lambda: SideBySideSink(out / f"{stem}side_by_side.mp4", fps, VideoCodec.MP4V,
                                                      overlay=overlay),
        SinkKind.DISPLAY: lambda: DisplaySink(overlay=overlay),
        SinkKind.NULL: NullSink,
    }
    return [table[k]() for k in kinds]


def guard_config(profile: DeviceProfile, manifest: Manifest, *, region: str | None = None, mask_phi: bool = False,
                 fidelity: bool = True, temporal: str | None = None) -> GuardConfig:
    """The profile's [region], [phi] and [temporal] with the command line's overrides; the
    fidelity threshold from the manifest (its default when the manifest has none)."""
    return GuardConfig(
        region=RegionConfig.parse(region, base=profile.region) if region else profile.region,
        fidelity=FidelityConfig.from_manifest(manifest) if fidelity else None,
        temporal=TemporalConfig.parse(temporal) if temporal else profile.temporal,
        phi=replace(profile.phi, enabled=True) if mask_phi else profile.phi,
    )


def pipeline_config(args: argparse.Namespace, manifest: Manifest, profile: DeviceProfile) -> PipelineConfig:
    """`ganrt run`'s options on top of the profile: budget, imaging region, fidelity, temporal filter, PHI."""
    guard = guard_config(profile, manifest, region=getattr(args, "region", None),
                         mask_phi=bool(getattr(args, "mask_phi", False)),
                         fidelity=not getattr(args, "no_fidelity", False),
                         temporal=getattr(args, "temporal_filter", None))
    return PipelineConfig.with_budget(args.budget_ms or profile.budget_ms, guard=guard)


def change_map_sinks(args: argparse.Namespace, out: Path, fps: float, provenance=None, stem: str = "") -> list:
    """``--change-map [PATH]``: a video of where and how much the model changed each frame."""
    target = getattr(args, "change_map", None)
    if target is None:
        return []
    path = Path(target).expanduser() if target else out / f"{stem}change_map.mp4"
    return [ChangeMapSink.video(path, fps if fps > 0 else 30.0, provenance)]


@dataclass(frozen=True)
class StreamSpec:
    source: str
    stem: str  # output file prefix
    realtime: bool
    loop: bool = False
    max_frames: int | None = None


def stream_once(spec: StreamSpec, manifest: Manifest, profile: DeviceProfile, selection, sinks: tuple[SinkKind, ...],
                out: Path, budget_ms: float | None, overlay: bool, record_fmt: str = "jsonl",
                guard: GuardConfig | None = None) -> Report:
    from .ops import Enhancer

    out.mkdir(parents=True, exist_ok=True)
    source = open_source(spec.source, realtime=spec.realtime, loop=spec.loop, max_frames=spec.max_frames)
    config = PipelineConfig.with_budget(budget_ms or profile.budget_ms, guard=guard or GuardConfig())
    with selection.runner as runner:
        enhancer = Enhancer(runner, manifest, artifact=selection.artifact)
        record = Record.for_enhancer(enhancer, out / f"{spec.stem}record.{record_fmt}", fmt=record_fmt)
        report = run(source, enhancer, make_sinks(sinks, out, spec.stem, source.fps, overlay), config, record=record)
    report_path = out / f"{spec.stem}report.json"
    report_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _print(report: Report, args: argparse.Namespace, title: str) -> None:
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"== {title}")
        print(report.format_table())
        missed = report.passthrough.get("predicted-miss", 0)
        if report.frames_out and missed > report.frames_out / 2:
            infer = report.latency.get("infer_ms")
            p95 = f"{infer.p95:.0f} ms" if infer is not None and infer.n else "?"
            print(f"note: {missed} of {report.frames_out} frames were shown raw because inference (p95 {p95}) "
                  f"does not fit the {report.budget_ms:g} ms budget on this machine; a longer --budget-ms "
                  f"or a faster backend/profile enhances more of them")


def run_stream(args: argparse.Namespace) -> int:
    from .cli import _load

    manifest, profile, selection = _load(args)
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be >= 1")
    spec = StreamSpec(args.source, "", args.realtime, max_frames=args.max_frames)
    report = stream_once(spec, manifest, profile, selection, parse_sinks(args.sink), args.out, args.budget_ms,
                         not args.no_overlay, args.record, guard=pipeline_config(args, manifest, profile).guard)
    _print(report, args, f"{args.source} -> {args.out}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """The embedded default: the bundled simulated cine (looped to 6 s) replayed at its native
    30 fps, plus the real echocardiography cine that ships with pydicom when it is installed.
    The imaging region is detected (the echo cine's scanner UI stays untouched) and every
    enhanced frame passes the fidelity check."""
    from .cli import _load

    manifest, profile, selection = _load(args)
    if not DEMO_CINE.exists():
        raise ConfigError(f"bundled demo cine missing: {DEMO_CINE}")
    specs = [StreamSpec(str(DEMO_CINE), "demo_", realtime=True, loop=True, max_frames=180)]
    try:
        from pydicom.data import get_testdata_file

        echo = get_testdata_file("examples_ybr_color.dcm")
        if echo:
            specs.append(StreamSpec(str(echo), "demo_echo_", realtime=True, loop=True, max_frames=90))
    except ImportError:
        print("(pydicom not installed: skipping the real echocardiography cine; install ganrt[dicom])")
    guard = guard_config(profile, manifest, region="auto", fidelity=True)
    for spec in specs:
        report = stream_once(spec, manifest, profile, selection, (SinkKind.SIDE_BY_SIDE,), args.out,
                             args.budget_ms, not args.no_overlay, guard=guard)
        _print(report, args, f"{Path(spec.source).name} -> {args.out}/{spec.stem}side_by_side.mp4, "
                             f"{spec.stem}record.jsonl, {spec.stem}report.json")
    return 0
