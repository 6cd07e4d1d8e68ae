"""Speed of a retrained bundle against the one it replaces: the same precisions, the same inputs, one
interleaved run, so the ratio is fair on a noisy machine (absolute numbers from two runs are not).

`python -m ganrt.benchmarks.bundle_ab --old DIR [--new DIR | --bundle intraop-enhance] [--size 512]
[--precisions fp32,int8-cpu] --out DIR` writes ``bundle_ab_<bundle>.json`` / ``.md``: model-only
latency (ONNX Runtime, the profile's threads) of each precision of both bundles and new / old.
The older bundle is any bundle directory, e.g. a previous commit's ``runtime/models/<bundle>``
checked out into a temporary folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ganrt.runtime.backends.base import Backend
from ganrt.runtime.backends.registry import select
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir
from ganrt.runtime.model.profiles import DEFAULT_PROFILE, DeviceProfile

from .env import describe, environment, save_result
from .model_bench import Shape, realistic_inputs
from .timing import Candidate, Plan, Warmup, analyse, run_interleaved


def _candidates(bundles: dict[str, Manifest], precisions: Sequence[Precision], profile: DeviceProfile,
                size: int, stack: ExitStack) -> tuple[list[Candidate], dict[str, str]]:
    """One candidate per bundle x precision; each new one is compared with the old one of its precision."""
    cands, baseline_for = [], {}
    for prec in precisions:
        for label, manifest in bundles.items():
            sel = select(manifest, Backend.ONNXRUNTIME, profile, prec)
            runner = stack.enter_context(sel.runner)
            inputs = realistic_inputs(Shape(1, manifest.input.channels, size, size), count=4)
            feeds = [{runner.io.input_name: x.astype(runner.io.input_dtype)} for x in inputs]
            cands.append(Candidate(f"{label} {prec.value}", lambda i, r=runner, f=feeds: r.infer(f[i % len(f)])))
            baseline_for[f"{label} {prec.value}"] = f"old {prec.value}"
    return cands, baseline_for


def run(old: Path, new: Path, precisions: Sequence[Precision], size: int = 512, iterations: int = 200,
        profile_name: str = DEFAULT_PROFILE) -> dict[str, Any]:
    profile = DeviceProfile.load(profile_name)
    bundles = {"old": Manifest.load(old), "new": Manifest.load(new)}
    plan = Plan(iterations=iterations, blocks=5)
    with ExitStack() as stack:
        cands, baseline_for = _candidates(bundles, precisions, profile, size, stack)
        res = analyse(run_interleaved(cands, plan, Warmup(iterations=20)), plan, baseline_for=baseline_for)
    return {"env": environment(), "profile": profile.name, "size": size, "iterations": iterations,
            "bundles": {k: {"dir": str(d), "model_id": bundles[k].model_id} for k, d in (("old", old), ("new", new))},
            "candidates": res}


def to_markdown(r: dict[str, Any]) -> str:
    lines = [f"# Bundle speed A/B at {r['size']}x{r['size']} (ONNX Runtime, profile {r['profile']})", "",
             f"{describe(r['env'])}; load {r['env'].get('load_avg')}; {r['iterations']} timed calls each, "
             f"interleaved. old = {r['bundles']['old']['model_id']}, new = {r['bundles']['new']['model_id']}.", "",
             "| candidate | median ms | p90 ms | p99 ms | vs old, same precision (median ratio) |", "|---|---|---|---|---|"]
    for name, c in r["candidates"].items():
        lat, vs = c["latency_ms"], c["vs_baseline"]
        lines.append(f"| {name} | {lat['median']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} | "
                     f"{vs['median_ratio']:.3f} (blocks {vs['block_ratio_min']:.3f}-{vs['block_ratio_max']:.3f}) |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", type=Path, required=True, help="the bundle directory being replaced")
    ap.add_argument("--new", type=Path, default=None, help="the new bundle (default: the packaged --bundle)")
    ap.add_argument("--bundle", default="intraop-enhance", help="packaged bundle name for --new and the file name")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--precisions", default="fp32,int8-cpu")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    new = args.new or bundled_model_dir(args.bundle)
    result = run(args.old, new, [Precision.parse(p) for p in args.precisions.split(",")], args.size, args.iterations)
    print(save_result(args.out, f"bundle_ab_{args.bundle}", result, to_markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
