"""`ganrt engine …`: build, verify, prebuild and list cached TensorRT engines.

    ganrt engine build BUNDLE --profile X [--artifact fp16|int8-trt|fp32] [--cache DIR] [--no-build]
    ganrt engine prebuild --profile X [--model BUNDLE ...] [--cache DIR]
    ganrt engine info [--cache DIR] [--json]

`build` builds the engine when the cache has no exact match (with --no-build it only verifies
and fails with EngineMismatch naming the differing fields); `prebuild` builds every engine a
profile needs, for install time; `info` reads the cache's JSON and says which TensorRT, CUDA
driver and CUDA helper this machine has (each line says "not found" and why when absent: no
TensorRT is needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from .registry import Command

TRT_ARTIFACTS = ("fp16", "int8-trt", "fp32")


def _add_actions(e: argparse.ArgumentParser) -> None:
    """The actions of the `engine` command group."""
    es = e.add_subparsers(dest="engine_command", metavar="ACTION")

    b = es.add_parser("build", help="build (or with --no-build only verify) the engine for a bundle and profile")
    b.add_argument("bundle", help="bundle directory or its manifest.json")
    b.add_argument("--profile", required=True, help="device profile name or file")
    b.add_argument("--artifact", choices=TRT_ARTIFACTS, default=None,
                   help="artifact precision (default: the profile's)")
    b.add_argument("--cache", type=Path, default=None, help="engine cache (default $GANRT_CACHE or ~/.cache/ganrt/engines)")
    b.add_argument("--no-build", action="store_true", help="verify only: fail if no cached engine matches exactly")
    b.set_defaults(func=_cmd_build)

    p = es.add_parser("prebuild", help="build every engine a profile needs (run at install time)")
    p.add_argument("--profile", required=True, help="device profile name or file")
    p.add_argument("--model", action="append", default=None,
                   help="bundle directory or manifest.json (repeatable; default: the bundled student)")
    p.add_argument("--cache", type=Path, default=None)
    p.set_defaults(func=_cmd_prebuild)

    i = es.add_parser("info", help="list cached engines and their identities (no TensorRT needed)")
    i.add_argument("--cache", type=Path, default=None)
    i.add_argument("--json", action="store_true", help="print every entry's engine.json")
    i.set_defaults(func=_cmd_info)


def _artifact(manifest, profile, choice: str | None):
    from ..backends.tensorrt.identity import check_trt_precision
    from ..model.manifest import Precision

    precision = Precision.parse(choice) if choice else profile.precision
    art = manifest.artifact_for(precision)
    check_trt_precision(art)
    return art


def _build_one(manifest, profile, artifact, cache: Path | None, no_build: bool) -> str:
    from ..backends.tensorrt.builder import TensorRTBuilder
    from ..backends.tensorrt.load import load_or_build

    builder = TensorRTBuilder()  # BackendUnavailable (exit 4) when TensorRT is missing
    res = load_or_build(manifest, artifact, profile, cache, no_build, builder=builder)
    e = res.entry
    state = f"built in {res.build_seconds:.1f} s ({res.reason})" if res.built else "cached, identity matches"
    line = (f"{artifact.key} [{artifact.precision.value}] -> {e.engine_path} ({len(res.engine) / 2**20:.1f} MiB, "
            f"{state}; key {e.key[:12]}, TensorRT {e.identity.toolkit.tensorrt}, {e.identity.device.name})")
    if e.dla_fallback:
        line += f"\n  DLA core {e.identity.build.dla_core}: {len(e.dla_fallback)} layer(s) fall back to the GPU: " \
                + ", ".join(e.dla_fallback)
    for note in e.meta.get("build_notes", []):
        line += f"\n  {note}"
    return line


def _cmd_build(args: argparse.Namespace) -> int:
    from ..model.manifest import Manifest
    from ..model.profiles import DeviceProfile

    profile = DeviceProfile.load(args.profile)
    manifest = Manifest.load(args.bundle)
    art = _artifact(manifest, profile, args.artifact)
    print(_build_one(manifest, profile, art, args.cache, args.no_build))
    return 0


def _cmd_prebuild(args: argparse.Namespace) -> int:
    from ..model.manifest import Manifest, bundled_model_dir
    from ..model.profiles import DeviceProfile

    profile = DeviceProfile.load(args.profile)
    if not any(b.value == "tensorrt" for b in profile.backends):
        raise ConfigError(f"profile {profile.name!r} does not use TensorRT (backends: "
                          f"{', '.join(b.value for b in profile.backends)}); nothing to prebuild")
    bundles = args.model or [str(bundled_model_dir())]
    manifests = [Manifest.load(b) for b in bundles]  # every bundle readable before the first long build
    for manifest in manifests:
        art = _artifact(manifest, profile, None)
        print(_build_one(manifest, profile, art, args.cache, False))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ..backends.tensorrt.cache import EngineCache
    from ..backends.tensorrt.probe import environment

    cache = EngineCache(args.cache)
    entries, problems = cache.entries()
    env = environment()
    if args.json:
        print(json.dumps({"cache": str(cache.root), "engines": [e.meta for e in entries], "problems": problems,
                          "environment": env}, indent=2, sort_keys=True))
        return 0
    for what, text in env.items():
        print(f"{what + ':':17s}{text}")
    print(f"engine cache: {cache.root} ({len(entries)} engine(s))")
    for e in entries:
        i = e.identity
        shapes = "; ".join(f"{p.input} {_hw(p.min)}..{_hw(p.opt)}..{_hw(p.max)}" for p in i.profiles)
        b = i.build
        dla = f", DLA core {b.dla_core} ({len(e.dla_fallback)} layer(s) on GPU fallback)" if b.dla_core is not None else ""
        size = e.meta.get("engine_bytes", 0) / 2**20
        print(f"{e.key[:12]}  {e.meta.get('artifact', {}).get('key', '?')} [{b.precision}] onnx {i.onnx_sha256[:12]}  "
              f"built {e.meta.get('built_at', '?')}  {size:.1f} MiB")
        print(f"    TensorRT {i.toolkit.tensorrt} [{i.toolkit.tensorrt_build or '?'}], CUDA driver "
              f"{_cuda(i.toolkit.cuda_driver)}; {i.device.label()}")
        print(f"    profile {shapes}; opt level {b.builder_optimization_level}, workspace {b.workspace_mb} MiB, "
              f"timing cache {'on' if b.timing_cache else 'off'}, {'strongly' if b.strongly_typed else 'weakly'} "
              f"typed{dla}")
        for note in e.meta.get("build_notes", []):
            print(f"    {note}")
    for p in problems:
        print(f"  (skipped {p})")
    return 0


def _hw(shape) -> str:
    return f"{shape[2]}x{shape[3]}"


def _cuda(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}" if v else "?"


COMMANDS = (
    Command("engine", "TensorRT engine cache: build, prebuild, info (needs ganrt[trt] to build)", build=_add_actions),
)
