"""The `ganrt` command. `--help` needs only the runtime's dependencies.

Every user mistake ends as one line on stderr and a documented exit code
(see `ganrt.runtime.errors.EXIT_CODES`), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import EXIT_CODES, BackendUnavailable, GanrtError

log = logging.getLogger("ganrt")

EPILOG = "exit codes: " + ", ".join(f"{v}={k}" for k, v in EXIT_CODES.items()) + ", 70=internal error"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="bundle directory or its manifest.json (default: the bundled student)")
    p.add_argument("--backend", default="auto", help="auto|onnxruntime|tensorrt|torch (default auto)")
    p.add_argument("--precision", default=None, help="fp32|fp16|int8-cpu|int8-trt (default: from profile and backend)")
    p.add_argument("--profile", default=None, help="device profile name or file (default cpu-x86-2core)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ganrt", description="Real-time GAN enhancement for point-of-care video.",
                                 epilog=EPILOG)
    ap.add_argument("--version", action="version", version=f"ganrt {__version__}")
    ap.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="bundled ultrasound cine through the bundled student; writes video, record, report",
                       epilog=EPILOG)
    _add_model_args(d)
    d.add_argument("--out", type=Path, default=Path("out"))
    d.add_argument("--budget-ms", type=float, default=None)
    d.add_argument("--no-overlay", action="store_true")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("run", help="enhance a video file, image folder, DICOM cine or camera", epilog=EPILOG)
    r.add_argument("--source", required=True, help="file, folder, camera index or /dev/videoN")
    _add_model_args(r)
    r.add_argument("--out", type=Path, default=Path("out"))
    r.add_argument("--budget-ms", type=float, default=None)
    r.add_argument("--realtime", action="store_true", help="replay a file at its native frame rate (drops allowed)")
    r.add_argument("--max-frames", type=int, default=None)
    r.add_argument("--no-overlay", action="store_true", help="no labels drawn on any output")
    r.add_argument("--sink", action="append", default=None,
                   help="video|mjpg|lossless|png|side-by-side|display|null (repeatable; default: video, side-by-side)")
    r.add_argument("--record", choices=("jsonl", "csv"), default="jsonl")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.set_defaults(func=_cmd_run)

    b = sub.add_parser("bench", help="model-only latency (trtexec-style percentiles)", epilog=EPILOG)
    _add_model_args(b)
    b.add_argument("--shape", default="1x1x512x512")
    b.add_argument("--iterations", type=int, default=200)
    b.add_argument("--warmup", type=int, default=20)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd_bench)

    pr = sub.add_parser("profile", help="device profiles")
    prs = pr.add_subparsers(dest="profile_command", metavar="ACTION")
    pv = prs.add_parser("validate", help="schema-check a device profile")
    pv.add_argument("file", nargs="+")
    pv.set_defaults(func=_cmd_profile_validate)
    pl = prs.add_parser("list", help="shipped profiles")
    pl.set_defaults(func=_cmd_profile_list)

    from .engine_cli import add_engine_parsers  # `ganrt engine build|prebuild|info` (TensorRT engine cache)

    add_engine_parsers(sub)

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
    from .backends.registry import parse_backend, select
    from .manifest import Manifest, Precision, bundled_model_dir
    from .profiles import DEFAULT_PROFILE, DeviceProfile

    backend = parse_backend(args.backend)
    precision = Precision.parse(args.precision) if args.precision else None
    profile = DeviceProfile.load(args.profile or DEFAULT_PROFILE)
    manifest = Manifest.load(args.model or bundled_model_dir())
    return manifest, profile, select(manifest, backend, profile, precision)


def _cmd_bench(args: argparse.Namespace) -> int:
    from ganrt.benchmarks.model_bench import Shape, bench_model, format_bench

    shape = Shape.parse(args.shape)
    _, _, sel = _load(args)
    result = bench_model(sel, shape, args.iterations, args.warmup)
    print(json.dumps(result, indent=2) if args.json else format_bench(result))
    return 0


def _cmd_profile_validate(args: argparse.Namespace) -> int:
    from .profiles import DeviceProfile

    for f in args.file:
        p = DeviceProfile.load(f)
        print(f"{f}: ok ({p.name}: {p.budget_ms:g} ms, {p.input_hw[0]}x{p.input_hw[1]}, {p.precision.value}, "
              f"backends {'/'.join(b.value for b in p.backends)})")
    return 0


def _cmd_profile_list(_args: argparse.Namespace) -> int:
    from .profiles import DeviceProfile, shipped_profiles

    for f in shipped_profiles():
        p = DeviceProfile.load(f)
        print(f"{p.name:18s} {p.description}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .app import run_stream

    return run_stream(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .app import run_demo

    return run_demo(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
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


if __name__ == "__main__":
    sys.exit(main())
