"""`ganrt bench` (model only), `ganrt bench pipeline` (end to end), `ganrt bench baselines` (vs filters) and
`ganrt bench realscan` (real acquisitions): their options and what they do.

A plug-in of ``ganrt.runtime.cli.registry``: imported whenever the parser is built, so the
benchmarks themselves are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ganrt.runtime.cli.common import EPILOG, add_model_args, budget_ms, load_model
from ganrt.runtime.cli.demo import DEMO_CINE
from ganrt.runtime.cli.registry import Command
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.model.manifest import Precision


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--save", type=Path, default=None, metavar="FILE", help="also write the JSON result to FILE")
    p.add_argument("--plot", type=Path, default=None, metavar="DIR", help="write PNG plots to DIR (needs ganrt[bench])")


def _add_bench(b: argparse.ArgumentParser) -> None:
    """`ganrt bench`'s own options (model only), then its kinds."""
    add_model_args(b)
    b.add_argument("--shape", default="1x1x512x512", help="NxCxHxW (default 1x1x512x512)")
    b.add_argument("--iterations", type=int, default=200, help="timed calls per combination (default 200)")
    b.add_argument("--duration", type=float, default=None, metavar="S", help="time rounds for S seconds instead")
    b.add_argument("--warmup", type=int, default=20, help="untimed calls first (default 20)")
    b.add_argument("--warmup-s", type=float, default=0.0, metavar="S", help="... and at least S seconds of them")
    b.add_argument("--inputs", type=int, default=8, help="distinct input frames rotated through (default 8)")
    b.add_argument("--input", choices=("cine", "sim"), default="cine",
                   help="frames of the bundled cine (default) or fresh simulator renders")
    b.add_argument("--compare", nargs="?", const="", default=None, metavar="ITEMS",
                   help="several combos in one interleaved run: [backend/]precision[@N|@HxW],... "
                        "(no ITEMS: every precision of the bundle)")
    b.add_argument("--sizes", default=None, help="with --compare: sizes for items without @size, e.g. 256,512")
    b.add_argument("--baseline", default=None, help="with --compare: the combo ratios refer to (default: the first)")
    b.add_argument("--per-round", type=int, default=10, help="timed calls per turn in a round (default 10)")
    b.add_argument("--blocks", type=int, default=5, help="blocks of rounds for the run-to-run spread (default 5)")
    b.add_argument("--repeats", type=int, default=1, help="repeat the whole run N times (spread of repeat medians)")
    _add_output_args(b)
    kinds = b.add_subparsers(dest="bench_command", metavar="KIND")
    _add_pipeline(kinds)
    _add_baselines(kinds)
    _add_realscan(kinds)


def _add_pipeline(kinds: Any) -> None:
    bp = kinds.add_parser("pipeline", help="end to end: source -> pipeline -> sink, real time and as fast as possible",
                          epilog=EPILOG)
    add_model_args(bp)
    bp.add_argument("--source", default=None, help="video, image folder or .dcm (default: the bundled cine)")
    bp.add_argument("--frames", type=int, default=300, help="frames per mode (default 300; files loop)")
    bp.add_argument("--mode", choices=("both", "fast", "realtime"), default="both")
    bp.add_argument("--sink", choices=("null", "video"), default="null", help="output written per frame (default null)")
    bp.add_argument("--budget-ms", type=budget_ms, default=None, help="deadline (default: the profile's)")
    bp.add_argument("--no-bare", action="store_true", help="skip the bare-model comparison")
    bp.add_argument("--no-checks", action="store_true",
                    help="time the bare loop: no region, local-mean, domain or fidelity check (default: the checks "
                         "`ganrt run` applies to the bundle)")
    bp.add_argument("--no-lookahead", action="store_true",
                    help="start as from a camera: an auto region is collected from the stream (frames raw meanwhile) "
                         "instead of read ahead from the file as `ganrt run` does")
    _add_output_args(bp)
    bp.set_defaults(func=pipeline)


def _add_baselines(kinds: Any) -> None:
    bb = kinds.add_parser("baselines", help="student vs teacher vs classic filters: quality and speed "
                          "(needs ganrt[export])", epilog=EPILOG)
    add_model_args(bb)
    bb.add_argument("--teacher", type=Path, default=None, metavar="PATH.onnx", help="include the teacher")
    bb.add_argument("--frames", type=int, default=24, help="held-out pairs for quality (default 24)")
    bb.add_argument("--hw", type=int, default=256, help="quality resolution (default 256)")
    bb.add_argument("--speed-hw", type=int, default=512, help="timing resolution (default 512)")
    bb.add_argument("--rounds", type=int, default=8, help="interleaved timing rounds (default 8)")
    bb.add_argument("--filters", default=None,
                    help="comma list (default all): bilateral,nlmeans,clahe,median,gaussian,bicubic")
    _add_output_args(bb)
    bb.set_defaults(func=baselines)


def _add_realscan(kinds: Any) -> None:
    br = kinds.add_parser("realscan", help="students, pipeline and filters on the real ultrasound acquisitions "
                          "installed (pydicom's, pydicom-data's): brightness shift, speckle, edges, UI/colour pixels "
                          "changed", epilog=EPILOG)
    br.add_argument("--out", type=Path, default=Path("out/realscan"), help="report, JSON, montages (default out/realscan)")
    br.add_argument("--frames", type=int, default=30, help="frames per cine at most (default 30)")
    br.add_argument("--acquisitions", default=None, help="comma list of names (default: all installed)")
    br.add_argument("--budget-ms", type=float, default=1000.0,
                    help="pipeline rows' deadline (default 1000; 0: the profile's)")
    br.add_argument("--no-montage", action="store_true")
    br.add_argument("--json", action="store_true", help="print the result as JSON")
    br.add_argument("--task", choices=("ultrasound", "intraop-enhance"), default="ultrasound",
                    help="intraop-enhance: the RGB section (real colour photographs, clean and degraded)")
    br.set_defaults(func=realscan)


def _emit(result: dict[str, Any], args: argparse.Namespace, text: str) -> None:
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=2) if args.json else text)
    if args.save and not args.json:
        print(f"wrote {args.save}")


def _check_plotting(args: argparse.Namespace) -> None:
    """Fail before a long run, not after it, when plots are asked for but matplotlib is missing."""
    if args.plot:
        from ganrt.benchmarks.plots import _pyplot

        _pyplot()


def _plotted(paths: list[Path], args: argparse.Namespace) -> None:
    if not args.json:
        for p in paths:
            print(f"wrote {p}")
    else:
        for p in paths:
            print(f"wrote {p}", file=sys.stderr)


def model(args: argparse.Namespace) -> int:
    """`ganrt bench`: one model's latency (or several combos with ``--compare``)."""
    from ganrt.benchmarks import model_bench as mb

    manifest, profile, sel = load_model(args)
    _check_plotting(args)
    shape = mb.Shape.parse(args.shape)
    plan, warmup = mb.plan_from_args(args), mb.warmup_from_args(args)
    if args.compare is None:
        if args.sizes or args.baseline:
            raise ConfigError("--sizes and --baseline need --compare")
        result = mb.bench_model(sel, shape, plan, warmup, manifest=manifest, profile=profile, inputs=args.inputs,
                                input_kind=mb.InputKind(args.input))
        text = mb.format_bench(result)
    else:
        result = mb.run_cli_compare(args, manifest, profile)
        text = mb.format_compare(result)
    _emit(result, args, text)
    if args.plot:
        from ganrt.benchmarks.plots import model_plots

        _plotted(model_plots(result, args.plot, "bench"), args)
    return 0


def pipeline(args: argparse.Namespace) -> int:
    """`ganrt bench pipeline`: source -> pipeline -> sink, end to end."""
    from ganrt.benchmarks.pipeline_bench import BenchSink, Mode, PipelineBenchConfig, run_pipeline_bench, to_markdown

    args.source = args.source or str(DEMO_CINE)
    manifest, profile, _ = load_model(args)
    _check_plotting(args)
    modes = (Mode.FAST, Mode.REALTIME) if args.mode == "both" else (Mode(args.mode),)
    sink = BenchSink(args.sink)
    cfg = PipelineBenchConfig(source=args.source, frames=args.frames, modes=modes, sink_fast=sink, sink_realtime=sink,
                              budget_ms=args.budget_ms, bare=not args.no_bare,
                              checks=not args.no_checks, lookahead=not args.no_lookahead)
    precision = Precision.parse(args.precision) if args.precision else None
    result = run_pipeline_bench(manifest, profile, cfg, args.backend, precision)
    _emit(result, args, to_markdown(result))
    if args.plot:
        from ganrt.benchmarks.plots import pipeline_plots

        _plotted(pipeline_plots(result, args.plot, "bench_pipeline"), args)
    return 0


def baselines(args: argparse.Namespace) -> int:
    """`ganrt bench baselines`: the student against the teacher and classic filters."""
    from ganrt.benchmarks.baselines import BaselinesConfig, run, to_markdown
    from ganrt.benchmarks.filters import FilterKind

    manifest, profile, _ = load_model(args)
    _check_plotting(args)
    try:
        filters = tuple(FilterKind(f.strip()) for f in args.filters.split(",") if f.strip()) if args.filters \
            else tuple(FilterKind)
    except ValueError as exc:
        raise ConfigError(f"--filters: {exc} (choose from {', '.join(k.value for k in FilterKind)})") from None
    cfg = BaselinesConfig(frames=args.frames, hw=args.hw, speed_hw=args.speed_hw, rounds=args.rounds,
                          teacher=args.teacher, filters=filters)
    result = run(manifest, profile, cfg)
    _emit(result, args, to_markdown(result))
    if args.plot:
        from ganrt.benchmarks.plots import quality_latency_plot

        _plotted(quality_latency_plot(result, args.plot, "bench_baselines"), args)
    return 0


def realscan(args: argparse.Namespace) -> int:
    """`ganrt bench realscan`: the real ultrasound acquisitions (or, with ``--task intraop-enhance``, photographs)."""
    from ganrt.benchmarks.realscan import RealscanConfig, write

    if getattr(args, "task", "ultrasound") == "intraop-enhance":
        return _realscan_rgb(args)
    if args.frames < 1:
        raise ConfigError("--frames must be >= 1")
    names = tuple(n.strip() for n in args.acquisitions.split(",") if n.strip()) if args.acquisitions else ()
    cfg = RealscanConfig(out=args.out, max_frames=args.frames, acquisitions=names,
                         budget_ms=args.budget_ms or None, montage=not args.no_montage)
    result, md = write(cfg)
    print(json.dumps(result, indent=2) if args.json else md)
    return 0


def _realscan_rgb(args: argparse.Namespace) -> int:
    from ganrt.benchmarks.realphoto import write

    try:
        import skimage  # noqa: F401  (the photographs and the colour metrics)
    except ImportError:
        raise ConfigError("the RGB real-reference benchmark needs scikit-image (ganrt[export])") from None
    result, md = write(args.out, budget_ms=args.budget_ms or 1000.0)
    print(json.dumps(result, indent=2) if args.json else md)
    return 0


COMMANDS = (
    Command("bench", "latency benchmarks: model only (default), pipeline, baselines", build=_add_bench, handler=model,
            description="Model-only latency: warm-up excluded, percentiles, throughput, run-to-run spread. "
                        "Options of `pipeline` and `baselines` go after the word.", epilog=True),
)
