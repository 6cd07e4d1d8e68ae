"""`ganrt demo` and what `ganrt run` shares with it: the checks around the model and the printed report.

Both go through ``stream.stream_once`` (one source on its own runner); `ganrt run` with
several sources goes through ``multistream.run_streams`` (see run.py).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError
from ..trust.domain import DomainConfig
from ..trust.fidelity import FidelityConfig
from ..trust.guard import GuardConfig
from ..model.manifest import Manifest
from ..model.profiles import DeviceProfile
from ..trust.region import RegionConfig
from ..records.report import Report
from ..sinks.specs import parse_sinks
from ..serve.stream import RunSetup, StreamSpec, stream_once
from ..trust.temporal import TemporalConfig
from ..trust.tone import ToneConfig

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # in the ganrt.runtime package
DEMO_CINE = ASSETS / "sim_cine_512.mp4"


def guard_config(profile: DeviceProfile, manifest: Manifest, *, region: str | None = None, mask_phi: bool = False,
                 fidelity: bool = True, temporal: str | None = None) -> GuardConfig:
    """The profile's [region], [phi] and [temporal] with the command line's overrides; the
    fidelity threshold, the local-mean limits and the input domain from the manifest (defaults
    when it has none; ``fidelity=False`` turns all three output checks off). Without a [region]
    the bundle's modality decides (ultrasound: detected, see RegionConfig.default_for)."""
    base = profile.region if profile.region is not None else RegionConfig.default_for(manifest.modality)
    return GuardConfig(
        region=RegionConfig.parse(region, base=base) if region else base,
        fidelity=FidelityConfig.from_manifest(manifest) if fidelity else None,
        tone=ToneConfig.from_manifest(manifest) if fidelity else None,
        domain=DomainConfig.from_manifest(manifest) if fidelity else None,
        temporal=TemporalConfig.parse(temporal) if temporal else profile.temporal,
        phi=replace(profile.phi, enabled=True) if mask_phi else profile.phi,
    )


def _print(report: Report, args: argparse.Namespace, title: str) -> None:
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
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
                  f"frame unlike its training data; see README 'Trust checks'")


def run_demo(args: argparse.Namespace) -> int:
    """The embedded default: the bundled simulated cine (looped to 6 s) replayed at its native
    30 fps, plus the real echocardiography cine that ships with pydicom when it is installed.
    The imaging region is detected (the echo cine's scanner UI stays untouched) and every
    enhanced frame passes the fidelity check."""
    from . import _load

    manifest, profile, selection = _load(args)
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
        _print(report, args, f"{Path(spec.source).name} -> {args.out}/{spec.stem}side_by_side.mp4, "
                             f"{spec.stem}record.jsonl, {spec.stem}report.json")
    return 0
