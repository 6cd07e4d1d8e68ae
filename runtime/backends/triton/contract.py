"""What a Triton model must promise before ganrt sends it a frame, and how to reach it.

``contract_parameters`` is what ``ganrt export triton`` writes into a model's config
``parameters``; ``check_model_config`` is what the ``triton`` runner checks at activate
against the bundle it was given: the artifact's sha256, the I/O contract (layout, colour
order, range, scale) and the tensor names, data types and channels. ``TritonOptions`` is the
profile's ``[triton]`` section (the command line's ``--triton-*`` options override it).
No tritonclient import here: profiles and the exporter's config writer load it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ...errors import ConfigError, ModelError
from ...model.manifest import Artifact, Manifest

PREFIX = "ganrt."
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class Protocol(Enum):
    GRPC = "grpc"
    HTTP = "http"


class SharedMemory(Enum):
    AUTO = "auto"  # system shared memory when the server is on this host, else none
    SYSTEM = "system"
    NONE = "none"


@dataclass(frozen=True)
class TritonOptions:
    url: str | None = None  # HOST:PORT; None: the triton backend is unavailable (AUTO falls through)
    model: str | None = None  # default: <task>-<precision>, as `ganrt export triton` names it
    protocol: Protocol = Protocol.GRPC
    shared_memory: SharedMemory = SharedMemory.AUTO
    timeout_ms: float | None = None  # per call; None: the profile's frame budget
    connect_timeout_ms: float = 2000.0  # activate: reaching the server and reading its config
    backoff_ms: tuple[float, float] = (250.0, 5000.0)  # reconnect wait after a failure, doubling to the cap

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str) -> TritonOptions:
        allowed = {f.name for f in dataclasses.fields(cls)}
        for key in raw:
            if key not in allowed:
                raise ConfigError(f"{where}: unknown key 'triton.{key}'")
        kw = dict(raw)
        try:
            if "protocol" in kw:
                kw["protocol"] = Protocol(kw["protocol"])
            if "shared_memory" in kw:
                kw["shared_memory"] = SharedMemory(kw["shared_memory"])
            if "backoff_ms" in kw:
                kw["backoff_ms"] = tuple(float(v) for v in kw["backoff_ms"])
        except ValueError as exc:
            raise ConfigError(f"{where}: triton: {exc}") from None
        opts = cls(**kw)
        opts.check(where)
        return opts

    def check(self, where: str) -> None:
        if self.url is not None:
            host_port(self.url, where)
        if self.timeout_ms is not None and not self.timeout_ms > 0:
            raise ConfigError(f"{where}: triton timeout must be > 0 ms")
        lo, hi = self.backoff_ms
        if not 0 < lo <= hi:
            raise ConfigError(f"{where}: triton backoff_ms must be [first, cap] with 0 < first <= cap")

    @property
    def is_local(self) -> bool:
        return self.url is not None and host_port(self.url, "--triton-url")[0] in LOCAL_HOSTS


def host_port(url: str, where: str) -> tuple[str, int]:
    """``HOST:PORT`` (no scheme: tritonclient takes it bare)."""
    host, sep, port = url.rpartition(":")
    if "://" in url or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: triton url {url!r} must be HOST:PORT (e.g. 127.0.0.1:8001)")
    return host, int(port)


def default_model_name(manifest: Manifest, artifact: Artifact) -> str:
    return f"{manifest.task}-{artifact.precision.value}"


def contract_parameters(manifest: Manifest, artifact: Artifact) -> dict[str, str]:
    """The config ``parameters`` a ganrt model carries (all strings, as Triton stores them)."""
    params = {"sha256": artifact.sha256, "task": manifest.task, "precision": artifact.precision.value,
              "scale": str(manifest.scale), "size_multiple": str(manifest.size_multiple)}
    for side, spec in (("input", manifest.input), ("output", manifest.output)):
        params.update({f"{side}.name": spec.name, f"{side}.layout": spec.layout, f"{side}.channels": str(spec.channels),
                       f"{side}.color_order": spec.color_order,
                       f"{side}.range": ",".join(f"{v:g}" for v in spec.value_range)})
    return {PREFIX + k: v for k, v in params.items()}


_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}


def check_model_config(config: Mapping[str, Any], manifest: Manifest, artifact: Artifact, where: str) -> int:
    """Refuse a served model that is not this bundle's artifact. ``config`` is the model config as
    JSON (tritonclient's ``as_json``/HTTP form). Returns the server's ``max_batch_size``."""
    params = {k: (v or {}).get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
    want = contract_parameters(manifest, artifact)
    if PREFIX + "sha256" not in params:
        raise ModelError(f"{where}: the served model carries no {PREFIX}sha256 parameter (export it with "
                         "`ganrt export triton`)")
    wrong = [f"{k} server {params.get(k)!r} != bundle {v!r}" for k, v in want.items() if params.get(k) != v]
    if wrong:
        raise ModelError(f"{where}: the served model is not this bundle's {artifact.key}: " + "; ".join(wrong[:3]))
    max_batch = int(config.get("max_batch_size") or 0)
    for side, spec in (("input", manifest.input), ("output", manifest.output)):
        tensors = {t.get("name"): t for t in config.get(side) or []}
        t = tensors.get(spec.name)
        if t is None:
            raise ModelError(f"{where}: the served model has no {side} {spec.name!r} (has {sorted(tensors)})")
        dims = [int(d) for d in t.get("dims") or []]
        dtype = str(t.get("data_type", ""))
        if _DTYPES.get(spec.dtype, spec.dtype) != dtype or len(dims) != (3 if max_batch else 4) or \
                dims[-3] != spec.channels:
            raise ModelError(f"{where}: {side} {spec.name!r} is {dtype} {dims} on the server, the bundle says "
                             f"{spec.dtype} with {spec.channels} channel(s) in {spec.layout}")
    return max_batch
