"""ganrt runtime: stream frames through a model bundle inside a latency budget.

Imports only numpy, OpenCV and the standard library eagerly; every heavy or
optional dependency (onnxruntime, tensorrt, cuda-python, pydicom, torch) is
imported lazily by the backend or source that needs it.

The public Python API (see README.md, "From Python", and docs/design.md): load a
bundle, pick a runner, run a stream through sinks, read the report::

    from ganrt.runtime import (Backend, DeviceProfile, Manifest, RunSetup, StreamSpec,
                               bundled_model_dir, parse_sinks, select, stream_once)

Each name is imported from its module on first use (PEP 562), so ``import ganrt.runtime``
stays as light as ``ganrt --help`` needs.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> (module under ganrt.runtime, attribute there): the public names and where they live.
_EXPORTS: dict[str, tuple[str, str]] = {
    # model bundles and device profiles
    "Manifest": ("model.manifest", "Manifest"),
    "Precision": ("model.manifest", "Precision"),
    "bundled_model_dir": ("model.manifest", "bundled_model_dir"),
    "DeviceProfile": ("model.profiles", "DeviceProfile"),
    "DEFAULT_PROFILE": ("model.profiles", "DEFAULT_PROFILE"),
    "shipped_profiles": ("model.profiles", "shipped_profiles"),
    # runners
    "Backend": ("backends.base", "Backend"),
    "Selection": ("backends.registry", "Selection"),
    "select": ("backends.registry", "select"),
    "Enhancer": ("model.ops", "Enhancer"),
    # sources and frames
    "open_source": ("sources", "open_source"),
    "Frame": ("frames", "Frame"),
    "FrameResult": ("frames", "FrameResult"),
    "DEMO_CINE": ("cli.demo", "DEMO_CINE"),
    # the checks around the model
    "GuardConfig": ("trust.guard", "GuardConfig"),
    "guard_config": ("cli.demo", "guard_config"),
    # streams
    "RunSetup": ("serve.stream", "RunSetup"),
    "StreamSpec": ("serve.stream", "StreamSpec"),
    "stream_once": ("serve.stream", "stream_once"),
    "run_streams": ("serve.multistream", "run_streams"),
    "PipelineConfig": ("serve.pipeline", "PipelineConfig"),
    "run_pipeline": ("serve.pipeline", "run"),
    # sinks and what a run leaves behind
    "SinkSpec": ("sinks.specs", "SinkSpec"),
    "SinkContext": ("sinks.specs", "SinkContext"),
    "parse_sinks": ("sinks.specs", "parse_sinks"),
    "build_sinks": ("sinks.specs", "build_sinks"),
    "Record": ("records.record", "Record"),
    "Report": ("records.report", "Report"),
    # errors (each carries its documented exit code)
    "GanrtError": ("errors", "GanrtError"),
    "ConfigError": ("errors", "ConfigError"),
    "ModelError": ("errors", "ModelError"),
    "BackendUnavailable": ("errors", "BackendUnavailable"),
    "SourceError": ("errors", "SourceError"),
    "OutputError": ("errors", "OutputError"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
