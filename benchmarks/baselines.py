"""Student vs the alternatives a user has, in one run: quality and speed of the student at every
precision, the teacher (``--teacher``) and classic OpenCV filters (tuned on calibration seeds).

    python -m ganrt.benchmarks.baselines --teacher runs/us-enhance/teacher_fp32.onnx
    ganrt bench baselines --teacher runs/us-enhance/teacher_fp32.onnx --plot out/

Quality: PSNR / SSIM / gCNR / speckle SNR on held-out simulated pairs (seeds 950000..), flicker on a
held-out simulated cine (seed 951000). Speed: every method in the same interleaved timing harness as
``ganrt bench``, uint8 frame in -> uint8 frame out at 512x512 (the student and teacher through the
pipeline's own pre -> infer -> post; a filter is its OpenCV call).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ganrt.benchmarks import quality as Q
from ganrt.benchmarks.env import describe, environment
from ganrt.benchmarks.filters import FilterKind, applicable, grid
from ganrt.benchmarks.model_bench import ASSET_CINE, _cine_frames
from ganrt.benchmarks.timing import Candidate, Plan, Warmup, analyse, run_interleaved
from ganrt.runtime.backends.base import Backend
from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner, Provider
from ganrt.runtime.backends.registry import select
from ganrt.runtime.errors import ConfigError, ModelError
from ganrt.runtime.frames import Frame
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir, sha256_file
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.model.profiles import DeviceProfile

if TYPE_CHECKING:
    from ganrt.export.tasks import PairSet

SPEED_MEASURED = ("host wall time per uint8 frame -> uint8 frame: student/teacher = pre + runner.infer + post "
                  "(ganrt.runtime.model.ops.Enhancer, as in the pipeline); filter = its OpenCV call")


@dataclass(frozen=True)
class BaselinesConfig:
    frames: int = 24  # held-out pairs for quality
    hw: int = 256  # quality resolution (the simulator's and the training's)
    calib_frames: int = 12  # calibration pairs for the filter sweep
    cine_frames: int = 16
    speed_hw: int = 512
    rounds: int = 8
    per_round: int = 10
    warmup: int = 5
    teacher: Path | None = None
    filters: tuple[FilterKind, ...] = tuple(FilterKind)
    precisions: tuple[Precision, ...] | None = None  # None: every artifact of the bundle except int8-trt

    def __post_init__(self) -> None:
        if min(self.frames, self.calib_frames, self.hw, self.speed_hw, self.rounds, self.per_round) < 1 \
                or self.cine_frames < 2:
            raise ConfigError("baselines: frames, sizes and rounds must be >= 1 (cine frames >= 2)")


@dataclass
class Method:
    name: str
    kind: str  # student | teacher | filter
    fn: Callable[[np.ndarray], np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)
    per_round: int | None = None


def _enhancer_fn(enh: Enhancer) -> Callable[[np.ndarray], np.ndarray]:
    return lambda u8: enh.enhance(Frame(0, 0, u8))


def _teacher_manifest(bundle: Manifest, path: Path) -> Manifest:
    """A one-artifact manifest for the teacher ONNX: same I/O contract as the student (archs.py)."""
    if not path.is_file():
        raise ModelError(f"--teacher {path}: no such file (the teacher lives in the export run directory)")
    raw = {**bundle.raw, "artifacts": {"fp32": {"file": path.name, "precision": "fp32", "sha256": sha256_file(path)}}}
    m = Manifest.from_dict(raw, path.parent, str(path))
    return m


def _speed_frames(hw: int, count: int = 8) -> list[np.ndarray]:
    frames = _cine_frames(count, ASSET_CINE)
    return [cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.ndim == 3 else f, (hw, hw),
                       interpolation=cv2.INTER_LINEAR) for f in frames]


def _not_ahead(student: dict, methods: list[dict], target: dict) -> list[dict]:
    """Each metric on which some other method beats the deployed student, with the best of them."""
    def val(m, key):
        if key == "latency":
            return m["latency_ms"]["median"]
        if key == "flicker":
            return m["flicker"]["excess"]
        return m["quality"][key]

    better = {"psnr": max, "ssim": max, "gcnr": max, "latency": min, "flicker": min}
    out = []
    others = [m for m in methods if m is not student and m["kind"] != "student"]
    for key, pick in better.items():
        s = val(student, key)
        vals = [(val(m, key), m["name"]) for m in others if not math.isnan(val(m, key))]
        wins = [(v, n) for v, n in vals if (v > s if pick is max else v < s)]
        if wins:
            v, n = pick(wins)
            out.append({"metric": key, "student": s, "best_other": n, "value": v, "count": len(wins)})
    # speckle SNR: the target's value is right, not the highest (over-smoothing raises it)
    t = target.get("speckle_snr")
    if t is not None and not math.isnan(t):
        s = abs(student["quality"]["speckle_snr"] - t)
        wins = [(abs(m["quality"]["speckle_snr"] - t), m["name"]) for m in others
                if not math.isnan(m["quality"]["speckle_snr"])]
        wins = [w for w in wins if w[0] < s]
        if wins:
            v, n = min(wins)
            out.append({"metric": "speckle_snr_vs_target", "student": student["quality"]["speckle_snr"], "best_other": n,
                        "value": next(m["quality"]["speckle_snr"] for m in others if m["name"] == n),
                        "count": len(wins)})
    return out


def note_line(r: dict) -> str:
    """One honest line: where the deployed student is not ahead (generated from the numbers)."""
    items = r.get("student_not_ahead", [])
    name = r["deployed_student"]
    if not items:
        return f"{name} is ahead of every compared method on PSNR, SSIM, gCNR, flicker, speckle SNR and latency."
    fmt = {"latency": lambda v: f"{v:.2f} ms", "flicker": lambda v: f"{v:+.4f}",
           "psnr": lambda v: f"{v:.2f} dB"}
    parts = []
    for it in items:
        f = fmt.get(it["metric"], lambda v: f"{v:.3f}")
        t_snr = r["reference"]["target"]["speckle_snr"]
        label = {"speckle_snr_vs_target": f"speckle SNR closeness to the target's {t_snr:.2f}",
                 "latency": "latency", "flicker": "flicker"}.get(it["metric"], it["metric"])
        parts.append(f"{label} ({it['best_other']} {f(it['value'])} vs {f(it['student'])}"
                     f"{'; {} methods beat it'.format(it['count']) if it['count'] > 1 else ''})")
    return f"Where {name} is not ahead: " + "; ".join(parts) + "."


def _filter_methods(kinds: list[FilterKind], scale: int, calib: PairSet, cfg: BaselinesConfig) -> tuple[dict, list[Method]]:
    """Each classic filter with its parameters picked on the calibration seeds, and the sweep tables."""
    sweeps, methods = {}, []
    for k in kinds:
        specs = grid(k, scale)
        best, table = Q.sweep(specs, calib) if len(specs) > 1 else (specs[0], [])
        sweeps[k.value] = {"objective": f"mean PSNR vs target, calibration seeds {Q.CALIBRATION_SEED0}.."
                                        f"{Q.CALIBRATION_SEED0 + cfg.calib_frames - 1} at {cfg.hw}x{cfg.hw}",
                           "chosen": dict(best.params), "table": table}
        methods.append(Method(k.value, "filter", best.apply, {"params": dict(best.params), "call": best.describe()}))
    return sweeps, methods


def _student_methods(stack: ExitStack, manifest: Manifest, profile: DeviceProfile,
                     cfg: BaselinesConfig) -> list[Method]:
    """The student at each precision through ONNX Runtime (runners held open by ``stack``)."""
    deployed = select(manifest, Backend.AUTO, profile).precision
    # int8-trt is left out by default: it is built for TensorRT, and this CPU's fused ORT kernels saturate
    # its signed activations (see the gate semantics in the manifest); its quality on exact Q/DQ
    # arithmetic is in the student-vs-teacher result.
    precisions = cfg.precisions or tuple(p for p in Precision if p is not Precision.INT8_TRT
                                         and any(a.precision is p for a in manifest.artifacts.values()))
    methods = []
    for p in precisions:
        sel = select(manifest, Backend.ONNXRUNTIME, profile, p)
        runner = stack.enter_context(sel.runner)
        enh = Enhancer(runner, manifest, artifact=sel.artifact)
        methods.append(Method(f"student {p.value}", "student", _enhancer_fn(enh),
                              {"precision": p.value, "artifact": sel.artifact.path.name,
                               "runner": runner.io.description, "deployed": p is deployed}))
    return methods


def _teacher_method(stack: ExitStack, manifest: Manifest, profile: DeviceProfile, path: Path) -> Method:
    """The teacher ONNX on the CPU under the student's I/O contract; one call per timing round (it is slow)."""
    t = profile.threads
    tm = _teacher_manifest(manifest, path)
    runner = stack.enter_context(OnnxRuntimeRunner(tm.artifacts["fp32"], (Provider.CPU,), t.intra_op, t.inter_op,
                                                   spin=t.spin))
    teacher = Enhancer(runner, tm, artifact=tm.artifacts["fp32"])
    return Method("teacher fp32", "teacher", _enhancer_fn(teacher),
                  {"path": str(path), "runner": runner.io.description}, per_round=1)


def _speed(methods: list[Method], cfg: BaselinesConfig) -> dict[str, dict]:
    """Every method in the interleaved timing harness on uint8 frames at the speed resolution."""
    frames = _speed_frames(cfg.speed_hw)
    plan = Plan(iterations=cfg.rounds * cfg.per_round, per_round=cfg.per_round, blocks=min(4, cfg.rounds))
    cands = [Candidate(m.name, lambda i, fn=m.fn: fn(frames[i % len(frames)]), per_round=m.per_round,
                       iterations=cfg.rounds if m.per_round == 1 else None,
                       warmup=Warmup(1) if m.per_round == 1 else None) for m in methods]
    samples = run_interleaved(cands, plan, Warmup(cfg.warmup))
    return analyse(samples, plan, methods[0].name)


def _measure(manifest: Manifest, profile: DeviceProfile, cfg: BaselinesConfig, filters: list[Method],
             held: PairSet, cin: Q.Cine) -> list[dict]:
    """One row per method (students first, then filters, then the teacher): quality, flicker and speed."""
    with ExitStack() as stack:
        methods = _student_methods(stack, manifest, profile, cfg) + filters
        if cfg.teacher is not None:
            methods.append(_teacher_method(stack, manifest, profile, Path(cfg.teacher)))
        rows = []
        for m in methods:
            rows.append({"name": m.name, "kind": m.kind, **m.info, "quality": Q.judge(m.fn, held),
                         "flicker": Q.flicker(m.fn, cin)})
        stats = _speed(methods, cfg)
    for row in rows:
        st = stats[row["name"]]
        row.update(latency_ms=st["latency_ms"], throughput_fps=st["throughput_fps"], spread_blocks=st["spread_blocks"])
    return rows


def _sets(cfg: BaselinesConfig) -> dict[str, dict]:
    """What the quality, calibration, cine and speed numbers were measured on."""
    return {
        "quality_set": {"seeds": [Q.HELD_OUT_SEED0, Q.HELD_OUT_SEED0 + cfg.frames - 1], "frames": cfg.frames,
                        "hw": [cfg.hw, cfg.hw], "region": "PSNR/SSIM whole frame; gCNR lesion vs ring; speckle SNR "
                                                          "homogeneous tissue"},
        "calibration_set": {"seeds": [Q.CALIBRATION_SEED0, Q.CALIBRATION_SEED0 + cfg.calib_frames - 1],
                            "used_for": "filter parameter sweep only"},
        "cine": {"seed": Q.CINE_SEED, "frames": cfg.cine_frames, "hw": [cfg.hw, cfg.hw],
                 "flicker": "mean |frame t - frame t-1| in the sector, output minus input (0..1 units)"},
        "speed": {"hw": [cfg.speed_hw, cfg.speed_hw], "measured": SPEED_MEASURED, "rounds": cfg.rounds,
                  "per_round": cfg.per_round, "order": "interleaved round-robin (teacher: 1 call per round)",
                  "note": "filter parameters were chosen at the quality resolution and used unchanged here"},
    }


def run(manifest: Manifest, profile: DeviceProfile, cfg: BaselinesConfig) -> dict[str, Any]:
    from ganrt.export.tasks import get_task

    task = get_task(manifest.task)
    held = Q.pairs(task, Q.HELD_OUT_SEED0, cfg.frames, cfg.hw)
    calib = Q.pairs(task, Q.CALIBRATION_SEED0, cfg.calib_frames, cfg.hw)
    cin = Q.cine(Q.CINE_SEED, cfg.cine_frames, cfg.hw)
    kinds, not_applicable = applicable(cfg.filters, manifest.scale)
    sweeps, filters = _filter_methods(kinds, manifest.scale, calib, cfg)
    rows = _measure(manifest, profile, cfg, filters, held, cin)

    ident = lambda u8: u8  # noqa: E731 - the raw frame, through the same uint8 path
    reference = {"input": {**Q.judge(ident, held), "flicker_change": Q.flicker(None, cin)["input"]},
                 "target": {**Q.quality(held.targets, held), "flicker_change": Q.flicker(None, cin)["target"]}}
    student_row = next(r for r in rows if r["kind"] == "student" and r.get("deployed")) if any(
        r.get("deployed") for r in rows) else next(r for r in rows if r["kind"] == "student")
    result = {
        "benchmark": "baselines", "task": manifest.task, "model_id": manifest.model_id,
        **_sets(cfg),
        "reference": reference,
        "methods": rows,
        "sweep": sweeps,
        "not_applicable": not_applicable + ([] if cfg.teacher else [{"name": "teacher", "reason": "no --teacher given"}]),
        "deployed_student": student_row["name"],
    }
    result["student_not_ahead"] = _not_ahead(student_row, rows, reference["target"])
    result["note"] = note_line(result)
    t = profile.threads
    result["environment"] = environment({"profile": profile.name, "intra_op": t.intra_op, "inter_op": t.inter_op,
                                         "spin": t.spin, "opencv": cv2.getNumThreads()})
    return result


def to_markdown(r: dict) -> str:
    q, s = r["quality_set"], r["speed"]
    lines = [f"# {r['task']}: student vs teacher vs classic filters", "",
             f"{describe(r['environment'])}.", "",
             f"Quality: {q['frames']} held-out simulated scenes {q['hw'][0]}², seeds {q['seeds'][0]}..{q['seeds'][1]}; "
             f"flicker on a {r['cine']['frames']}-frame held-out cine (seed {r['cine']['seed']}). Speed: median of "
             f"{s['rounds']} interleaved rounds at {s['hw'][0]}², uint8 frame -> uint8 frame.", "",
             "| method | settings | PSNR dB | SSIM | gCNR | speckle SNR | flicker | median ms | p99 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, ref in r["reference"].items():
        lines.append(f"| {name} (reference) | | {ref['psnr']:.2f} | {ref['ssim']:.4f} | {ref['gcnr']:.3f} | "
                     f"{ref['speckle_snr']:.2f} | | | |")
    for m in r["methods"]:
        settings = m.get("call") or m.get("artifact") or ""
        ql, lat = m["quality"], m["latency_ms"]
        lines.append(f"| {m['name']}{' (deployed)' if m.get('deployed') else ''} | {settings} | {ql['psnr']:.2f} | "
                     f"{ql['ssim']:.4f} | {ql['gcnr']:.3f} | {ql['speckle_snr']:.2f} | {m['flicker']['excess']:+.4f} | "
                     f"{lat['median']:.2f} | {lat['p99']:.2f} |")
    lines += ["", "flicker = mean frame-to-frame change of the output minus that of the input (negative: steadier; the "
              f"input changes by {r['reference']['input']['flicker_change']:.4f} and the target by "
              f"{r['reference']['target']['flicker_change']:.4f} per frame).", "", r["note"]]
    for na in r["not_applicable"]:
        lines.append(f"Not run: {na['name']} ({na['reason']}).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=bundled_model_dir())
    ap.add_argument("--profile", default="cpu-x86-2core")
    ap.add_argument("--teacher", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--plot", action="store_true")
    a = ap.parse_args(argv)
    manifest, profile = Manifest.load(a.model), DeviceProfile.load(a.profile)
    r = run(manifest, profile, BaselinesConfig(frames=a.frames, rounds=a.rounds, teacher=a.teacher))
    write(r, a.out, plot=a.plot)
    print(to_markdown(r))
    return 0


def write(r: dict, out: Path, plot: bool = False) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{r['task']}_baselines"
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    paths[0].write_text(json.dumps(r, indent=1) + "\n")
    paths[1].write_text(to_markdown(r))
    if plot:
        from ganrt.benchmarks.plots import quality_latency_plot

        paths += quality_latency_plot(r, out, stem)
    return paths


if __name__ == "__main__":
    raise SystemExit(main())
