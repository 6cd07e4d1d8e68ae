"""`ganrt profile validate FILE...` and `ganrt profile list`: device profiles."""

from __future__ import annotations

import argparse

from .registry import Command


def _add_actions(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="profile_command", metavar="ACTION")
    v = actions.add_parser("validate", help="schema-check a device profile")
    v.add_argument("file", nargs="+")
    v.set_defaults(func=_validate)
    actions.add_parser("list", help="shipped profiles").set_defaults(func=_list)


def _validate(args: argparse.Namespace) -> int:
    from ..model.profiles import DeviceProfile

    for f in args.file:
        p = DeviceProfile.load(f)
        print(f"{f}: ok ({p.name}: {p.budget_ms:g} ms, {p.input_hw[0]}x{p.input_hw[1]}, {p.precision.value}, "
              f"backends {'/'.join(b.value for b in p.backends)})")
    return 0


def _list(_args: argparse.Namespace) -> int:
    from ..model.profiles import DeviceProfile, shipped_profiles

    for f in shipped_profiles():
        p = DeviceProfile.load(f)
        print(f"{p.name:18s} {p.description}")
    return 0


COMMANDS = (Command("profile", "device profiles", build=_add_actions),)
