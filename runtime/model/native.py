"""ctypes binding of libganrt_ops: fused pre/post-processing with a C ABI (native/).

The library is optional and loaded lazily: importing this module loads nothing, and
``native_available()`` says whether it can be loaded. Where it is looked for, first found wins:

1. ``$GANRT_NATIVE_LIB`` (when set, the only place looked at),
2. ``build/native/libganrt_ops.so`` in the source tree (``cmake -S . -B build && cmake --build build``),
3. in the ganrt.runtime package directory (an installed copy).

``NativeOps.pre`` / ``NativeOps.post`` mirror ``ganrt.runtime.model.ops.Preprocessor`` / ``Postprocessor``
on uint8 frames and give the same numbers (see native/include/ganrt_ops.h for the exact maths).
The ``*_cuda`` methods take raw device pointers (ints) and a cudaStream_t handle (int), so a
TensorRT or torch runner can chain them on its own stream; this module imports neither torch
nor cupy.
"""

from __future__ import annotations

import ctypes
import os
import sys
from enum import IntEnum
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable

ENV_VAR = "GANRT_NATIVE_LIB"
ABI_MAJOR = 1  # GANRT_OPS_VERSION // 10000 that this binding speaks
LIB_NAME = {"darwin": "libganrt_ops.dylib", "win32": "ganrt_ops.dll"}.get(sys.platform, "libganrt_ops.so")
BUILD_HINT = "set GANRT_NATIVE_LIB or build it: cmake -S . -B build && cmake --build build -j2"


class PixelFormat(IntEnum):
    GRAY8 = 0
    BGR8 = 1
    RGB8 = 2
    YUYV = 3  # (H, W, 2) uint8, as OpenCV takes it
    NV12 = 4  # (H * 3 // 2, W) uint8, as OpenCV takes it


class YuvRange(IntEnum):
    FULL = 0  # BT.601, 0..255 (JPEG)
    LIMITED = 1  # BT.601 video range, what cv2.COLOR_YUV2BGR_NV12/_YUYV assume


class Layout(IntEnum):
    GRAY = 0
    RGB = 1
    BGR = 2


class Status(IntEnum):
    OK = 0
    INVALID_ARG = 1
    NOT_AVAILABLE = 2
    CUDA = 3


_F32, _F16 = 0, 1
_i, _d, _f, _p = ctypes.c_int, ctypes.c_double, ctypes.c_float, ctypes.c_void_p
_PRE = [_p, _p, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _d, _d, _i, _p, _i]
_POST = [_p, _i, _i, _i, _i, _i, _i, _d, _d, _p, _i, _i, _p, _i, _p, _i]
_BOX = [_p, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _f]
_SIGNATURES = {  # name: (restype, argtypes)
    "ganrt_ops_version": (_i, []),
    "ganrt_ops_has_cuda": (_i, []),
    "ganrt_cuda_device_count": (_i, []),
    "ganrt_cuda_last_error": (ctypes.c_char_p, []),
    "ganrt_status_string": (ctypes.c_char_p, [_i]),
    "ganrt_padded": (_i, [_i, _i]),
    "ganrt_pre_cpu": (_i, _PRE),
    "ganrt_pre_cuda": (_i, _PRE + [_p]),
    "ganrt_post_cpu": (_i, _POST),
    "ganrt_post_cuda": (_i, _POST + [_p]),
    "ganrt_label_box_cpu": (_i, _BOX),
    "ganrt_label_box_cuda": (_i, _BOX + [_p]),
}


def candidate_paths() -> list[Path]:
    """Where the library is looked for, in order."""
    env = os.environ.get(ENV_VAR)
    if env:
        return [Path(env)]
    runtime = Path(__file__).resolve().parents[1]  # the ganrt.runtime package
    return [runtime.parent / "build" / "native" / LIB_NAME, runtime / LIB_NAME]


def find_library() -> Path:
    for path in candidate_paths():
        if path.is_file():
            return path
    where = os.environ.get(ENV_VAR) and f"{ENV_VAR}={os.environ[ENV_VAR]}"
    raise BackendUnavailable(f"native ops library {where or LIB_NAME} not found ({BUILD_HINT})")


@cache
def load_library(path: str) -> ctypes.CDLL:
    """Load and type the library at ``path`` (once per path)."""
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise BackendUnavailable(f"native ops library {path} could not be loaded: {exc}") from None
    missing = [name for name in _SIGNATURES if not hasattr(lib, name)]
    if missing:
        raise BackendUnavailable(f"native ops library {path} lacks {', '.join(missing)} (rebuild it)")
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    version = lib.ganrt_ops_version()
    if version // 10000 != ABI_MAJOR:
        raise BackendUnavailable(
            f"native ops library {path} has ABI {version}, this ganrt needs {ABI_MAJOR}.x (rebuild it)")
    return lib


def native_available() -> bool:
    """True when the library can be found and loaded (no exception, ever)."""
    try:
        load_library(str(find_library()))
    except BackendUnavailable:
        return False
    return True


def _layout(channels: int, color_order: str) -> Layout:
    if channels == 1:
        return Layout.GRAY
    if channels == 3:
        return Layout.RGB if color_order == "rgb" else Layout.BGR  # as Preprocessor: only "rgb" swaps
    raise ValueError(f"channels must be 1 or 3 (got {channels})")


def _format(fmt: PixelFormat | str) -> PixelFormat:
    try:
        return PixelFormat[fmt.upper()] if isinstance(fmt, str) else PixelFormat(fmt)
    except (KeyError, ValueError):
        raise ValueError(f"unknown pixel format {fmt!r} (one of {', '.join(f.name for f in PixelFormat)})") from None


def _rows(a: np.ndarray, what: str) -> np.ndarray:
    """uint8 with packed pixels inside each row; rows may be strided (a crop of a bigger buffer)."""
    if a.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (got {a.dtype})")
    packed = a.strides[-1] == 1 and (a.ndim < 3 or a.strides[1] == a.shape[2])
    return a if packed and a.strides[0] > 0 else np.ascontiguousarray(a)


def _frame_geometry(p: np.ndarray, fmt: PixelFormat) -> tuple[int, int]:
    """(width, height) in pixels of a frame array in format ``fmt``; ValueError if the shape does not fit."""
    shape = p.shape
    if fmt is PixelFormat.GRAY8 and (p.ndim == 2 or (p.ndim == 3 and shape[2] == 1)):
        return shape[1], shape[0]
    if fmt in (PixelFormat.BGR8, PixelFormat.RGB8) and p.ndim == 3 and shape[2] == 3:
        return shape[1], shape[0]
    if fmt is PixelFormat.YUYV and p.ndim == 3 and shape[2] == 2 and shape[1] % 2 == 0:
        return shape[1], shape[0]
    if fmt is PixelFormat.NV12 and p.ndim == 2 and shape[0] % 3 == 0 and shape[1] % 2 == 0:  # rows = 3 * (h // 2)
        return shape[1], shape[0] * 2 // 3
    raise ValueError(f"frame shape {shape} does not fit {fmt.name}")


class NativeOps:
    """The library's operations on numpy arrays (host) and raw device pointers (CUDA)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else find_library()
        if not self.path.is_file():
            raise BackendUnavailable(f"native ops library {self.path} not found ({BUILD_HINT})")
        self.lib = load_library(str(self.path))

    @property
    def version(self) -> int:
        return self.lib.ganrt_ops_version()

    @property
    def has_cuda(self) -> bool:
        """Built with the CUDA kernels (says nothing about a device: see cuda_device_count)."""
        return bool(self.lib.ganrt_ops_has_cuda())

    def cuda_device_count(self) -> int:
        return self.lib.ganrt_cuda_device_count()

    def padded(self, n: int, multiple: int) -> int:
        return self.lib.ganrt_padded(n, multiple)

    def _check(self, status: int, fn: str) -> None:
        if status == Status.OK:
            return
        text = self.lib.ganrt_status_string(status).decode()
        if status == Status.INVALID_ARG:
            raise ValueError(f"{fn}: {text}")
        if status == Status.CUDA:
            text += f": {self.lib.ganrt_cuda_last_error().decode()}"
        raise BackendUnavailable(f"{fn}: {text}")

    # -- host -------------------------------------------------------------------------

    def pre(self, pixels: np.ndarray, fmt: PixelFormat | str, channels: int, value_range: tuple[float, float],
            size_multiple: int = 1, roi: tuple[int, int, int, int] | None = None, half: bool = False, *,
            color_order: str = "bgr", yuv_range: YuvRange = YuvRange.FULL) -> tuple[np.ndarray, tuple[int, int]]:
        """uint8 frame -> (1, C, Hp, Wp) float32/float16 tensor and the (h, w) to crop back to.

        ``roi`` is (x, y, w, h) in the frame's pixels; ``color_order`` "rgb" or "bgr" for 3 channels.
        """
        fmt = _format(fmt)
        p = _rows(np.asarray(pixels), "pixels")
        width, height = _frame_geometry(p, fmt)
        x, y, w, h = roi if roi is not None else (0, 0, width, height)
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise ValueError(f"roi (x={x}, y={y}, w={w}, h={h}) is not inside the {width}x{height} frame")
        layout = _layout(channels, color_order)
        lo, hi = (float(v) for v in value_range)
        m = max(1, int(size_multiple))
        out = np.empty((1, channels, self.padded(h, m), self.padded(w, m)), np.float16 if half else np.float32)
        st = self.lib.ganrt_pre_cpu(p.ctypes.data, None, width, height, p.strides[0], fmt, YuvRange(yuv_range),
                                    x, y, w, h, layout, lo, hi, m, out.ctypes.data, _F16 if half else _F32)
        self._check(st, "ganrt_pre_cpu")
        return out, (h, w)

    def post(self, nchw: np.ndarray, hw: tuple[int, int], out_channels: int, value_range: tuple[float, float], *,
             color_order: str = "bgr", raw: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        """(1, C, H, W) model output -> uint8 (h, w) gray or (h, w, 3) BGR image, cropped to ``hw``.

        With ``raw`` (the frame, same layout as the result) and ``mask`` ((h, w) uint8, 255 = model),
        the result is blended per pixel: (model * a + raw * (255 - a) + 127) // 255.
        """
        t = np.asarray(nchw)
        if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] not in (1, 3):
            raise ValueError(f"model output shape {t.shape}, expected (1, 1|3, H, W)")
        half = t.dtype == np.float16
        t = np.ascontiguousarray(t, np.float16 if half else np.float32)
        h, w = hw
        dst_layout = _layout(out_channels, "bgr")
        out = np.empty((h, w) if out_channels == 1 else (h, w, 3), np.uint8)
        raw_ptr = mask_ptr = None
        raw_stride = mask_stride = 0
        if (raw is None) != (mask is None):
            raise ValueError("the passthrough blend needs both raw and mask")
        if raw is not None:
            raw, mask = _rows(np.asarray(raw), "raw"), _rows(np.asarray(mask), "mask")
            if raw.shape[:2] != (h, w) or (raw.ndim == 3 and raw.shape[2] != out_channels) \
                    or (raw.ndim == 2 and out_channels != 1) or mask.shape != (h, w):
                raise ValueError(f"raw {raw.shape} / mask {mask.shape} must be {out.shape} / {(h, w)}")
            raw_ptr, raw_stride = raw.ctypes.data, raw.strides[0]
            mask_ptr, mask_stride = mask.ctypes.data, mask.strides[0]
        lo, hi = (float(v) for v in value_range)
        st = self.lib.ganrt_post_cpu(t.ctypes.data, _F16 if half else _F32, _layout(t.shape[1], color_order),
                                     t.shape[2], t.shape[3], h, w, lo, hi, out.ctypes.data, out.strides[0],
                                     dst_layout, raw_ptr, raw_stride, mask_ptr, mask_stride)
        self._check(st, "ganrt_post_cpu")
        return out

    def label_box(self, img: np.ndarray, rect: tuple[int, int, int, int], color: tuple[int, ...],
                  alpha: float) -> np.ndarray:
        """Blend a filled box (x, y, w, h; clipped) of ``color`` (the image's channel order) into ``img``, in place."""
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)) \
                or img.strides[-1] != 1 or (img.ndim == 3 and img.strides[1] != img.shape[2]):
            raise ValueError(f"label_box needs a uint8 gray or 3-channel image with packed rows "
                             f"(got {img.dtype} {img.shape})")
        ch = 1 if img.ndim == 2 else img.shape[2]
        c = (tuple(int(v) for v in color) + (0, 0, 0))[:3]
        st = self.lib.ganrt_label_box_cpu(img.ctypes.data, img.shape[1], img.shape[0], img.strides[0], ch,
                                          *(int(v) for v in rect), *c, float(alpha))
        self._check(st, "ganrt_label_box_cpu")
        return img

    # -- CUDA: device pointers and a cudaStream_t as ints; asynchronous on that stream ----

    def pre_cuda(self, src: int, width: int, height: int, stride: int, fmt: PixelFormat, layout: Layout,
                 value_range: tuple[float, float], size_multiple: int, dst: int, *, half: bool = False,
                 roi: tuple[int, int, int, int] | None = None, yuv_range: YuvRange = YuvRange.FULL,
                 src_uv: int | None = None, stream: int = 0) -> tuple[int, int]:
        """Launch pre on ``stream``; ``dst`` holds 1 x C x padded(h) x padded(w). Returns the (h, w) to crop back to."""
        x, y, w, h = roi if roi is not None else (0, 0, width, height)
        st = self.lib.ganrt_pre_cuda(src, src_uv, width, height, stride, _format(fmt), YuvRange(yuv_range),
                                     x, y, w, h, Layout(layout), float(value_range[0]), float(value_range[1]),
                                     max(1, int(size_multiple)), dst, _F16 if half else _F32, stream or None)
        self._check(st, "ganrt_pre_cuda")
        return h, w

    def post_cuda(self, src: int, src_layout: Layout, src_hw: tuple[int, int], out_hw: tuple[int, int],
                  value_range: tuple[float, float], dst: int, dst_stride: int, dst_layout: Layout, *,
                  half: bool = False, raw: int | None = None, raw_stride: int = 0, mask: int | None = None,
                  mask_stride: int = 0, stream: int = 0) -> None:
        st = self.lib.ganrt_post_cuda(src, _F16 if half else _F32, Layout(src_layout), src_hw[0], src_hw[1],
                                      out_hw[0], out_hw[1], float(value_range[0]), float(value_range[1]),
                                      dst, dst_stride, Layout(dst_layout), raw, raw_stride, mask, mask_stride,
                                      stream or None)
        self._check(st, "ganrt_post_cuda")

    def label_box_cuda(self, img: int, width: int, height: int, stride: int, channels: int,
                       rect: tuple[int, int, int, int], color: tuple[int, ...], alpha: float, *,
                       stream: int = 0) -> None:
        c = (tuple(int(v) for v in color) + (0, 0, 0))[:3]
        st = self.lib.ganrt_label_box_cuda(img, width, height, stride, channels, *(int(v) for v in rect), *c,
                                           float(alpha), stream or None)
        self._check(st, "ganrt_label_box_cuda")
