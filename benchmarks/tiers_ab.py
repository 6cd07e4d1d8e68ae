"""Real time with and without the reduced tier, alternated on one machine in one process.

    python -m ganrt.benchmarks.tiers_ab [--pairs 3] [--frames 300] [--checks] [--out benchmarks/results]

Each pair replays the bundled cine at its native rate through the pipeline twice, once with
``[tiers] enabled = false`` (full resolution or raw) and once with the profile's tiers, in
alternating order, so both see the same background load. Per run: frames by tier, raw for time
(see ``pipeline_bench.TIME_REASONS``) or dropped, and the shortest run between switches; the
load average is recorded before each run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from tempfile import TemporaryDirectory

from ganrt.benchmarks.env import describe, environment, save_result
from ganrt.benchmarks.pipeline_bench import Mode, PipelineBenchConfig, _one_mode
from ganrt.runtime.backends.registry import parse_backend, select
from ganrt.runtime.cli.demo import DEMO_CINE, guard_config
from ganrt.runtime.model.manifest import Manifest, bundled_model_dir
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.model.profiles import DeviceProfile
from ganrt.runtime.serve.tiers import TierConfig
from ganrt.runtime.trust.guard import GuardConfig

KEPT = ("tiers", "passthrough_by_reason", "dropped_by_reason", "raw_or_dropped", "raw_or_dropped_for_time", "startup_frames",
        "raw_or_dropped_for_time_after_startup", "enhanced_raw_switches", "min_run_between_switches",
        "time_switches", "min_run_between_time_switches")


def run_ab(manifest: Manifest, profile: DeviceProfile, pairs: int, frames: int, checks: bool) -> dict:
    sel = select(manifest, parse_backend("auto"), profile, None)
    guard = guard_config(profile, manifest) if checks else GuardConfig()
    arms = {"single": TierConfig(enabled=False), "tiers": profile.tiers}
    cfg = PipelineBenchConfig(source=str(DEMO_CINE), frames=frames, keep_per_frame=False, checks=checks)
    runs = []
    with sel.runner as runner, TemporaryDirectory() as td:
        enhancer = Enhancer(runner, manifest, artifact=sel.artifact)
        for i in range(pairs):
            for arm in (("single", "tiers") if i % 2 == 0 else ("tiers", "single")):
                load = os.getloadavg()[0]
                m = _one_mode(Mode.REALTIME, cfg, enhancer, profile.budget_ms, Path(td), guard, arms[arm])
                runs.append({"pair": i, "arm": arm, "load_avg_1m_before": round(load, 2), **{k: m[k] for k in KEPT}})
    t = profile.threads
    return {"benchmark": "tiers_ab", "what": __doc__.splitlines()[0], "source": DEMO_CINE.name, "frames": frames,
            "profile": profile.name, "budget_ms": profile.budget_ms, "checks": checks,
            "tiers": dataclasses.asdict(profile.tiers), "runs": runs,
            "environment": environment({"profile": profile.name, "intra_op": t.intra_op, "inter_op": t.inter_op,
                                        "spin": t.spin})}


def to_markdown(r: dict) -> str:
    lines = [f"# Real time with and without the reduced tier ({r['source']}, {r['frames']} frames a run, "
             f"budget {r['budget_ms']:g} ms, output checks {'on' if r['checks'] else 'off'})", "",
             f"{describe(r['environment'])}. Tiers: {r['tiers']}.", "",
             "| pair | arm | load 1 min | tiers shown | raw or dropped (any reason) | raw for time or dropped | "
             "after start-up | shortest run between enhanced/raw switches |", "|---|---|---|---|---|---|---|---|"]
    for x in r["runs"]:
        lines.append(f"| {x['pair']} | {x['arm']} | {x['load_avg_1m_before']} | {x['tiers']} | "
                     f"{100 * x.get('raw_or_dropped', float('nan')):.1f}% | {100 * x['raw_or_dropped_for_time']:.1f}% | "
                     f"{100 * x['raw_or_dropped_for_time_after_startup']:.1f}% | {x['min_run_between_switches'] or '-'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--checks", action="store_true", help="the bundle's default output checks (default: none)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    a = ap.parse_args(argv)
    r = run_ab(Manifest.load(bundled_model_dir()), DeviceProfile.load("cpu-x86-2core"), a.pairs, a.frames, a.checks)
    stem = "tiers_ab_cpu" + ("_checks" if a.checks else "")
    print(save_result(a.out, stem, r, to_markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
