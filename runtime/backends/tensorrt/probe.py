"""What CUDA and TensorRT this machine has: the GPU, the driver, the helper library, TensorRT's build.

``probe(device)`` returns ``DeviceFacts`` through cuda-python (``cuda.bindings.runtime``) or,
when only that is installed, pycuda. Both are imported lazily.

cuda-bindings links the CUDA runtime of its own major version statically (13.x: CUDA 13). Under
a driver that supports only an older CUDA (JetPack 6 and desktop drivers before R580 support
CUDA 12) every runtime call then fails with ``cudaErrorInsufficientDriver``; the probe names that
mismatch and the extra that matches the driver instead of a bare "no GPU".

The helper's runtime version is recorded for logs only: cuda-python reports the runtime it links
(even on a machine without CUDA), pycuda the CUDA it was compiled against; neither is the CUDA
TensorRT runs on. ``tensorrt_build_label`` names TensorRT's own build (wheel or system package).
"""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path
from typing import Any

from ...errors import BackendUnavailable
from .identity import DeviceFacts, DeviceInfo

INSUFFICIENT_DRIVER = 35  # cudaErrorInsufficientDriver


def cuda_version_text(v: int) -> str:
    """12060 -> "12.6" (the encoding of cudaRuntimeGetVersion / cudaDriverGetVersion)."""
    return f"{v // 1000}.{(v % 1000) // 10}" if v else "?"


def driver_mismatch_line(helper: str, driver: int) -> str:
    """One line for cudaErrorInsufficientDriver: the helper's CUDA is newer than the driver's."""
    have = cuda_version_text(driver) if driver else "an older CUDA"
    major = driver // 1000 if driver else 0
    extra = "ganrt[trt]" if major and major < 13 else "ganrt[trt-cu13]"
    return (f"{helper} needs a newer NVIDIA driver than this one, which supports CUDA {have} "
            f"(cudaErrorInsufficientDriver): install the cuda-python whose major version matches the driver "
            f"(`pip install 'cuda-python>={max(major, 12)}.0,<{max(major, 12) + 1}'`, or {extra})")


def helper_label() -> str:
    for dist in ("cuda-bindings", "cuda-python"):
        try:
            return f"{dist} {md.version(dist)}"
        except md.PackageNotFoundError:
            continue
    return "cuda-python"


def _cuda_python_runtime():
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6
        return runtime
    except ImportError:
        from cuda import cudart  # older cuda-python 12.x layout
        return cudart


def probe(device: int = 0) -> DeviceFacts:
    """Facts about CUDA device ``device`` via cuda-python (pycuda when only that is installed)."""
    try:
        rt = _cuda_python_runtime()
    except ImportError:
        try:
            return _probe_pycuda(device)
        except ImportError:
            raise BackendUnavailable("cuda-python is not installed (needed to query the GPU); "
                                     "install ganrt[trt]") from None
    try:
        return _probe_cuda_python(rt, device)
    except BackendUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 cuda-python raises RuntimeError subclasses when libcuda.so is absent
        raise BackendUnavailable(f"no usable CUDA GPU/driver ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text[:200]}"


def _probe_cuda_python(rt, device: int) -> DeviceFacts:
    driver = 0

    def call(fn, *args):
        res = fn(*args)
        err, rest = (res[0], res[1:]) if isinstance(res, tuple) else (res, ())
        if int(err) != 0:
            if int(err) == INSUFFICIENT_DRIVER:
                raise BackendUnavailable(driver_mismatch_line(helper_label(), driver))
            name = rt.cudaGetErrorName(err)[1]
            name = name.decode() if isinstance(name, bytes) else str(name)
            raise BackendUnavailable(f"no usable CUDA GPU/driver ({fn.__name__}: {name})")
        return rest[0] if len(rest) == 1 else rest

    driver = int(call(rt.cudaDriverGetVersion))  # answers even when the driver is too old
    if driver == 0:
        raise BackendUnavailable("no NVIDIA driver found (cudaDriverGetVersion reports none)")
    helper_runtime = int(call(rt.cudaRuntimeGetVersion))
    count = call(rt.cudaGetDeviceCount)
    if count <= device:
        raise BackendUnavailable(f"no CUDA device {device} (found {count})")
    p = call(rt.cudaGetDeviceProperties, device)
    name = p.name.decode(errors="replace").rstrip("\x00") if isinstance(p.name, bytes) else str(p.name)
    uuid = ""
    try:
        raw = bytes(p.uuid.bytes) if hasattr(p.uuid, "bytes") else b""
        uuid = raw.hex()
    except Exception:  # noqa: BLE001 the uuid is informative only
        pass
    info = DeviceInfo(
        name=name.strip(),
        compute_capability=(int(p.major), int(p.minor)),
        sm_count=int(p.multiProcessorCount),
        total_memory_mib=int(p.totalGlobalMem) >> 20,
        ecc=bool(p.ECCEnabled),
        integrated=bool(p.integrated),
    )
    bus = f"{int(p.pciDomainID):04x}:{int(p.pciBusID):02x}:{int(p.pciDeviceID):02x}"
    return DeviceFacts(info, helper_runtime, driver, uuid=uuid, pci_bus_id=bus, via="cuda-python")


def _probe_pycuda(device: int) -> DeviceFacts:
    import pycuda.driver as cuda

    try:
        cuda.init()
        if cuda.Device.count() <= device:
            raise BackendUnavailable(f"no CUDA device {device} (found {cuda.Device.count()})")
        d = cuda.Device(device)
        A = cuda.device_attribute
        info = DeviceInfo(
            name=d.name().strip(),
            compute_capability=tuple(int(x) for x in d.compute_capability()),  # type: ignore[arg-type]
            sm_count=int(d.get_attribute(A.MULTIPROCESSOR_COUNT)),
            total_memory_mib=int(d.total_memory()) >> 20,
            ecc=bool(d.get_attribute(A.ECC_ENABLED)),
            integrated=bool(d.get_attribute(A.INTEGRATED)),
        )
        major, minor, _ = cuda.get_version()  # the CUDA pycuda was built against (logs only)
        return DeviceFacts(info, major * 1000 + minor * 10, int(cuda.get_driver_version()),
                           pci_bus_id=d.pci_bus_id(), via="pycuda")
    except BackendUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 cuda-python raises RuntimeError subclasses when the driver is absent
        raise BackendUnavailable(f"no usable CUDA GPU/driver ({_one_line(exc)})") from None


# --- TensorRT's own build ----------------------------------------------------------------------------


def tensorrt_build_label(trt: Any) -> str:
    """Which TensorRT build ``trt`` (the imported module) is: the distribution that installed it,
    its version, and the CUDA major of a ``-cuXX`` wheel, e.g. "tensorrt-cu12-bindings 10.3.0.26
    (cu12)"; a JetPack/system package reads e.g. "tensorrt 10.3.0.30 (/usr/lib/python3.10/...)".
    Falls back to the module's path when no distribution owns it (a source build)."""
    name = str(getattr(trt, "__name__", "tensorrt")).split(".")[0]
    where = str(Path(getattr(trt, "__file__", "") or "?").parent)
    dists = []
    try:
        dists = md.packages_distributions().get(name, [])
    except Exception:  # noqa: BLE001 broken metadata in site-packages must not stop a build
        dists = []
    for dist in sorted(set(dists), key=lambda d: (re.search(r"cu\d+", d) is None, d)):  # a -cuXX wheel first
        try:
            version = md.version(dist)
        except md.PackageNotFoundError:
            continue
        cu = re.search(r"cu(\d+)", dist)
        return f"{dist} {version} ({'cu' + cu.group(1) if cu else where})"
    return f"{name} {getattr(trt, '__version__', '?')} ({where})"


# --- what `ganrt engine info` reports about this machine ------------------------------------------


def _driver_and_helper() -> tuple[str, str]:
    """(CUDA driver line, helper runtime line); never raises."""
    try:
        rt = _cuda_python_runtime()
    except ImportError:
        try:
            import pycuda.driver as cuda

            cuda.init()
            major, minor, _ = cuda.get_version()
            return (f"supports CUDA {cuda_version_text(int(cuda.get_driver_version()))}",
                    f"pycuda (built against CUDA {major}.{minor})")
        except ImportError:
            return "unknown (neither cuda-python nor pycuda is installed)", "not found (install ganrt[trt])"
        except Exception as exc:  # noqa: BLE001 no driver / no GPU
            return f"not usable ({_one_line(exc)})", "pycuda"
    try:
        err, driver = rt.cudaDriverGetVersion()
        driver_line = f"supports CUDA {cuda_version_text(int(driver))}" if int(err) == 0 and driver else "not found"
        err, runtime = rt.cudaRuntimeGetVersion()
        helper = f"{helper_label()} (links CUDA runtime {cuda_version_text(int(runtime))}"
        helper += ")" if int(err) == 0 else ", which does not answer here)"
        if int(err) == 0 and driver and int(runtime) // 1000 > int(driver) // 1000:
            helper += " — newer than the driver: " + driver_mismatch_line(helper_label(), int(driver))
        return driver_line, helper
    except Exception as exc:  # noqa: BLE001 libcuda.so absent
        return f"not found ({_one_line(exc)})", helper_label()


def environment() -> dict[str, str]:
    """TensorRT, CUDA driver, CUDA helper and ONNX Runtime as found here, one line each."""
    try:
        import tensorrt as trt

        tensorrt = f"{trt.__version__} [{tensorrt_build_label(trt)}]"
    except Exception as exc:  # noqa: BLE001 ImportError, or a broken install raising anything
        tensorrt = (f"not found ({_one_line(exc)}); on Jetson use JetPack's TensorRT through a venv made with "
                    f"--system-site-packages (docs/jetson.md)")
    driver, helper = _driver_and_helper()
    try:
        import onnxruntime as ort

        ep = "TensorRT EP" if "TensorrtExecutionProvider" in ort.get_available_providers() else "no TensorRT EP"
        onnx_rt = f"{ort.__version__} ({ep})"
    except Exception as exc:  # noqa: BLE001 a broken install raises anything: reported, not fatal
        onnx_rt = f"not found ({_one_line(exc)})"
    return {"TensorRT": tensorrt, "CUDA driver": driver, "CUDA helper": helper, "onnxruntime": onnx_rt}
