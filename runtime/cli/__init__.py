"""The `ganrt` command. `--help` needs only the runtime's dependencies.

Every user mistake ends as one line on stderr and a documented exit code
(see `ganrt.runtime.errors.EXIT_CODES`), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..errors import EXIT_CODES, BackendUnavailable, GanrtError

log = logging.getLogger("ganrt")

EPILOG = "exit codes: " + ", ".join(f"{v}={k}" for k, v in EXIT_CODES.items()) + ", 70=internal error"


def _budget_ms(text: str) -> float:
    """``--budget-ms``: checked as it is parsed (0 would otherwise fall back to the profile's)."""
    from ..serve.policy import check_budget

    try:
        return check_budget(float(text), "--budget-ms")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of milliseconds (got {text!r})") from None
    except GanrtError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--budget-ms ")) from None


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="bundle directory or its manifest.json (default: the bundled student)")
    p.add_argument("--backend", default="auto", help="auto|onnxruntime|tensorrt|torch|triton (default auto)")
    p.add_argument("--precision", default=None, help="fp32|fp16|int8-cpu|int8-trt (default: from profile and backend)")
    p.add_argument("--profile", default=None, help="device profile name or file (default cpu-x86-2core)")
    from .triton_options import add_triton_args

    add_triton_args(p)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too (``--help`` shows the usage); subcommands inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="ganrt", description="Real-time GAN enhancement for point-of-care video.",
                                 epilog=EPILOG)
    ap.add_argument("--version", action="version", version=f"ganrt {__version__}")
    ap.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="bundled ultrasound cine through the bundled student; writes video, record, report",
                       epilog=EPILOG)
    _add_model_args(d)
    d.add_argument("--out", type=Path, default=Path("out"))
    d.add_argument("--budget-ms", type=_budget_ms, default=None)
    d.add_argument("--no-overlay", action="store_true")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("run", help="enhance a video file, image folder, DICOM cine or camera", epilog=EPILOG)
    r.add_argument("--source", required=True, action="append",
                   help="video file, image folder, DICOM file, camera (0, /dev/videoN[?fourcc=MJPG&size=WxH&fps=N]) "
                        "or gst:PIPELINE (ending in appsink); repeat for several streams through one model "
                        "(outputs in OUT/streamN/)")
    _add_model_args(r)
    r.add_argument("--out", type=Path, default=Path("out"))
    r.add_argument("--budget-ms", type=_budget_ms, action="append", default=None,
                   help="deadline per frame (default: the profile's); once for every stream or once per --source")
    r.add_argument("--realtime", action="store_true", help="replay a file at its native frame rate (drops allowed)")
    r.add_argument("--max-frames", type=int, default=None)
    r.add_argument("--no-overlay", action="store_true", help="no labels drawn on any output")
    r.add_argument("--sink", action="append", default=None, metavar="KIND[:TARGET][?OPT=V]",
                   help="video|mjpg|lossless|side-by-side[:PATH], png[:DIR], dicom[:PATH.dcm], shm:NAME, "
                        "pipe:-|FIFO|FILE, display, null (repeatable; default: video, side-by-side; with several "
                        "sources a TARGET must contain {stream})")
    r.add_argument("--deidentify", action="store_true",
                   help="DICOM output per PS3.15 basic profile (header only); source name kept out of all outputs")
    r.add_argument("--record", choices=("jsonl", "csv"), default="jsonl")
    r.add_argument("--region", default=None, metavar="auto[:N]|full|X,Y,W,H",
                   help="imaging region the model may change; outside it the output is the input "
                        "(default: the profile's [region], else auto for ultrasound bundles and full for others; "
                        "auto detects it over the first N frames, or uses a DICOM file's ultrasound regions)")
    r.add_argument("--mask-phi", action="store_true",
                   help="blank everything outside the imaging region (except the profile's [phi] keep boxes) "
                        "in every output")
    r.add_argument("--no-fidelity", action="store_true",
                   help="show the model's output unchecked: no fidelity, local-mean or input-domain check "
                        "(the checks send unfaithful frames, or tiles, raw)")
    r.add_argument("--temporal-filter", default=None, metavar="none|ema[:ALPHA]",
                   help="light smoothing of enhanced frames inside the region (default: the profile's, else none)")
    r.add_argument("--change-map", nargs="?", const="", default=None, metavar="PATH",
                   help="also write a heat-map video of |output - input| (default PATH: OUT/change_map.mp4)")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.set_defaults(func=_cmd_run)

    _add_bench_parsers(sub)

    pr = sub.add_parser("profile", help="device profiles")
    prs = pr.add_subparsers(dest="profile_command", metavar="ACTION")
    pv = prs.add_parser("validate", help="schema-check a device profile")
    pv.add_argument("file", nargs="+")
    pv.set_defaults(func=_cmd_profile_validate)
    pl = prs.add_parser("list", help="shipped profiles")
    pl.set_defaults(func=_cmd_profile_list)

    from .engine import add_engine_parsers  # `ganrt engine build|prebuild|info` (TensorRT engine cache)

    add_engine_parsers(sub)

    from ..sinks.ipc.reader import add_parser as add_shm_read_parser  # `ganrt shm-read NAME`

    add_shm_read_parser(sub)

    ex = sub.add_parser("export", help="train, distill, export, quantize, gate (needs ganrt[export])")
    exs = ex.add_subparsers(dest="export_command", metavar="ACTION")
    try:
        from ganrt.export.cli import add_parsers  # torch is imported only inside the actions

        add_parsers(exs)
    except ImportError as exc:  # the export extra is absent: say so when it is used
        msg = f"ganrt export needs the export extra ({exc}); install ganrt[export]"
        for name in ("pipeline", "simulate"):
            exs.add_parser(name, help="(needs ganrt[export])").set_defaults(func=_unavailable(msg))
    return ap


def _unavailable(msg: str):
    def f(_args: argparse.Namespace) -> int:
        raise BackendUnavailable(msg)

    return f


# --- commands ---------------------------------------------------------------------------------


def _load(args: argparse.Namespace):
    from ..backends.registry import parse_backend, select
    from ..model.manifest import Manifest, Precision, bundled_model_dir
    from ..model.profiles import DEFAULT_PROFILE, DeviceProfile

    backend = parse_backend(args.backend)
    precision = Precision.parse(args.precision) if args.precision else None
    profile = DeviceProfile.load(args.profile or DEFAULT_PROFILE)
    from .triton_options import apply_triton_args

    profile = apply_triton_args(profile, args)  # --triton-* over the profile's [triton]
    manifest = Manifest.load(args.model or bundled_model_dir())
    return manifest, profile, select(manifest, backend, profile, precision)


def _add_bench_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--save", type=Path, default=None, metavar="FILE", help="also write the JSON result to FILE")
    p.add_argument("--plot", type=Path, default=None, metavar="DIR", help="write PNG plots to DIR (needs ganrt[bench])")


def _add_bench_parsers(sub) -> None:
    """`ganrt bench` (model only), `ganrt bench pipeline` (end to end), `ganrt bench baselines` (vs filters)."""
    b = sub.add_parser("bench", help="latency benchmarks: model only (default), pipeline, baselines", epilog=EPILOG,
                       description="Model-only latency: warm-up excluded, percentiles, throughput, run-to-run spread. "
                                   "Options of `pipeline` and `baselines` go after the word.")
    _add_model_args(b)
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
    _add_bench_output_args(b)
    b.set_defaults(func=_cmd_bench)
    bs = b.add_subparsers(dest="bench_command", metavar="KIND")

    bp = bs.add_parser("pipeline", help="end to end: source -> pipeline -> sink, real time and as fast as possible",
                       epilog=EPILOG)
    _add_model_args(bp)
    bp.add_argument("--source", default=None, help="video, image folder or .dcm (default: the bundled cine)")
    bp.add_argument("--frames", type=int, default=300, help="frames per mode (default 300; files loop)")
    bp.add_argument("--mode", choices=("both", "fast", "realtime"), default="both")
    bp.add_argument("--sink", choices=("null", "video"), default="null", help="output written per frame (default null)")
    bp.add_argument("--budget-ms", type=_budget_ms, default=None, help="deadline (default: the profile's)")
    bp.add_argument("--no-bare", action="store_true", help="skip the bare-model comparison")
    bp.add_argument("--no-checks", action="store_true",
                    help="time the bare loop: no region, local-mean, domain or fidelity check (default: the checks "
                         "`ganrt run` applies to the bundle)")
    _add_bench_output_args(bp)
    bp.set_defaults(func=_cmd_bench_pipeline)

    bb = bs.add_parser("baselines", help="student vs teacher vs classic filters: quality and speed (needs ganrt[export])",
                       epilog=EPILOG)
    _add_model_args(bb)
    bb.add_argument("--teacher", type=Path, default=None, metavar="PATH.onnx", help="include the teacher")
    bb.add_argument("--frames", type=int, default=24, help="held-out pairs for quality (default 24)")
    bb.add_argument("--hw", type=int, default=256, help="quality resolution (default 256)")
    bb.add_argument("--speed-hw", type=int, default=512, help="timing resolution (default 512)")
    bb.add_argument("--rounds", type=int, default=8, help="interleaved timing rounds (default 8)")
    bb.add_argument("--filters", default=None, help="comma list (default all): bilateral,nlmeans,clahe,median,gaussian,bicubic")
    _add_bench_output_args(bb)
    bb.set_defaults(func=_cmd_bench_baselines)

    br = bs.add_parser("realscan", help="students, pipeline and filters on the real ultrasound acquisitions installed "
                       "(pydicom's, pydicom-data's): brightness shift, speckle, edges, UI/colour pixels changed",
                       epilog=EPILOG)
    br.add_argument("--out", type=Path, default=Path("out/realscan"), help="report, JSON, montages (default out/realscan)")
    br.add_argument("--frames", type=int, default=30, help="frames per cine at most (default 30)")
    br.add_argument("--acquisitions", default=None, help="comma list of names (default: all installed)")
    br.add_argument("--budget-ms", type=float, default=1000.0, help="pipeline rows' deadline (default 1000; 0: the profile's)")
    br.add_argument("--no-montage", action="store_true")
    br.add_argument("--json", action="store_true", help="print the result as JSON")
    br.add_argument("--task", choices=("ultrasound", "intraop-enhance"), default="ultrasound",
                    help="intraop-enhance: the RGB section (real colour photographs, clean and degraded)")
    br.set_defaults(func=_cmd_bench_realscan)


def _cmd_bench(args: argparse.Namespace) -> int:
    from ganrt.benchmarks import cli as bench_cli

    manifest, profile, sel = _load(args)
    return bench_cli.model(args, manifest, profile, sel)


def _cmd_bench_pipeline(args: argparse.Namespace) -> int:
    from ganrt.benchmarks import cli as bench_cli

    from .demo import DEMO_CINE

    args.source = args.source or str(DEMO_CINE)
    manifest, profile, _ = _load(args)
    return bench_cli.pipeline(args, manifest, profile)


def _cmd_bench_baselines(args: argparse.Namespace) -> int:
    from ganrt.benchmarks import cli as bench_cli

    manifest, profile, _ = _load(args)
    return bench_cli.baselines(args, manifest, profile)


def _cmd_bench_realscan(args: argparse.Namespace) -> int:
    from ganrt.benchmarks import cli as bench_cli

    return bench_cli.realscan(args)


def _cmd_profile_validate(args: argparse.Namespace) -> int:
    from ..model.profiles import DeviceProfile

    for f in args.file:
        p = DeviceProfile.load(f)
        print(f"{f}: ok ({p.name}: {p.budget_ms:g} ms, {p.input_hw[0]}x{p.input_hw[1]}, {p.precision.value}, "
              f"backends {'/'.join(b.value for b in p.backends)})")
    return 0


def _cmd_profile_list(_args: argparse.Namespace) -> int:
    from ..model.profiles import DeviceProfile, shipped_profiles

    for f in shipped_profiles():
        p = DeviceProfile.load(f)
        print(f"{p.name:18s} {p.description}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .run import run_stream  # one source: stream.stream_once; several: multistream.run_streams

    return run_stream(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def main(argv: Sequence[str] | None = None) -> int:
    from ..sinks import outpaths
    from ..serve import signals

    with signals.handled():  # first: a Ctrl-C while the parser imports is one line too
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # OpenCV's own warnings are not ours to print twice
        parser = build_parser()
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        outpaths.clear()  # the inputs of this command are registered as it opens them
        rc = _call(args)
        signum = signals.received()
    if signum is not None:  # the streams stopped on it and finished their outputs
        print(f"ganrt: interrupted by {signal.Signals(signum).name}; outputs finished", file=sys.stderr)
        return signals.exit_code(signum)
    return rc


def _call(args: argparse.Namespace) -> int:
    """The command, every failure as one line and its documented exit code."""
    try:
        return int(args.func(args) or 0)
    except GanrtError as exc:
        print(f"ganrt: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ImportError as exc:  # an optional extra is missing (export needs torch, DICOM needs pydicom)
        if args.debug:
            raise
        if (exc.name or "").startswith("ganrt"):
            print(f"ganrt: internal error: {exc} (rerun with --debug for details)", file=sys.stderr)
            return 70
        print(f"ganrt: error: missing dependency: {exc.name or exc}; install the ganrt extra that provides it "
              f"(ganrt[export], ganrt[dicom], ganrt[trt])", file=sys.stderr)
        return BackendUnavailable.exit_code
    except KeyboardInterrupt:
        print("ganrt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user mistake: still one line unless --debug
        if args.debug:
            raise
        print(f"ganrt: internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        return 70

