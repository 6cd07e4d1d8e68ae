"""The `ganrt` subcommands: one explicit list of plug-in modules, each contributing its `Command`s.

A plug-in module keeps a command's parser and its handler together and lists them in
``COMMANDS``. Every plug-in is imported when the parser is built (``ganrt --help`` lists them
all), so a plug-in imports its heavy modules (torch, OpenCV, the frame loop) inside its
handlers. ``PLUGINS`` is the only place the runtime names ``ganrt.export`` and
``ganrt.benchmarks`` (tests/test_import_rules.py checks).
"""

from __future__ import annotations

import argparse
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .common import EPILOG

#: Plug-in modules in the order `ganrt --help` lists their commands.
PLUGINS: tuple[str, ...] = (
    "ganrt.runtime.cli.demo",
    "ganrt.runtime.cli.run",
    "ganrt.benchmarks.cli",
    "ganrt.runtime.cli.profile",
    "ganrt.runtime.cli.engine",
    "ganrt.runtime.cli.shm_read",
    "ganrt.export.cli",
)

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """One ``ganrt NAME``: its help line and how to fill its parser.

    ``build`` adds the options and, for a group such as ``ganrt export``, the actions (each
    action sets its own ``func``). ``handler`` runs the command itself; a group without one
    prints the help. ``epilog`` lists the exit codes under the command's ``--help``.
    """

    name: str
    help: str
    build: Callable[[argparse.ArgumentParser], None]
    handler: Handler | None = None
    description: str | None = None
    epilog: bool = False


@functools.cache
def commands() -> tuple[Command, ...]:
    """Every plug-in's commands, imported on first use."""
    return tuple(cmd for path in PLUGINS for cmd in importlib.import_module(path).COMMANDS)


def add_commands(sub: Any) -> None:
    """Add every registered command to the top-level subparsers ``sub``."""
    for cmd in commands():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description, epilog=EPILOG if cmd.epilog else None)
        cmd.build(p)
        if cmd.handler is not None:
            p.set_defaults(func=cmd.handler)
