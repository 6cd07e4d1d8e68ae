"""The TensorRT path's defects that only show on a Jetson or another driver, with fakes that behave
like the real bindings: cuda-python / driver major mismatch, what the engine key depends on, the
timing cache, DLA builds on 10.x and 11.x, the ONNX Runtime EP under DLA, CUDA graph capture
failure and the per-shape graphs, pycuda on worker threads, and `ganrt engine info`."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import tomllib
from fake_tensorrt import FakeTensorRT
from test_tensorrt_logic import FakeContext, FakeCuda, FakeTrt, _runner, _x, bundle, manifest  # noqa: F401

from ganrt.runtime.backends.ort_trt_ep import MIN_ORT_STRONGLY_TYPED, check_ort_for_trt_ep
from ganrt.runtime.backends.tensorrt import cuda_mem
from ganrt.runtime.backends.tensorrt import probe as cuda_probe
from ganrt.runtime.backends.tensorrt.builder import BuildRequest, TensorRTBuilder, set_timing_cache
from ganrt.runtime.backends.tensorrt.identity import (
    DeviceFacts,
    DeviceInfo,
    EngineIdentity,
    ShapeProfile,
    Toolkit,
    build_options,
    make_identity,
)
from ganrt.runtime.cli import main
from ganrt.runtime.errors import BackendUnavailable, ConfigError
from ganrt.runtime.model.manifest import Manifest
from ganrt.runtime.model.profiles import DeviceProfile

ROOT = Path(__file__).resolve().parents[2]
ORIN = DeviceInfo("Orin", (8, 7), 16, 62841, False, True)


def _profile(**trt) -> DeviceProfile:
    raw = {"name": "t", "budget_ms": 33.0, "input_hw": [32, 32], "precision": "int8-trt", "backends": ["tensorrt"],
           "tensorrt": {"min_hw": [32, 32], "opt_hw": [32, 32], "max_hw": [32, 32], **trt}}
    return DeviceProfile.from_dict(raw, "t.toml")


# --- 1. cuda-python's major must match the driver ------------------------------------------------------


def _fake_rt(driver: int = 12020, runtime: int = 13040, fail: str = "cudaGetDeviceCount") -> SimpleNamespace:
    """cuda.bindings.runtime as cuda-bindings 13 behaves under a CUDA 12 driver: the driver version
    answers, everything that needs the runtime returns cudaErrorInsufficientDriver (35)."""

    def ok(value):
        return lambda *a: (0, value)

    rt = SimpleNamespace(cudaDriverGetVersion=ok(driver), cudaRuntimeGetVersion=ok(runtime),
                         cudaGetDeviceCount=ok(1), cudaGetErrorName=lambda e: (0, b"cudaErrorInsufficientDriver"))
    setattr(rt, fail, lambda *a: (cuda_probe.INSUFFICIENT_DRIVER, None))
    for name in ("cudaDriverGetVersion", "cudaRuntimeGetVersion", "cudaGetDeviceCount"):
        getattr(rt, name).__name__ = name
    return rt


def test_insufficient_driver_names_the_mismatch_and_the_matching_extra():
    with pytest.raises(BackendUnavailable) as exc:
        cuda_probe._probe_cuda_python(_fake_rt(), 0)
    line = str(exc.value)
    assert "\n" not in line and "cudaErrorInsufficientDriver" in line
    assert "supports CUDA 12.2" in line and "cuda-python>=12.0,<13" in line and "ganrt[trt]" in line
    with pytest.raises(BackendUnavailable, match="newer NVIDIA driver"):  # the runtime call fails first
        cuda_probe._probe_cuda_python(_fake_rt(fail="cudaRuntimeGetVersion"), 0)


def test_extras_pin_cuda_python_to_the_driver_major():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "cuda-python>=12.6,<13" in extras["trt"] and "cuda-python>=12.6,<13" in extras["trt-jetson"]
    assert "cuda-python>=13,<14" in extras["trt-cu13"]
    # TensorRT wheels of the same CUDA major (a bare `tensorrt` resolves to whatever CUDA the newest wheel has)
    assert any(r.startswith("tensorrt-cu12") for r in extras["trt"])
    assert any(r.startswith("tensorrt-cu13") for r in extras["trt-cu13"])
    assert not any(r.startswith("tensorrt") for r in extras["trt-jetson"])  # JetPack's TensorRT is used


# --- 4. the engine key: TensorRT build + driver, never the helper's CUDA runtime ------------------------


def test_engine_key_ignores_the_helper_runtime_and_follows_tensorrt_build_and_driver(manifest):
    art, prof = manifest.artifact("int8-trt"), _profile()
    cuda_python = DeviceFacts(ORIN, 13040, 12060, via="cuda-python")  # cuda-bindings 13 reports its own 13.4
    pycuda = DeviceFacts(ORIN, 12020, 12060, via="pycuda")  # pycuda reports the CUDA it was built with
    a = make_identity(manifest, art, prof, "10.3.0", cuda_python, "tensorrt 10.3.0.30 (/usr/lib/python3.10)")
    assert make_identity(manifest, art, prof, "10.3.0", pycuda, "tensorrt 10.3.0.30 (/usr/lib/python3.10)") == a
    other_build = make_identity(manifest, art, prof, "10.3.0", cuda_python, "tensorrt-cu12 10.3.0 (cu12)")
    newer_driver = make_identity(manifest, art, prof, "10.3.0", dataclasses.replace(cuda_python, cuda_driver=12080),
                                 "tensorrt 10.3.0.30 (/usr/lib/python3.10)")
    assert a.diff(other_build) == ["toolkit.tensorrt_build"] and a.diff(newer_driver) == ["toolkit.cuda_driver"]
    assert "cuda_runtime" not in json.dumps(a.to_dict()) and "13040" not in a.canonical_json()
    assert a.timing_cache_name() != other_build.timing_cache_name()


def test_tensorrt_build_label_names_the_installed_distribution():
    import numpy

    assert cuda_probe.tensorrt_build_label(numpy).startswith(f"numpy {numpy.__version__} (")
    fake = FakeTensorRT("10.3.0")
    assert cuda_probe.tensorrt_build_label(fake) == "fake_tensorrt 10.3.0 (/nowhere/fake_tensorrt)"
    assert TensorRTBuilder(trt=fake).build_label == "fake_tensorrt 10.3.0 (/nowhere/fake_tensorrt)"


# --- 3. a corrupt timing cache -------------------------------------------------------------------------


def test_corrupt_timing_cache_starts_afresh_instead_of_failing_every_build(caplog):
    config = FakeTensorRT().Builder(None).create_builder_config()
    assert config.create_timing_cache(b"garbage") is None  # the fake behaves like the bindings
    with pytest.raises(TypeError):
        config.set_timing_cache(None, False)
    set_timing_cache(config, b"garbage")
    assert config.timing_cache is not None and config.timing_cache.data == b"TC1"
    assert "timing cache unreadable" in caplog.text
    set_timing_cache(config, b"TC1saved")
    assert config.timing_cache.data == b"TC1saved"


def _build(trt: FakeTensorRT, dla_core=0, precision="int8-trt", timing=None):
    prof = _profile(dla_core=dla_core, cuda_graphs=False)
    ident = EngineIdentity("ab" * 32, (ShapeProfile("input", (1, 1, 32, 32), (1, 1, 32, 32), (1, 1, 32, 32)),),
                           build_options(prof.tensorrt, precision, trt.version),
                           Toolkit(trt.version, "x", 12060), ORIN)
    out = TensorRTBuilder(trt=trt).build(BuildRequest(ident, b"onnx", precision, timing, progress=False))
    return ident, out, trt.built[-1]


def test_build_with_a_corrupt_timing_cache_file_succeeds():
    _, out, built = _build(FakeTensorRT(), dla_core=None, precision="fp16", timing=b"not-a-cache")
    assert out.engine.startswith(b"ENGINE:") and out.timing_cache == b"TC1"


# --- 5 and 7. DLA builds: typed as TensorRT 10.x / 11.x need, and reported as they are ------------------


def test_dla_on_10_3_builds_weakly_typed_with_fp16_int8_like_trtexec():
    ident, out, built = _build(FakeTensorRT("10.3.0"))
    assert ident.build.strongly_typed is False and built.network_flags == 0
    assert built.config.flags == {"FP16", "INT8", "GPU_FALLBACK"} and built.config.DLA_core == 0
    assert any("ADJUST_FOR_DLA is not in TensorRT 10.3.0 (first in 10.16)" in n for n in out.notes)
    assert out.dla_fallback == ("relu1 (CONVOLUTION)",)
    assert [x["type"] for x in out.layers] == ["DLA", "CaskConvolution", "DLA"]  # read from the built engine
    assert any("2 with a DLA layer type" in n for n in out.notes)


def test_dla_on_10_16_sets_adjust_for_dla_and_fp16_only_for_fp16_artifacts():
    trt = FakeTensorRT("10.16.0")
    ident, out, built = _build(trt, precision="fp16")
    assert built.config.flags == {"FP16", "GPU_FALLBACK"}
    assert "ONNX parser flag ADJUST_FOR_DLA set" in out.notes


def test_dla_on_11_stays_strongly_typed_without_precision_flags():
    ident, out, built = _build(FakeTensorRT("11.4.0"))
    assert ident.build.strongly_typed is True and built.config.flags == {"GPU_FALLBACK"}
    assert all(x["type"] == "DLA" for x in out.layers if x["name"] != "relu1")


def test_the_fake_fails_or_falls_back_like_tensorrt_10_when_dla_is_strongly_typed():
    """What the old builder did on 10.3 (strongly typed + DLA): every layer on the GPU."""
    trt = FakeTensorRT("10.3.0")
    builder, config = trt.Builder(None), trt.Builder(None).create_builder_config()
    config.default_device_type = trt.DeviceType.DLA
    engine = builder.build_serialized_network(builder.create_network(2), config)
    assert "DLA" not in engine.decode()


def test_gpu_builds_stay_strongly_typed_on_10_3():
    ident, out, built = _build(FakeTensorRT("10.3.0"), dla_core=None, precision="int8-trt")
    assert ident.build.strongly_typed and built.network_flags == 2 and built.config.flags == set()
    assert out.notes == () and out.layers == ()


# --- 2 and 9. ONNX Runtime's TensorRT EP ---------------------------------------------------------------


def test_ort_trt_ep_needs_a_release_that_builds_strongly_typed(monkeypatch, manifest):
    floor = ".".join(map(str, MIN_ORT_STRONGLY_TYPED))
    check_ort_for_trt_ep(floor + ".0")
    with pytest.raises(BackendUnavailable, match=f"weakly typed.*onnxruntime-gpu>={floor}"):
        check_ort_for_trt_ep("1.18.1")
    import onnxruntime

    from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner, Provider

    runner = OnnxRuntimeRunner(manifest.artifact("fp16"), manifest=manifest, profile=_profile(cuda_graphs=True))
    monkeypatch.setattr(onnxruntime, "__version__", "1.18.1")
    assert runner._provider_list([Provider.TENSORRT, Provider.CPU]) == ["CPUExecutionProvider"]


# --- 6. CUDA graphs and DLA ----------------------------------------------------------------------------


def test_profile_validate_refuses_dla_with_cuda_graphs(tmp_path, capsys):
    bad = tmp_path / "agx-graphs.toml"
    bad.write_text((ROOT / "firmware_configs" / "jetson-agx-orin.toml").read_text()
                   .replace("cuda_graphs = false", "cuda_graphs = true"))
    assert main(["profile", "validate", str(bad)]) == ConfigError.exit_code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "agx-graphs.toml" in err and "cuda_graphs" in err and "dla_core" in err
    assert main(["profile", "validate", str(ROOT / "firmware_configs" / "jetson-agx-orin.toml")]) == 0


def test_runner_never_captures_a_dla_engine(manifest, tmp_path):
    cuda = FakeCuda()
    from test_tensorrt_logic import FakeBuilder, FakeProbe

    from ganrt.runtime.backends.tensorrt.runner import TensorRTRunner

    prof = _profile(dla_core=0, cuda_graphs=False, min_hw=[32, 32])
    r = TensorRTRunner(manifest, manifest.artifact("int8-trt"), prof, tmp_path / "c", cuda_graphs=True,
                       builder=FakeBuilder(), probe=FakeProbe(), cuda=lambda: cuda, trt=FakeTrt(cuda))
    with r:
        for i in range(3):
            x = _x(32, 32, i)
            np.testing.assert_array_equal(r.infer({"input": x})["output"], x * 0.5)
        assert "CUDA graphs" not in r.io.description
    assert cuda.captures == 0 and cuda.launches == 0


def test_failed_capture_frees_its_graph_and_clears_the_error(manifest, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(FakeContext, "fail_under_capture", True)
    cuda = FakeCuda()
    with _runner(manifest, tmp_path, cuda) as r:
        for i in range(4):  # the capture fails on the first frame; every frame still comes back right
            x = _x(32, 32, i)
            np.testing.assert_array_equal(r.infer({"input": x})["output"], x * 0.5)
        assert cuda.last_error is None and not r._graphs
    assert cuda.live_graphs == set() and cuda.launches == 0
    assert "execute_async_v3 failed under capture" in caplog.text


# --- 11. one graph per batch size, thread-local capture ---------------------------------------------------


def test_changing_batch_sizes_replay_their_own_graphs(manifest, tmp_path):
    cuda = FakeCuda()
    with _runner(manifest, tmp_path, cuda) as r:
        r._shape_profile = dataclasses.replace(r._shape_profile, max=(4, 1, 64, 64))
        x4 = np.random.default_rng(0).random((4, 1, 32, 32), dtype=np.float32)
        r.infer({"input": x4})  # the largest batch first: the buffers never move after this
        for n in [1, 2, 3, 4] * 3:
            x = x4[:n] + n
            np.testing.assert_array_equal(r.infer({"input": x})["output"], x * 0.5)
        assert cuda.captures == 4 and cuda.graphs_destroyed == 0  # one per batch size, none recaptured


class _FakeCudaRuntime(SimpleNamespace):
    """cuda.bindings.runtime for CudaPythonMem: records calls; EndCapture hands back a graph."""

    def __init__(self) -> None:
        calls: list[tuple] = []
        modes = SimpleNamespace(cudaStreamCaptureModeGlobal="global", cudaStreamCaptureModeThreadLocal="thread-local")

        def rec(name, result=0):
            return lambda *a: (calls.append((name, *a)), result)[1]

        super().__init__(calls=calls, cudaStreamCaptureMode=modes, cudaSetDevice=rec("cudaSetDevice"),
                         cudaStreamBeginCapture=rec("cudaStreamBeginCapture"),
                         cudaStreamEndCapture=rec("cudaStreamEndCapture", (0, 77)),
                         cudaGraphDestroy=rec("cudaGraphDestroy"), cudaGetLastError=rec("cudaGetLastError", (0,)),
                         cudaMalloc=rec("cudaMalloc", (0, 0x3000)))


def _install_runtime(monkeypatch, rt) -> None:
    pkg, bindings = ModuleType("cuda"), ModuleType("cuda.bindings")
    bindings.runtime = rt
    pkg.bindings = bindings
    monkeypatch.setitem(sys.modules, "cuda", pkg)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", rt)


def test_cuda_python_capture_is_thread_local_and_abort_cleans_up(monkeypatch):
    rt = _FakeCudaRuntime()
    _install_runtime(monkeypatch, rt)
    mem = cuda_mem.CudaPythonMem()
    mem.graph_begin_capture(5)
    assert ("cudaStreamBeginCapture", 5, "thread-local") in rt.calls
    mem.graph_abort_capture(5)
    names = [c[0] for c in rt.calls]
    assert names[-3:] == ["cudaStreamEndCapture", "cudaGraphDestroy", "cudaGetLastError"]
    assert rt.calls[-2] == ("cudaGraphDestroy", 77)


def test_cuda_python_binds_the_device_on_each_worker_thread(monkeypatch):
    rt = _FakeCudaRuntime()
    _install_runtime(monkeypatch, rt)
    mem = cuda_mem.CudaPythonMem(device=1)
    mem.alloc_device(16)  # the activating thread: bound once, at construction
    t = threading.Thread(target=lambda: (mem.alloc_device(16), mem.alloc_device(16)), name="ganrt-infer")
    t.start()
    t.join()
    assert [c for c in rt.calls if c[0] == "cudaSetDevice"] == [("cudaSetDevice", 1)] * 2  # once per thread


def test_cuda_python_failed_end_capture_clears_the_last_error(monkeypatch):
    rt = _FakeCudaRuntime()
    rt.cudaStreamEndCapture = lambda s: (rt.calls.append(("cudaStreamEndCapture", s)), (901, None))[1]
    rt.cudaGetErrorName = rt.cudaGetErrorString = lambda e: (0, b"cudaErrorStreamCaptureInvalidated")
    _install_runtime(monkeypatch, rt)
    with pytest.raises(cuda_mem.CudaError, match="cudaStreamEndCapture"):
        cuda_mem.CudaPythonMem().graph_end_capture(5)
    assert rt.calls[-1] == ("cudaGetLastError",)


def test_cuda_python_mem_names_the_driver_mismatch(monkeypatch):
    rt = _FakeCudaRuntime()
    rt.cudaSetDevice = lambda d: (cuda_probe.INSUFFICIENT_DRIVER,)
    rt.cudaDriverGetVersion = lambda: (0, 12020)
    _install_runtime(monkeypatch, rt)
    with pytest.raises(cuda_mem.CudaError, match=r"cudaSetDevice failed: .*supports CUDA 12\.2.*<13"):
        cuda_mem.CudaPythonMem()


# --- 8. pycuda on the worker threads -------------------------------------------------------------------


def _fake_pycuda():
    """pycuda.driver with per-thread context stacks: mem_alloc needs a current context."""
    local = threading.local()
    drv = ModuleType("pycuda.driver")

    class Error(Exception):
        pass

    def stack():
        if not hasattr(local, "s"):
            local.s = []
        return local.s

    class Context:
        def push(self):
            stack().append(self)

        @staticmethod
        def pop():
            stack().pop()

        def detach(self):
            pass

    def mem_alloc(n):
        if not stack():
            raise Error("cuMemAlloc failed: invalid device context")
        return SimpleNamespace(n=n, free=lambda: None)

    class Device:
        def __init__(self, i):
            pass

        def retain_primary_context(self):
            return Context()

    drv.Error, drv.Context, drv.Device, drv.init, drv.stack = Error, Context, Device, lambda: None, stack
    drv.mem_alloc = lambda n: (mem_alloc(n), 0x2000)[1]
    pkg = ModuleType("pycuda")
    pkg.driver = drv
    return pkg, drv


def test_pycuda_calls_work_on_a_worker_thread(monkeypatch):
    pkg, drv = _fake_pycuda()
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
    mem = cuda_mem.PyCudaMem()  # activated on this thread
    result: list = []

    def worker():
        try:
            result.append(mem.alloc_device(64).ptr)
            result.append(len(drv.stack()))  # the context is popped again after the call
        except Exception as exc:  # noqa: BLE001 reported to the test thread
            result.append(exc)

    t = threading.Thread(target=worker, name="ganrt-infer")
    t.start()
    t.join()
    assert result == [0x2000, 0]
    assert drv.stack() == []  # nothing left pushed on the activating thread either


# --- 10. what `ganrt engine info` says about this machine ----------------------------------------------


def test_engine_info_names_tensorrt_driver_and_helper_found_here(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # importing it fails, as on a venv without JetPack's
    assert main(["engine", "info", "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "TensorRT:" in out and "not found" in out and "--system-site-packages" in out
    assert "CUDA driver:" in out and "CUDA helper:" in out and "onnxruntime:" in out
    assert main(["engine", "info", "--cache", str(tmp_path / "c"), "--json"]) == 0
    env = json.loads(capsys.readouterr().out)["environment"]
    assert set(env) == {"TensorRT", "CUDA driver", "CUDA helper", "onnxruntime"}


def test_engine_info_reports_a_driver_older_than_cuda_python(monkeypatch):
    monkeypatch.setattr(cuda_probe, "_cuda_python_runtime", lambda: _fake_rt(driver=12020, runtime=13040))
    driver, helper = cuda_probe._driver_and_helper()
    assert driver == "supports CUDA 12.2" and "runtime 13.4" in helper and "newer than the driver" in helper


def test_shipped_jetson_profile_is_valid_and_keeps_dla_without_graphs():
    agx = DeviceProfile.load("jetson-agx-orin")
    assert agx.tensorrt.dla_core == 0 and agx.tensorrt.cuda_graphs is False
    assert Manifest is not None  # imported for the fixtures


def test_build_notes_reach_engine_json_and_engine_info(manifest, tmp_path, capsys):
    from test_tensorrt_logic import FakeBuilder, FakeProbe

    from ganrt.runtime.backends.tensorrt.builder import BuildOutput
    from ganrt.runtime.backends.tensorrt.load import load_or_build

    class NotingBuilder(FakeBuilder):
        def build(self, request):
            out = super().build(request)
            return BuildOutput(out.engine, out.timing_cache, ("relu1 (ACTIVATION)",),
                               ("ONNX parser flag ADJUST_FOR_DLA is not in TensorRT 10.3.0 (first in 10.16): x",),
                               ({"name": "{ForeignNode[conv1]}", "type": "DLA"},))

    res = load_or_build(manifest, manifest.artifact("int8-trt"), _profile(dla_core=0, cuda_graphs=False),
                        tmp_path / "c", builder=NotingBuilder(), probe=FakeProbe(DeviceFacts(ORIN, 13040, 12060)),
                        progress=False)
    meta = json.loads((res.entry.dir / "engine.json").read_text())
    assert meta["build_notes"][0].startswith("ONNX parser flag ADJUST_FOR_DLA is not in")
    assert meta["layers"] == [{"name": "{ForeignNode[conv1]}", "type": "DLA"}]
    assert meta["built_on"]["helper_cuda_runtime"] == 13040 and meta["identity"]["build"]["strongly_typed"] is False
    assert main(["engine", "info", "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "weakly typed, DLA core 0" in out and "ADJUST_FOR_DLA is not in TensorRT 10.3.0" in out
