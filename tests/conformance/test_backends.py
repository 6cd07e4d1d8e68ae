"""Backend conformance: one suite every runner passes on every machine where it is available.

The model is a small real student (``build_student``, width 8, 2 blocks, seeded random init)
exported with the export's own functions into a temporary bundle: fp32 ONNX, fp16 ONNX, the
int8-cpu (u8/s8) and int8-trt (s8/s8, float biases) Q/DQ artifacts (through the export's recipe
ladder, gated like ``ganrt export pipeline`` does), and ``student.safetensors`` under
``manifest["weights"]``. The reference is ONNX Runtime CPU on the fp32 artifact.

Every runner, on realistic inputs (smooth random textures in [0, 1], never zeros) at several
sizes inside the profile (64x64, 96x128, and 37x53 padded to 40x56 by the test), must:

- match the reference: PSNR >= 60 dB (fp32), 45 dB (fp16), 40 dB (int8) — the export's own
  gates; output the input's shape, finite, inside [0, 1];
- turn bad inputs (wrong rank, wrong channels, H/W not a multiple of 4, missing input name)
  into a ganrt error (``GanrtError``; ModelError for these), not a raw library exception, and
  keep working afterwards;
- survive activate/deactivate twice (deactivate twice in a row too) with the same outputs;
- not grow over 1,000 inferences (32x32 input, so the loop takes well under a second on the CPU):
  RSS from /proc/self/statm after a warm-up of 50 within 16 MiB; on CUDA also
  ``torch.cuda.memory_allocated`` unchanged.

Runners: ORT CPU (fp32, fp16, int8-cpu, int8-trt); ORT CUDA EP and TensorRT EP (skip when the
provider is absent); TensorRTRunner (fp32, fp16, int8-trt; skip without tensorrt or a GPU);
TorchRunner on the CPU (fp32: the runner's logic on any machine) and on CUDA (fp32/fp16, with
and without CUDA graphs; skip without CUDA). GPU cases are marked ``gpu`` (``trt`` too for the
TensorRT runner): ``pytest -m gpu tests/conformance`` runs just those.

Set ``GANRT_CONFORMANCE_OUT=file.jsonl`` to append each measured PSNR as a JSON line
(benchmarks/gpu_check.sh does).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from ganrt.runtime.backends.base import Backend
from ganrt.runtime.errors import BackendUnavailable, GanrtError, ModelError
from ganrt.runtime.model.manifest import FORMAT, MANIFEST_NAME, Manifest, Precision, sha256_file
from ganrt.runtime.model.profiles import DeviceProfile

REPO = Path(__file__).resolve().parents[2]
TOLERANCE_DB = {Precision.FP32: 60.0, Precision.FP16: 45.0, Precision.INT8_CPU: 40.0, Precision.INT8_TRT: 40.0}
SIZES = ((64, 64), (96, 128), (37, 53))  # the last is padded to a multiple of 4 by the test
STUDENT = {"channels": 1, "width": 8, "n_blocks": 2, "down": 4}
FILES = {Precision.FP32: "student_fp32.onnx", Precision.FP16: "student_fp16.onnx",
         Precision.INT8_CPU: "student_int8_cpu.onnx", Precision.INT8_TRT: "student_int8_trt.onnx"}
TAIL_SCALE = 0.25  # see the fixture: makes the random student's residual realistic
GATE_MARGIN_DB = 3.0  # int8 artifacts are gated at tolerance + this on held-out frames
SOAK_ITERS, SOAK_WARMUP, SOAK_HW, RSS_TOL = 1000, 50, (32, 32), 16 << 20


# --- inputs and metrics --------------------------------------------------------------------------

def texture(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random texture in [0.02, 0.98] (three octaves of upsampled noise), 1x1xHxW float32."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    for cell, amp in ((12, 0.6), (4, 0.3), (1.5, 0.1)):
        small = rng.random((max(2, round(h / cell)), max(2, round(w / cell)))).astype(np.float32)
        img += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(img.min()), float(img.max())
    return (0.02 + 0.96 * (img - lo) / max(hi - lo, 1e-6)).astype(np.float32)[None, None]


def pad_to(x: np.ndarray, m: int) -> np.ndarray:
    h, w = x.shape[-2:]
    return np.pad(x, ((0, 0), (0, 0), (0, -h % m), (0, -w % m)), mode="reflect")


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _record(case: str, what: str, value: float, **extra: Any) -> None:
    out = os.environ.get("GANRT_CONFORMANCE_OUT")
    if out:
        with open(out, "a") as fh:
            fh.write(json.dumps({"case": case, "check": what, "value": value, **extra}) + "\n")


# --- the bundle ------------------------------------------------------------------------------------

@dataclass
class Built:
    root: Path
    manifest: Manifest
    missing: dict[Precision, str]  # artifacts that could not be made here, with the reason
    reference: Callable[[np.ndarray], np.ndarray]
    reference_name: str
    cache_dir: Path

    def need(self, precision: Precision) -> None:
        if precision in self.missing:
            pytest.skip(f"no {precision.value} artifact here: {self.missing[precision]}")


def _quantize_gated(fp32: Path, dst: Path, prec: Precision, calib: np.ndarray, gate_x: np.ndarray) -> dict:
    """The export's recipe ladder (``recipes_for``), first recipe whose worst PSNR vs fp32 on held-out
    frames clears the int8 tolerance with a margin — as ``ganrt export pipeline`` gates its artifacts."""
    import onnxruntime as ort

    from ganrt.export.quantize import quantize_int8, recipes_for

    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    want, tried = TOLERANCE_DB[prec] + GATE_MARGIN_DB, []
    for recipe in recipes_for(prec, fp32):
        quantize_int8(fp32, dst, calib, recipe)
        q = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
        worst = min(psnr(q.run(None, {"input": x[None]})[0], ref.run(None, {"input": x[None]})[0]) for x in gate_x)
        tried.append(f"{recipe.describe()}: {worst:.1f} dB")
        if worst >= want:
            return {**recipe.describe(), "gate_db": worst}
    raise RuntimeError(f"no {prec.value} recipe reached {want} dB: " + "; ".join(tried))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    torch = pytest.importorskip("torch", reason="the conformance bundle is exported with torch (ganrt[export])")
    pytest.importorskip("safetensors", reason="safetensors (ganrt[export]) writes the student weights")
    from ganrt.export.checkpoint import save_weights
    from ganrt.runtime.backends.torch.models import build_student

    root = tmp_path_factory.mktemp("conformance-bundle")
    torch.manual_seed(20240611)
    model = build_student(torch, STUDENT).eval()
    with torch.no_grad():  # a trained student corrects its input modestly; random init overshoots (~15 dB)
        model.tail.weight.mul_(TAIL_SCALE)
        model.tail.bias.mul_(TAIL_SCALE)
    save_weights(model, root / "student.safetensors")

    missing: dict[Precision, str] = {}
    recipes: dict[Precision, dict] = {}
    calib = np.concatenate([texture(64, 64, 1000 + i) for i in range(12)])
    gate_x = np.concatenate([texture(64, 64, 2000 + i) for i in range(4)])
    try:
        from ganrt.export.onnx_export import export_onnx

        export_onnx(model, root / FILES[Precision.FP32], STUDENT["channels"])
    except Exception as exc:  # noqa: BLE001 no onnx / exporter on this machine: the torch reference stands in
        for p in FILES:
            missing[p] = f"ONNX export failed ({exc.__class__.__name__}: {exc})"
    if Precision.FP32 not in missing:
        try:
            from ganrt.export.quantize import to_fp16

            to_fp16(root / FILES[Precision.FP32], root / FILES[Precision.FP16])
        except Exception as exc:  # noqa: BLE001 any converter failure is reported as a missing artifact
            missing[Precision.FP16] = f"fp16 conversion failed ({exc.__class__.__name__}: {exc})"
        for prec in (Precision.INT8_CPU, Precision.INT8_TRT):
            try:
                recipes[prec] = _quantize_gated(root / FILES[Precision.FP32], root / FILES[prec], prec, calib, gate_x)
            except Exception as exc:  # noqa: BLE001 any quantizer failure is reported as a missing artifact
                missing[prec] = f"quantization failed ({exc.__class__.__name__}: {exc})"

    spec = {"channels": 1, "dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0], "color_order": "gray"}
    raw = {
        "format": FORMAT, "task": "us-enhance",
        "io": {"input": {"name": "input", **spec}, "output": {"name": "output", **spec},
               "size_multiple": 4, "scale": 1},
        "artifacts": {p.value: {"file": f, "precision": p.value, "sha256": sha256_file(root / f),
                                "recipe": recipes.get(p, {"precision": p.value})}
                      for p, f in FILES.items() if p not in missing},
        "weights": {"file": "student.safetensors", "sha256": sha256_file(root / "student.safetensors"),
                    "arch": "StudentGenerator", "config": dict(STUDENT)},
    }
    if not raw["artifacts"]:  # the manifest needs one artifact; the weights stand for it
        raw["artifacts"] = {"fp32": {"file": "student.safetensors", "precision": "fp32",
                                     "sha256": raw["weights"]["sha256"]}}
    (root / MANIFEST_NAME).write_text(json.dumps(raw, indent=2))

    if Precision.FP32 not in missing:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(root / FILES[Precision.FP32]), providers=["CPUExecutionProvider"])

        def reference(x: np.ndarray) -> np.ndarray:
            return sess.run(None, {"input": x.astype(np.float32)})[0]

        ref_name = "onnxruntime CPU fp32"
    else:
        ref_model = build_student(torch, STUDENT)
        ref_model.load_state_dict(model.state_dict())
        ref_model = ref_model.double().eval()

        def reference(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return ref_model(torch.from_numpy(x.astype(np.float64))).float().numpy()

        ref_name = "torch CPU float64"
    return Built(root, Manifest.load(root), missing, reference, ref_name, tmp_path_factory.mktemp("engine-cache"))


def test_reference_model_is_not_trivial(built):
    """The comparisons mean something: the student changes its input, and inside [0, 1]."""
    x = texture(64, 64, 7)
    y = built.reference(x)
    assert y.shape == x.shape and np.isfinite(y).all()
    assert psnr(y, x) < 35.0, "the random student is too close to identity for a meaningful comparison"
    assert 0.0 <= y.min() and y.max() <= 1.0


# --- the runners ---------------------------------------------------------------------------------

def _trt_profile() -> DeviceProfile:
    raw = {"name": "conformance", "budget_ms": 33.0, "input_hw": [64, 64], "precision": "fp16",
           "backends": ["tensorrt", "torch", "onnxruntime"],
           "tensorrt": {"min_hw": [32, 32], "opt_hw": [64, 64], "max_hw": [128, 128], "workspace_mb": 256}}
    return DeviceProfile.from_dict(raw, "conformance.toml")


def _torch_cuda_or_skip() -> None:
    try:
        import torch
    except ImportError as exc:
        pytest.skip(f"torch is not importable ({exc})")
    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA device for torch {torch.__version__} here")


def _ort_provider_or_skip(provider) -> None:
    from ganrt.runtime.backends.onnxruntime import available_providers

    have = available_providers()
    if provider not in have:
        pytest.skip(f"onnxruntime has no {provider.value} here (has: {', '.join(p.value for p in have)})")


def _tensorrt_or_skip() -> None:
    from ganrt.runtime.backends.tensorrt.runner import check_available

    try:
        check_available()
    except BackendUnavailable as exc:
        pytest.skip(f"TensorRT runner unavailable: {exc}")


@dataclass(frozen=True)
class Case:
    id: str
    backend: Backend
    precision: Precision
    provider: str = ""  # ORT: "cpu" | "cuda" | "tensorrt"
    device: str = ""  # torch: "cpu" | "cuda"
    graphs: bool = False
    gpu: bool = False

    def make(self, built: Built):
        """A fresh (not activated) runner for this case, or pytest.skip saying why it cannot run here."""
        m = built.manifest
        if self.backend is Backend.ONNXRUNTIME:
            from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner, Provider

            built.need(self.precision)
            providers = {"cpu": [Provider.CPU], "cuda": [Provider.CUDA, Provider.CPU],
                         "tensorrt": [Provider.TENSORRT, Provider.CUDA, Provider.CPU]}[self.provider]
            _ort_provider_or_skip(providers[0])
            return OnnxRuntimeRunner(m.artifact_for(self.precision), providers, manifest=m, profile=_trt_profile(),
                                     cache_dir=built.cache_dir)
        if self.backend is Backend.TENSORRT:
            from ganrt.runtime.backends.tensorrt.runner import TensorRTRunner

            built.need(self.precision)
            _tensorrt_or_skip()
            return TensorRTRunner(m, m.artifact_for(self.precision), _trt_profile(), built.cache_dir,
                                  cuda_graphs=self.graphs)
        from ganrt.runtime.backends.torch.runner import TorchRunner

        if self.device == "cuda":
            _torch_cuda_or_skip()
        # one CPU thread: torch's OpenMP pool stalls on tiny inputs when the machine is busy
        return TorchRunner(m, self.precision, device=self.device, cuda_graphs=self.graphs,
                           cpu_threads=1 if self.device == "cpu" else 0)


CASES = [
    Case("ort-cpu-fp32", Backend.ONNXRUNTIME, Precision.FP32, provider="cpu"),
    Case("ort-cpu-fp16", Backend.ONNXRUNTIME, Precision.FP16, provider="cpu"),
    Case("ort-cpu-int8-cpu", Backend.ONNXRUNTIME, Precision.INT8_CPU, provider="cpu"),
    Case("ort-cpu-int8-trt", Backend.ONNXRUNTIME, Precision.INT8_TRT, provider="cpu"),
    Case("ort-cuda-fp32", Backend.ONNXRUNTIME, Precision.FP32, provider="cuda", gpu=True),
    Case("ort-cuda-fp16", Backend.ONNXRUNTIME, Precision.FP16, provider="cuda", gpu=True),
    Case("ort-trtep-fp16", Backend.ONNXRUNTIME, Precision.FP16, provider="tensorrt", gpu=True),
    Case("ort-trtep-int8-trt", Backend.ONNXRUNTIME, Precision.INT8_TRT, provider="tensorrt", gpu=True),
    Case("trt-fp32", Backend.TENSORRT, Precision.FP32, graphs=True, gpu=True),
    Case("trt-fp16", Backend.TENSORRT, Precision.FP16, graphs=True, gpu=True),
    Case("trt-int8-trt", Backend.TENSORRT, Precision.INT8_TRT, graphs=True, gpu=True),
    Case("torch-cpu-fp32", Backend.TORCH, Precision.FP32, device="cpu"),
    Case("torch-cuda-fp32", Backend.TORCH, Precision.FP32, device="cuda", gpu=True),
    Case("torch-cuda-fp32-graphs", Backend.TORCH, Precision.FP32, device="cuda", graphs=True, gpu=True),
    Case("torch-cuda-fp16", Backend.TORCH, Precision.FP16, device="cuda", gpu=True),
    Case("torch-cuda-fp16-graphs", Backend.TORCH, Precision.FP16, device="cuda", graphs=True, gpu=True),
]


def _params():
    for c in CASES:
        marks = [pytest.mark.gpu] if c.gpu else []
        if c.backend is Backend.TENSORRT:
            marks.append(pytest.mark.trt)
        yield pytest.param(c, id=c.id, marks=marks)


@pytest.fixture(params=list(_params()))
def case(request) -> Case:
    return request.param


def _infer(runner, x: np.ndarray) -> np.ndarray:
    io = runner.io
    y = runner.infer({io.input_name: x.astype(io.input_dtype)})[io.output_name]
    return np.asarray(y, dtype=np.float32)


def _activate_or_skip(runner, case: Case) -> None:
    """GPU providers can be listed yet unusable (no device, driver mismatch): skip those, saying why."""
    try:
        runner.__enter__()
    except (BackendUnavailable, ModelError) as exc:
        if case.gpu:
            pytest.skip(f"{case.id} cannot start here: {exc}")
        raise


# --- the checks ----------------------------------------------------------------------------------

def test_outputs_match_reference(case, built):
    runner = case.make(built)
    tol, m = TOLERANCE_DB[case.precision], built.manifest.size_multiple
    _activate_or_skip(runner, case)
    worst = float("inf")
    try:
        for i, (h, w) in enumerate(SIZES):
            x = pad_to(texture(h, w, 100 + i), m)
            ref = built.reference(x)
            first = _infer(runner, x)
            again = _infer(runner, x)  # a second call of a shape (CUDA graphs: captured, then replayed)
            for y in (first, again):
                assert y.shape == x.shape, (case.id, y.shape, x.shape)
                assert np.isfinite(y).all(), case.id
                assert -1e-3 <= float(y.min()) and float(y.max()) <= 1.0 + 1e-3, (case.id, y.min(), y.max())
            db = psnr(first[..., :h, :w], ref[..., :h, :w])
            assert psnr(again, first) >= tol, f"{case.id}: a repeated call of {h}x{w} changed its output"
            worst = min(worst, db)
            _record(case.id, f"psnr_db_{h}x{w}", db, tolerance_db=tol, reference=built.reference_name)
            assert db >= tol, f"{case.id} {h}x{w}: PSNR {db:.1f} dB vs {built.reference_name} < {tol} dB"
        # back to the first shape after others (shape caches / graph LRU / re-set shapes)
        x = pad_to(texture(*SIZES[0], 100), m)
        assert psnr(_infer(runner, x), built.reference(x)) >= tol
    finally:
        runner.__exit__(None, None, None)
    _record(case.id, "worst_psnr_db", worst, tolerance_db=tol)


def test_bad_inputs_are_ganrt_errors(case, built):
    runner = case.make(built)
    _activate_or_skip(runner, case)
    good = texture(64, 64, 3)
    name = runner.io.input_name
    bad = {
        "rank 3": good[0],
        "3 channels": np.repeat(good, 3, axis=1),
        "62x64 (not a multiple of 4)": good[:, :, :62, :],
    }
    try:
        for what, x in bad.items():
            with pytest.raises(GanrtError) as info:
                runner.infer({name: x.astype(runner.io.input_dtype)})
            assert isinstance(info.value, ModelError), (case.id, what, info.value)
        with pytest.raises(ModelError):
            runner.infer({"not-" + name: good})
        y = _infer(runner, good)  # still works after the errors
        assert psnr(y, built.reference(good)) >= TOLERANCE_DB[case.precision]
    finally:
        runner.__exit__(None, None, None)


def test_activate_deactivate_twice(case, built):
    runner = case.make(built)
    x = texture(64, 64, 5)
    outs = []
    for _ in range(2):
        _activate_or_skip(runner, case)
        assert runner.active and runner.io is not None
        outs.append(_infer(runner, x))
        runner.deactivate()
        runner.deactivate()  # idempotent
        assert not runner.active
        with pytest.raises(ModelError):
            runner.infer({"input": x})
    with runner as r:  # and as a context manager, twice
        outs.append(_infer(r, x))
    with runner as r:
        outs.append(_infer(r, x))
    tol = TOLERANCE_DB[case.precision]
    for y in outs[1:]:
        assert psnr(y, outs[0]) >= tol


def test_no_memory_growth_over_1000_inferences(case, built):
    """The soak loop: small input (32x32) so 1,000 inferences stay fast on any backend."""
    runner = case.make(built)
    _activate_or_skip(runner, case)
    xs = [texture(*SOAK_HW, 200 + i) for i in range(4)]
    cuda_mem = None
    if case.backend is Backend.TORCH and case.device == "cuda":
        import torch

        cuda_mem = torch.cuda.memory_allocated
    try:
        for i in range(SOAK_WARMUP):
            _infer(runner, xs[i % 4])
        rss0, dev0 = rss_bytes(), cuda_mem() if cuda_mem else 0
        for i in range(SOAK_ITERS):
            _infer(runner, xs[i % 4])
        rss1, dev1 = rss_bytes(), cuda_mem() if cuda_mem else 0
    finally:
        runner.__exit__(None, None, None)
    _record(case.id, "rss_growth_bytes", rss1 - rss0, iterations=SOAK_ITERS)
    assert rss1 - rss0 < RSS_TOL, f"{case.id}: RSS grew {(rss1 - rss0) / 2**20:.1f} MiB over {SOAK_ITERS} inferences"
    if cuda_mem:
        _record(case.id, "cuda_allocated_growth_bytes", dev1 - dev0, iterations=SOAK_ITERS)
        assert dev1 - dev0 <= 0, f"{case.id}: torch.cuda.memory_allocated grew {dev1 - dev0} bytes"


# --- the torch runner's contract with the bundle and the registry -----------------------------------

def _copy_bundle(built: Built, dst: Path, edit: Callable[[dict], None] | None = None) -> Manifest:
    shutil.copytree(built.root, dst)
    raw = json.loads((dst / MANIFEST_NAME).read_text())
    if edit:
        edit(raw)
    (dst / MANIFEST_NAME).write_text(json.dumps(raw))
    return Manifest.load(dst)


def test_export_and_runtime_share_one_student_definition(built):
    torch = pytest.importorskip("torch")
    from ganrt.export.archs import StudentConfig, StudentGenerator
    from ganrt.runtime.backends.torch import models as torch_models

    assert StudentGenerator is torch_models.student_classes(torch)[0] is torch_models.StudentGenerator
    assert StudentConfig is torch_models.StudentConfig
    m = StudentGenerator(StudentConfig(width=8, n_blocks=2))
    assert list(m.state_dict()) == ["head.0.weight", "head.0.bias"] + [
        f"blocks.{i}.{c}.{p}" for i in range(2) for c in ("c1", "c2") for p in ("weight", "bias")
    ] + ["tail.weight", "tail.bias"]
    assert m.feature_channels == [8, 8]


def test_torch_weights_are_verified_before_loading(built, tmp_path):
    from ganrt.runtime.backends.torch.runner import TorchRunner

    m = _copy_bundle(built, tmp_path / "b")
    w = m.root / "student.safetensors"
    w.write_bytes(w.read_bytes()[:-1] + b"\x00")  # one byte changed: the sha256 no longer matches
    with pytest.raises(ModelError, match="sha256 mismatch"):
        TorchRunner(m, Precision.FP32, device="cpu").activate()


def test_torch_runner_batches_and_a_batch_equals_serial_calls(built):
    pytest.importorskip("torch")
    from ganrt.runtime.backends.torch.runner import TorchRunner
    from ganrt.runtime.serve.scheduler import BatchMode, SharedRunner

    rng = np.random.default_rng(3)
    xs = [rng.random((1, 1, 16, 24), dtype=np.float32) for _ in range(3)]
    with TorchRunner(built.manifest, Precision.FP32, device="cpu") as runner:
        assert runner.io.dynamic_batch is True
        serial = [runner.infer({runner.io.input_name: x})[runner.io.output_name] for x in xs]
        sched = SharedRunner(runner, threaded=False)
        futures = [sched.submit(i, {runner.io.input_name: x}) for i, x in enumerate(xs)]
        sched.serve_pending()
        assert sched.mode is BatchMode.BATCH and sched.stats.to_dict()["batch_sizes"] == {"3": 1}
        for f, want in zip(futures, serial):
            np.testing.assert_allclose(f.result()[runner.io.output_name], want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("edit,match", [
    (lambda r: r["weights"]["config"].update(width=16), "do not fit"),
    (lambda r: r["weights"]["config"].update(depth=3), "unknown key"),
    (lambda r: r["weights"].update(arch="ResnetGenerator"), "arch"),
    (lambda r: r["weights"].update(file="../student.safetensors"), "inside the bundle"),
    (lambda r: r.pop("weights"), "no exported weights"),
], ids=["wrong-width", "unknown-key", "wrong-arch", "path-escape", "no-weights"])
def test_torch_runner_rejects_bad_weights_manifest(built, tmp_path, edit, match):
    pytest.importorskip("torch")
    from ganrt.runtime.backends.torch.runner import TorchRunner

    m = _copy_bundle(built, tmp_path / "b", edit)
    runner = TorchRunner(m, Precision.FP32, device="cpu")
    with pytest.raises(ModelError, match=match):
        runner.activate()
    assert not runner.active


def test_registry_torch(built, monkeypatch):
    torch = pytest.importorskip("torch")
    from ganrt.runtime.backends.registry import select
    from ganrt.runtime.backends.torch import runner as torch_runner
    from ganrt.runtime.backends.torch.runner import ENV_DEVICE, TorchRunner

    prof = _trt_profile()  # backends: tensorrt, torch, onnxruntime
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    if torch.cuda.is_available():
        sel = select(built.manifest, Backend.TORCH, prof)
        assert sel.backend is Backend.TORCH and sel.runner.device.startswith("cuda")
    else:
        with pytest.raises(BackendUnavailable, match="torch runner needs a CUDA GPU"):
            select(built.manifest, Backend.TORCH, prof)
        assert select(built.manifest, Backend.AUTO, prof).backend is Backend.ONNXRUNTIME

    monkeypatch.setenv(ENV_DEVICE, "cpu")  # the testing switch
    sel = select(built.manifest, Backend.TORCH, prof)
    assert isinstance(sel.runner, TorchRunner) and sel.runner.device == "cpu"
    assert sel.precision is Precision.FP32 and sel.artifact.path.name == "student.safetensors"
    with sel.runner as r:
        x = texture(64, 64, 9)
        assert psnr(_infer(r, x), built.reference(x)) >= TOLERANCE_DB[Precision.FP32]
    assert select(built.manifest, Backend.AUTO, prof).backend is not Backend.TORCH  # auto: never torch on a CPU
    for bad in (Precision.FP16, Precision.INT8_CPU):
        with pytest.raises(BackendUnavailable):
            select(built.manifest, Backend.TORCH, prof, bad)

    def no_torch():
        from ganrt.runtime.lazy import lazy_import

        return lazy_import("ganrt_no_such_torch", extra="export", what="torch")

    monkeypatch.setattr(torch_runner, "_torch", no_torch)
    with pytest.raises(BackendUnavailable, match=r"install ganrt\[export\]"):
        select(built.manifest, Backend.TORCH, prof)
    assert select(built.manifest, Backend.AUTO, prof).backend is Backend.ONNXRUNTIME


def test_registry_torch_without_weights_falls_through(built, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from ganrt.runtime.backends.registry import select
    from ganrt.runtime.backends.torch.runner import ENV_DEVICE

    monkeypatch.setenv(ENV_DEVICE, "cpu")
    m = _copy_bundle(built, tmp_path / "b", lambda r: r.pop("weights"))
    with pytest.raises(BackendUnavailable, match="no exported weights"):
        select(m, Backend.TORCH, _trt_profile())


# --- the GPU check script --------------------------------------------------------------------------

def test_gpu_check_script_dry_run(tmp_path):
    if not shutil.which("bash"):
        pytest.skip("bash is not installed")
    out = tmp_path / "gpu_out"
    env = {**os.environ, "OUT": str(out)}
    res = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                         text=True, env=env, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "DRY RUN" in res.stdout
    assert (out / "gpu_check.log").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True and summary["steps"], summary
