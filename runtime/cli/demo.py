"""`ganrt demo` and what `ganrt run` shares with it: the checks around the model.

Both go through ``stream.stream_once`` (one source on its own runner); `ganrt run` with
several sources goes through ``multistream.run_streams`` (see run.py).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .common import add_model_args, budget_ms, load_model, print_report
from .registry import Command

if TYPE_CHECKING:
    from ..model.manifest import Manifest
    from ..model.profiles import DeviceProfile
    from ..trust.guard import GuardConfig

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # in the ganrt.runtime package
DEMO_CINE = ASSETS / "sim_cine_512.mp4"


def _add_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--out", type=Path, default=Path("out"))
    p.add_argument("--budget-ms", type=budget_ms, default=None)
    p.add_argument("--no-overlay", action="store_true")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def guard_config(profile: DeviceProfile, manifest: Manifest, *, region: str | None = None, mask_phi: bool = False,
                 fidelity: bool = True, temporal: str | None = None) -> GuardConfig:
    """The profile's [region], [phi] and [temporal] with the command line's overrides; the
    fidelity threshold, the local-mean limits and the input domain from the manifest (defaults
    when it has none; ``fidelity=False`` turns all three output checks off). Without a [region]
    the bundle's modality decides (ultrasound: detected, see RegionConfig.default_for)."""
    from ..trust.domain import DomainConfig
    from ..trust.fidelity import FidelityConfig
    from ..trust.guard import GuardConfig
    from ..trust.region import RegionConfig
    from ..trust.temporal import TemporalConfig
    from ..trust.tone import ToneConfig

    base = profile.region if profile.region is not None else RegionConfig.default_for(manifest.modality)
    return GuardConfig(
        region=RegionConfig.parse(region, base=base) if region else base,
        fidelity=FidelityConfig.from_manifest(manifest) if fidelity else None,
        tone=ToneConfig.from_manifest(manifest) if fidelity else None,
        domain=DomainConfig.from_manifest(manifest) if fidelity else None,
        temporal=TemporalConfig.parse(temporal) if temporal else profile.temporal,
        phi=replace(profile.phi, enabled=True) if mask_phi else profile.phi,
    )


def run_demo(args: argparse.Namespace) -> int:
    """The embedded default: the bundled simulated cine (looped to 6 s) replayed at its native
    30 fps, plus the real echocardiography cine that ships with pydicom when it is installed.
    The imaging region is detected (the echo cine's scanner UI stays untouched) and every
    enhanced frame passes the fidelity check."""
    from ..serve.stream import RunSetup, StreamSpec, stream_once
    from ..sinks.specs import parse_sinks

    manifest, profile, selection = load_model(args)
    if not DEMO_CINE.exists():
        raise ConfigError(f"bundled demo cine missing: {DEMO_CINE}")
    specs = [StreamSpec(str(DEMO_CINE), args.out, "demo_", realtime=True, loop=True, max_frames=180)]
    try:
        from pydicom.data import get_testdata_file

        echo = get_testdata_file("examples_ybr_color.dcm")
        if echo:
            specs.append(StreamSpec(str(echo), args.out, "demo_echo_", realtime=True, loop=True, max_frames=90))
    except ImportError:
        print("(pydicom not installed: skipping the real echocardiography cine; install ganrt[dicom])")
    setup = RunSetup(manifest, profile, selection, sinks=parse_sinks(["side-by-side"]),
                     guard=guard_config(profile, manifest, region="auto", fidelity=True), budget_ms=args.budget_ms,
                     overlay=not args.no_overlay)
    for spec in specs:
        report = stream_once(spec, setup)
        print_report(report, args, f"{Path(spec.source).name} -> {args.out}/{spec.stem}side_by_side.mp4, "
                                   f"{spec.stem}record.jsonl, {spec.stem}report.json")
    return 0


COMMANDS = (
    Command("demo", "bundled ultrasound cine through the bundled student; writes video, record, report",
            build=_add_args, handler=run_demo, epilog=True),
)
