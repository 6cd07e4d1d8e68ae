"""Explicit backend registry and the auto choice (profile order x what is installed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BackendUnavailable, ConfigError
from ..model.manifest import Artifact, Manifest, Precision
from ..model.profiles import DeviceProfile
from .base import Backend, RunnerBase
from .cpu_int8 import int8_saturates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    runner: RunnerBase
    backend: Backend
    artifact: Artifact

    @property
    def precision(self) -> Precision:
        return self.artifact.precision


def _onnxruntime(manifest: Manifest, profile: DeviceProfile, precision: Precision | None) -> Selection:
    from .onnxruntime import OnnxRuntimeRunner, Provider, available_providers

    providers = available_providers()
    if precision is None:
        # CPU only: the u8/s8 artifact is ORT-CPU's fast form; with a GPU provider the profile decides.
        precision = Precision.INT8_CPU if providers == (Provider.CPU,) else profile.precision
        if precision is Precision.INT8_CPU and manifest.input.channels == 3 and int8_saturates():
            precision = Precision.FP32
            log.warning("colour model on an x86 CPU without VNNI: running fp32, not int8-cpu (ONNX Runtime's int8 "
                        "kernels saturate here and shift colours; --precision int8-cpu forces it)")
    art = manifest.artifact_for(precision)
    runner = OnnxRuntimeRunner(art, providers, profile.threads.intra_op, profile.threads.inter_op,
                               manifest=manifest, profile=profile, spin=profile.threads.spin)  # profile: TensorRT EP shapes + engine cache
    return Selection(runner, Backend.ONNXRUNTIME, art)


# --- TensorRT (runtime/backends/tensorrt/runner.py) -------------------------------------------------
def _tensorrt(manifest: Manifest, profile: DeviceProfile, precision: Precision | None) -> Selection:
    """BackendUnavailable (so AUTO falls through) when TensorRT or a CUDA GPU is missing."""
    from .tensorrt.identity import check_trt_precision
    from .tensorrt.runner import TensorRTRunner, check_available

    check_available()
    art = manifest.artifact_for(precision or profile.precision)
    check_trt_precision(art)
    return Selection(TensorRTRunner(manifest, art, profile), Backend.TENSORRT, art)
# --- end TensorRT ---------------------------------------------------------------------------


# --- torch (runtime/backends/torch/runner.py) ------------------------------------------------
def _torch(manifest: Manifest, profile: DeviceProfile, precision: Precision | None) -> Selection:
    """BackendUnavailable (so AUTO falls through) when torch or a CUDA GPU is missing (an explicit
    `--backend torch` runs on the CPU only with GANRT_TORCH_DEVICE=cpu, a testing switch), for int8,
    or when the bundle has no exported weights. CUDA graphs follow the profile's tensorrt.cuda_graphs."""
    from .torch.runner import TorchRunner, check_available, resolve_precision
    from .torch.weights import weights_artifact

    device = check_available()
    prec = resolve_precision(precision, profile.precision, device)
    art = weights_artifact(manifest, prec)
    runner = TorchRunner(manifest, prec, device=device, cuda_graphs=profile.tensorrt.cuda_graphs)
    return Selection(runner, Backend.TORCH, art)


def _torch_auto_gate() -> None:
    """AUTO never picks torch on a CPU: onnxruntime is the better CPU backend."""
    from .torch.runner import check_available

    check_available(auto=True)
# --- end torch ------------------------------------------------------------------------------


# --- Triton (runtime/backends/triton/runner.py) -------------------------------------------------------
def _triton(manifest: Manifest, profile: DeviceProfile, precision: Precision | None) -> Selection:
    """BackendUnavailable (so AUTO falls through) when no server url is configured. The served
    model is this bundle's artifact of ``precision`` (default: the profile's)."""
    from .triton.runner import TritonRunner

    art = manifest.artifact_for(precision or profile.precision)
    runner = TritonRunner(manifest, art, profile.triton, profile.budget_ms, warm_hw=profile.input_hw)
    return Selection(runner, Backend.TRITON, art)
# --- end Triton -----------------------------------------------------------------------------


# Runners for the other Backend members register here when their modules ship.
RUNNERS: dict[Backend, Callable[[Manifest, DeviceProfile, Precision | None], Selection]] = {
    Backend.ONNXRUNTIME: _onnxruntime,
    Backend.TENSORRT: _tensorrt,
    Backend.TORCH: _torch,
    Backend.TRITON: _triton,
}


def parse_backend(value: str) -> Backend:
    try:
        return Backend(value)
    except ValueError:
        raise ConfigError(f"unknown backend {value!r} (choose from: {', '.join(b.value for b in Backend)})") from None


def select(manifest: Manifest, backend: Backend, profile: DeviceProfile, precision: Precision | None = None) -> Selection:
    """Pick a runner (not yet activated). AUTO walks the profile's backend order."""
    order = profile.backends if backend is Backend.AUTO else (backend,)
    reasons = []
    for b in order:
        factory = RUNNERS.get(b)
        if factory is None:
            reasons.append(f"{b.value}: no runner for it in this ganrt build")
            continue
        try:
            if backend is Backend.AUTO and b is Backend.TORCH:
                _torch_auto_gate()
            return factory(manifest, profile, precision)
        except BackendUnavailable as exc:
            reasons.append(f"{b.value}: {exc}")
    if backend is Backend.AUTO and Backend.ONNXRUNTIME not in order:
        return RUNNERS[Backend.ONNXRUNTIME](manifest, profile, precision)  # always-available last resort
    raise BackendUnavailable("no usable backend: " + "; ".join(reasons))
