"""A stand-in for the ``tensorrt`` module's build API that behaves like the real bindings where the
runner depends on it (python/src/infer/pyCore.cpp, parsers/pyOnnx.cpp, tags 10.3 to 11.0):

- ``IBuilderConfig.create_timing_cache`` returns None for a blob it cannot read (it does not
  raise), and ``set_timing_cache(None, ...)`` raises TypeError (pybind11 rejects None).
- ``OnnxParserFlag.ADJUST_FOR_DLA`` exists only from 10.16.
- ``BuilderFlag.FP16`` / ``INT8`` exist only before 11; 11 has no ``STRONGLY_TYPED`` need.
- setting FP16/INT8 on a strongly typed network fails the build (None + a logged error).
- DLA layers: a layer runs on DLA only when the build targets DLA and (on 10.x) the network is
  weakly typed with FP16/INT8 flags; otherwise every layer falls back to the GPU. The engine
  inspector reports each layer with its type ("DLA" for DLA subgraphs).
"""

from __future__ import annotations

import json
from enum import IntEnum
from types import SimpleNamespace


class FakeTensorRT:
    def __init__(self, version: str = "10.3.0", dla_cores: int = 2) -> None:
        self.__version__ = self.version = version
        self.__name__ = "fake_tensorrt"
        self.__file__ = "/nowhere/fake_tensorrt/__init__.py"
        self.major = int(version.split(".")[0])
        minor = int(version.split(".")[1])
        self.dla_cores = dla_cores
        self.built: list[SimpleNamespace] = []  # (flags, config) of every build
        names = ["GPU_FALLBACK"] + (["FP16", "INT8"] if self.major < 11 else [])
        self.BuilderFlag = IntEnum("BuilderFlag", names)
        self.NetworkDefinitionCreationFlag = IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1})
        self.DeviceType = IntEnum("DeviceType", ["GPU", "DLA"])
        self.MemoryPoolType = IntEnum("MemoryPoolType", ["WORKSPACE"])
        self.ProfilingVerbosity = IntEnum("ProfilingVerbosity", ["LAYER_NAMES_ONLY", "DETAILED"])
        self.LayerInformationFormat = IntEnum("LayerInformationFormat", ["ONELINE", "JSON"])
        if (self.major, minor) >= (10, 16):
            self.OnnxParserFlag = IntEnum("OnnxParserFlag", {"NATIVE_INSTANCENORM": 0, "ADJUST_FOR_DLA": 4})
        else:
            self.OnnxParserFlag = IntEnum("OnnxParserFlag", {"NATIVE_INSTANCENORM": 0})
        trt = self

        class ILogger:
            class Severity(IntEnum):
                INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

            def __init__(self) -> None:
                pass

        self.ILogger = ILogger

        def builder(logger):
            return _Builder(trt, logger)

        def parser(network, logger):
            return _Parser(trt, network)

        def runtime(logger):
            return _Runtime(trt)

        self.Builder, self.OnnxParser, self.Runtime = builder, parser, runtime


class _Layer:
    def __init__(self, name: str) -> None:
        self.name, self.type = name, SimpleNamespace(name="CONVOLUTION")


class _Network:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.layers = [_Layer("conv1"), _Layer("relu1"), _Layer("conv2")]
        self.num_layers, self.num_inputs, self.num_outputs = len(self.layers), 1, 1

    def get_layer(self, i: int) -> _Layer:
        return self.layers[i]

    def get_input(self, i: int):
        return SimpleNamespace(name="input")


class _Parser:
    def __init__(self, trt: FakeTensorRT, network: _Network) -> None:
        self.trt, self.network, self.flags, self.num_errors = trt, network, set(), 0

    def set_flag(self, flag) -> None:
        self.flags.add(flag.name)

    def parse(self, data: bytes) -> bool:
        return True


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return b"TC1" + self.data[3:]


class _Config:
    def __init__(self, trt: FakeTensorRT) -> None:
        self.trt, self.flags, self.timing_cache = trt, set(), None
        self.default_device_type, self.DLA_core = trt.DeviceType.GPU, -1
        self.profiling_verbosity = trt.ProfilingVerbosity.LAYER_NAMES_ONLY
        self.builder_optimization_level, self.progress_monitor = 3, None

    def add_optimization_profile(self, prof) -> int:
        return 0

    def set_memory_pool_limit(self, pool, size) -> None:
        pass

    def create_timing_cache(self, blob: bytes):
        blob = bytes(blob)
        if blob and not blob.startswith(b"TC1"):
            return None  # the bindings return None for an unreadable cache
        return _TimingCache(blob or b"TC1")

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        if cache is None:
            raise TypeError("set_timing_cache(): incompatible function arguments")
        self.timing_cache = cache
        return True

    def get_timing_cache(self):
        return self.timing_cache

    def set_flag(self, flag) -> None:
        self.flags.add(flag.name)

    def can_run_on_DLA(self, layer) -> bool:
        return layer.name != "relu1"


class _Builder:
    def __init__(self, trt: FakeTensorRT, logger) -> None:
        self.trt, self.logger, self.num_DLA_cores = trt, logger, trt.dla_cores

    def create_network(self, flags: int) -> _Network:
        return _Network(flags)

    def create_builder_config(self) -> _Config:
        return _Config(self.trt)

    def create_optimization_profile(self):
        return SimpleNamespace(set_shape=lambda *a: None)

    def build_serialized_network(self, network: _Network, config: _Config):
        trt = self.trt
        strongly = trt.major >= 11 or bool(network.flags & (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)))
        precision_flags = config.flags & {"FP16", "INT8"}
        self.trt.built.append(SimpleNamespace(network_flags=network.flags, config=config))
        if strongly and precision_flags:
            self.logger.log(trt.ILogger.Severity.ERROR, "precision flags cannot be set on a strongly typed network")
            return None
        dla = config.default_device_type == trt.DeviceType.DLA
        on_dla = dla and (trt.major >= 11 or bool(precision_flags))  # 10.x DLA needs FP16/INT8 flags
        layers = [{"Name": "{ForeignNode[conv1]}", "LayerType": "DLA"} if on_dla and layer.name != "relu1"
                  else {"Name": layer.name, "LayerType": "CaskConvolution"} for layer in network.layers]
        return b"ENGINE:" + json.dumps({"Layers": layers}).encode()


class _Runtime:
    def __init__(self, trt: FakeTensorRT) -> None:
        self.trt, self.DLA_core = trt, -1

    def deserialize_cuda_engine(self, data: bytes):
        info = bytes(data)[len(b"ENGINE:"):].decode()

        class _Inspector:
            def get_engine_information(self, fmt) -> str:
                return info

        return SimpleNamespace(create_engine_inspector=lambda: _Inspector())
