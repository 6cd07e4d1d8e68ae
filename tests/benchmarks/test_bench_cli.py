"""`ganrt bench` (and `bench pipeline`, `bench baselines`) on tiny ONNX bundles: results, tables, errors.
No timed assertions: only the shape and consistency of what is reported."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from bundles import make_bundle

from ganrt.benchmarks.env import ENV_FIELDS
from ganrt.runtime.cli import main
from ganrt.runtime.errors import BackendUnavailable, ConfigError, ModelError


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle", precisions=("fp32", "fp16", "int8-cpu"))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line_error(err: str, fragment: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ganrt: error: ") and fragment in lines[0], lines[0]


FAST = ("--iterations", "6", "--per-round", "3", "--warmup", "1", "--inputs", "2")


def test_compare_json_has_the_table(bundle, capsys, tmp_path):
    save = tmp_path / "r" / "compare.json"
    rc, out, err = _run(capsys, "bench", "--model", str(bundle), "--shape", "1x1x32x32", "--compare",
                        "--sizes", "32,48", *FAST, "--blocks", "2", "--json", "--save", str(save))
    assert rc == 0, err
    r = json.loads(out)
    assert json.loads(save.read_text()) == r
    labels = [c["label"] for c in r["candidates"]]
    assert labels == ["fp32@32", "fp16@32", "int8-cpu@32", "fp32@48", "fp16@48", "int8-cpu@48"]  # grouped by size
    for c in r["candidates"]:
        s = c["latency_ms"]
        assert s["n"] == 6 and s["min"] <= s["median"] <= s["p90"] <= s["p99"] <= s["p99_9"] <= s["max"]
        assert len(c["samples_ms"]) == 6 and c["warmup_excluded"]["calls"] == 1
        assert c["spread_blocks"]["min"] <= c["spread_blocks"]["max"] and len(c["spread_blocks"]["medians"]) == 2
        base = c["vs_baseline"]["baseline"]
        assert base == f"fp32@{c['shape'][2]}"  # ratios pair each size with fp32 at that size
        meds = {x["label"]: x["latency_ms"]["median"] for x in r["candidates"]}
        assert c["vs_baseline"]["median_ratio"] == pytest.approx(meds[c["label"]] / meds[base])
    assert r["plan"]["rounds"] == 2 and r["baseline"] == "fp32@32"
    assert set(ENV_FIELDS) <= set(r["environment"]) and r["environment"]["inference_threads"]["intra_op"] == 2
    assert "runner.infer" in r["measured"]


def test_compare_prints_one_table(bundle, capsys):
    rc, out, err = _run(capsys, "bench", "--model", str(bundle), "--shape", "1x1x32x32", "--compare", "fp32,int8-cpu@48",
                        "--baseline", "int8-cpu@48", *FAST, "--repeats", "2")
    assert rc == 0, err
    lines = out.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("combo"))
    assert lines[header].split()[:4] == ["combo", "min", "mean", "median"]
    rows = [ln.split() for ln in lines[header + 1: header + 3]]
    assert [r[0] for r in rows] == ["fp32@32", "int8-cpu@48"]
    assert rows[1][12] == "1.000" and rows[0][-1] == "int8-cpu@48"  # explicit sized baseline: ratios vs it
    assert "/" in rows[0][11]  # spread of blocks / of repeats


def test_single_bench_keeps_its_keys_and_reports_spread(bundle, capsys):
    rc, out, err = _run(capsys, "bench", "--model", str(bundle), "--shape", "1x1x32x32", "--precision", "fp32",
                        "--iterations", "8", "--warmup", "0", "--warmup-s", "0.01", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["latency_ms"]["n"] == 8 and r["precision"] == "fp32" and r["iterations"] == 8
    assert r["warmup_excluded"]["seconds"] >= 0.01 and r["warmup_excluded"]["calls"] >= 1
    assert "spread_blocks" in r and "environment" in r
    rc, out, err = _run(capsys, "bench", "--model", str(bundle), "--shape", "1x1x32x32", "--duration", "0.05",
                        "--per-round", "2", "--warmup", "1")
    assert rc == 0, err
    assert "latency ms:" in out and "run-to-run" in out


@pytest.mark.parametrize("argv,code,fragment", [
    (("--compare", "fp99"), ConfigError.exit_code, "unknown precision 'fp99'"),
    (("--compare", "fp32@big"), ConfigError.exit_code, "must look like"),
    (("--compare", "--sizes", "0"), ConfigError.exit_code, "size must be"),
    (("--compare", "gpu!/fp32"), ConfigError.exit_code, "must look like"),
    (("--sizes", "32"), ConfigError.exit_code, "--sizes and --baseline need --compare"),
    (("--compare", "--baseline", "fp32@99"), ConfigError.exit_code, "not among the compared"),
    (("--duration", "0"), ConfigError.exit_code, "--duration"),
    (("--repeats", "0"), ConfigError.exit_code, "--repeats"),
    (("--inputs", "0"), ConfigError.exit_code, "--inputs"),
    (("--compare", "int8-trt"), BackendUnavailable.exit_code, "no int8-trt artifact"),
    (("--precision", "int3"), ConfigError.exit_code, "unknown precision"),
])
def test_bad_bench_options_are_one_line(bundle, capsys, argv, code, fragment):
    rc, _, err = _run(capsys, "bench", "--model", str(bundle), "--shape", "1x1x32x32", *FAST, *argv)
    assert rc == code, err
    _one_line_error(err, fragment)


def test_plot_without_matplotlib_fails_fast(bundle, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    rc, out, err = _run(capsys, "bench", "--model", str(bundle), "--shape", "1x1x32x32", *FAST, "--plot", "x")
    assert rc == BackendUnavailable.exit_code
    _one_line_error(err, "ganrt[bench]")
    assert out == ""  # nothing was measured


def test_plot_writes_pngs(bundle, capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (ganrt[bench])")
    rc, out, err = _run(capsys, "bench", "--model", str(bundle), "--shape", "1x1x32x32", "--compare", *FAST,
                        "--plot", str(tmp_path / "plots"))
    assert rc == 0, err
    png = tmp_path / "plots" / "bench_latency.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _video(path: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (48, 40))
    for _ in range(n):
        vw.write(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    vw.release()
    return path


def test_pipeline_bench_reports_both_modes(bundle, capsys, tmp_path):
    src = _video(tmp_path / "in.avi")
    rc, out, err = _run(capsys, "bench", "pipeline", "--model", str(bundle), "--source", str(src), "--frames", "8",
                        "--budget-ms", "1000", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert set(r["modes"]) == {"fast", "realtime"}
    assert "capture_to_output_ms" in r["measured"] and "decode" in r["measured"]["capture_to_output_ms"]
    for m in r["modes"].values():
        assert m["frames_in"] == 8
        assert m["enhanced"] + m["passthrough"] + m["dropped"] == m["frames_in"]
        assert m["frames_out"] == len(m["per_frame"]["capture_to_output_ms"])
        assert 0.0 <= m["deadline_miss_rate"] <= 1.0 and m["fps"] > 0
        res = m["resources"]
        assert res["cpu_s"] >= 0 and res["rss_peak_mib"] > 0 and res["cpus"] >= 1
        for stage in ("wait_ms", "pre_ms", "infer_ms", "post_ms", "sink_ms", "capture_to_output_ms"):
            assert stage in m["latency_ms"]
        assert sum(m["tiers"].values()) == m["frames_out"] and set(m["tiers"]) <= {"full", "reduced", "raw"}
        assert len(m["per_frame"]["tier"]) == m["frames_out"]
        for_time = sum(m["passthrough_by_reason"].get(k, 0) for k in ("predicted-miss", "timeout", "late", "backoff"))
        assert m["raw_or_dropped_for_time_frames"] == for_time + m["dropped"]
        assert "min_run_between_switches" in m and "min_run_between_time_switches" in m
    assert r["modes"]["fast"]["dropped"] == 0  # as fast as possible never drops
    assert r["bare_infer_ms"]["latency_ms"]["n"] == 8
    assert set(ENV_FIELDS) <= set(r["environment"])


def test_pipeline_bench_bad_input(bundle, capsys, tmp_path):
    rc, _, err = _run(capsys, "bench", "pipeline", "--model", str(bundle), "--frames", "0")
    assert rc == ConfigError.exit_code
    _one_line_error(err, "--frames")
    rc, _, err = _run(capsys, "bench", "pipeline", "--model", str(bundle), "--source", str(tmp_path / "none.mp4"))
    assert rc == 6
    _one_line_error(err, "none.mp4")


def test_baselines_bench_on_a_tiny_bundle(bundle, capsys):
    pytest.importorskip("skimage", reason="quality metrics need the export extra (scikit-image)")
    rc, out, err = _run(capsys, "bench", "baselines", "--model", str(bundle), "--frames", "2", "--hw", "64",
                        "--speed-hw", "64", "--rounds", "1", "--filters", "gaussian,median,bicubic", "--json")
    assert rc == 0, err
    r = json.loads(out)
    kinds = {m["name"]: m["kind"] for m in r["methods"]}
    assert kinds == {"student fp32": "student", "student fp16": "student", "student int8-cpu": "student",
                     "gaussian": "filter", "median": "filter"}
    assert "bicubic" in [x["name"] for x in r["not_applicable"]]  # a same-size task: no SR baseline
    assert r["quality_set"]["seeds"][0] == 950000 and r["calibration_set"]["seeds"][0] == 100000
    assert r["sweep"]["gaussian"]["chosen"] == max(r["sweep"]["gaussian"]["table"], key=lambda t: t["psnr"])["params"]
    for m in r["methods"]:
        assert set(m["quality"]) == {"psnr", "ssim", "gcnr", "speckle_snr"}
        assert m["flicker"]["excess"] == pytest.approx(m["flicker"]["output"] - m["flicker"]["input"])
        assert m["latency_ms"]["n"] >= 1
    assert r["note"].startswith(("Where", "student"))
    rc, _, err = _run(capsys, "bench", "baselines", "--model", str(bundle), "--filters", "sharpen")
    assert rc == ConfigError.exit_code
    _one_line_error(err, "--filters")
    rc, _, err = _run(capsys, "bench", "baselines", "--model", str(bundle), "--teacher", "/nonexistent/t.onnx",
                      "--frames", "1", "--hw", "32", "--filters", "gaussian")
    assert rc == ModelError.exit_code
    _one_line_error(err, "--teacher")


def test_torch_on_a_gpu_is_rebuilt_with_cuda_event_stage_timing(monkeypatch):
    """The torch runner already splits H2D / compute / D2H with CUDA events; the bench asks for them."""
    from types import SimpleNamespace

    import ganrt.runtime.backends.torch.runner as tr
    from ganrt.benchmarks.model_bench import _stage_timed
    from ganrt.runtime.backends.base import Backend
    from ganrt.runtime.model.manifest import Precision
    from ganrt.runtime.model.profiles import DeviceProfile

    made = {}

    class FakeTorchRunner:
        def __init__(self, manifest, precision, **kw):
            made.update(precision=precision, **kw)

    monkeypatch.setattr(tr, "TorchRunner", FakeTorchRunner)
    profile = DeviceProfile.load("desktop-rtx")
    art = SimpleNamespace(precision=Precision.FP16)
    gpu = SimpleNamespace(backend=Backend.TORCH, runner=SimpleNamespace(device="cuda:0"), artifact=art,
                          precision=Precision.FP16)
    runner, staged = _stage_timed(gpu, manifest=None, profile=profile)
    assert staged and isinstance(runner, FakeTorchRunner)
    assert made == {"precision": Precision.FP16, "device": "cuda:0", "cuda_graphs": profile.tensorrt.cuda_graphs,
                    "stage_timing": True}
    cpu = SimpleNamespace(backend=Backend.TORCH, runner=SimpleNamespace(device="cpu"), precision=Precision.FP32)
    assert _stage_timed(cpu, None, profile) == (cpu.runner, False)
    ort = SimpleNamespace(backend=Backend.ONNXRUNTIME, runner=object(), precision=Precision.FP32)
    assert _stage_timed(ort, None, profile) == (ort.runner, False)


def test_pipeline_bench_counts_raw_for_time_and_the_runs_between_switches():
    import math

    from ganrt.benchmarks.pipeline_bench import _for_time
    from ganrt.runtime.frames import Outcome, Reason
    from ganrt.runtime.records.record import Row

    def row(i, outcome, reason=Reason.NONE, infer=5.0):
        return Row(i, 0, outcome, reason, False, 0.0, 1.0, infer, 1.0, 0.0, 10.0)

    E, P, D = Outcome.ENHANCED, Outcome.PASSTHROUGH, Outcome.DROPPED
    rows = [row(0, P, Reason.PREDICTED_MISS, math.nan), row(1, D, Reason.OVERTAKEN, math.nan)]  # the start-up
    rows += [row(i, E) for i in range(2, 14)] + [row(14, P, Reason.TIMEOUT, math.nan)]
    rows += [row(i, P, Reason.MEAN_SHIFT) for i in range(15, 17)] + [row(i, E) for i in range(17, 30)]
    d = {"tiers": {}, "enhanced_raw_switches": 0, "min_run_between_switches": None}
    out = _for_time(d, rows)
    assert out["raw_or_dropped_for_time_frames"] == 3 and out["raw_or_dropped_for_time"] == 3 / 30
    assert out["startup_frames"] == 2 and out["raw_or_dropped_for_time_after_startup"] == 1 / 28
    # in time / raw for time: P(1) | E x12 | timeout x1 | (mean-shift: in time) x15
    assert out["time_switches"] == 3 and out["min_run_between_time_switches"] == 1


def test_tiers_ab_alternates_the_arms_and_records_the_load():
    from ganrt.benchmarks.tiers_ab import run_ab, to_markdown
    from ganrt.runtime.model.manifest import Manifest, bundled_model_dir
    from ganrt.runtime.model.profiles import DeviceProfile

    r = run_ab(Manifest.load(bundled_model_dir()), DeviceProfile.load("cpu-x86-2core"), pairs=2, frames=4,
               checks=False)
    assert [x["arm"] for x in r["runs"]] == ["single", "tiers", "tiers", "single"]
    for x in r["runs"]:
        assert sum(x["tiers"].values()) + sum(x["dropped_by_reason"].values()) == 4
        assert x["load_avg_1m_before"] >= 0 and 0.0 <= x["raw_or_dropped_for_time"] <= 1.0
    assert all("reduced" not in x["tiers"] for x in r["runs"] if x["arm"] == "single")
    assert "| 1 | single |" in to_markdown(r)


def test_pipeline_bench_reads_an_auto_region_ahead_as_the_run_command_does(tmp_path):
    from ganrt.benchmarks.pipeline_bench import PipelineBenchConfig, _lookahead
    from ganrt.runtime.trust.guard import GuardConfig
    from ganrt.runtime.trust.region import RegionConfig, RegionMode

    src = str(_video(tmp_path / "in.avi", n=20))
    auto = GuardConfig(region=RegionConfig(RegionMode.AUTO, frames=12))
    ahead = _lookahead(PipelineBenchConfig(source=src), auto)
    assert len(ahead) == 12 and ahead[0].shape[:2] == (40, 48)
    assert _lookahead(PipelineBenchConfig(source=src, lookahead=False), auto) == []  # a camera's start
    assert _lookahead(PipelineBenchConfig(source=src), GuardConfig(region=RegionConfig(RegionMode.FULL))) == []
