"""What `ganrt bench`, `ganrt bench pipeline`, `ganrt bench baselines` and `ganrt bench realscan` do once their options are
parsed (the parsers live with the rest of the CLI in ``ganrt.runtime.cli``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ganrt.runtime.errors import ConfigError
from ganrt.runtime.model.manifest import Manifest, Precision
from ganrt.runtime.model.profiles import DeviceProfile


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


def model(args: argparse.Namespace, manifest: Manifest, profile: DeviceProfile, sel) -> int:
    from ganrt.benchmarks import model_bench as mb

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


def pipeline(args: argparse.Namespace, manifest: Manifest, profile: DeviceProfile) -> int:
    from ganrt.benchmarks.pipeline_bench import BenchSink, Mode, PipelineBenchConfig, run_pipeline_bench, to_markdown

    _check_plotting(args)
    modes = (Mode.FAST, Mode.REALTIME) if args.mode == "both" else (Mode(args.mode),)
    sink = BenchSink(args.sink)
    cfg = PipelineBenchConfig(source=args.source, frames=args.frames, modes=modes, sink_fast=sink, sink_realtime=sink,
                              budget_ms=args.budget_ms, bare=not args.no_bare,
                              checks=not args.no_checks)
    precision = Precision.parse(args.precision) if args.precision else None
    result = run_pipeline_bench(manifest, profile, cfg, args.backend, precision)
    _emit(result, args, to_markdown(result))
    if args.plot:
        from ganrt.benchmarks.plots import pipeline_plots

        _plotted(pipeline_plots(result, args.plot, "bench_pipeline"), args)
    return 0


def baselines(args: argparse.Namespace, manifest: Manifest, profile: DeviceProfile) -> int:
    from ganrt.benchmarks.baselines import BaselinesConfig, run, to_markdown
    from ganrt.benchmarks.filters import FilterKind

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
