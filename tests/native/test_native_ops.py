"""libganrt_ops (native/, C ABI via ctypes) against numpy/OpenCV and ganrt.runtime.model.ops.

Tolerances: where the 8-bit colour maths is OpenCV's own (gray, BGR/RGB, YUV limited range
as cv2.COLOR_YUV2BGR_NV12/_YUYV) the tensors must agree to 1e-6 (they are in fact bit-equal);
YUV full range is checked against cv2.COLOR_YCrCb2BGR on upsampled chroma, whose rounded
coefficients differ from ours by up to 1 LSB of uint8 (so 1 LSB * scale + 1e-6 in the tensor).
uint8 results (post, blend) must be exact; the label box may differ from cv2.addWeighted by 1 LSB.
The gray formula is OpenCV 5's BGR2GRAY bit for bit (checked below, GRAY_EXACT); with an OpenCV
that rounds its gray differently, gray-from-colour cases are allowed 1 LSB.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ganrt.runtime.errors import BackendUnavailable
from ganrt.runtime.model.manifest import TensorSpec
from ganrt.runtime.model.native import Layout, NativeOps, PixelFormat, YuvRange, native_available
from ganrt.runtime.model.ops import Postprocessor, Preprocessor, Undo

REPO = Path(__file__).resolve().parents[2]
FLOAT_TOL = 1e-6
LSB = 1  # uint8


def _opencv_gray_is_ours() -> bool:
    """The library's gray is OpenCV 5's BGR2GRAY bit for bit; another OpenCV may round 1 LSB off."""
    x = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b, g, r = (x[..., i].astype(np.int32) for i in range(3))
    return np.array_equal(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY), (3735 * b + 19235 * g + 9798 * r + 16384) >> 15)


GRAY_EXACT = _opencv_gray_is_ours()


def gray_tol(vr: tuple[float, float], half: bool, from_colour: bool) -> float:
    """Float tolerance of a tensor whose 8-bit gray came from BGR2GRAY: exact where OpenCV's gray is ours."""
    if GRAY_EXACT or not from_colour:
        return FLOAT_TOL
    lo, hi = vr
    return LSB * (hi - lo) / 255.0 + (2.0 ** -10 * max(abs(lo), abs(hi)) if half else 0.0) + FLOAT_TOL


def _cxx_compiler() -> str | None:
    return next((c for c in (os.environ.get("CXX"), "c++", "g++", "clang++") if c and shutil.which(c)), None)


def _cmake_build(build_dir: Path, *extra: str) -> Path:
    if not shutil.which("cmake"):
        pytest.skip("cmake is not installed: the native library cannot be built here")
    if not _cxx_compiler():
        pytest.skip("no C++ compiler (c++/g++/clang++) found: the native library cannot be built here")
    for cmd in (["cmake", "-S", str(REPO), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release", *extra],
                ["cmake", "--build", str(build_dir), "-j2"]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            pytest.fail(f"{' '.join(cmd)} failed:\n{(res.stdout + res.stderr)[-4000:]}")
    lib = build_dir / "native" / "libganrt_ops.so"
    assert lib.is_file(), f"the build did not produce {lib}"
    return lib


@pytest.fixture(scope="session")
def native_lib(tmp_path_factory) -> Path:
    return _cmake_build(tmp_path_factory.mktemp("ganrt-native"))


@pytest.fixture(scope="session")
def ops(native_lib) -> NativeOps:
    return NativeOps(native_lib)


RNG = np.random.default_rng(20240611)


def _u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


# --- references ----------------------------------------------------------------------------------

def _ycrcb444(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.dstack([y, v, u])  # OpenCV's YCrCb order


def frame_and_bgr(fmt: PixelFormat, h: int, w: int, yuv: YuvRange) -> tuple[np.ndarray, np.ndarray]:
    """A random frame in ``fmt`` and its 8-bit BGR (or gray) reference, from OpenCV."""
    if fmt is PixelFormat.GRAY8:
        g = _u8(h, w)
        return g, g
    if fmt is PixelFormat.BGR8:
        b = _u8(h, w, 3)
        return b, b
    if fmt is PixelFormat.RGB8:
        r = _u8(h, w, 3)
        return r, np.ascontiguousarray(r[:, :, ::-1])
    if fmt is PixelFormat.YUYV:
        f = _u8(h, w, 2)
        if yuv is YuvRange.LIMITED:
            return f, cv2.cvtColor(f, cv2.COLOR_YUV2BGR_YUYV)
        flat = f.reshape(h, 2 * w)
        u, v = np.repeat(flat[:, 1::4], 2, 1), np.repeat(flat[:, 3::4], 2, 1)
        return f, cv2.cvtColor(_ycrcb444(flat[:, 0::2], u, v), cv2.COLOR_YCrCb2BGR)
    f = _u8(h * 3 // 2, w)  # NV12
    if yuv is YuvRange.LIMITED:
        return f, cv2.cvtColor(f, cv2.COLOR_YUV2BGR_NV12)
    uv = f[h:].reshape(h // 2, w // 2, 2)
    up = lambda c: np.repeat(np.repeat(c, 2, 0), 2, 1)  # noqa: E731
    return f, cv2.cvtColor(_ycrcb444(f[:h], up(uv[..., 0]), up(uv[..., 1])), cv2.COLOR_YCrCb2BGR)


def ref_pre(bgr: np.ndarray, layout: Layout, vr: tuple[float, float], m: int, roi, half: bool) -> np.ndarray:
    """numpy/OpenCV version of the native pre (the Preprocessor recipe plus a ROI)."""
    x, y, w, h = roi
    img = bgr[y:y + h, x:x + w]
    if layout is Layout.GRAY:
        img = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    else:
        img = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if layout is Layout.RGB else img
    lo, hi = vr
    f = np.multiply(img, np.float32((hi - lo) / 255.0), dtype=np.float32) + np.float32(lo)
    ph, pw = -h % m, -w % m
    border = cv2.BORDER_REFLECT_101 if (h > ph and w > pw) else cv2.BORDER_REPLICATE
    f = cv2.copyMakeBorder(f, 0, ph, 0, pw, border)
    t = f[None, None] if f.ndim == 2 else f.transpose(2, 0, 1)[None]
    return np.ascontiguousarray(t, np.float16 if half else np.float32)


def max_err(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def _channels(layout: Layout) -> tuple[int, str]:
    return (1, "gray") if layout is Layout.GRAY else (3, layout.name.lower())


# --- the library ---------------------------------------------------------------------------------

def test_library_identity(ops):
    assert ops.version // 10000 == 1
    assert [ops.padded(n, 8) for n in (1, 8, 37, 53)] == [8, 8, 40, 56]
    assert ops.lib.ganrt_status_string(2).decode().startswith("not available")


def test_cuda_sources_compile_when_nvcc_exists(ops, native_lib):
    """With nvcc on PATH, CMake must have built the CUDA kernels into the library (links cudart)."""
    if not shutil.which("nvcc"):
        pytest.skip("nvcc is not installed: the library is CPU-only here")
    assert ops.has_cuda, "nvcc exists but the CMake build left CUDA out (see the cmake configure output)"
    assert "libcudart" in subprocess.run(["ldd", str(native_lib)], capture_output=True, text=True).stdout


def test_cpu_only_build_has_cuda_stubs(tmp_path):
    """-DGANRT_WITH_CUDA=OFF (as on a machine without nvcc): same ABI, CUDA entry points say NOT_AVAILABLE."""
    ops = NativeOps(_cmake_build(tmp_path / "cpu-only", "-DGANRT_WITH_CUDA=OFF"))
    assert not ops.has_cuda and ops.cuda_device_count() == 0
    with pytest.raises(BackendUnavailable, match="not available"):
        ops.pre_cuda(1, 8, 8, 8, PixelFormat.GRAY8, Layout.GRAY, (0, 1), 1, 1)
    with pytest.raises(BackendUnavailable, match="not available"):
        ops.label_box_cuda(1, 8, 8, 8, 1, (0, 0, 2, 2), (255,), 0.5)


# --- pre -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("half", [False, True], ids=["f32", "f16"])
@pytest.mark.parametrize("m", [1, 4, 8])
@pytest.mark.parametrize("layout", list(Layout), ids=lambda v: v.name)
@pytest.mark.parametrize("fmt", list(PixelFormat), ids=lambda v: v.name)
def test_pre_matches_opencv(ops, fmt, layout, m, half):
    """Odd 37x53 images (a ROI of a 38x54 frame for the subsampled YUV formats), limited-range YUV."""
    if fmt in (PixelFormat.YUYV, PixelFormat.NV12):
        frame, bgr = frame_and_bgr(fmt, 38, 54, YuvRange.LIMITED)
        roi = (1, 1, 53, 37)
    else:
        frame, bgr = frame_and_bgr(fmt, 37, 53, YuvRange.LIMITED)
        roi = (0, 0, 53, 37)
    vr = (-1.0, 1.0)
    ch, order = _channels(layout)
    t, hw = ops.pre(frame, fmt, ch, vr, m, roi=None if roi[:2] == (0, 0) else roi, half=half,
                    color_order=order, yuv_range=YuvRange.LIMITED)
    assert hw == (37, 53)
    ref = ref_pre(bgr, layout, vr, m, roi, half)
    assert t.shape == ref.shape == (1, ch, ops.padded(37, m), ops.padded(53, m))
    # f16: the same float32 rounded the same way
    assert max_err(t, ref) <= gray_tol(vr, half, layout is Layout.GRAY and fmt is not PixelFormat.GRAY8)


@pytest.mark.parametrize("layout", list(Layout), ids=lambda v: v.name)
@pytest.mark.parametrize("fmt", [PixelFormat.YUYV, PixelFormat.NV12], ids=lambda v: v.name)
def test_pre_yuv_full_range(ops, fmt, layout):
    frame, bgr = frame_and_bgr(fmt, 38, 54, YuvRange.FULL)
    vr = (0.0, 1.0)
    ch, order = _channels(layout)
    t, _ = ops.pre(frame, fmt, ch, vr, 4, roi=(1, 0, 53, 37), color_order=order)  # FULL is the default
    ref = ref_pre(bgr, layout, vr, 4, (1, 0, 53, 37), False)
    assert max_err(t, ref) <= LSB / 255.0 + FLOAT_TOL


@pytest.mark.parametrize("roi,m,border", [
    ((3, 5, 29, 31), 8, "reflect"),    # pads 1 row, 3 columns
    ((10, 7, 5, 6), 4, "reflect"),     # pads 2, 3 on 6, 5 pixels
    ((2, 2, 3, 2), 8, "replicate"),    # pad (6, 5) >= side: replicate, as ops.Preprocessor
    ((52, 36, 1, 1), 4, "replicate"),  # the last pixel alone
])
def test_pre_roi_and_padding(ops, roi, m, border):
    bgr = _u8(37, 53, 3)
    t, hw = ops.pre(bgr, "bgr8", 3, (0.0, 1.0), m, roi=roi, color_order="rgb")
    assert hw == (roi[3], roi[2])
    ref = ref_pre(bgr, Layout.RGB, (0.0, 1.0), m, roi, False)
    assert max_err(t, ref) <= FLOAT_TOL
    x, y, w, h = roi
    edge = t[0, 0, -1, -1]  # bottom-right of the padded R plane
    if border == "replicate":
        assert edge == t[0, 0, h - 1, w - 1]


@pytest.mark.parametrize("vr", [(0.0, 1e-5), (-3e-6, 3e-6), (-7e4, 7e4), (0.0, 65519.0), (0.0, 65600.0)],
                         ids=["subnormal", "signed-subnormal", "overflow", "below-inf", "to-inf"])
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # numpy's reference, on purpose
def test_pre_half_rounding_at_the_edges(ops, vr):
    """float16 subnormals, the largest finite half and overflow to inf round as numpy's astype(float16)."""
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    t, _ = ops.pre(g, "gray8", 1, vr, half=True)
    ref = ref_pre(g, Layout.GRAY, vr, 1, (0, 0, 16, 16), True)
    assert t.tobytes() == ref.tobytes()
    assert np.isinf(t).any() == (vr[1] > 65520.0)  # 255 * scale reaches 65520 (-> inf) only there


SPECS = [
    TensorSpec("x", 1, value_range=(-1.0, 1.0), color_order="gray"),
    TensorSpec("x", 1, value_range=(0.0, 1.0), color_order="gray"),
    TensorSpec("x", 3, value_range=(-1.0, 1.0), color_order="rgb"),
    TensorSpec("x", 3, value_range=(0.0, 255.0), color_order="bgr"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.channels}ch-{s.color_order}-{s.value_range[0]:g}")
@pytest.mark.parametrize("frame_ch", [1, 3], ids=["gray", "bgr"])
def test_pre_agrees_with_preprocessor(ops, spec, frame_ch, dtype):
    frame = _u8(37, 53) if frame_ch == 1 else _u8(37, 53, 3)
    ref, undo = Preprocessor(spec, 8, dtype=dtype)(frame)
    fmt = PixelFormat.GRAY8 if frame_ch == 1 else PixelFormat.BGR8
    t, hw = ops.pre(frame, fmt, spec.channels, spec.value_range, 8, half=dtype == np.float16,
                    color_order=spec.color_order)
    assert hw == undo.hw
    assert max_err(t, ref) <= gray_tol(spec.value_range, dtype == np.float16, spec.channels == 1 and frame_ch == 3)


def test_pre_takes_strided_rows_and_rejects_bad_input(ops):
    big = _u8(60, 80, 3)
    view = big[5:42, 7:60]  # rows 240 bytes apart, pixels packed: no copy needed
    t, _ = ops.pre(view, PixelFormat.BGR8, 1, (0, 1), 4)
    ref = ref_pre(np.ascontiguousarray(view), Layout.GRAY, (0, 1), 4, (0, 0, 53, 37), False)
    assert max_err(t, ref) <= gray_tol((0, 1), False, True)
    with pytest.raises(ValueError, match="not inside"):
        ops.pre(big, "bgr8", 3, (0, 1), roi=(70, 0, 20, 10))
    with pytest.raises(ValueError, match="does not fit NV12"):
        ops.pre(_u8(37, 54), "nv12", 1, (0, 1))
    with pytest.raises(ValueError, match="invalid argument"):
        ops.pre(big, "bgr8", 3, (1.0, 1.0))  # empty value range


# --- post ----------------------------------------------------------------------------------------

def _model_output(ch: int, hp: int, wp: int, vr: tuple[float, float], dtype) -> np.ndarray:
    lo, hi = vr
    y = RNG.uniform(lo, hi, (1, ch, hp, wp)).astype(np.float32)
    y.flat[::53] = hi + 0.04 * (hi - lo)  # inside Postprocessor's margin: clamped, not rejected
    y.flat[7::61] = lo - 0.04 * (hi - lo)
    y.flat[11::67] = lo + (np.arange(len(y.flat[11::67])) % 256 + 0.5) / 255 * (hi - lo)  # round-half cases
    return y.astype(dtype)


# 1 -> 3 channels is left out: Postprocessor merges the frame's chroma back, native replicates gray.
POST_CASES = [(spec, out_ch) for spec in SPECS for out_ch in (1, 3) if not (spec.channels == 1 and out_ch == 3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("spec,out_ch", POST_CASES,
                         ids=[f"{s.channels}ch-{s.color_order}-{s.value_range[0]:g}-to-{c}" for s, c in POST_CASES])
def test_post_agrees_with_postprocessor(ops, spec, out_ch, dtype):
    y = _model_output(spec.channels, 40, 56, spec.value_range, dtype)
    src = _u8(37, 53) if out_ch == 1 else _u8(37, 53, 3)
    ref = Postprocessor(spec)(y, Undo((37, 53), out_ch, src))
    got = ops.post(y, (37, 53), out_ch, spec.value_range, color_order=spec.color_order)
    assert got.shape == ref.shape and got.dtype == np.uint8
    assert max_err(got, ref) <= (0 if GRAY_EXACT or spec.channels == out_ch else LSB)


def test_post_clamps_nan_and_replicates_gray(ops):
    y = np.array([[[[-5.0, 0.0, 0.5 / 255, 1.0], [2.0, np.nan, np.inf, -np.inf]]]], np.float32)
    got = ops.post(y, (2, 3), 1, (0.0, 1.0))  # crop the last column
    assert got.tolist() == [[0, 0, 1], [255, 0, 255]]
    bgr = ops.post(y, (2, 4), 3, (0.0, 1.0))
    assert bgr.shape == (2, 4, 3) and (bgr == bgr[:, :, :1]).all()


@pytest.mark.parametrize("out_ch", [1, 3], ids=["gray", "bgr"])
def test_post_passthrough_blend(ops, out_ch):
    vr = (-1.0, 1.0)
    y = _model_output(3, 40, 56, vr, np.float32)
    raw = _u8(37, 53) if out_ch == 1 else _u8(37, 53, 3)
    mask = _u8(37, 53)
    mask[:5] = 0    # UI strip: raw
    mask[-5:] = 255  # imaging region: model
    model = ops.post(y, (37, 53), out_ch, vr, color_order="rgb")
    got = ops.post(y, (37, 53), out_ch, vr, color_order="rgb", raw=raw, mask=mask)
    a = mask.astype(np.int32) if out_ch == 1 else mask.astype(np.int32)[:, :, None]
    ref = ((model.astype(np.int32) * a + raw.astype(np.int32) * (255 - a) + 127) // 255).astype(np.uint8)
    assert max_err(got, ref) == 0
    assert (got[:5] == raw[:5]).all() and (got[-5:] == model[-5:]).all()
    exact = model * (a / 255.0) + raw * (1 - a / 255.0)
    assert np.abs(got - exact).max() <= 0.5 + 1e-9  # rounded, never truncated
    with pytest.raises(ValueError, match="both"):
        ops.post(y, (37, 53), out_ch, vr, raw=raw)


@pytest.mark.parametrize("ch", [1, 3])
@pytest.mark.parametrize("rect", [(30, 4, 20, 9), (45, -3, 20, 9), (0, 0, 0, 5)], ids=["inside", "clipped", "empty"])
def test_label_box_matches_addweighted(ops, ch, rect):
    img = _u8(37, 53) if ch == 1 else _u8(37, 53, 3)
    color, alpha = (0, 160, 255), 0.45
    ref = img.copy()
    x, y, w, h = rect
    x0, y0, x1, y1 = max(0, x), max(0, y), min(53, x + w), min(37, y + h)
    roi = ref[y0:y1, x0:x1]
    if roi.size:
        fill = np.full_like(roi, color[0] if ch == 1 else 0)
        if ch == 3:
            fill[:] = color
        cv2.addWeighted(roi, 1.0 - alpha, fill, alpha, 0.0, dst=roi)
    got = ops.label_box(img.copy(), rect, color, alpha)
    assert max_err(got, ref) <= LSB
    outside = np.ones(img.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (got[outside] == img[outside]).all()


# --- loading -------------------------------------------------------------------------------------

def test_missing_library_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("GANRT_NATIVE_LIB", str(tmp_path / "nope.so"))
    assert native_available() is False
    with pytest.raises(BackendUnavailable) as info:
        NativeOps()
    msg = str(info.value)
    assert "\n" not in msg and "GANRT_NATIVE_LIB" in msg and "cmake" in msg


def test_env_var_selects_the_library(monkeypatch, native_lib):
    monkeypatch.setenv("GANRT_NATIVE_LIB", str(native_lib))
    assert native_available() is True
    assert NativeOps().path == native_lib


def test_import_loads_nothing_and_needs_no_torch():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'cupy'}: raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ganrt.runtime.model.native as n\n"
        "assert not n.load_library.cache_info().currsize\n"
        "assert n.native_available() is False\n"
        "print('ok')\n"
    )
    env = dict(os.environ, GANRT_NATIVE_LIB="/nonexistent/libganrt_ops.so")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


# --- CUDA ----------------------------------------------------------------------------------------

class _Cudart:
    """The cudart the library links (found in this process's maps), for device buffers in the test."""

    def __init__(self) -> None:
        maps = Path("/proc/self/maps").read_text().split("\n")
        path = next((line.split()[-1] for line in maps if "libcudart.so" in line), None)
        if path is None:
            pytest.skip("libcudart is not loaded by the library")
        self.rt = ctypes.CDLL(path)
        self.rt.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        self.rt.cudaMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.rt.cudaFree.argtypes = [ctypes.c_void_p]
        self.buffers: list[int] = []

    def _ok(self, err: int, what: str) -> None:
        assert err == 0, f"{what} failed with cudaError {err}"

    def upload(self, a: np.ndarray) -> int:
        a = np.ascontiguousarray(a)
        ptr = self.alloc(a.nbytes)
        self._ok(self.rt.cudaMemcpy(ptr, a.ctypes.data, a.nbytes, 1), "cudaMemcpy H2D")
        return ptr

    def alloc(self, nbytes: int) -> int:
        p = ctypes.c_void_p()
        self._ok(self.rt.cudaMalloc(ctypes.byref(p), max(1, nbytes)), "cudaMalloc")
        self.buffers.append(p.value)
        return p.value

    def download(self, ptr: int, like: np.ndarray) -> np.ndarray:
        self._ok(self.rt.cudaDeviceSynchronize(), "cudaDeviceSynchronize")
        out = np.empty_like(like)
        self._ok(self.rt.cudaMemcpy(out.ctypes.data, ptr, out.nbytes, 2), "cudaMemcpy D2H")
        return out

    def free(self) -> None:
        for p in self.buffers:
            self.rt.cudaFree(p)


@pytest.fixture
def cuda(ops):
    if not ops.has_cuda:
        pytest.skip("the library was built without CUDA (no nvcc)")
    if not shutil.which("nvidia-smi") or ops.cuda_device_count() == 0:
        pytest.skip("no CUDA device here (nvidia-smi absent or cudaGetDeviceCount found none)")
    rt = _Cudart()
    yield rt
    rt.free()


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.gpu
def test_cuda_matches_cpu_reference(ops, cuda):
    """Every format, layout, range and dtype on the device, bit for bit against the host reference."""
    for fmt in PixelFormat:
        for yuv in YuvRange:
            frame, _ = frame_and_bgr(fmt, 38, 54, yuv)
            width, height = (54, 38)
            src = cuda.upload(frame)
            for layout in Layout:
                for half in (False, True):
                    ch, order = _channels(layout)
                    roi = (1, 1, 53, 37)
                    ref, _ = ops.pre(frame, fmt, ch, (-1.0, 1.0), 8, roi=roi, half=half, color_order=order,
                                     yuv_range=yuv)
                    dst = cuda.alloc(ref.nbytes)
                    ops.pre_cuda(src, width, height, frame.strides[0], fmt, layout, (-1.0, 1.0), 8, dst,
                                 half=half, roi=roi, yuv_range=yuv)
                    assert _same_bits(cuda.download(dst, ref), ref), (fmt, yuv, layout, half)

    for half in (False, True):
        y = _model_output(3, 40, 56, (-1.0, 1.0), np.float16 if half else np.float32)
        raw, mask = _u8(37, 53, 3), _u8(37, 53)
        ref = ops.post(y, (37, 53), 3, (-1.0, 1.0), color_order="rgb", raw=raw, mask=mask)
        dst = cuda.alloc(ref.nbytes)
        ops.post_cuda(cuda.upload(y), Layout.RGB, (40, 56), (37, 53), (-1.0, 1.0), dst, ref.strides[0], Layout.BGR,
                      half=half, raw=cuda.upload(raw), raw_stride=raw.strides[0], mask=cuda.upload(mask),
                      mask_stride=mask.strides[0])
        assert _same_bits(cuda.download(dst, ref), ref), half
        gray = ops.post(y, (37, 53), 1, (-1.0, 1.0), color_order="rgb")
        dst = cuda.alloc(gray.nbytes)
        ops.post_cuda(cuda.upload(y), Layout.RGB, (40, 56), (37, 53), (-1.0, 1.0), dst, 53, Layout.GRAY, half=half)
        assert _same_bits(cuda.download(dst, gray), gray), half

    img = _u8(37, 53, 3)
    ref = ops.label_box(img.copy(), (45, -3, 20, 9), (0, 160, 255), 0.45)
    dev = cuda.upload(img)
    ops.label_box_cuda(dev, 53, 37, img.strides[0], 3, (45, -3, 20, 9), (0, 160, 255), 0.45)
    assert _same_bits(cuda.download(dev, img), ref)
