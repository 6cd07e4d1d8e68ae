"""The TensorRT path without TensorRT: engine identity, optimisation profiles, the engine cache,
load_or_build with an injected builder/probe, the runner's buffer/stream/graph logic against a
fake CUDA, the CLI's one-line errors and the ONNX Runtime TensorRT EP options.

Tests marked ``trt`` build and run real engines; they skip, saying why, without TensorRT or a GPU.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from bundles import make_bundle

from ganrt.runtime.backends.base import Backend
from ganrt.runtime.backends.onnxruntime import tensorrt_ep_options
from ganrt.runtime.backends.registry import select
from ganrt.runtime.backends.tensorrt.builder import (
    BuildOutput,
    BuildRequest,
    TensorRTBuilder,
    check_tensorrt_version,
    parser_error_line,
)
from ganrt.runtime.backends.tensorrt.cache import (
    ENGINE_FILE,
    META_FILE,
    EngineCache,
    atomic_write_bytes,
    default_cache_dir,
)
from ganrt.runtime.backends.tensorrt.cuda_mem import CudaError, DeviceBuffer, PinnedBuffer
from ganrt.runtime.backends.tensorrt.identity import (
    IDENTITY_SCHEMA,
    DeviceFacts,
    DeviceInfo,
    EngineIdentity,
    ShapeProfile,
    Toolkit,
    build_options,
    make_identity,
    optimisation_profile,
)
from ganrt.runtime.backends.tensorrt.load import load_or_build
from ganrt.runtime.backends.tensorrt.reporting import make_progress_monitor
from ganrt.runtime.backends.tensorrt.runner import TensorRTRunner
from ganrt.runtime.cli import main
from ganrt.runtime.errors import BackendUnavailable, ConfigError, EngineMismatch, ModelError
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir
from ganrt.runtime.model.profiles import DeviceProfile

ORIN = DeviceInfo("Orin", (8, 7), 16, 62841, False, True)
RTX = DeviceInfo("NVIDIA GeForce RTX 4090", (8, 9), 128, 24080, False, False)
FACTS = DeviceFacts(RTX, 12060, 12040, uuid="aa" * 16, pci_bus_id="0000:01:00")


def _profile(name="test-gpu", min_hw=(16, 16), opt_hw=(32, 32), max_hw=(64, 64), **trt) -> DeviceProfile:
    if trt.get("dla_core") is not None:
        trt.setdefault("cuda_graphs", False)  # the validator refuses CUDA graphs with DLA
    raw = {"name": name, "budget_ms": 33.0, "input_hw": [32, 32], "precision": "fp16",
           "backends": ["tensorrt", "onnxruntime"],
           "tensorrt": {"min_hw": list(min_hw), "opt_hw": list(opt_hw), "max_hw": list(max_hw), **trt}}
    return DeviceProfile.from_dict(raw, f"{name}.toml")


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle", precisions=("fp32", "fp16", "int8-cpu", "int8-trt"))


@pytest.fixture
def manifest(bundle: Path) -> Manifest:
    return Manifest.load(bundle)


def _identity(**over: Any) -> EngineIdentity:
    base = EngineIdentity(
        onnx_sha256="ab" * 32,
        profiles=(ShapeProfile("input", (1, 1, 256, 256), (1, 1, 512, 512), (1, 1, 1088, 1920)),),
        build=build_options(_profile().tensorrt, "fp16"),
        toolkit=Toolkit("10.3.0", "tensorrt-cu12 10.3.0 (cu12)", 12040),
        device=RTX,
    )
    return dataclasses.replace(base, **over)


# --- identity --------------------------------------------------------------------------------------


def _leaf_paths() -> list[str]:
    return [k for k in _identity().flat() if k != "profiles"]


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if value is None:
        return 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple) and len(value) == 4:
        return value[:3] + (value[3] + 8,)
    if isinstance(value, tuple):
        return value[:-1] + (value[-1] + 1,)
    raise AssertionError(f"no change rule for {value!r}")


def _with(ident: EngineIdentity, path: str, value: Any) -> EngineIdentity:
    m = re.fullmatch(r"profiles\[(\d+)\]\.(\w+)", path)
    if m:
        i, name = int(m.group(1)), m.group(2)
        profiles = list(ident.profiles)
        profiles[i] = dataclasses.replace(profiles[i], **{name: value})
        return dataclasses.replace(ident, profiles=tuple(profiles))
    if "." in path:
        group, name = path.split(".")
        return dataclasses.replace(ident, **{group: dataclasses.replace(getattr(ident, group), **{name: value})})
    return dataclasses.replace(ident, **{path: value})


def test_identity_key_is_stable_for_equal_inputs():
    a, b = _identity(), _identity()
    assert a is not b and a == b
    assert a.key() == b.key() and re.fullmatch(r"[0-9a-f]{64}", a.key())
    assert a.diff(b) == []
    # the canonical JSON does not depend on dict order or whitespace
    assert a.canonical_json() == EngineIdentity.from_json(a.to_json(indent=4)).canonical_json()


def test_every_identity_field_is_covered():
    """The parametrised test below walks every leaf; make sure it sees all dataclass fields."""
    paths = set(_leaf_paths())
    for group in ("build", "toolkit", "device"):
        for f in dataclasses.fields(getattr(_identity(), group)):
            assert f"{group}.{f.name}" in paths
    for f in dataclasses.fields(ShapeProfile):
        assert f"profiles[0].{f.name}" in paths
    assert "onnx_sha256" in paths
    assert "uuid" not in " ".join(paths)  # two identical cards share engines


@pytest.mark.parametrize("path", _leaf_paths())
def test_identity_key_changes_with_any_single_field(path):
    base = _identity()
    changed = _with(base, path, _changed(base.flat()[path]))
    assert changed.key() != base.key()
    assert base.diff(changed) == [path]
    assert changed.diff(base) == [path]
    line = base.describe_diff(changed)
    assert line.startswith(path) and "cached" in line and "here" in line


def test_identity_diff_with_another_profile_count():
    base = _identity()
    two = dataclasses.replace(base, profiles=base.profiles * 2)
    assert base.diff(two) == ["profiles"] and base.key() != two.key()


def test_identity_json_round_trip():
    for ident in (_identity(), _identity(device=ORIN, build=build_options(_profile(dla_core=1).tensorrt, "int8-trt"))):
        back = EngineIdentity.from_json(ident.to_json())
        assert back == ident and back.key() == ident.key()
        assert isinstance(back.device.compute_capability, tuple) and isinstance(back.profiles[0].max, tuple)
    d = json.loads(_identity().to_json())
    assert d["schema"] == IDENTITY_SCHEMA
    d["schema"] = IDENTITY_SCHEMA + 1
    with pytest.raises(ValueError, match="schema"):
        EngineIdentity.from_dict(d)
    with pytest.raises(ValueError):
        EngineIdentity.from_json("{not json")
    with pytest.raises(ValueError, match="malformed"):
        EngineIdentity.from_dict({"schema": IDENTITY_SCHEMA, "onnx_sha256": "x"})


def test_identity_ignores_uuid_bus_and_cuda_graphs(manifest):
    art = manifest.artifact("fp16")
    a = make_identity(manifest, art, _profile(), "10.3.0", FACTS)
    other_card = dataclasses.replace(FACTS, uuid="bb" * 16, pci_bus_id="0000:02:00")
    no_graphs = _profile(cuda_graphs=False)
    assert make_identity(manifest, art, no_graphs, "10.3.0", other_card).key() == a.key()
    # ...while what the engine depends on does count
    assert make_identity(manifest, manifest.artifact("int8-trt"), _profile(), "10.3.0", FACTS).key() != a.key()
    assert make_identity(manifest, art, _profile(workspace_mb=2048), "10.3.0", FACTS).key() != a.key()
    assert make_identity(manifest, art, _profile(), "10.7.0", FACTS).key() != a.key()


# --- optimisation profiles -------------------------------------------------------------------------


def test_optimisation_profile_from_shipped_profiles(manifest):
    rtx = DeviceProfile.load("desktop-rtx")
    assert optimisation_profile(rtx, manifest) == ((1, 1, 256, 256), (1, 1, 1080, 1920), (1, 1, 2160, 3840))
    m16 = dataclasses.replace(manifest, size_multiple=16)
    assert optimisation_profile(rtx, m16)[1] == (1, 1, 1088, 1920)  # 1080 rounds UP to 1088
    agx = DeviceProfile.load("jetson-agx-orin")
    assert optimisation_profile(agx, manifest) == ((1, 1, 512, 512),) * 3


def test_optimisation_profile_batches_only_models_with_a_dynamic_batch(manifest):
    rtx = DeviceProfile.load("desktop-rtx")
    assert rtx.tensorrt.max_batch == 4
    batched = dataclasses.replace(manifest, dynamic_batch=True)
    assert optimisation_profile(rtx, batched) == ((1, 1, 256, 256), (1, 1, 1080, 1920), (4, 1, 2160, 3840))
    assert optimisation_profile(rtx, manifest)[2][0] == 1  # a static-batch ONNX cannot build a range
    with pytest.raises(ConfigError, match="static"):  # DLA: one shape, batch included
        optimisation_profile(_profile("dla-b", (512, 512), (512, 512), (512, 512), dla_core=0, max_batch=2), batched)
    for bad in (0, 17):
        with pytest.raises(ConfigError, match="max_batch"):
            _profile(max_batch=bad)


def test_bundled_manifests_say_dynamic_batch_and_their_onnx_agrees():
    import onnx

    from ganrt.runtime.model.manifest import bundled_model_dir

    for task in ("us-enhance", "us-sr2x", "intraop-enhance"):
        m = Manifest.load(bundled_model_dir(task))
        assert m.dynamic_batch, task
        for art in m.artifacts.values():
            g = onnx.load_from_string(art.verified_bytes()).graph
            assert g.input[0].type.tensor_type.shape.dim[0].dim_param, (task, art.key)


def test_onnxruntime_under_the_tensorrt_ep_batches_no_more_than_its_profile(manifest):
    from types import SimpleNamespace

    from ganrt.runtime.backends.onnxruntime import OnnxRuntimeRunner

    batched = dataclasses.replace(manifest, dynamic_batch=True)
    runner = OnnxRuntimeRunner(manifest.artifacts["fp32"], manifest=batched, profile=_profile(max_batch=3))
    runner._session = SimpleNamespace(get_providers=lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"])
    assert runner._trt_max_batch() == 3
    runner._session = SimpleNamespace(get_providers=lambda: ["CPUExecutionProvider"])
    assert runner._trt_max_batch() is None


def test_optimisation_profile_rounds_up_and_takes_channels(manifest):
    rgb = dataclasses.replace(manifest, size_multiple=8, input=dataclasses.replace(manifest.input, channels=3))
    mn, opt, mx = optimisation_profile(_profile(min_hw=(250, 257), opt_hw=(480, 640), max_hw=(721, 1281)), rgb)
    assert mn == (1, 3, 256, 264) and opt == (1, 3, 480, 640) and mx == (1, 3, 728, 1288)
    assert all(s[2] % 8 == 0 and s[3] % 8 == 0 for s in (mn, opt, mx))


def test_dla_needs_static_shapes(manifest):
    with pytest.raises(ConfigError, match=r"dla-dyn\.toml.*'dla-dyn'.*static"):
        optimisation_profile(_profile("dla-dyn", (256, 256), (512, 512), (512, 512), dla_core=0), manifest)
    # equal after rounding to the size multiple is static
    shapes = optimisation_profile(_profile("dla-ok", (510, 510), (511, 511), (512, 512), dla_core=1), manifest)
    assert shapes == ((1, 1, 512, 512),) * 3


# --- atomic writes and the cache -------------------------------------------------------------------


def _half_then_fail(fh, data: bytes) -> None:
    fh.write(data[: len(data) // 2])
    raise OSError(28, "No space left on device")


def test_atomic_write_failure_leaves_old_file_and_no_partial(tmp_path):
    target = tmp_path / "model.engine"
    atomic_write_bytes(target, b"OLD-ENGINE" * 10)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"NEW-ENGINE" * 1000, writer=_half_then_fail)
    assert target.read_bytes() == b"OLD-ENGINE" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.engine"]


def test_cache_store_failure_keeps_previous_entry(tmp_path):
    ident = _identity()
    EngineCache(tmp_path).store(ident, b"ENGINE-v1", {"built_at": "t1"})
    with pytest.raises(OSError):
        EngineCache(tmp_path, writer=_half_then_fail).store(ident, b"ENGINE-v2" * 100, {"built_at": "t2"})
    entry = EngineCache(tmp_path).entry(ident.key())
    assert entry is not None and entry.read_engine() == b"ENGINE-v1" and entry.meta["built_at"] == "t1"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GANRT_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GANRT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "ganrt" / "engines"


# --- load_or_build with an injected builder and probe ----------------------------------------------


class FakeBuilder:
    def __init__(self, version: str = "10.3.0", fallback: tuple[str, ...] = ()) -> None:
        self.version = version
        self.requests: list[BuildRequest] = []
        self.fallback = fallback

    def build(self, request: BuildRequest) -> BuildOutput:
        self.requests.append(request)
        engine = b"ENGINE:" + request.identity.key().encode() + b":%d" % len(self.requests)
        return BuildOutput(engine, timing_cache=b"TIMING%d" % len(self.requests), dla_fallback=self.fallback)


class FakeProbe:
    def __init__(self, facts: DeviceFacts = FACTS) -> None:
        self.facts = facts

    def __call__(self) -> DeviceFacts:
        return self.facts


def _lob(manifest, cache, builder, probe, key="fp16", profile=None, **kw):
    return load_or_build(manifest, manifest.artifact(key), profile or _profile(), cache, builder=builder,
                         probe=probe, progress=False, **kw)


def test_load_or_build_hits_on_identical_identity(manifest, tmp_path):
    builder, probe = FakeBuilder(), FakeProbe()
    first = _lob(manifest, tmp_path / "c", builder, probe)
    assert first.built and first.reason == "missing" and len(builder.requests) == 1
    onnx = manifest.artifact("fp16").path.read_bytes()
    assert builder.requests[0].onnx == onnx and builder.requests[0].timing_cache is None
    entry_dir = tmp_path / "c" / first.identity.key()
    assert (entry_dir / ENGINE_FILE).read_bytes() == first.engine
    meta = json.loads((entry_dir / META_FILE).read_text())
    assert meta["tensorrt"] == "10.3.0" and meta["identity"]["device"]["name"] == RTX.name and meta["built_at"]
    assert meta["artifact"]["precision"] == "fp16" and "uuid" not in json.dumps(meta["identity"])

    again = _lob(manifest, tmp_path / "c", FakeBuilder(), FakeProbe(dataclasses.replace(FACTS, uuid="cc" * 16)))
    assert not again.built and again.engine == first.engine and again.entry.key == first.entry.key


def test_load_or_build_rebuilds_on_mismatch_and_shares_the_timing_cache(manifest, tmp_path):
    builder = FakeBuilder()
    a = _lob(manifest, tmp_path / "c", builder, FakeProbe())
    newer = FakeBuilder(version="10.7.0")
    b = _lob(manifest, tmp_path / "c", newer, FakeProbe())
    assert b.built and b.entry.key != a.entry.key and len(newer.requests) == 1
    assert a.identity.diff(b.identity) == ["toolkit.tensorrt"]
    # a second model on the same device/toolkit gets the timing cache the first build saved
    c = _lob(manifest, tmp_path / "c", builder, FakeProbe(), key="int8-trt")
    assert c.built and builder.requests[-1].timing_cache == b"TIMING1"
    entries, problems = EngineCache(tmp_path / "c").entries()
    assert len(entries) == 3 and problems == []


def test_no_build_names_the_differing_field(manifest, tmp_path):
    with pytest.raises(EngineMismatch, match="no cached TensorRT engine"):
        _lob(manifest, tmp_path / "c", FakeBuilder(), FakeProbe(), no_build=True)
    _lob(manifest, tmp_path / "c", FakeBuilder(), FakeProbe())
    other = FakeProbe(dataclasses.replace(FACTS, device=dataclasses.replace(RTX, sm_count=84)))
    builder = FakeBuilder()
    with pytest.raises(EngineMismatch, match=r"device\.sm_count \(cached 128, here 84\)") as exc:
        _lob(manifest, tmp_path / "c", builder, other, no_build=True)
    assert builder.requests == [] and "\n" not in str(exc.value)
    assert _lob(manifest, tmp_path / "c", builder, FakeProbe(), no_build=True).built is False


def test_corrupt_or_tampered_entries_are_never_loaded(manifest, tmp_path):
    builder = FakeBuilder()
    first = _lob(manifest, tmp_path / "c", builder, FakeProbe())
    engine = first.entry.engine_path
    engine.write_bytes(engine.read_bytes()[:-3] + b"XXX")  # bit rot / torn write
    with pytest.raises(EngineMismatch, match="corrupt"):
        _lob(manifest, tmp_path / "c", builder, FakeProbe(), no_build=True)
    rebuilt = _lob(manifest, tmp_path / "c", builder, FakeProbe())
    assert rebuilt.built and rebuilt.reason.startswith("corrupt") and len(builder.requests) == 2
    # an engine.json whose identity is not the wanted one (hand-edited, or a key collision)
    meta_path = first.entry.dir / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["identity"]["toolkit"]["tensorrt"] = "9.9.9"
    meta_path.write_text(json.dumps(meta))
    res = _lob(manifest, tmp_path / "c", builder, FakeProbe())
    assert res.built and res.reason.startswith("mismatch: toolkit.tensorrt")


def test_modified_onnx_is_refused_even_on_a_cache_hit(manifest, tmp_path):
    _lob(manifest, tmp_path / "c", FakeBuilder(), FakeProbe())
    art = manifest.artifact("fp16").path
    art.write_bytes(art.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        _lob(manifest, tmp_path / "c", FakeBuilder(), FakeProbe())


def test_int8_cpu_artifact_is_refused(manifest, tmp_path):
    with pytest.raises(ModelError, match="int8-cpu.*TensorRT takes"):
        _lob(manifest, tmp_path / "c", FakeBuilder(), FakeProbe(), key="int8-cpu")


def test_dla_fallback_is_recorded(manifest, tmp_path, caplog):
    agx = _profile("agx", (32, 32), (32, 32), (32, 32), dla_core=0)
    orin = FakeProbe(DeviceFacts(ORIN, 12060, 12020))
    res = _lob(manifest, tmp_path / "c", FakeBuilder(fallback=("Clip_2 (ACTIVATION)",)), orin, key="int8-trt", profile=agx)
    assert res.entry.dla_fallback == ["Clip_2 (ACTIVATION)"]
    assert res.identity.build.dla_core == 0
    assert "fall back to the GPU" in caplog.text


# --- the runner's GPU-side logic, against a fake TensorRT and a fake CUDA ---------------------------


class FakeStream:
    def __init__(self, handle: int) -> None:
        self.handle, self.capture = handle, None


class FakeCuda:
    """Host-memory stand-in for CudaMem: 'device' buffers are numpy arrays, work submitted to a
    capturing stream is recorded and replayed by graph_launch (with the addresses of capture time)."""

    name = "fake-cuda"

    def __init__(self, graphs: bool = True, fail_capture: bool = False) -> None:
        self.supports_graphs, self.fail_capture = graphs, fail_capture
        self.device: dict[int, np.ndarray] = {}
        self.pinned: set[int] = set()
        self.streams: dict[int, FakeStream] = {}
        self.next = 0x1000
        self.allocs = self.launches = self.graphs_destroyed = self.closed = self.captures = 0
        self.live_graphs: set[int] = set()  # graphs from end-capture not yet destroyed (leak check)
        self.last_error: str | None = None  # CUDA's sticky "last error", cleared by cudaGetLastError

    def _ptr(self) -> int:
        self.next += 0x1000
        return self.next

    def submit(self, stream: FakeStream, op) -> None:
        (stream.capture.append(op) if stream.capture is not None else op())

    def alloc_device(self, nbytes: int) -> DeviceBuffer:
        ptr = self._ptr()
        self.device[ptr] = np.zeros(nbytes, np.uint8)
        self.allocs += 1
        return DeviceBuffer(ptr, nbytes)

    def free_device(self, buf: DeviceBuffer) -> None:
        del self.device[buf.ptr]

    def alloc_pinned(self, nbytes: int) -> PinnedBuffer:
        ptr = self._ptr()
        self.pinned.add(ptr)
        return PinnedBuffer(ptr, nbytes, np.zeros(nbytes, np.uint8))

    def free_pinned(self, buf: PinnedBuffer) -> None:
        self.pinned.remove(buf.ptr)

    def memcpy_htod_async(self, dst, src, nbytes, stream) -> None:
        d, s = self.device[dst.ptr], src.array
        self.submit(stream, lambda: d.__setitem__(slice(0, nbytes), s[:nbytes]))

    def memcpy_dtoh_async(self, dst, src, nbytes, stream) -> None:
        d, s = dst.array, self.device[src.ptr]
        self.submit(stream, lambda: d.__setitem__(slice(0, nbytes), s[:nbytes]))

    def stream_create(self) -> FakeStream:
        s = FakeStream(self._ptr())
        self.streams[s.handle] = s
        return s

    def stream_handle(self, stream: FakeStream) -> int:
        return stream.handle

    def stream_synchronize(self, stream: FakeStream) -> None:
        assert stream.capture is None, "synchronize while capturing"

    def stream_destroy(self, stream: FakeStream) -> None:
        del self.streams[stream.handle]

    def graph_begin_capture(self, stream: FakeStream) -> None:
        if self.fail_capture:
            raise CudaError("CUDA cudaStreamBeginCapture failed: cudaErrorStreamCaptureUnsupported")
        stream.capture = []

    def graph_end_capture(self, stream: FakeStream):
        ops, stream.capture = stream.capture, None
        self.captures += 1
        self.live_graphs.add(id(ops))
        return ops

    def graph_abort_capture(self, stream: FakeStream) -> None:
        # cudaStreamEndCapture still succeeds after a failed enqueue and returns a graph that must be
        # destroyed; then cudaGetLastError clears the error the failure left behind.
        stream.capture = None
        self.last_error = None

    def graph_launch(self, graph, stream: FakeStream) -> None:
        self.launches += 1
        for op in graph:
            op()

    def graph_destroy(self, graph) -> None:
        self.graphs_destroyed += 1
        self.live_graphs.discard(id(graph))

    def close(self) -> None:
        self.closed += 1


class FakeTrt:
    """The slice of the tensorrt module the runner touches; the 'engine' halves its input."""

    __version__ = "10.3.0"

    class ILogger:
        class Severity:
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self) -> None:
            pass

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    class TensorIOMode:
        INPUT, OUTPUT = "input", "output"

    def __init__(self, cuda: FakeCuda) -> None:
        self.cuda = cuda
        self.contexts: list[Any] = []

    @staticmethod
    def nptype(dt):
        return dt

    def Runtime(self, logger):
        trt = self

        class Runtime:
            DLA_core = -1

            def deserialize_cuda_engine(self, data: bytes):
                return FakeEngine(trt) if data.startswith(b"ENGINE:") else None

        return Runtime()


class FakeEngine:
    num_io_tensors = 2

    def __init__(self, trt: FakeTrt) -> None:
        self.trt = trt

    def get_tensor_name(self, i: int) -> str:
        return ("input", "output")[i]

    def get_tensor_mode(self, name: str) -> str:
        return name

    def get_tensor_dtype(self, name: str):
        return np.float32

    def create_execution_context(self):
        ctx = FakeContext(self.trt.cuda)
        self.trt.contexts.append(ctx)
        return ctx


class FakeContext:
    """``fail_under_capture``: like an engine with DLA layers, execute_async_v3 returns False while
    the stream is capturing and leaves a CUDA error behind; a launch that finds a stale CUDA error
    fails too (what TensorRT reports when the last error was never cleared)."""

    fail_under_capture = False

    def __init__(self, cuda: FakeCuda) -> None:
        self.cuda, self.shape, self.addr, self.executions = cuda, None, {}, 0

    def set_input_shape(self, name: str, shape) -> bool:
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str):
        return self.shape

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addr[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        if self.cuda.last_error is not None:
            return False
        if self.fail_under_capture and self.cuda.streams[stream_handle].capture is not None:
            self.cuda.last_error = "cudaErrorStreamCaptureUnsupported"
            return False
        n = int(np.prod(self.shape)) * 4
        src, dst = self.cuda.device[self.addr["input"]], self.cuda.device[self.addr["output"]]

        def op() -> None:
            self.executions += 1
            x = src[:n].view(np.float32)
            dst[:n] = (x * np.float32(0.5)).view(np.uint8)

        self.cuda.submit(self.cuda.streams[stream_handle], op)
        return True


def _runner(manifest, tmp_path, cuda: FakeCuda, builder=None, **kw) -> TensorRTRunner:
    return TensorRTRunner(manifest, manifest.artifact("fp16"), _profile(), tmp_path / "cache",
                          builder=builder or FakeBuilder(), probe=FakeProbe(), cuda=lambda: cuda,
                          trt=FakeTrt(cuda), **kw)


def _x(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 1, h, w), dtype=np.float32)


def test_runner_infers_with_graphs_recaptures_on_shape_change_and_grows_buffers(manifest, tmp_path):
    cuda = FakeCuda()
    r = _runner(manifest, tmp_path, cuda)
    io_spec = r.activate()
    assert io_spec.input_name == "input" and io_spec.output_name == "output"
    assert "tensorrt 10.3.0" in io_spec.description and "CUDA graphs" in io_spec.description
    for i in range(3):  # first call: warm-up + capture; then replays
        x = _x(32, 32, i)
        np.testing.assert_array_equal(r.infer({"input": x})["output"], x * 0.5)
    assert cuda.launches == 2 and cuda.allocs == 2  # device buffers: in + out
    big = _x(48, 64, 7)  # larger frame: buffers grow, every graph dropped (old addresses), big captured
    np.testing.assert_array_equal(r.infer({"input": big})["output"], big * 0.5)
    np.testing.assert_array_equal(r.infer({"input": big})["output"], big * 0.5)
    assert cuda.allocs == 4 and cuda.graphs_destroyed == 1 and cuda.launches == 3
    small = _x(16, 16, 9)  # smaller: same buffers, a graph of its own; big's graph stays
    np.testing.assert_array_equal(r.infer({"input": small})["output"], small * 0.5)
    np.testing.assert_array_equal(r.infer({"input": small})["output"], small * 0.5)
    assert cuda.allocs == 4 and cuda.graphs_destroyed == 1 and cuda.captures == 3
    np.testing.assert_array_equal(r.infer({"input": big})["output"], big * 0.5)  # replayed, not recaptured
    assert cuda.captures == 3 and cuda.launches == 5
    r.deactivate()
    assert cuda.device == {} and cuda.pinned == set() and cuda.streams == {} and cuda.graphs_destroyed == 3
    assert cuda.live_graphs == set()


def test_runner_rejects_shapes_outside_the_profile_and_missing_feeds(manifest, tmp_path):
    with _runner(manifest, tmp_path, FakeCuda()) as r:
        for h, w in ((8, 8), (128, 32)):
            with pytest.raises(ModelError, match="outside the engine's optimisation profile"):
                r.infer({"input": _x(h, w)})
        with pytest.raises(ModelError, match="lack the engine's input"):
            r.infer({"x": _x(32, 32)})
        x = _x(32, 32)  # still works after the refusals
        np.testing.assert_array_equal(r.infer({"input": x})["output"], x * 0.5)


def test_runner_activate_deactivate_twice(manifest, tmp_path):
    cuda, builder = FakeCuda(), FakeBuilder()
    r = _runner(manifest, tmp_path, cuda, builder=builder)
    for round_ in range(2):
        r.activate()
        assert r.activate() is r.io  # activating an active runner is a no-op
        x = _x(32, 32, round_)
        np.testing.assert_array_equal(r.infer({"input": x})["output"], x * 0.5)
        r.deactivate()
        r.deactivate()
        assert cuda.device == {} and cuda.pinned == set() and cuda.streams == {}
        with pytest.raises(ModelError, match="before activate"):
            r.infer({"input": x})
    assert len(builder.requests) == 1  # the second activation loaded the cached engine
    assert cuda.closed == 2


def test_runner_without_graphs_or_when_capture_fails(manifest, tmp_path):
    for cuda, kw in ((FakeCuda(graphs=False), {}), (FakeCuda(), {"cuda_graphs": False}),
                     (FakeCuda(fail_capture=True), {})):
        with _runner(manifest, tmp_path, cuda, **kw) as r:
            for i in range(3):
                x = _x(32, 32, i)
                np.testing.assert_array_equal(r.infer({"input": x})["output"], x * 0.5)
        assert cuda.launches == 0 and cuda.device == {}


def test_runner_failed_activate_frees_everything(manifest, tmp_path):
    class BadEngineBuilder(FakeBuilder):
        def build(self, request):
            super().build(request)
            return BuildOutput(b"NOT-AN-ENGINE")

    cuda = FakeCuda()
    r = _runner(manifest, tmp_path, cuda, builder=BadEngineBuilder())
    with pytest.raises(EngineMismatch, match="cannot deserialize"):
        r.activate()
    assert not r.active and cuda.streams == {} and cuda.closed == 1


# --- the builder's TensorRT-facing helpers, with fakes -----------------------------------------------


def test_tensorrt_version_gate():
    assert check_tensorrt_version("10.3.0.26") == (10, 3)
    assert check_tensorrt_version("11.4.1") == (11, 4)
    with pytest.raises(BackendUnavailable, match="too old"):
        check_tensorrt_version("8.6.1")


def test_network_flags_for_10_and_11():
    class Flags:
        STRONGLY_TYPED = 1

    ten = type("T", (), {"__version__": "10.3.0", "NetworkDefinitionCreationFlag": Flags})
    assert TensorRTBuilder(trt=ten).network_flags() == 2
    eleven = type("T", (), {"__version__": "11.0.0", "NetworkDefinitionCreationFlag": type("F", (), {})})
    assert TensorRTBuilder(trt=eleven).network_flags() == 0  # always strongly typed in 11
    old = type("T", (), {"__version__": "10.3.0", "NetworkDefinitionCreationFlag": type("F", (), {})})
    with pytest.raises(BackendUnavailable):
        TensorRTBuilder(trt=old).network_flags()


def test_parser_errors_become_one_line():
    class Err:
        def __init__(self, i):
            self.i = i

        def desc(self):
            return f"Unsupported\noperator #{self.i}"

        def node_name(self):
            return f"n{self.i}"

        def node_operator(self):
            return "GridSample"

    parser = type("P", (), {"num_errors": 5, "get_error": lambda self, i: Err(i)})()
    line = parser_error_line(parser, "int8-trt", "10.3.0")
    assert "\n" not in line and "int8-trt" in line and "n0 (GridSample)" in line and "(+2 more)" in line


def test_progress_monitor_prints_phases():
    out = io.StringIO()
    mon = make_progress_monitor(FakeTrt(FakeCuda()), out, "fp16")
    mon.phase_start("Building engine", None, 3)
    mon.phase_start("Tactic timing", "Building engine", 10)
    assert mon.step_complete("Tactic timing", 0) is True
    mon.phase_finish("Tactic timing")
    mon.phase_finish("Building engine")
    mon.done()
    text = out.getvalue()
    assert "building fp16: Building engine (0/3)" in text and "Building engine done" in text
    assert "Tactic timing" not in text  # nested phases only on a terminal


# --- CLI and backend selection here (no TensorRT, no GPU) -------------------------------------------


def _trt_usable() -> bool:
    from ganrt.runtime.backends.tensorrt.runner import check_available

    try:
        check_available()
        return True
    except BackendUnavailable:
        return False


def _images(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i}.png"), np.full((24, 32), 40 * (i + 1), np.uint8))
    return folder


def _one_line(err: str, *fragments: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganrt: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.skipif("_trt_usable()", reason="TensorRT and a GPU are present here")
def test_cli_says_tensorrt_is_absent_in_one_line(tmp_path, bundle, capsys):
    src = _images(tmp_path / "imgs")
    rc = main(["run", "--source", str(src), "--model", str(bundle), "--backend", "tensorrt", "--out",
               str(tmp_path / "o"), "--sink", "null"])
    assert rc == BackendUnavailable.exit_code == 4
    _one_line(capsys.readouterr().err, "tensorrt", "install ganrt[trt]")
    for argv in (["engine", "build", str(bundle), "--profile", "desktop-rtx", "--cache", str(tmp_path / "c")],
                 ["engine", "build", str(bundle), "--profile", "jetson-orin-nano", "--no-build"],
                 ["engine", "prebuild", "--profile", "desktop-rtx", "--model", str(bundle)]):
        assert main(argv) == 4
        _one_line(capsys.readouterr().err, "TensorRT", "install ganrt[trt]")


def test_cli_engine_errors_before_tensorrt(tmp_path, bundle, capsys):
    assert main(["engine", "build", str(tmp_path / "nope"), "--profile", "desktop-rtx"]) == ModelError.exit_code
    _one_line(capsys.readouterr().err, "no model bundle")
    assert main(["engine", "build", str(bundle), "--profile", "no-such-profile"]) == ConfigError.exit_code
    _one_line(capsys.readouterr().err, "no such profile")
    assert main(["engine", "prebuild", "--profile", "cpu-x86-2core", "--model", str(bundle)]) == 2
    _one_line(capsys.readouterr().err, "does not use TensorRT")


@pytest.mark.skipif("_trt_usable()", reason="TensorRT and a GPU are present here")
def test_auto_on_desktop_rtx_falls_through_to_onnxruntime(tmp_path, bundle, manifest, capsys):
    sel = select(manifest, Backend.AUTO, DeviceProfile.load("desktop-rtx"))
    assert sel.backend is Backend.ONNXRUNTIME
    src = _images(tmp_path / "imgs")
    rc = main(["run", "--source", str(src), "--model", str(bundle), "--profile", "desktop-rtx", "--out",
               str(tmp_path / "o"), "--sink", "null", "--budget-ms", "1000"])
    assert rc == 0, capsys.readouterr().err
    rows = [json.loads(x) for x in (tmp_path / "o" / "record.jsonl").read_text().splitlines()]
    assert {r["backend"] for r in rows} == {"onnxruntime"} and len(rows) == 2


def test_cli_engine_info_lists_cached_engines(tmp_path, manifest, capsys):
    cache = tmp_path / "cache"
    _lob(manifest, cache, FakeBuilder(), FakeProbe())
    _lob(manifest, cache, FakeBuilder(fallback=("Clip (ACTIVATION)",)), FakeProbe(DeviceFacts(ORIN, 12060, 12020)),
         key="int8-trt", profile=_profile("agx", (32, 32), (32, 32), (32, 32), dla_core=0))
    (cache / "half-written").mkdir()
    assert main(["engine", "info", "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "2 engine(s)" in out and "TensorRT 10.3.0" in out and RTX.name in out and "Orin" in out
    assert "DLA core 0 (1 layer(s) on GPU fallback)" in out and "skipped half-written" in out
    assert main(["engine", "info", "--cache", str(cache), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["engines"]) == 2 and all("identity" in e for e in data["engines"])


# --- ONNX Runtime's TensorRT EP ---------------------------------------------------------------------


def test_ort_trt_ep_options_point_inside_the_cache_under_the_key(tmp_path, manifest):
    prof = DeviceProfile.load("jetson-orin-nano")
    art = manifest.artifact("int8-trt")
    opts = tensorrt_ep_options(art, manifest, prof, tmp_path / "cache", facts=FACTS)
    engine_dir = Path(opts["trt_engine_cache_path"])
    assert engine_dir.parent == tmp_path / "cache" and re.fullmatch(r"[0-9a-f]{64}", engine_dir.name)
    marker = json.loads((engine_dir / "identity.json").read_text())
    ident = EngineIdentity.from_dict(marker["identity"])
    assert ident.key() == engine_dir.name and ident.onnx_sha256 == art.sha256
    assert ident.toolkit.tensorrt.startswith("onnxruntime-trt-ep/") and ident.device == RTX
    assert opts["trt_engine_cache_enable"] == "True" and opts["trt_timing_cache_enable"] == "True"
    assert opts["trt_timing_cache_path"] == str(tmp_path / "cache" / "timing")
    assert opts["trt_max_workspace_size"] == str(512 << 20) and opts["trt_builder_optimization_level"] == "3"
    assert opts["trt_profile_min_shapes"] == "input:1x1x256x256"
    assert opts["trt_profile_max_shapes"] == "input:1x1x720x1280"
    assert not any(k in opts for k in ("trt_fp16_enable", "trt_int8_enable", "trt_dla_enable"))
    # the same inputs give the same folder; another model or device another one
    assert tensorrt_ep_options(art, manifest, prof, tmp_path / "cache", facts=FACTS) == opts
    other = tensorrt_ep_options(manifest.artifact("fp16"), manifest, prof, tmp_path / "cache", facts=FACTS)
    assert other["trt_engine_cache_path"] != opts["trt_engine_cache_path"]
    # DLA: the EP applies trt_dla_* only with FP16/INT8 flags on, so it would run on the GPU: refused
    with pytest.raises(ConfigError, match=r"jetson-agx-orin.*dla_core = 0.*GPU.*--backend tensorrt"):
        tensorrt_ep_options(art, manifest, DeviceProfile.load("jetson-agx-orin"), tmp_path / "cache",
                            facts=DeviceFacts(ORIN, 12060, 12020))
    # the engine cache lists no EP folder as a problem
    assert EngineCache(tmp_path / "cache").entries() == ([], [])


# --- real TensorRT (marked; skipped here) ------------------------------------------------------------


@pytest.fixture
def real_trt():
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"TensorRT is not importable ({exc})")
    from ganrt.runtime.backends.tensorrt.runner import check_available

    try:
        check_available()
    except BackendUnavailable as exc:
        pytest.skip(f"TensorRT present but not usable here: {exc}")


def _ort_cpu(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    return sess.run(None, {inp.name: x.astype(np.float16 if "float16" in inp.type else np.float32)})[0]


def _psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


@pytest.mark.trt
@pytest.mark.gpu
def test_real_tensorrt_tiny_bundle(real_trt, tmp_path, manifest):
    prof = _profile(min_hw=(16, 16), opt_hw=(64, 64), max_hw=(128, 128))
    art = manifest.artifact("fp32")
    r = TensorRTRunner(manifest, art, prof, tmp_path / "cache")
    with r:
        assert r.loaded.built
        for h, w in ((64, 64), (64, 64), (64, 64), (32, 48), (128, 128)):
            x = _x(h, w, h * w)
            y = r.infer({r.io.input_name: x})[r.io.output_name]
            np.testing.assert_allclose(y, _ort_cpu(art.path, x), atol=2e-3)  # TF32 convs on Ampere+
    r.deactivate()
    with TensorRTRunner(manifest, art, prof, tmp_path / "cache", no_build=True) as again:
        assert not again.loaded.built
        x = _x(64, 64, 1)
        np.testing.assert_allclose(again.infer({"input": x})["output"], _ort_cpu(art.path, x), atol=2e-3)


@pytest.mark.trt
@pytest.mark.gpu
def test_real_tensorrt_cli_build_then_verify(real_trt, tmp_path, bundle, capsys):
    prof = tmp_path / "tiny.toml"
    prof.write_text('name = "tiny"\nbudget_ms = 33\ninput_hw = [64, 64]\nprecision = "fp32"\n'
                    'backends = ["tensorrt"]\n[tensorrt]\nmin_hw = [16, 16]\nopt_hw = [64, 64]\nmax_hw = [128, 128]\n')
    cache = str(tmp_path / "cache")
    assert main(["engine", "build", str(bundle), "--profile", str(prof), "--cache", cache]) == 0
    assert main(["engine", "build", str(bundle), "--profile", str(prof), "--cache", cache, "--no-build"]) == 0
    assert "identity matches" in capsys.readouterr().out


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize("precision,min_db", [("fp16", 45.0), ("int8-trt", 40.0)])
def test_real_tensorrt_bundled_artifacts_vs_ort_fp32(real_trt, tmp_path, precision, min_db):
    root = bundled_model_dir()
    if not (root / "manifest.json").exists():
        pytest.skip(f"no bundled model at {root} (train/export it first)")
    manifest = Manifest.load(root)
    art = manifest.artifact_for(Precision(precision))
    prof = _profile("psnr", (256, 256), (512, 512), (512, 512))
    cap = cv2.VideoCapture(str(Path(__file__).resolve().parents[2] / "runtime" / "assets" / "sim_cine_512.mp4"))
    frames = []
    while len(frames) < 4:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (512, 512), interpolation=cv2.INTER_AREA))
    cap.release()
    assert frames, "bundled cine unreadable"
    lo, hi = manifest.input.value_range
    fp32 = manifest.artifact_for(Precision.FP32).path
    with TensorRTRunner(manifest, art, prof, tmp_path / "cache") as r:
        for f in frames:
            x = (lo + f.astype(np.float32) / 255.0 * (hi - lo))[None, None]
            if manifest.input.channels == 3:
                x = np.repeat(x, 3, axis=1)
            y = r.infer({r.io.input_name: x.astype(r.io.input_dtype)})[r.io.output_name]
            ref = _ort_cpu(fp32, x)
            olo, ohi = manifest.output.value_range
            assert _psnr(y, ref, ohi - olo) >= min_db
