"""``--sink KIND[:TARGET][?OPTION=VALUE&...]``: the sink registry and its spec syntax.

    video[:PATH.mp4]       labelled video (codec from the suffix: .mp4 mp4v, .avi MJPG, .mkv FFV1)
    mjpg[:PATH.avi]        labelled motion-JPEG video
    lossless[:PATH.mkv]    labelled FFV1 video
    side-by-side[:PATH]    input | output video
    png[:DIR]              clean output frames as PNG (provenance in tEXt chunks)
    dicom[:PATH.dcm|DIR/]  the cine as a new DICOM series (``--deidentify`` applies here)
    shm:NAME               shared-memory ring for another process (?slots=N&crc=0|1)
    pipe:-|FIFO|FILE       raw frames to stdout, a FIFO or a file (?format=raw|framed)
    display                a window
    null                   nothing (timing only)

Without a target a file sink writes into ``--out`` (``enhanced.mp4``, ``enhanced.dcm``, ...).
Display-type sinks take ``?overlay=0|1`` to override ``--no-overlay`` for that sink only.
No file sink may write over the source file. With several sources every stream gets every
sink: without a target into ``OUT/streamN/``; a target must contain ``{stream}``, which
becomes ``stream0``, ``stream1``, ... (``shm:us_{stream}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import ConfigError
from .files import DisplaySink, NullSink, PngSink, SideBySideSink, Sink, VideoCodec, VideoSink
from .outpaths import check_output, protect
from .provenance import Provenance


class SinkKind(Enum):
    VIDEO = "video"
    MJPG = "mjpg"
    LOSSLESS = "lossless"
    PNG = "png"
    SIDE_BY_SIDE = "side-by-side"
    DISPLAY = "display"
    NULL = "null"
    DICOM = "dicom"
    SHM = "shm"
    PIPE = "pipe"


@dataclass(frozen=True)
class SinkSpec:
    kind: SinkKind
    target: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SinkSpec:
        head, _, query = text.partition("?")
        name, sep, target = head.partition(":")
        try:
            kind = SinkKind(name.strip().lower())
        except ValueError:
            raise ConfigError(f"unknown sink {name!r} in --sink {text!r}; choose from: "
                              f"{', '.join(k.value for k in SinkKind)}") from None
        options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        spec = cls(kind, target if sep else None, options)
        SINK_TYPES[kind].check(spec, text)
        return spec

    def flag(self, name: str, default: bool) -> bool:
        v = self.options.get(name)
        if v is None:
            return default
        if v.lower() in ("1", "yes", "true", "on"):
            return True
        if v.lower() in ("0", "no", "false", "off"):
            return False
        raise ConfigError(f"--sink {self.kind.value}: option {name} must be 0 or 1 (got {v!r})")

    def number(self, name: str, default: int) -> int:
        v = self.options.get(name)
        try:
            return default if v is None else int(v)
        except ValueError:
            raise ConfigError(f"--sink {self.kind.value}: option {name} must be a whole number (got {v!r})") from None


@dataclass(frozen=True)
class SinkContext:
    """What a sink may need from the run: where outputs go, the rate, labels, provenance and
    the source (a DICOM source lends its header to a derived series)."""

    out: Path
    provenance: Provenance
    fps: float = 30.0
    overlay: bool = True
    stem: str = ""
    source: Any = None
    deidentify: bool = False
    stream: str = ""  # several streams: "stream0", ... (window titles)

    @property
    def source_path(self) -> Path | None:
        p = getattr(self.source, "path", None)
        return Path(p) if p is not None else None

    def file(self, spec: SinkSpec, default_name: str) -> Path:
        """The sink's path: its target, else ``OUT/<stem><default_name>``; never an input (outpaths)."""
        path = Path(spec.target).expanduser() if spec.target else self.out / f"{self.stem}{default_name}"
        if self.source_path is not None:
            protect(self.source_path)
        return check_output(path, f"--sink {spec.kind.value}")


@dataclass(frozen=True)
class SinkType:
    build: Callable[[SinkSpec, SinkContext], Sink]
    target: str  # what TARGET is ("" = takes none)
    options: frozenset[str] = frozenset()
    target_required: bool = False

    def check(self, spec: SinkSpec, text: str) -> None:
        if spec.target is not None and not self.target:
            raise ConfigError(f"--sink {text!r}: {spec.kind.value} takes no target")
        if self.target_required and not spec.target:
            raise ConfigError(f"--sink {spec.kind.value} needs a target: {spec.kind.value}:{self.target}")
        unknown = set(spec.options) - self.options
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ConfigError(f"--sink {text!r}: unknown option(s) {', '.join(sorted(unknown))} (known: {known})")


def _overlay(spec: SinkSpec, ctx: SinkContext) -> bool:
    return spec.flag("overlay", ctx.overlay)


def _video(codec: VideoCodec, default_name: str) -> Callable[[SinkSpec, SinkContext], Sink]:
    def build(spec: SinkSpec, ctx: SinkContext) -> Sink:
        path = ctx.file(spec, default_name)
        chosen = VideoCodec.for_path(path) if spec.target and codec is VideoCodec.MP4V else codec
        return VideoSink(path, ctx.fps, chosen, overlay=_overlay(spec, ctx), provenance=ctx.provenance)

    return build


def _side_by_side(spec: SinkSpec, ctx: SinkContext) -> Sink:
    path = ctx.file(spec, "side_by_side.mp4")
    return SideBySideSink(path, ctx.fps, VideoCodec.for_path(path) if spec.target else VideoCodec.MP4V,
                          overlay=_overlay(spec, ctx), provenance=ctx.provenance)


def _png(spec: SinkSpec, ctx: SinkContext) -> Sink:
    return PngSink(ctx.file(spec, "frames"), inputs=spec.flag("inputs", False), provenance=ctx.provenance)


def _dicom(spec: SinkSpec, ctx: SinkContext) -> Sink:
    from .dicom.sink import DicomSink, resolve_target

    path = check_output(resolve_target(spec.target, ctx.out) if spec.target else ctx.out / f"{ctx.stem}enhanced.dcm",
                        "--sink dicom")
    src = ctx.source
    header = getattr(src, "dicom_header", None) if src is not None else None
    meta = getattr(src, "meta", None)
    return DicomSink(path, provenance=ctx.provenance, fps=ctx.fps, overlay=_overlay(spec, ctx),
                     source_header=header, source_path=ctx.source_path, source_hw=getattr(src, "frame_hw", None),
                     modality=getattr(meta, "modality", "US"), deidentify=ctx.deidentify)


def _display(spec: SinkSpec, ctx: SinkContext) -> Sink:
    return DisplaySink(f"ganrt {ctx.stream}".rstrip(), overlay=_overlay(spec, ctx))  # a window per stream


def _shm(spec: SinkSpec, ctx: SinkContext) -> Sink:
    from .ipc.sink import ShmRingSink

    crc = spec.options.get("crc")
    return ShmRingSink(spec.target or "", slots=spec.number("slots", 4), overlay=_overlay(spec, ctx), fps=ctx.fps,
                       provenance=ctx.provenance, checksum=None if crc is None else spec.flag("crc", False))


def _pipe(spec: SinkSpec, ctx: SinkContext) -> Sink:
    from .ipc.sink import PipeFormat, PipeSink

    try:
        fmt = PipeFormat(spec.options.get("format", "raw"))
    except ValueError:
        raise ConfigError(f"--sink pipe: format must be raw or framed (got {spec.options['format']!r})") from None
    target = spec.target or "-"
    if target != "-":
        target = str(ctx.file(spec, ""))
    return PipeSink(target, fmt=fmt, overlay=_overlay(spec, ctx), fps=ctx.fps, provenance=ctx.provenance)


SINK_TYPES: dict[SinkKind, SinkType] = {
    SinkKind.VIDEO: SinkType(_video(VideoCodec.MP4V, "enhanced.mp4"), "PATH", frozenset({"overlay"})),
    SinkKind.MJPG: SinkType(_video(VideoCodec.MJPG, "enhanced.avi"), "PATH", frozenset({"overlay"})),
    SinkKind.LOSSLESS: SinkType(_video(VideoCodec.FFV1, "enhanced.mkv"), "PATH", frozenset({"overlay"})),
    SinkKind.SIDE_BY_SIDE: SinkType(_side_by_side, "PATH", frozenset({"overlay"})),
    SinkKind.PNG: SinkType(_png, "DIR", frozenset({"inputs"})),
    SinkKind.DICOM: SinkType(_dicom, "PATH", frozenset({"overlay"})),
    SinkKind.SHM: SinkType(_shm, "NAME", frozenset({"slots", "crc", "overlay"}), target_required=True),
    SinkKind.PIPE: SinkType(_pipe, "-|FIFO|FILE", frozenset({"format", "overlay"})),
    SinkKind.DISPLAY: SinkType(_display, "", frozenset({"overlay"})),
    SinkKind.NULL: SinkType(lambda spec, ctx: NullSink(), ""),
}

DEFAULT_SINKS = ("video", "side-by-side")


def parse_sinks(values: Sequence[str] | None) -> tuple[SinkSpec, ...]:
    specs = tuple(SinkSpec.parse(v) for v in (values or DEFAULT_SINKS))
    to_stdout = [s for s in specs if s.kind is SinkKind.PIPE and (s.target or "-") == "-"]
    if len(to_stdout) > 1:
        raise ConfigError("only one --sink pipe:- can write to stdout")
    return specs


STREAM_FIELD = "{stream}"


def check_several_streams(specs: Sequence[SinkSpec], change_map: str | None = None) -> None:
    """Several streams write every sink: a target naming one file, ring or pipe would be shared."""
    for s in specs:
        if s.kind is SinkKind.PIPE and (s.target or "-") == "-":
            raise ConfigError("--sink pipe:- carries one stream; with several --source give each stream its own "
                              f"target, e.g. pipe:/tmp/ganrt_{STREAM_FIELD}.raw")
        if s.target and STREAM_FIELD not in s.target:
            raise ConfigError(f"--sink {s.kind.value}:{s.target} would be written by every stream; put "
                              f"{STREAM_FIELD} in the target or leave it out (each stream writes into OUT/streamN/)")
    if change_map and STREAM_FIELD not in change_map:
        raise ConfigError(f"--change-map {change_map} would be written by every stream; put {STREAM_FIELD} in it "
                          "or leave it out")


def for_stream(specs: Sequence[SinkSpec], stream: str) -> tuple[SinkSpec, ...]:
    """``specs`` with ``{stream}`` in their targets replaced by the stream's name."""
    return tuple(replace(s, target=fill_stream(s.target, stream)) if s.target else s for s in specs)


def fill_stream(target: str, stream: str) -> str:
    return target.replace(STREAM_FIELD, stream) if stream else target


def writes_stdout(specs: Sequence[SinkSpec]) -> bool:
    return any(s.kind is SinkKind.PIPE and (s.target or "-") == "-" for s in specs)


def build_sinks(specs: Sequence[SinkSpec], ctx: SinkContext) -> list[Sink]:
    """All sinks, or none: when one cannot be made, those already made are closed."""
    built: list[Sink] = []
    try:
        for spec in specs:
            built.append(SINK_TYPES[spec.kind].build(spec, ctx))
    except BaseException:
        for s in built:
            try:
                s.close()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
        raise
    return built
