"""The environment block written into every benchmark JSON: what machine, clocks and libraries
produced the numbers. Everything is read best-effort (a field that cannot be read says why)
and nothing here needs a GPU, torch or root."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

#: Keys every environment block has (tests check them; consumers may rely on them).
ENV_FIELDS = ("timestamp_utc", "cpu", "cores", "affinity_cpus", "cpu_flags", "cpu_mhz", "memory_mib", "load_avg",
              "machine", "kernel", "python", "numpy", "opencv", "opencv_threads", "onnxruntime",
              "onnxruntime_providers", "libraries", "gpu", "jetson")

#: CPU features that decide which kernels ORT and OpenCV use (int8 speed depends on VNNI).
_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimd",
          "asimddp")
_LIBRARIES = ("ganrt", "numpy", "opencv-python-headless", "onnx", "onnxruntime", "onnxruntime-gpu", "torch",
              "tensorrt", "cuda-python", "scikit-image", "matplotlib")
_SMI_QUERY = ("name", "driver_version", "pstate", "clocks.sm", "clocks.mem", "clocks.max.sm", "clocks.max.mem",
              "temperature.gpu", "power.draw", "power.limit", "memory.total", "utilization.gpu")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _cpuinfo() -> dict[str, Any]:
    text = _read("/proc/cpuinfo") or ""
    model, mhz, flags = platform.processor() or platform.machine(), None, set()
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
            model = val.strip()
        elif key == "cpu MHz" and mhz is None:
            mhz = float(val)
        elif key in ("flags", "Features") and not flags:
            flags = set(val.split())
    return {"cpu": model, "cpu_mhz": mhz, "cpu_flags": [f for f in _FLAGS if f in flags]}


def _memory_mib() -> int | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _run(cmd: list[str], timeout: float = 5.0) -> tuple[str | None, str | None]:
    """(stdout, None) or (None, why not)."""
    if shutil.which(cmd[0]) is None:
        return None, f"{cmd[0]} not found"
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{cmd[0]} failed ({exc.__class__.__name__})"
    if res.returncode != 0:
        return None, f"{cmd[0]} exit {res.returncode}: {(res.stderr or res.stdout).strip()[:200]}"
    return res.stdout, None


def gpu_info() -> dict[str, Any]:
    """Name, clocks, temperature and power of each NVIDIA GPU (nvidia-smi), when readable."""
    out, why = _run(["nvidia-smi", f"--query-gpu={','.join(_SMI_QUERY)}", "--format=csv,noheader,nounits"])
    if out is None:
        return {"available": False, "reason": why}
    gpus = []
    for line in out.strip().splitlines():
        vals = [v.strip() for v in line.split(",")]
        gpus.append(dict(zip(_SMI_QUERY, vals)))
    return {"available": bool(gpus), "gpus": gpus}


def jetson_info() -> dict[str, Any]:
    """Jetson power mode (nvpmodel) and L4T release, when this is a Jetson."""
    release = _read("/etc/nv_tegra_release")
    out, why = _run(["nvpmodel", "-q"])
    if release is None and out is None:
        return {"present": False}
    return {"present": True, "l4t": release.strip().splitlines()[0] if release else None,
            "nvpmodel": " ".join(out.split()) if out else why}


def _ort() -> tuple[str | None, list[str]]:
    try:
        import onnxruntime as ort
    except ImportError:
        return None, []
    return ort.__version__, list(ort.get_available_providers())


def environment(threads: dict[str, Any] | None = None) -> dict[str, Any]:
    """The environment block. ``threads``: the inference threads the measurement used."""
    import cv2
    import numpy as np

    ort_version, providers = _ort()
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count()
    env: dict[str, Any] = {
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **_cpuinfo(),
        "cores": os.cpu_count(),
        "affinity_cpus": affinity,
        "memory_mib": _memory_mib(),
        "load_avg": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "governor": (_read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "").strip() or None,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "onnxruntime": ort_version,
        "onnxruntime_providers": providers,
        "libraries": {d: v for d in _LIBRARIES if (v := _version(d))},
        "gpu": gpu_info(),
        "jetson": jetson_info(),
    }
    if threads is not None:
        env["inference_threads"] = dict(threads)
    return env


def describe(env: dict[str, Any]) -> str:
    """One line for tables: CPU, cores, ORT, GPU."""
    gpu = env.get("gpu") or {}
    g = ", ".join(x.get("name", "?") for x in gpu.get("gpus", [])) if gpu.get("available") else "no GPU"
    flags = "/".join(f for f in env.get("cpu_flags", []) if f.startswith(("avx2", "avx512f", "avx512_vnni", "avx_vnni")))
    return (f"{env.get('cpu', '?')} ({env.get('affinity_cpus') or env.get('cores')} cores{', ' + flags if flags else ''}), "
            f"ONNX Runtime {env.get('onnxruntime')}, {g}")


def save_result(out: Path, stem: str, result: dict, to_markdown: Callable[[dict], str]) -> str:
    """``out/stem.json`` and ``out/stem.md`` of a benchmark result; returns the markdown (to print)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    md = to_markdown(result)
    (out / f"{stem}.md").write_text(md)
    return md
