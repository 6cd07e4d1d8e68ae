"""What several commands share: the exit-code epilog, the model options and loading them, the printed report.

Imported while the parser is built (``ganrt --help`` included), so the heavy modules are
imported inside the functions that use them.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, NamedTuple

from ..errors import EXIT_CODES, ConfigError, GanrtError, ModelError

if TYPE_CHECKING:
    from ..backends.registry import Selection
    from ..model.manifest import Manifest, Precision
    from ..model.profiles import DeviceProfile
    from ..records.report import Report

EPILOG = "exit codes: " + ", ".join(f"{v}={k}" for k, v in EXIT_CODES.items())


def budget_ms(text: str) -> float:
    """``--budget-ms``: checked as it is parsed (0 would otherwise fall back to the profile's)."""
    from ..serve.policy import check_budget

    try:
        return check_budget(float(text), "--budget-ms")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of milliseconds (got {text!r})") from None
    except GanrtError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--budget-ms ")) from None


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--model --backend --precision --profile`` and the ``--triton-*`` options, read by `load_model`."""
    p.add_argument("--model", default=None, help="bundle directory or its manifest.json (default: the bundled student)")
    p.add_argument("--backend", default="auto", help="auto|onnxruntime|tensorrt|torch|triton (default auto)")
    p.add_argument("--precision", default=None, help="fp32|fp16|int8-cpu|int8-trt (default: from profile and backend)")
    p.add_argument("--profile", default=None, help="device profile name or file (default cpu-x86-2core)")
    from .triton_options import add_triton_args

    add_triton_args(p)


def parse_precision(text: str | None) -> Precision | None:
    """``--precision``: an unknown name is a bad option (exit 2, as an unknown ``--backend`` is), not a bad model."""
    from ..model.manifest import Precision

    if not text:
        return None
    try:
        return Precision.parse(text)
    except ModelError as exc:  # the same message; ModelError is for a bundle naming an unknown precision
        raise ConfigError(str(exc)) from None


class LoadedModel(NamedTuple):
    manifest: Manifest
    profile: DeviceProfile
    selection: Selection  # the runner picked for the bundle, not yet activated


def load_model(args: argparse.Namespace) -> LoadedModel:
    """The bundle, the device profile (with the ``--triton-*`` overrides) and the runner the options of
    `add_model_args` ask for; every bad option fails here, before a source or an output is opened."""
    from ..backends.registry import parse_backend, select
    from ..model.manifest import Manifest, bundled_model_dir
    from ..model.profiles import DEFAULT_PROFILE, DeviceProfile
    from .triton_options import apply_triton_args

    backend = parse_backend(args.backend)
    precision = parse_precision(args.precision)
    profile = DeviceProfile.load(args.profile or DEFAULT_PROFILE)
    profile = apply_triton_args(profile, args)  # --triton-* over the profile's [triton]
    manifest = Manifest.load(args.model or bundled_model_dir())
    return LoadedModel(manifest, profile, select(manifest, backend, profile, precision))


def print_report(report: Report, args: argparse.Namespace, title: str) -> None:
    """A stream's report as JSON (``--json``) or as a table, with a note when most frames went raw and why."""
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    print(f"== {title}")
    print(report.format_table())
    missed = report.passthrough.get("predicted-miss", 0)
    if report.frames_out and missed > report.frames_out / 2:
        infer = report.latency.get("infer_ms")
        p95 = f"{infer.p95:.0f} ms" if infer is not None and infer.n else "?"
        print(f"note: {missed} of {report.frames_out} frames were shown raw because inference (p95 {p95}) "
              f"does not fit the {report.budget_ms:g} ms budget on this machine; a longer --budget-ms "
              f"or a faster backend/profile enhances more of them")
    checked = {k: report.passthrough.get(k, 0) for k in ("mean-shift", "out-of-distribution", "fidelity")}
    if report.frames_out and sum(checked.values()) > report.frames_out / 2:
        why = ", ".join(f"{k} {v}" for k, v in checked.items() if v)
        print(f"note: {sum(checked.values())} of {report.frames_out} frames were shown raw by the output checks "
              f"({why}): the model would have moved the local brightness, invented structure, or was given a "
              f"frame unlike its training data; see docs/trust.md")
