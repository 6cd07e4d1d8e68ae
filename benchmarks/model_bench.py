"""Model-only latency (`ganrt bench`): warm-up excluded, fixed iterations or a duration,
percentiles, throughput, run-to-run spread; with ``--compare`` several backend/precision/size
combinations in one run, interleaved, with ratios against a baseline.

What is timed: host wall time around ``runner.infer(feeds)``. The input is already a float
tensor in host memory and the output comes back as a host array, so on a GPU backend the copies
and the synchronisation are inside the number (the torch runner also reports H2D / compute /
D2H from CUDA events). Decode, pre/post-processing and display are not: that is
``ganrt bench pipeline``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ganrt.benchmarks.env import describe, environment
from ganrt.benchmarks.timing import Candidate, Plan, Warmup, analyse, run_interleaved
from ganrt.runtime.backends.base import Backend
from ganrt.runtime.backends.registry import Selection, parse_backend, select
from ganrt.runtime.errors import BackendUnavailable, ConfigError, ModelError, SourceError
from ganrt.runtime.model.manifest import Manifest, Precision
from ganrt.runtime.model.profiles import DeviceProfile

__all__ = ["ASSET_CINE", "Shape", "InputKind", "Combo", "bench_model", "compare", "environment", "format_bench",
           "format_compare", "parse_combos", "realistic_inputs"]

ASSET_CINE = Path(__file__).resolve().parent.parent / "runtime" / "assets" / "sim_cine_512.mp4"
BENCH_SEED0 = 950_000  # simulated inputs come from the held-out benchmark seed range
MEASURED = ("host wall time (perf_counter_ns) around runner.infer(feeds): float tensor in host memory -> output "
            "array in host memory; GPU backends include H2D/D2H copies and synchronisation; excludes decode, "
            "pre/post-processing and display (see `ganrt bench pipeline`)")


@dataclass(frozen=True)
class Shape:
    n: int
    c: int
    h: int
    w: int

    @classmethod
    def parse(cls, text: str) -> Shape:
        try:
            n, c, h, w = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--shape must look like 1x1x512x512 (got {text!r})") from None
        if min(n, c, h, w) < 1:
            raise ConfigError(f"--shape dimensions must be positive (got {text!r})")
        if max(h, w) > MAX_SIDE or n > MAX_BATCH or c > 4:
            raise ConfigError(f"--shape {text!r} is out of range (batch <= {MAX_BATCH}, channels <= 4, "
                              f"height and width <= {MAX_SIDE})")
        return cls(n, c, h, w)

    def with_hw(self, h: int, w: int) -> Shape:
        return Shape(self.n, self.c, h, w)

    def __str__(self) -> str:
        return f"{self.n}x{self.c}x{self.h}x{self.w}"


MAX_SIDE = 8192  # an 8K frame; larger shapes would only fail to allocate
MAX_BATCH = 64


class InputKind(Enum):
    CINE = "cine"  # frames spread over the bundled simulated cine (fast, no extras)
    SIM = "sim"  # fresh simulator renders (needs the export extra's simulator; slower)


def _cine_frames(count: int, cine: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(cine))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    step = max(1, total // max(count, 1)) if total else 1  # spread over the cine: distinct content
    frames, i = [], 0
    while len(frames) < count:
        ok, f = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(f)
        i += 1
    cap.release()
    if not frames:
        raise SourceError(f"benchmark input cine missing or unreadable: {cine}")
    return frames


def _sim_frames(count: int, hw: tuple[int, int]) -> list[np.ndarray]:
    from ganrt.export.data.simulator import SimConfig, render_pair

    cfg = SimConfig(out_hw=hw)
    return [(np.clip(render_pair(BENCH_SEED0 + i, cfg).input, 0, 1) * 255 + 0.5).astype(np.uint8) for i in range(count)]


def realistic_inputs(shape: Shape, count: int = 4, cine: Path = ASSET_CINE,
                     kind: InputKind = InputKind.CINE) -> list[np.ndarray]:
    """``count`` distinct ultrasound frames as float NCHW tensors of ``shape``, never zeros.

    Several inputs are rotated through so caches cannot flatter the number."""
    if count < 1:
        raise ConfigError("--inputs must be >= 1")
    raw = _cine_frames(count * shape.n, cine) if kind is InputKind.CINE else _sim_frames(count * shape.n, (shape.h, shape.w))
    out = []
    for i in range(count):
        batch = []
        for j in range(shape.n):
            f = raw[(i * shape.n + j) % len(raw)]
            f = cv2.resize(f, (shape.w, shape.h), interpolation=cv2.INTER_LINEAR)
            if f.ndim == 2:
                f = f[None] if shape.c == 1 else np.repeat(f[None], shape.c, 0)
            else:
                f = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)[None] if shape.c == 1 else f.transpose(2, 0, 1)
            batch.append(f.astype(np.float32) / 255.0)
        out.append(np.ascontiguousarray(np.stack(batch)))
    return out


# --- what to compare ------------------------------------------------------------------------------

_ITEM = re.compile(r"^(?:(?P<backend>[a-z]+)/)?(?P<precision>[a-z0-9-]+)(?:@(?P<size>\d+(?:x\d+)?))?$")


@dataclass(frozen=True)
class Combo:
    backend: Backend
    precision: Precision
    hw: tuple[int, int]

    def label(self, with_backend: bool = False) -> str:
        h, w = self.hw
        size = f"{h}" if h == w else f"{h}x{w}"
        return f"{self.backend.value + '/' if with_backend else ''}{self.precision.value}@{size}"


def _size(text: str, where: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1 or max(parts) > MAX_SIDE:
        raise ConfigError(f"{where}: size must be N or HxW, each in 1..{MAX_SIDE} (got {text!r})")
    return (parts[0], parts[-1])


def parse_combos(spec: str | None, sizes: str | None, backend: Backend, default_hw: tuple[int, int],
                 precisions: Sequence[Precision]) -> list[Combo]:
    """``--compare [ITEMS]`` x ``--sizes``. ITEM = ``[backend/]precision[@N|@HxW]``; no ITEMS means every
    precision the bundle has. Items without a size take each of ``--sizes`` (default: --shape's)."""
    hws = [_size(s.strip(), "--sizes") for s in sizes.split(",") if s.strip()] if sizes else [default_hw]
    items = [s.strip() for s in spec.split(",") if s.strip()] if spec else [p.value for p in precisions]
    combos: list[Combo] = []
    for item in items:
        m = _ITEM.match(item.lower())
        if not m:
            raise ConfigError(f"--compare item {item!r} must look like [backend/]precision[@size], e.g. "
                              f"fp32@512 or onnxruntime/int8-cpu@256x320")
        b = parse_backend(m["backend"]) if m["backend"] else backend
        try:
            p = Precision(m["precision"])
        except ValueError:
            raise ConfigError(f"--compare item {item!r}: unknown precision {m['precision']!r} "
                              f"(choose from {', '.join(x.value for x in Precision)})") from None
        for hw in ([_size(m["size"], "--compare")] if m["size"] else hws):
            c = Combo(b, p, hw)
            if c not in combos:
                combos.append(c)
    order = {hw: i for i, hw in enumerate(hws)}  # group the table by size, in the order --sizes gave them
    return sorted(combos, key=lambda c: order.get(c.hw, len(order)))


# --- running ----------------------------------------------------------------------------------------


@dataclass
class _Live:
    combo: Combo
    sel: Selection
    shape: Shape
    runner: Any
    stages: Callable[[], dict[str, float]] | None


def _stage_timed(sel: Selection, manifest: Manifest, profile: DeviceProfile) -> tuple[Any, bool]:
    """The torch runner on a GPU already times H2D / compute / D2H with CUDA events; ask it to."""
    if sel.backend is not Backend.TORCH or not str(getattr(sel.runner, "device", "")).startswith("cuda"):
        return sel.runner, False
    from ganrt.runtime.backends.torch.runner import TorchRunner

    return TorchRunner(manifest, sel.precision, device=sel.runner.device, cuda_graphs=profile.tensorrt.cuda_graphs,
                       stage_timing=True), True


def _threads(profile: DeviceProfile) -> dict[str, Any]:
    t = profile.threads
    return {"profile": profile.name, "intra_op": t.intra_op, "inter_op": t.inter_op, "spin": t.spin,
            "opencv": cv2.getNumThreads()}


def compare(manifest: Manifest, profile: DeviceProfile, combos: Sequence[Combo], shape: Shape, plan: Plan,
            warmup: Warmup, inputs: int = 8, input_kind: InputKind = InputKind.CINE,
            baseline: Combo | None = None, keep_samples: bool = True,
            progress: Callable[[str], None] | None = None, baseline_per_size: bool = True) -> dict[str, Any]:
    """Time every combo in one interleaved run. Combos that cannot run here are listed as skipped.

    Ratios: each combo against the baseline's backend/precision *at its own size* (when that was
    measured and ``baseline_per_size``), else against the baseline combo itself (default: the first)."""
    skipped, chosen = [], []
    for c in combos:
        try:
            chosen.append((c, select(manifest, c.backend, profile, c.precision)))
        except (BackendUnavailable, ModelError) as exc:
            skipped.append({"combo": c.label(True), "reason": str(exc)})
    if not chosen:
        raise BackendUnavailable("nothing to benchmark: " + "; ".join(f"{s['combo']}: {s['reason']}" for s in skipped))
    with_backend = len({sel.backend for _, sel in chosen}) > 1
    inputs_by_shape: dict[Shape, list[np.ndarray]] = {}
    lives: list[_Live] = []
    with ExitStack() as stack:
        for c, sel in chosen:
            runner, staged = _stage_timed(sel, manifest, profile)
            stack.enter_context(runner)
            s = shape.with_hw(*c.hw)
            if s not in inputs_by_shape:
                inputs_by_shape[s] = realistic_inputs(s, inputs, kind=input_kind)
            lives.append(_Live(c, sel, s, runner, (lambda r=runner: r.last_stage_ms) if staged else None))
        def label(lv: _Live) -> str:  # the backend that actually runs it (auto resolved)
            return Combo(lv.sel.backend, lv.combo.precision, lv.combo.hw).label(with_backend)

        cands = []
        for lv in lives:
            name, dtype = lv.runner.io.input_name, lv.runner.io.input_dtype
            feeds = [{name: x.astype(dtype, copy=False)} for x in inputs_by_shape[lv.shape]]
            cands.append(Candidate(label(lv), lambda i, r=lv.runner, f=feeds: r.infer(f[i % len(f)]), stages=lv.stages))
        base = baseline or lives[0].combo
        by_combo = {lv.combo: label(lv) for lv in lives}
        if base not in by_combo:
            raise ConfigError(f"--baseline {base.label()} is not among the compared combos "
                              f"({', '.join(c.name for c in cands)})")
        base_label = by_combo[base]
        base_for = {}
        for lv, cand in zip(lives, cands):
            same = Combo(base.backend, base.precision, lv.combo.hw)
            base_for[cand.name] = by_combo[same] if baseline_per_size and same in by_combo else base_label
        on_round = (lambda rep, r: progress(f"repeat {rep + 1}/{plan.repeats}, round {r + 1}")) if progress else None
        samples = run_interleaved(cands, plan, warmup, on_round=on_round)
        stats = analyse(samples, plan, base_label, per_call_frames=shape.n, baseline_for=base_for)
        total_rounds = 1 + max(max(s.round) for s in samples.values())
        rows = []
        for lv, cand in zip(lives, cands):
            row = {"label": cand.name, "backend": lv.sel.backend.value, "precision": lv.sel.precision.value,
                   "artifact": lv.sel.artifact.path.name, "runner": lv.runner.io.description,
                   "shape": [lv.shape.n, lv.shape.c, lv.shape.h, lv.shape.w], **stats[cand.name]}
            if keep_samples:
                row["samples_ms"] = [round(v, 4) for v in samples[cand.name].ms]
                row["sample_round"] = samples[cand.name].round
            rows.append(row)
    return {
        "benchmark": "model",
        "measured": MEASURED,
        "model": {"bundle": str(manifest.root), "model_id": manifest.model_id, "task": manifest.task},
        "plan": {"iterations": plan.iterations if plan.duration_s is None else None, "duration_s": plan.duration_s,
                 "per_round": plan.per_round, "settle": plan.settle, "blocks": plan.blocks, "repeats": plan.repeats,
                 "rounds": total_rounds, "order": "interleaved round-robin, start rotated each round"},
        "warmup": {"iterations": warmup.iterations, "seconds": warmup.seconds},
        "inputs": {"count": inputs, "kind": input_kind.value,
                   "source": str(ASSET_CINE.name) if input_kind is InputKind.CINE else f"simulator seeds {BENCH_SEED0}.."},
        "baseline": base_label,
        "baseline_rule": "same backend/precision as the baseline at each combo's own size" if baseline_per_size
                         else "the baseline combo",
        "candidates": rows,
        "skipped": skipped,
        "environment": environment(_threads(profile)),
    }


def bench_model(sel: Selection, shape: Shape, plan: Plan, warmup: Warmup, *, manifest: Manifest,
                profile: DeviceProfile, inputs: int = 8, input_kind: InputKind = InputKind.CINE) -> dict[str, Any]:
    """One backend/precision/shape (``ganrt bench`` without --compare): the run of a one-combo compare,
    with that combo's numbers also at the top level (the keys ``ganrt bench --json`` always had)."""
    combo = Combo(sel.backend, sel.precision, (shape.h, shape.w))
    res = compare(manifest, profile, [combo], shape, plan, warmup, inputs, input_kind)
    row = res["candidates"][0]
    flat = {k: row[k] for k in ("backend", "precision", "artifact", "runner", "shape", "latency_ms", "throughput_fps",
                                "warmup_excluded", "spread_blocks", "spread_repeats", "stages_ms") if k in row}
    flat.update(iterations=row["latency_ms"]["n"], warmup=warmup.iterations)
    return {**flat, **{k: v for k, v in res.items() if k not in flat}}


# --- text ------------------------------------------------------------------------------------------------


def format_bench(r: dict) -> str:
    s = r["latency_ms"]
    sp = r.get("spread_blocks", {})
    lines = [
        f"{r['backend']} {r['precision']} {'x'.join(map(str, r['shape']))} ({r['runner']})",
        f"  latency ms: min {s['min']:.2f}  mean {s['mean']:.2f}  median {s['median']:.2f}  p90 {s['p90']:.2f}  "
        f"p95 {s['p95']:.2f}  p99 {s['p99']:.2f}  p99.9 {s['p99_9']:.2f}  max {s['max']:.2f}  "
        f"(cv {s['cv']:.3f}, n={s['n']})",
        f"  throughput: {r['throughput_fps']:.1f} frames/s",
    ]
    if sp:
        lines.append(f"  run-to-run: block medians {sp['min']:.2f}..{sp['max']:.2f} ms "
                     f"(spread {sp['range_pct']:.1f}% of the median; smaller differences are noise)")
    for k, v in r.get("stages_ms", {}).items():
        lines.append(f"  {k:8s} median {v['median']:.3f} ms  p99 {v['p99']:.3f} ms (CUDA events)")
    return "\n".join(lines)


def format_compare(r: dict) -> str:
    plan, env = r["plan"], r["environment"]
    rows = r["candidates"]
    n = rows[0]["latency_ms"]["n"] if rows else 0
    head = (f"model-only latency, {describe(env)}\n"
            f"{n} timed calls each after warm-up, interleaved round-robin ({plan['rounds']} rounds, "
            f"{plan['per_round']} per turn, {plan['repeats']} repeat(s)); baseline {r['baseline']}")
    cols = ("combo", "min", "mean", "median", "p90", "p95", "p99", "p99.9", "max", "cv", "fps", "spread%", "ratio",
            "block ratios", "vs")
    table = [cols]
    for row in rows:
        s, v, sp = row["latency_ms"], row["vs_baseline"], row["spread_blocks"]
        rep = row.get("spread_repeats")
        spread_txt = f"{sp['range_pct']:.1f}" + (f"/{rep['range_pct']:.1f}" if rep else "")
        table.append((row["label"], *(f"{s[k]:.2f}" for k in ("min", "mean", "median", "p90", "p95", "p99", "p99_9", "max")),
                      f"{s['cv']:.3f}", f"{row['throughput_fps']:.1f}", spread_txt, f"{v['median_ratio']:.3f}",
                      f"{v['block_ratio_min']:.3f}-{v['block_ratio_max']:.3f}", v["baseline"]))
    widths = [max(len(str(t[i])) for t in table) for i in range(len(cols))]
    lines = [head, ""] + ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(t, widths)))
                          for t in table]
    lines.append("")
    lines.append("latency in ms (host wall time around runner.infer); ratio = median / baseline median (<1 is "
                 "faster) vs the combo in the last column; spread% = range of block medians over the median "
                 "(differences below it are noise; /repeats when --repeats > 1); block ratios = the ratio in each "
                 "block of rounds.")
    for s in r.get("skipped", []):
        lines.append(f"skipped {s['combo']}: {s['reason']}")
    return "\n".join(lines)


def run_cli_compare(args, manifest: Manifest, profile: DeviceProfile) -> dict[str, Any]:
    """``ganrt bench --compare`` from parsed CLI options."""
    shape = Shape.parse(args.shape)
    backend = parse_backend(args.backend)
    have = [p for p in Precision if any(a.precision is p for a in manifest.artifacts.values())]
    if args.precision and not args.compare:  # --precision P --compare --sizes ...: that precision at each size
        have = [Precision.parse(args.precision)]
    combos = parse_combos(args.compare, args.sizes, backend, (shape.h, shape.w), have)
    baseline = None
    if args.baseline:
        bl = parse_combos(args.baseline, None, backend, (shape.h, shape.w), have)
        if len(bl) != 1:
            raise ConfigError("--baseline names one combo, e.g. fp32@512")
        baseline = bl[0]
        if "@" not in args.baseline:  # a precision: it must be measured at some size
            baseline = next((c for c in combos if (c.backend, c.precision) == (baseline.backend, baseline.precision)),
                            baseline)
        if baseline not in combos:
            raise ConfigError(f"--baseline {baseline.label()} is not among the compared combos "
                              f"({', '.join(c.label() for c in combos)})")
    return compare(manifest, profile, combos, shape, plan_from_args(args), warmup_from_args(args), args.inputs,
                   InputKind(args.input), baseline, baseline_per_size="@" not in (args.baseline or ""))


def plan_from_args(args) -> Plan:
    return Plan(iterations=args.iterations, duration_s=args.duration, per_round=args.per_round, blocks=args.blocks,
                repeats=args.repeats)


def warmup_from_args(args) -> Warmup:
    return Warmup(args.warmup, args.warmup_s or 0.0)
