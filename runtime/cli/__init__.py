"""The `ganrt` command: global options and the commands of ``registry.PLUGINS``.

`--help` needs only the runtime's dependencies. Every user mistake ends as one line on stderr
and a documented exit code (see `ganrt.runtime.errors.EXIT_CODES`), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import INTERNAL_ERROR, BackendUnavailable, GanrtError
from .common import EPILOG
from .registry import add_commands

log = logging.getLogger("ganrt")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too (``--help`` shows the usage); subcommands inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The global options and every command of ``registry.PLUGINS``."""
    ap = _Parser(prog="ganrt", description="Real-time GAN enhancement for point-of-care video.", epilog=EPILOG)
    ap.add_argument("--version", action="version", version=f"ganrt {__version__}")
    ap.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    ap.add_argument("-v", "--verbose", action="store_true")
    add_commands(ap.add_subparsers(dest="command", metavar="COMMAND"))
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from ..serve import signals
    from ..sinks import outpaths

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
            return INTERNAL_ERROR
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
        return INTERNAL_ERROR
