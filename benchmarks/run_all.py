"""Regenerate every committed benchmark result, plot and the results table of docs/benchmarks.md in one command.

    python -m ganrt.benchmarks.run_all                 # = make bench; writes benchmarks/results/, docs/benchmarks.md
    python -m ganrt.benchmarks.run_all --quick         # tiny version into out/bench-quick/ (docs untouched)

Steps (each writes JSON with its environment block, plus Markdown and PNGs):
  cpu_peak                sustained fp32/int8 conv rates and memory bandwidth of this CPU (ORT)
  compare_cpu_run1/run2   `ganrt bench --compare --sizes 256,512`, twice, each in its own process
  compare_cpu_repeatability   run 2's medians against the spread run 1 reported
  pipeline_cpu            `ganrt bench pipeline`: as fast as possible (null sink) and real time (mp4 sink)
  pipeline_cpu_nochecks   the same, `--no-checks` (the bare loop)
  <task>_baselines        student (each precision), teacher, classic filters: quality and speed
  <task>_student_vs_teacher   the export's student-vs-teacher comparison (needs the teacher)
  realscan/               `ganrt bench realscan`: the bundled students on the real ultrasound scans installed
  realscan/despeckle_frontier   us-enhance vs filter strength sweeps and blends at equal EPI (real scans)
  roofline                MACs/bytes per frame and floors here and on Jetson Orin (estimates)
About 6-10 minutes on 2 cores with the teacher; the teacher is optional (--teacher, default
runs/<task>/teacher_fp32.onnx when it exists).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ganrt.runtime.errors import GanrtError
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir
from ganrt.runtime.model.profiles import DEFAULT_PROFILE, DeviceProfile

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunAllConfig:
    out: Path
    model: Path
    profile: str = DEFAULT_PROFILE
    teacher: Path | None = None
    readme: Path | None = None  # None: leave docs/benchmarks.md alone
    plots: bool = True
    quick: bool = False

    # sizes of each step (full / quick)
    @property
    def sizes(self) -> str:
        return "64,128" if self.quick else "256,512"

    @property
    def compare_args(self) -> list[str]:
        if self.quick:
            return ["--iterations", "10", "--per-round", "5", "--blocks", "2", "--warmup", "2", "--inputs", "2"]
        return ["--iterations", "300", "--per-round", "10", "--blocks", "5", "--warmup", "20", "--inputs", "8"]


def _json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


class _Steps:
    """Runs named steps, timing each; a failing step is reported and the others still run."""

    def __init__(self) -> None:
        self.done: list[tuple[str, float, str]] = []

    def __call__(self, name: str, fn: Callable[[], object]) -> object:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            res = fn()
            self.done.append((name, time.perf_counter() - t0, "ok"))
            return res
        except (GanrtError, ImportError, OSError) as exc:
            self.done.append((name, time.perf_counter() - t0, f"FAILED: {exc}"))
            print(f"   {name} failed: {exc}", file=sys.stderr)
            return None

    @property
    def failed(self) -> bool:
        return any(s != "ok" for _, _, s in self.done)


def _compare_run(cfg: RunAllConfig, path: Path) -> dict:
    """`ganrt bench --compare` in a fresh process: the second run is a real repeat, not a warm continuation."""
    cmd = [sys.executable, "-m", "ganrt.runtime.cli", "bench", "--model", str(cfg.model), "--profile", cfg.profile,
           "--compare", "--sizes", cfg.sizes, *cfg.compare_args, "--save", str(path)]
    res = subprocess.run(cmd, cwd=REPO)
    if res.returncode != 0:
        raise GanrtError(f"`{' '.join(cmd[2:])}` exited {res.returncode}")
    data = json.loads(path.read_text())
    from ganrt.benchmarks.model_bench import format_compare

    path.with_suffix(".md").write_text("# `ganrt bench --compare`\n\n```\n" + format_compare(data) + "\n```\n")
    return data


def _plot(fn, *args) -> None:
    try:
        fn(*args)
    except GanrtError as exc:  # matplotlib missing: the numbers still count
        print(f"   (no plot: {exc})", file=sys.stderr)


@dataclass(frozen=True)
class _Ctx:
    """What every step reads: the config, the output folder, the bundle and profile loaded once."""

    cfg: RunAllConfig
    out: Path
    manifest: Manifest
    profile: DeviceProfile


def _cpu_peak(ctx: _Ctx) -> Path:
    """This CPU's sustained conv rates and bandwidth: the roofline's ceilings."""
    from ganrt.benchmarks import cpu_peak

    peak_cfg = cpu_peak.PeakConfig(threads=ctx.profile.threads.intra_op,
                                   **({"convs": ((16, 64),), "matmul": 128, "iterations": 3, "copy_mib": 16}
                                      if ctx.cfg.quick else {}))
    return _json(ctx.out / "cpu_peak.json", cpu_peak.measure(peak_cfg))


def _compare_runs(ctx: _Ctx, step: _Steps) -> list[dict | None]:
    """`ganrt bench --compare` twice in fresh processes, then run 2 against run 1's spread (when both ran)."""
    from ganrt.benchmarks import repeatability

    cfg, out = ctx.cfg, ctx.out
    runs = [step(f"compare run {i}", lambda i=i: _compare_run(cfg, out / f"compare_cpu_run{i}.json")) for i in (1, 2)]
    if all(runs):
        rep = repeatability.compare_runs(*runs)
        _json(out / "compare_cpu_repeatability.json", rep)
        (out / "compare_cpu_repeatability.md").write_text(repeatability.to_markdown(rep))
        print(repeatability.to_markdown(rep))
        if cfg.plots:
            from ganrt.benchmarks.plots import model_plots

            _plot(model_plots, runs[0], out, "compare_cpu")
    return runs


def _pipeline(ctx: _Ctx, checks: bool = True) -> dict:
    """`ganrt bench pipeline`, with or without the checks (the bare loop: timing without their verdicts)."""
    from ganrt.benchmarks import pipeline_bench

    cfg, out = ctx.cfg, ctx.out
    pc = pipeline_bench.PipelineBenchConfig(frames=30 if cfg.quick else 300, checks=checks)
    r = pipeline_bench.run_pipeline_bench(ctx.manifest, ctx.profile, pc)
    stem = "pipeline_cpu" if checks else "pipeline_cpu_nochecks"
    _json(out / f"{stem}.json", r)
    (out / f"{stem}.md").write_text(pipeline_bench.to_markdown(r))
    if cfg.plots and checks:
        from ganrt.benchmarks.plots import pipeline_plots

        _plot(pipeline_plots, r, out, "pipeline_cpu")
    return r


def _baselines(ctx: _Ctx) -> dict:
    """Student, teacher and classic filters: quality and speed."""
    from ganrt.benchmarks import baselines

    cfg, out = ctx.cfg, ctx.out
    bc = baselines.BaselinesConfig(teacher=cfg.teacher, **(
        {"frames": 3, "hw": 128, "calib_frames": 2, "cine_frames": 3, "speed_hw": 128, "rounds": 2, "per_round": 3,
         "warmup": 1} if cfg.quick else {}))
    r = baselines.run(ctx.manifest, ctx.profile, bc)
    baselines.write(r, out, plot=False)
    if cfg.plots:
        from ganrt.benchmarks.plots import quality_latency_plot

        _plot(quality_latency_plot, r, out, f"{r['task']}_baselines")
    return r


def _realscan(ctx: _Ctx) -> dict:
    """The bundled students on the real scans installed (pydicom, pydicom-data)."""
    from ganrt.benchmarks.realscan import RealscanConfig, write

    quick = {"max_frames": 2, "acquisitions": ("echo-ybr",), "precisions": ("int8-cpu",)} if ctx.cfg.quick else {}
    return write(RealscanConfig(out=ctx.out / "realscan", profile=ctx.cfg.profile, **quick))[0]


def _despeckle_frontier(ctx: _Ctx) -> dict:
    """us-enhance against bilateral and NLM swept in strength and blended, at equal EPI, on the real scans."""
    from ganrt.benchmarks import despeckle_frontier as df

    names = ("ge-doppler",) if ctx.cfg.quick else ()
    r = df.run(ctx.cfg.profile, names)
    out = ctx.out / "realscan"
    _json(out / "despeckle_frontier.json", r)
    (out / "despeckle_frontier.md").write_text(df.to_markdown(r))
    return r


def _student_vs_teacher(ctx: _Ctx) -> dict:
    """The export's student-vs-teacher comparison (needs the teacher)."""
    from ganrt.benchmarks import student_vs_teacher

    cfg, out = ctx.cfg, ctx.out
    student_vs_teacher.main(["--bundle", str(cfg.model), "--teacher", str(cfg.teacher), "--out", str(out)])
    return json.loads((out / f"{ctx.manifest.task}_student_vs_teacher.json").read_text())


def _roofline(ctx: _Ctx, compare: dict | None, svt: dict | None) -> dict:
    """MACs/bytes per frame and floors, with the latencies measured above beside them."""
    from ganrt.benchmarks import roofline
    from ganrt.benchmarks.env import environment

    cfg, out = ctx.cfg, ctx.out
    models = [(f"student {a.precision.value}", a.precision.value, a.verified_bytes())
              for p in Precision for a in ctx.manifest.artifacts.values() if a.precision is p]
    measured: dict[tuple[str, int], float] = {}
    if compare:
        for row in compare["candidates"]:
            measured[(f"student {row['precision']}", row["shape"][2])] = row["latency_ms"]["median"]
    if cfg.teacher is not None and not cfg.quick:
        models.append(("teacher fp32", "fp32", cfg.teacher.read_bytes()))
        if svt:  # model-only teacher latency at 512 from the student-vs-teacher run
            measured[("teacher fp32", 512)] = svt["latency_ms_512"]["teacher_fp32"]["median"]
    sizes = [int(s) for s in cfg.sizes.split(",")]
    cpu = json.loads((out / "cpu_peak.json").read_text())
    r = roofline.report(models, sizes, cpu, f"this CPU ({environment()['cpu']})", measured)
    _json(out / "roofline.json", r)
    (out / "roofline.md").write_text(roofline.to_markdown(r))
    return r


def _readme(cfg: RunAllConfig) -> None:
    """The README results block from the files written: into the README, or printed when it is left alone."""
    from ganrt.benchmarks import readme_table

    block = readme_table.render(cfg.out)
    if cfg.readme is not None:
        text = cfg.readme.read_text()
        new = readme_table.replace_block(text, block)
        if new != text:
            cfg.readme.write_text(new)
        print(f"results block updated: {cfg.readme}")
    else:
        print(block)


def _summary(ctx: _Ctx, step: _Steps, total: float) -> int:
    """Each step's time and status; failing (1) when a step failed or the bundle changed mid-run."""
    changed = Manifest.load(ctx.cfg.model).model_id != ctx.manifest.model_id
    if changed:  # the bundle was replaced mid-run: the files mix two models
        step.done.append(("bundle unchanged", 0.0, f"FAILED: {ctx.cfg.model} changed during the run; run again"))
    for name, secs, status in step.done:
        print(f"  {name:22s} {secs:7.1f} s  {status}")
    print(f"  {'total':22s} {total:7.1f} s  -> {ctx.out}")
    return 1 if step.failed else 0


def run(cfg: RunAllConfig) -> int:
    """Every step in order; a failed step is reported and the rest still run (the roofline needs cpu_peak)."""
    # Imported up front, as the steps use them: a broken install stops the run before any step.
    from ganrt.benchmarks import baselines, cpu_peak, pipeline_bench, readme_table, repeatability, roofline  # noqa: F401

    cfg.out.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(cfg, cfg.out, Manifest.load(cfg.model), DeviceProfile.load(cfg.profile))
    step = _Steps()
    t_all = time.perf_counter()

    peak = step("cpu_peak", lambda: _cpu_peak(ctx))
    runs = _compare_runs(ctx, step)
    step("pipeline", lambda: _pipeline(ctx))
    step("pipeline_nochecks", lambda: _pipeline(ctx, checks=False))
    step("baselines", lambda: _baselines(ctx))
    step("realscan", lambda: _realscan(ctx))
    step("despeckle_frontier", lambda: _despeckle_frontier(ctx))
    svt = None
    if cfg.teacher is not None and not cfg.quick:
        svt = step("student vs teacher", lambda: _student_vs_teacher(ctx))
    if peak:
        step("roofline", lambda: _roofline(ctx, runs[0], svt))

    _readme(cfg)
    return _summary(ctx, step, time.perf_counter() - t_all)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="default benchmarks/results (quick: out/bench-quick)")
    ap.add_argument("--model", type=Path, default=bundled_model_dir())
    ap.add_argument("--profile", default=DEFAULT_PROFILE)
    ap.add_argument("--teacher", type=Path, default=None,
                    help="teacher ONNX (default: runs/<task>/teacher_fp32.onnx when it exists; not with --quick)")
    ap.add_argument("--no-teacher", action="store_true")
    ap.add_argument("--readme", type=Path, default=REPO / "docs" / "benchmarks.md", help="the page with the results block")
    ap.add_argument("--no-readme", action="store_true", help="print the results block instead of writing docs/benchmarks.md")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and counts, into out/bench-quick; docs untouched")
    a = ap.parse_args(argv)
    try:
        manifest = Manifest.load(a.model)
    except GanrtError as exc:
        print(f"run_all: {exc}", file=sys.stderr)
        return exc.exit_code
    teacher = a.teacher
    if teacher is None and not a.no_teacher and not a.quick:
        guess = REPO / "runs" / manifest.task / "teacher_fp32.onnx"
        teacher = guess if guess.is_file() else None
        if teacher is None:
            print(f"(no teacher at {guess}: the teacher rows are left out)")
    cfg = RunAllConfig(
        out=a.out or (Path("out/bench-quick") if a.quick else REPO / "benchmarks" / "results"),
        model=a.model, profile=a.profile, teacher=None if a.no_teacher else teacher,
        readme=None if (a.no_readme or a.quick) else a.readme, plots=not a.no_plots, quick=a.quick)
    return run(cfg)


if __name__ == "__main__":
    raise SystemExit(main())
