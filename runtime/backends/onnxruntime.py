"""ONNX Runtime runner: TensorRT EP, CUDA EP or CPU EP, chosen by availability."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable, ModelError
from ..lazy import lazy_import
from ..model.manifest import Artifact
from .base import IOSpec, RunnerBase

log = logging.getLogger(__name__)


class Provider(Enum):
    TENSORRT = "TensorrtExecutionProvider"
    CUDA = "CUDAExecutionProvider"
    CPU = "CPUExecutionProvider"


PREFERENCE: tuple[Provider, ...] = (Provider.TENSORRT, Provider.CUDA, Provider.CPU)


def available_providers() -> tuple[Provider, ...]:
    ort = lazy_import("onnxruntime", extra="ganrt", what="onnxruntime")
    have = set(ort.get_available_providers())
    return tuple(p for p in PREFERENCE if p.value in have)


def tensorrt_ep_options(artifact: Artifact, manifest=None, profile=None, cache_dir: Path | str | None = None,
                       facts=None) -> dict[str, str]:
    """Provider options for ONNX Runtime's TensorRT execution provider (used when it is chosen).

    Engines go into ganrt's engine cache, in ``<cache>/<key>/`` where ``key`` is the same kind of
    ``EngineIdentity`` key the native TensorRT runner uses. Options set (all as strings):
    ``trt_engine_cache_enable``, ``trt_engine_cache_path`` (that folder), ``trt_timing_cache_enable``
    + ``trt_timing_cache_path`` (``<cache>/timing``), ``trt_max_workspace_size``,
    ``trt_builder_optimization_level``, ``trt_profile_{min,opt,max}_shapes`` (with a manifest and
    profile). Deliberately *not* set: ``trt_fp16_enable`` / ``trt_int8_enable`` — with both off the
    EP builds a strongly typed network and the precision comes from the artifact (FP16 ONNX,
    explicit Q/DQ). A DLA profile is refused (ConfigError): the EP would run it on the GPU.
    Details: ``ort_trt_ep.ort_trt_ep_options``.
    """
    from .ort_trt_ep import ort_trt_ep_options

    return ort_trt_ep_options(artifact, manifest, profile, cache_dir, facts)


def _dynamic(shape) -> bool:
    """A symbolic (named or unknown) leading dimension: the graph takes any batch size."""
    return bool(shape) and not isinstance(shape[0], int)


class OnnxRuntimeRunner(RunnerBase):
    name = "onnxruntime"

    def __init__(
        self,
        artifact: Artifact,
        providers: Sequence[Provider] | None = None,
        intra_threads: int = 0,
        inter_threads: int = 1,
        *,
        manifest=None,
        profile=None,
        cache_dir: Path | str | None = None,
        spin: bool = True,
    ) -> None:
        self._artifact = artifact
        self._spin = spin  # ORT's pool busy-waits between ops; on 2 cores that starves capture/encode
        self._trt_ep = (manifest, profile, cache_dir)  # for the TensorRT EP's provider options
        self._providers = tuple(providers) if providers else None
        self._intra, self._inter = intra_threads, inter_threads
        self._session = None

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self._session.get_providers()) if self._session is not None else ()

    def activate_impl(self) -> IOSpec:
        ort = lazy_import("onnxruntime", extra="ganrt", what="onnxruntime")
        wanted = self._providers or available_providers()
        missing = [p for p in wanted if p not in available_providers()]
        if missing:
            raise BackendUnavailable(
                "onnxruntime provider(s) not available here: " + ", ".join(p.value for p in missing)
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._intra
        opts.inter_op_num_threads = self._inter
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if not self._spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        data = self._artifact.verified_bytes()
        try:
            self._session = ort.InferenceSession(data, sess_options=opts, providers=self._provider_list(wanted))
        except Exception as exc:  # noqa: BLE001 ORT raises its own exception types for bad models
            raise ModelError(f"artifact {self._artifact.key!r}: onnxruntime cannot load it ({exc})") from None
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        dtype = np.float16 if "float16" in inp.type else np.float32
        return IOSpec(
            input_name=inp.name,
            output_name=out.name,
            input_dtype=np.dtype(dtype),
            description=f"onnxruntime {ort.__version__} [{', '.join(self.providers)}]",
            dynamic_batch=_dynamic(inp.shape) and _dynamic(out.shape),
            max_batch=self._trt_max_batch(),
        )

    def _trt_max_batch(self) -> int | None:
        """Under the TensorRT EP, the largest batch of the engine profile it was given (None otherwise):
        a larger batch would make the EP build another engine mid-stream."""
        manifest, profile, _ = self._trt_ep
        if Provider.TENSORRT.value not in self.providers or manifest is None or profile is None:
            return None
        from .tensorrt.identity import optimisation_profile

        return optimisation_profile(profile, manifest)[2][0]

    def _provider_list(self, wanted: Sequence[Provider]) -> list:
        if Provider.TENSORRT in wanted:
            from .ort_trt_ep import check_ort_for_trt_ep

            try:
                check_ort_for_trt_ep(lazy_import("onnxruntime", extra="ganrt", what="onnxruntime").__version__)
            except BackendUnavailable as exc:  # the other providers still run the artifact as it is
                log.warning("not using the TensorRT EP: %s", exc)
                wanted = [p for p in wanted if p is not Provider.TENSORRT]
        if Provider.TENSORRT not in wanted:
            return [p.value for p in wanted]
        manifest, profile, cache_dir = self._trt_ep
        trt = tensorrt_ep_options(self._artifact, manifest, profile, cache_dir)
        return [(p.value, trt) if p is Provider.TENSORRT else p.value for p in wanted]

    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outs = self._session.run(None, dict(feeds))
        except Exception as exc:  # noqa: BLE001 ORT's InvalidArgument/Fail/RuntimeException (wrong rank, channels, dtype, name)
            raise ModelError(f"onnxruntime inference failed ({exc.__class__.__name__}: "
                             f"{' '.join(str(exc).split())[:300]})") from None
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, outs))

    def deactivate_impl(self) -> None:
        self._session = None
