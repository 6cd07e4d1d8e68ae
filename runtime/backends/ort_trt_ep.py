"""Provider options for ONNX Runtime's TensorRT execution provider, keyed into ganrt's engine cache.

The EP builds its engines into the same cache as the native TensorRT runner, in a folder named
by the same kind of ``EngineIdentity`` key (ONNX sha256, optimisation profile, builder options,
toolkit, device); its toolkit says "onnxruntime-trt-ep/<version>" because the TensorRT library
is the one ONNX Runtime loads. Options set:

- ``trt_engine_cache_enable`` / ``trt_engine_cache_path``: ``<cache>/<key>/``
- ``trt_timing_cache_enable`` / ``trt_timing_cache_path``: ``<cache>/timing/`` (profile's timing_cache)
- ``trt_max_workspace_size`` (bytes) and ``trt_builder_optimization_level`` from the profile
- ``trt_profile_{min,opt,max}_shapes``: the profile's NCHW shapes (when manifest and profile are given)
- no ``trt_fp16_enable`` / ``trt_int8_enable``: with both off the EP builds a strongly typed
  network (from ONNX Runtime ``MIN_ORT_STRONGLY_TYPED`` on), so precision comes from the artifact
  itself (FP16 ONNX, explicit Q/DQ)

DLA is refused here: the EP reads ``trt_dla_enable`` / ``trt_dla_core`` only when FP16 or INT8 is
enabled (onnxruntime's tensorrt_execution_provider.cc), and enabling either turns strong typing
off. A DLA profile under the EP would run on the GPU while naming DLA; the native runner
(``--backend tensorrt``) builds DLA engines.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable, ConfigError
from ..lazy import lazy_import
from .tensorrt.cache import TIMING_DIR, atomic_write_bytes, default_cache_dir
from .tensorrt.identity import (
    UNKNOWN_DEVICE,
    DeviceFacts,
    EngineIdentity,
    ShapeProfile,
    Toolkit,
    build_options,
    optimisation_profile,
    probe_device,
)

log = logging.getLogger(__name__)

#: The ONNX Runtime from which the TensorRT EP is known to create strongly typed networks when
#: trt_fp16_enable and trt_int8_enable are off (its TensorRT EP source carries that branch by this
#: release; it may be somewhat older). Without it the EP builds weakly typed networks from our
#: FP16 / Q/DQ artifacts, which then do not run at the precision the artifact states.
MIN_ORT_STRONGLY_TYPED = (1, 22)


def ort_version_tuple(version: str) -> tuple[int, int]:
    try:
        major, minor = (int(x) for x in str(version).split(".")[:2])
    except ValueError:
        return (0, 0)
    return major, minor


def check_ort_for_trt_ep(version: str) -> None:
    """BackendUnavailable (one line) when this ONNX Runtime's TensorRT EP is too old for strongly
    typed networks."""
    if ort_version_tuple(version) < MIN_ORT_STRONGLY_TYPED:
        want = ".".join(map(str, MIN_ORT_STRONGLY_TYPED))
        raise BackendUnavailable(
            f"onnxruntime {version}'s TensorRT EP builds weakly typed networks (strongly typed from {want}); "
            f"install onnxruntime-gpu>={want} (on Jetson: the JetPack build, see docs/jetson.md)")


def check_no_dla(profile) -> None:
    t = getattr(profile, "tensorrt", None)
    if t is not None and t.dla_core is not None:
        raise ConfigError(
            f"{profile.source}: profile {profile.name!r} sets tensorrt.dla_core = {t.dla_core}, and onnxruntime's "
            f"TensorRT EP would run it on the GPU (it applies DLA only with FP16/INT8 flags, which turn strong "
            f"typing off); use --backend tensorrt for DLA, or a profile without dla_core")


def ort_trt_ep_options(artifact, manifest=None, profile=None, cache_dir: Path | str | None = None,
                       facts: DeviceFacts | None = None) -> dict[str, str]:
    """The EP's provider options (all strings). ``facts`` is probed when not given; without
    cuda-python the key holds an unknown device, and the EP's own engine names (which include the
    GPU architecture) keep different GPUs apart. ConfigError for a DLA profile (see above)."""
    from ..model.profiles import TensorRTOptions

    if profile is not None:
        check_no_dla(profile)
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    trt_opts = profile.tensorrt if profile is not None else TensorRTOptions()
    if facts is None:
        try:
            facts = probe_device()
        except BackendUnavailable as exc:
            log.info("TensorRT EP cache key without device facts (%s)", exc)
            facts = UNKNOWN_DEVICE
    shapes: tuple = ()
    if manifest is not None and profile is not None:
        mn, opt, mx = optimisation_profile(profile, manifest)
        shapes = (ShapeProfile(manifest.input.name, mn, opt, mx),)
    try:
        ort_version = lazy_import("onnxruntime", extra="ganrt", what="onnxruntime").__version__
    except BackendUnavailable:
        ort_version = "?"
    identity = EngineIdentity(artifact.sha256, shapes, build_options(trt_opts, artifact.precision.value),
                              Toolkit(f"onnxruntime-trt-ep/{ort_version}", "", facts.cuda_driver), facts.device)
    engine_dir = root / identity.key()
    engine_dir.mkdir(parents=True, exist_ok=True)
    marker = engine_dir / "identity.json"
    if not marker.exists():
        atomic_write_bytes(marker, (json.dumps({"kind": "onnxruntime-trt-ep", "identity": identity.to_dict()},
                                               indent=2, sort_keys=True) + "\n").encode())
    opts: dict[str, Any] = {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engine_dir),
        "trt_timing_cache_enable": bool(trt_opts.timing_cache),
        "trt_max_workspace_size": int(trt_opts.workspace_mb) << 20,
        "trt_builder_optimization_level": int(trt_opts.builder_optimization_level),
    }
    if trt_opts.timing_cache:
        (root / TIMING_DIR).mkdir(parents=True, exist_ok=True)
        opts["trt_timing_cache_path"] = str(root / TIMING_DIR)
    for p in shapes:
        for name, shape in (("min", p.min), ("opt", p.opt), ("max", p.max)):
            opts[f"trt_profile_{name}_shapes"] = f"{p.input}:{'x'.join(str(v) for v in shape)}"
    return {k: str(v) for k, v in opts.items()}
