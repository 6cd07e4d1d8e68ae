"""Building for a DLA core the way TensorRT 10.x's own tools do, and reporting what happened.

- TensorRT 10.x: DLA engines are built weakly typed with builder precision flags — FP16 always
  (DLA has no FP32), INT8 as well for explicit Q/DQ artifacts — the default device DLA, the
  chosen core and GPU fallback. That is what trtexec and the samples' ``enableDLA``
  (samples/common/common.h) do on every release up to 10.16. TensorRT 11 has no weak typing
  and no precision flags: there the network stays strongly typed and no flag is set.
- ``OnnxParserFlag.ADJUST_FOR_DLA`` first appears in TensorRT 10.16: it is set when present,
  and the build report says so either way instead of implying the adjustment happened.
- After the build the engine inspector (DETAILED profiling verbosity) lists the engine's layers;
  the report keeps each layer's name and type as TensorRT states them, so what runs where is
  read from the built engine, not predicted from ``can_run_on_DLA``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ...errors import BackendUnavailable

log = logging.getLogger(__name__)

ADJUST_FOR_DLA_SINCE = (10, 16)


def adjust_for_dla(trt: Any, parser: Any, version: str) -> str:
    """Set ADJUST_FOR_DLA when this TensorRT has it; the report line either way."""
    flags = getattr(trt, "OnnxParserFlag", None)
    flag = getattr(flags, "ADJUST_FOR_DLA", None) if flags is not None else None
    if flag is None:
        since = ".".join(map(str, ADJUST_FOR_DLA_SINCE))
        return (f"ONNX parser flag ADJUST_FOR_DLA is not in TensorRT {version} (first in {since}): "
                f"the network was parsed without DLA adjustments")
    parser.set_flag(flag)
    return "ONNX parser flag ADJUST_FOR_DLA set"


def configure_dla(trt: Any, builder: Any, network: Any, config: Any, core: int, *, precision: str,
                  weakly_typed: bool, version: str) -> tuple[list[str], list[str]]:
    """Point ``config`` at DLA core ``core``; (layers that cannot run on DLA, report lines)."""
    cores = int(getattr(builder, "num_DLA_cores", 0))
    if core >= cores:
        raise BackendUnavailable(f"the profile asks for DLA core {core}, this device has {cores} DLA core(s) "
                                 f"(TensorRT {version})")
    notes = []
    if weakly_typed:
        flags = ["FP16"] + (["INT8"] if precision == "int8-trt" else [])
        for name in flags:
            config.set_flag(getattr(trt.BuilderFlag, name))
        notes.append(f"DLA build: weakly typed network with builder flags {'+'.join(flags)} (as trtexec on 10.x)")
    else:
        notes.append("DLA build: strongly typed network (precision from the artifact)")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(core)
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    verbosity = getattr(getattr(trt, "ProfilingVerbosity", None), "DETAILED", None)
    if verbosity is not None:
        config.profiling_verbosity = verbosity  # the inspector then names every layer and its type
    fallback = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not config.can_run_on_DLA(layer):
            fallback.append(f"{layer.name} ({getattr(layer.type, 'name', layer.type)})")
    return fallback, notes


def inspect_layers(trt: Any, logger: Any, serialized: bytes, core: int) -> tuple[tuple[dict, ...], str]:
    """The built engine's layers as the engine inspector reports them: ({"name", "type"}, ...) and a
    report line. Never fails the build: an engine that cannot be inspected here says so."""
    try:
        runtime = trt.Runtime(logger)
        runtime.DLA_core = int(core)
        engine = runtime.deserialize_cuda_engine(serialized)
        if engine is None:
            return (), "engine inspector: the built engine could not be deserialized here"
        info = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
        raw = json.loads(info).get("Layers", [])
    except Exception as exc:  # noqa: BLE001 TensorRT's own exception types; the engine itself is fine
        return (), f"engine inspector unavailable ({exc.__class__.__name__}: {' '.join(str(exc).split())[:160]})"
    layers = tuple({"name": str(x.get("Name", "?")), "type": str(x.get("LayerType", "?"))} if isinstance(x, dict)
                   else {"name": str(x), "type": "?"} for x in raw)
    on_dla = sum(1 for x in layers if "dla" in x["type"].lower())
    return layers, (f"engine inspector: {len(layers)} engine layer(s), {on_dla} with a DLA layer type "
                    f"(each layer's type as TensorRT reports it is in engine.json)")
