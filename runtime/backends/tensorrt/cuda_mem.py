"""The little CUDA the TensorRT runner needs, behind one small interface.

Two implementations, chosen by what is installed: cuda-python (``cuda.bindings.runtime``, what
NVIDIA's own TensorRT samples use since 10.14) first, pycuda as the alternative. Both are
imported lazily. Every call's status is checked; a failure raises ``CudaError`` (a
``BackendUnavailable``) naming the call and the CUDA error.

Interface (``CudaMem``):
    alloc_device(nbytes) -> DeviceBuffer          free_device(buf)
    alloc_pinned(nbytes) -> PinnedBuffer          free_pinned(buf)     (page-locked, .array is a uint8 view)
    memcpy_htod_async(dst, src, nbytes, stream)   memcpy_dtoh_async(dst, src, nbytes, stream)
    stream_create() / stream_handle(s) -> int / stream_synchronize(s) / stream_destroy(s)
    supports_graphs; graph_begin_capture(s); graph_end_capture(s) -> graph; graph_abort_capture(s);
    graph_launch(g, s); graph_destroy(g)
    close()

Graph capture follows trtexec (samples/common/sampleDevice.h): thread-local capture mode, so
another thread's CUDA calls (a second stream's runner, the torch runner) neither break nor join
this capture; and when the captured launch fails, ``graph_abort_capture`` ends the capture,
destroys whatever graph it returned and clears CUDA's last error, so later plain launches do not
report a stale error.

Inference runs on worker threads, not the thread that activated the runner: pycuda calls run
with the device's primary context pushed around each call, and cuda-python makes the device
current once on each thread that calls it (the current device is per thread).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ...errors import BackendUnavailable
from .probe import INSUFFICIENT_DRIVER, driver_mismatch_line, helper_label

log = logging.getLogger(__name__)


class CudaError(BackendUnavailable):
    """A CUDA call failed (out of memory, lost device, bad launch, ...)."""


@dataclass
class DeviceBuffer:
    ptr: int
    nbytes: int
    handle: Any = None  # the library's own object when it needs one to free the memory


@dataclass
class PinnedBuffer:
    ptr: int
    nbytes: int
    array: np.ndarray  # 1-D uint8 view of the page-locked memory
    handle: Any = None


class CudaMem(Protocol):
    name: str
    supports_graphs: bool

    def alloc_device(self, nbytes: int) -> DeviceBuffer: ...
    def free_device(self, buf: DeviceBuffer) -> None: ...
    def alloc_pinned(self, nbytes: int) -> PinnedBuffer: ...
    def free_pinned(self, buf: PinnedBuffer) -> None: ...
    def memcpy_htod_async(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Any) -> None: ...
    def memcpy_dtoh_async(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Any) -> None: ...
    def stream_create(self) -> Any: ...
    def stream_handle(self, stream: Any) -> int: ...
    def stream_synchronize(self, stream: Any) -> None: ...
    def stream_destroy(self, stream: Any) -> None: ...
    def graph_begin_capture(self, stream: Any) -> None: ...
    def graph_end_capture(self, stream: Any) -> Any: ...
    def graph_abort_capture(self, stream: Any) -> None: ...
    def graph_launch(self, graph: Any, stream: Any) -> None: ...
    def graph_destroy(self, graph: Any) -> None: ...
    def close(self) -> None: ...


def _view(ptr: int, nbytes: int) -> np.ndarray:
    return np.frombuffer((ctypes.c_ubyte * nbytes).from_address(ptr), dtype=np.uint8)


# --- cuda-python ------------------------------------------------------------------------------------


class CudaPythonMem:
    """cuda-python's runtime API (``cuda.bindings.runtime``; ``cuda.cudart`` in older 12.x)."""

    name = "cuda-python"
    supports_graphs = True

    def __init__(self, device: int = 0) -> None:
        try:
            from cuda.bindings import runtime as rt
        except ImportError:
            from cuda import cudart as rt  # raises ImportError when cuda-python is absent
        self.rt, self._device, self._thread = rt, device, threading.local()
        try:
            self._bind()
        except CudaError:
            raise
        except Exception as exc:  # noqa: BLE001 the driver library itself is missing
            raise CudaError(f"CUDA is not usable here ({exc.__class__.__name__}: {' '.join(str(exc).split())[:200]})") \
                from None

    def _bind(self) -> None:
        """Make ``device`` current on the calling thread once: the current device is per thread,
        and inference runs on worker threads (which would otherwise use device 0)."""
        if not getattr(self._thread, "bound", False):
            self._check(self.rt.cudaSetDevice(self._device), "cudaSetDevice")
            self._thread.bound = True

    def _check(self, res: Any, what: str) -> Any:
        err, rest = (res[0], res[1:]) if isinstance(res, tuple) else (res, ())
        if int(err) == INSUFFICIENT_DRIVER:  # cuda-python's CUDA is newer than the driver's
            driver = self.rt.cudaDriverGetVersion()
            raise CudaError(f"CUDA {what} failed: " + driver_mismatch_line(
                helper_label(), int(driver[1]) if int(driver[0]) == 0 else 0))
        if int(err) != 0:
            name = self.rt.cudaGetErrorName(err)[1]
            text = self.rt.cudaGetErrorString(err)[1]
            name = name.decode() if isinstance(name, bytes) else str(name)
            text = text.decode() if isinstance(text, bytes) else str(text)
            raise CudaError(f"CUDA {what} failed: {name} ({text})")
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else rest

    def alloc_device(self, nbytes: int) -> DeviceBuffer:
        self._bind()
        ptr = self._check(self.rt.cudaMalloc(max(1, nbytes)), f"cudaMalloc({nbytes})")
        return DeviceBuffer(int(ptr), nbytes)

    def free_device(self, buf: DeviceBuffer) -> None:
        self._check(self.rt.cudaFree(buf.ptr), "cudaFree")

    def alloc_pinned(self, nbytes: int) -> PinnedBuffer:
        self._bind()
        ptr = int(self._check(self.rt.cudaMallocHost(max(1, nbytes)), f"cudaMallocHost({nbytes})"))
        return PinnedBuffer(ptr, nbytes, _view(ptr, max(1, nbytes)))

    def free_pinned(self, buf: PinnedBuffer) -> None:
        buf.array = np.empty(0, np.uint8)  # drop the view before the memory goes
        self._check(self.rt.cudaFreeHost(buf.ptr), "cudaFreeHost")

    def memcpy_htod_async(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Any) -> None:
        self._bind()
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, stream), "cudaMemcpyAsync(HtoD)")

    def memcpy_dtoh_async(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, stream), "cudaMemcpyAsync(DtoH)")

    def stream_create(self) -> Any:
        self._bind()
        return self._check(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking), "cudaStreamCreate")

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def stream_synchronize(self, stream: Any) -> None:
        self._bind()
        self._check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream: Any) -> None:
        self._check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def graph_begin_capture(self, stream: Any) -> None:
        self._bind()
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def graph_end_capture(self, stream: Any) -> Any:
        try:
            graph = self._check(self.rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        except CudaError:
            self.rt.cudaGetLastError()  # an invalidated capture must not linger as the last error
            raise
        try:
            exe = self._check(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        except CudaError:
            self.rt.cudaGetLastError()  # nor an instantiation failure
            raise
        finally:
            self.rt.cudaGraphDestroy(graph)  # the executable graph keeps what it needs
        return exe

    def graph_abort_capture(self, stream: Any) -> None:
        """End a capture whose work failed: an invalidated capture returns no graph; otherwise the
        graph it returns must not be used and is destroyed. Then clear CUDA's last error."""
        res = self.rt.cudaStreamEndCapture(stream)
        err, graph = (res[0], res[1]) if isinstance(res, tuple) and len(res) > 1 else (res, None)
        if int(err) == 0 and graph is not None and int(graph) != 0:
            self.rt.cudaGraphDestroy(graph)
        self.rt.cudaGetLastError()

    def graph_launch(self, graph: Any, stream: Any) -> None:
        self._check(self.rt.cudaGraphLaunch(graph, stream), "cudaGraphLaunch")

    def graph_destroy(self, graph: Any) -> None:
        self._check(self.rt.cudaGraphExecDestroy(graph), "cudaGraphExecDestroy")

    def close(self) -> None:
        pass  # the runtime API's primary context outlives us (TensorRT shares it)


# --- pycuda -----------------------------------------------------------------------------------------


class PyCudaMem:
    """pycuda's driver API on the device's *primary* context, the one the CUDA runtime (and so
    TensorRT) uses. No CUDA graphs through this path (the runner falls back to plain launches)."""

    name = "pycuda"
    supports_graphs = False

    def __init__(self, device: int = 0) -> None:
        import pycuda.driver as cuda  # raises ImportError when pycuda is absent

        self.cuda = cuda
        try:
            cuda.init()
            self._ctx = cuda.Device(device).retain_primary_context()
        except cuda.Error as exc:
            raise CudaError(f"CUDA is not usable here (pycuda: {exc})") from None

    def _guard(self, what: str, fn, *args):
        """Run ``fn`` with the primary context current on the calling thread (pycuda's calls need a
        current context, and the worker threads have none), then pop it again."""
        try:
            self._ctx.push()
        except self.cuda.Error as exc:
            raise CudaError(f"CUDA {what} failed: cannot make the device context current ({exc})") from None
        try:
            return fn(*args)
        except self.cuda.Error as exc:
            raise CudaError(f"CUDA {what} failed: {exc}") from None
        finally:
            self.cuda.Context.pop()

    def alloc_device(self, nbytes: int) -> DeviceBuffer:
        h = self._guard(f"mem_alloc({nbytes})", self.cuda.mem_alloc, max(1, nbytes))
        return DeviceBuffer(int(h), nbytes, handle=h)

    def free_device(self, buf: DeviceBuffer) -> None:
        self._guard("mem_free", buf.handle.free)

    def alloc_pinned(self, nbytes: int) -> PinnedBuffer:
        arr = self._guard(f"pagelocked_empty({nbytes})", self.cuda.pagelocked_empty, max(1, nbytes), np.uint8)
        return PinnedBuffer(int(arr.ctypes.data), nbytes, arr, handle=arr)

    def free_pinned(self, buf: PinnedBuffer) -> None:
        base = getattr(buf.handle, "base", None)
        buf.array = np.empty(0, np.uint8)
        if base is not None and hasattr(base, "free"):
            self._guard("free_host", base.free)
        buf.handle = None

    def memcpy_htod_async(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Any) -> None:
        self._guard("memcpy_htod_async", self.cuda.memcpy_htod_async, dst.ptr, src.array[:nbytes], stream)

    def memcpy_dtoh_async(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Any) -> None:
        self._guard("memcpy_dtoh_async", self.cuda.memcpy_dtoh_async, dst.array[:nbytes], src.ptr, stream)

    def stream_create(self) -> Any:
        return self._guard("Stream()", self.cuda.Stream)

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def stream_synchronize(self, stream: Any) -> None:
        self._guard("stream synchronize", stream.synchronize)

    def stream_destroy(self, stream: Any) -> None:
        pass  # pycuda destroys the stream when the object goes

    def graph_abort_capture(self, stream: Any) -> None:  # pragma: no cover - supports_graphs is False
        pass

    def graph_begin_capture(self, stream: Any) -> None:  # pragma: no cover - supports_graphs is False
        raise CudaError("CUDA graphs are not available through pycuda here; install cuda-python")

    graph_end_capture = graph_launch = graph_destroy = graph_begin_capture  # type: ignore[assignment]

    def close(self) -> None:
        try:
            self._ctx.detach()  # release the primary context reference taken in __init__
        except Exception:  # noqa: BLE001 already released / context gone
            pass


def open_cuda(device: int = 0, prefer: str | None = None) -> CudaMem:
    """cuda-python when installed, else pycuda; BackendUnavailable when neither can run here."""
    order = ("cuda-python", "pycuda") if prefer in (None, "cuda-python") else ("pycuda", "cuda-python")
    for name in order:
        try:
            return CudaPythonMem(device) if name == "cuda-python" else PyCudaMem(device)
        except ImportError:
            continue
    raise BackendUnavailable("neither cuda-python nor pycuda is installed (needed for GPU buffers and streams); "
                             "install ganrt[trt]")
