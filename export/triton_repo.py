"""`ganrt export triton`: a bundle as a Triton Inference Server model repository.

Writes the standard layout, ``REPO/<model>/config.pbtxt`` + ``REPO/<model>/<version>/model.onnx``
(``model.plan`` for a TensorRT engine), one model per precision. Input and output names, data
types and dims come from the ONNX graph itself; the bundle's I/O contract (layout, colour order,
range, scale) and the artifact's sha256 go into the config's ``parameters``, which the runtime's
``triton`` runner checks against the bundle before it sends a frame. Every written config is
parsed back with the ``ModelConfig`` protobuf that ships in tritonclient, so a repository that
Triton would refuse is never left behind. Needs onnx and tritonclient; never torch.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ganrt.runtime.backends.triton.contract import contract_parameters
from ganrt.runtime.errors import ConfigError, ModelError
from ganrt.runtime.lazy import lazy_import
from ganrt.runtime.model.manifest import Artifact, Manifest, Precision, sha256_file

QUEUE_DELAY_US = 2000  # how long the server's batcher may hold a frame for others: well inside a frame period
MAX_BATCH_LIMIT = 64

# ONNX TensorProto element types -> Triton data types (only those a ganrt artifact's I/O can have)
_ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 2: "TYPE_UINT8", 3: "TYPE_INT8", 6: "TYPE_INT32"}


class Platform(Enum):
    ONNX = "onnxruntime_onnx"
    TENSORRT = "tensorrt_plan"

    @property
    def filename(self) -> str:
        return "model.onnx" if self is Platform.ONNX else "model.plan"


class InstanceKind(Enum):
    CPU = "cpu"
    GPU = "gpu"


@dataclass(frozen=True)
class Instances:
    kind: InstanceKind = InstanceKind.CPU
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Instances:
        """``cpu:2`` or ``gpu:1``."""
        kind, _, count = text.partition(":")
        try:
            inst = cls(InstanceKind(kind.strip().lower()), int(count or 1))
        except ValueError:
            raise ConfigError(f"--instances {text!r}: expected cpu:N or gpu:N") from None
        if not 1 <= inst.count <= 16:
            raise ConfigError(f"--instances {text!r}: count must be 1..16")
        return inst


@dataclass(frozen=True)
class RepoConfig:
    precisions: tuple[Precision, ...] = ()  # empty: every artifact of the bundle except int8-trt on ORT
    max_batch: int = 8
    instances: Instances = Instances()
    version: int = 1
    engine: Path | None = None  # a TensorRT plan built from the first precision's artifact
    name: str | None = None  # model name prefix (default: the bundle's task)
    queue_delay_us: int = QUEUE_DELAY_US

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch <= MAX_BATCH_LIMIT:
            raise ConfigError(f"--max-batch must be 1..{MAX_BATCH_LIMIT} (got {self.max_batch})")
        if self.version < 1:
            raise ConfigError(f"--version must be >= 1 (got {self.version})")


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str
    dims: tuple[int, ...]  # without the batch dimension; -1 = variable


def model_name(prefix: str, precision: Precision, platform: Platform) -> str:
    suffix = "-trt" if platform is Platform.TENSORRT else ""
    return f"{prefix}-{precision.value}{suffix}"


def onnx_io(data: bytes, where: str) -> tuple[list[Tensor], list[Tensor], bool]:
    """The graph's inputs and outputs as Triton sees them, and whether axis 0 is a free batch axis."""
    onnx = lazy_import("onnx", extra="ganrt", what="onnx")
    graph = onnx.load_model_from_string(data).graph
    inits = {i.name for i in graph.initializer}
    tensors = ([v for v in graph.input if v.name not in inits], list(graph.output))
    batched = all(v.type.tensor_type.shape.dim and not v.type.tensor_type.shape.dim[0].HasField("dim_value")
                  for group in tensors for v in group)
    out: list[list[Tensor]] = []
    for group in tensors:
        rows = []
        for v in group:
            tt = v.type.tensor_type
            if tt.elem_type not in _ONNX_TO_TRITON:
                raise ModelError(f"{where}: {v.name} has ONNX type {tt.elem_type}, which no Triton config here maps")
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
            rows.append(Tensor(v.name, _ONNX_TO_TRITON[tt.elem_type], dims[1:] if batched else dims))
        out.append(rows)
    return out[0], out[1], batched


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor_block(key: str, tensors: list[Tensor]) -> list[str]:
    lines = [f"{key} ["]
    for i, t in enumerate(tensors):
        dims = ", ".join(str(d) for d in t.dims)
        lines.append(f"  {{ name: {_quote(t.name)} data_type: {t.data_type} dims: [ {dims} ] }}"
                     + ("," if i < len(tensors) - 1 else ""))
    return lines + ["]"]


def config_text(name: str, platform: Platform, inputs: list[Tensor], outputs: list[Tensor], max_batch: int,
                cfg: RepoConfig, params: dict[str, str]) -> str:
    """config.pbtxt in protobuf text format. max_batch 0: the model takes no batch axis (no batcher)."""
    lines = [f"name: {_quote(name)}", f"platform: {_quote(platform.value)}", f"max_batch_size: {max_batch}"]
    lines += _tensor_block("input", inputs) + _tensor_block("output", outputs)
    if max_batch > 0:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {cfg.queue_delay_us}", "}"]
    kind = "KIND_GPU" if cfg.instances.kind is InstanceKind.GPU or platform is Platform.TENSORRT else "KIND_CPU"
    lines += ["instance_group [", f"  {{ count: {cfg.instances.count} kind: {kind} }}", "]",
              "version_policy: { latest: { num_versions: 1 } }"]
    for k, v in params.items():
        lines.append(f"parameters {{ key: {_quote(k)} value: {{ string_value: {_quote(v)} }} }}")
    return "\n".join(lines) + "\n"


def parse_config(text: str, where: str):
    """The text as a ``ModelConfig`` message (tritonclient's protobuf); ConfigError if it is not one."""
    pb = lazy_import("tritonclient.grpc.model_config_pb2", extra="ganrt[triton]", what="tritonclient")
    text_format = lazy_import("google.protobuf.text_format", extra="ganrt[triton]", what="protobuf")
    msg = pb.ModelConfig()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        raise ConfigError(f"{where}: not a valid Triton model config ({exc})") from None
    return msg


def _default_precisions(manifest: Manifest) -> tuple[Precision, ...]:
    # int8-trt on onnxruntime's CPU kernels saturates (docs/bundle-and-export.md): only TensorRT should run it
    return tuple(a.precision for a in manifest.artifacts.values() if a.precision is not Precision.INT8_TRT)


def _write_model(repo: Path, name: str, platform: Platform, payload: Path | bytes, art: Artifact,
                 manifest: Manifest, cfg: RepoConfig) -> Path:
    data = art.verified_bytes()
    inputs, outputs, batched = onnx_io(data, art.path.name)
    params = contract_parameters(manifest, art)
    if platform is Platform.TENSORRT:
        params["ganrt.plan_sha256"] = sha256_file(Path(payload))  # type: ignore[arg-type]
    text = config_text(name, platform, inputs, outputs, cfg.max_batch if batched else 0, cfg, params)
    parse_config(text, f"{name}/config.pbtxt")
    model_dir = repo / name
    vdir = model_dir / str(cfg.version)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    vdir.mkdir(parents=True)
    target = vdir / platform.filename
    if isinstance(payload, bytes):
        target.write_bytes(payload)
    else:
        shutil.copyfile(payload, target)
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir


def write_repository(manifest: Manifest, repo: Path, cfg: RepoConfig = RepoConfig()) -> list[Path]:
    """Write one model per precision (and the TensorRT variant); returns the model directories."""
    precisions = cfg.precisions or _default_precisions(manifest)
    arts = [manifest.artifact_for(p) for p in precisions]
    if cfg.engine is not None and not cfg.engine.is_file():
        raise ModelError(f"--engine {cfg.engine}: no such file")
    prefix = cfg.name or manifest.task
    repo.mkdir(parents=True, exist_ok=True)
    written = [_write_model(repo, model_name(prefix, a.precision, Platform.ONNX), Platform.ONNX, a.verified_bytes(),
                            a, manifest, cfg) for a in arts]
    if cfg.engine is not None:
        a = arts[0]
        written.append(_write_model(repo, model_name(prefix, a.precision, Platform.TENSORRT), Platform.TENSORRT,
                                    cfg.engine, a, manifest, cfg))
    return written
