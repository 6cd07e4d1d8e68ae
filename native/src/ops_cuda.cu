// ops_cuda.cu: CUDA forms of the ganrt_ops C ABI (see native/include/ganrt_ops.h).
//
// One thread per output pixel, launched asynchronously on the caller's stream, so a
// TensorRT or torch runner can chain pre -> inference -> post without a host round trip.
// The per-pixel maths mirror ops_cpu.cpp line for line; float steps use the _rn
// intrinsics so nvcc cannot fuse them into an FMA, which keeps both forms bit-identical.
#include "ganrt_ops.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

namespace ganrt_detail {  // argument checks, defined in ops_cpu.cpp (same rules for both forms)
ganrt_status check_pre(const uint8_t* src, int src_w, int src_h, int src_stride, int fmt, int yuv_range,
                       int roi_x, int roi_y, int roi_w, int roi_h, int layout, double lo, double hi,
                       int size_multiple, const void* dst, int dst_dtype);
ganrt_status check_post(const void* src, int src_dtype, int src_layout, int src_h, int src_w, int out_h, int out_w,
                        double lo, double hi, const uint8_t* dst, int dst_stride, int dst_layout,
                        const uint8_t* raw, int raw_stride, const uint8_t* mask, int mask_stride);
ganrt_status check_label_box(const uint8_t* img, int w, int h, int stride, int channels);
}  // namespace ganrt_detail

namespace {

thread_local const char* g_last_error = "";  // cudaGetErrorString returns static strings

// --- per-pixel maths: the same as ops_cpu.cpp ---------------------------------------

struct Bgr {
    int b, g, r;
};

struct YuvCoeffs {
    int y_off, cy, cvr, cug, cvg, cub;
};
constexpr YuvCoeffs kYuvFull{0, 1 << 20, 1470104, -360853, -748826, 1858077};
constexpr YuvCoeffs kYuvLimited{16, 1220542, 1673527, -409993, -852492, 2116026};

__device__ inline int clamp255(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

__device__ inline Bgr yuv_to_bgr(int Y, int U, int V, const YuvCoeffs& k) {
    const int y = max(0, Y - k.y_off) * k.cy;
    const int u = U - 128, v = V - 128, half = 1 << 19;
    return {clamp255((y + half + k.cub * u) >> 20), clamp255((y + half + k.cug * u + k.cvg * v) >> 20),
            clamp255((y + half + k.cvr * v) >> 20)};
}

__device__ inline int gray_of(const Bgr& p) { return (3735 * p.b + 19235 * p.g + 9798 * p.r + 16384) >> 15; }

struct Source {
    const uint8_t* y;
    const uint8_t* uv;
    int stride;
    ganrt_format fmt;
    YuvCoeffs k;
};

__device__ inline Bgr fetch_bgr(const Source& s, int x, int y) {
    const uint8_t* row = s.y + static_cast<ptrdiff_t>(y) * s.stride;
    switch (s.fmt) {
    case GANRT_FMT_GRAY8: return {row[x], row[x], row[x]};
    case GANRT_FMT_BGR8: return {row[3 * x], row[3 * x + 1], row[3 * x + 2]};
    case GANRT_FMT_RGB8: return {row[3 * x + 2], row[3 * x + 1], row[3 * x]};
    case GANRT_FMT_YUYV: {
        const uint8_t* pair = row + 4 * (x >> 1);
        return yuv_to_bgr(pair[2 * (x & 1)], pair[1], pair[3], s.k);
    }
    case GANRT_FMT_NV12: {
        const uint8_t* c = s.uv + static_cast<ptrdiff_t>(y >> 1) * s.stride + 2 * (x >> 1);
        return yuv_to_bgr(row[x], c[0], c[1], s.k);
    }
    }
    return {0, 0, 0};
}

__device__ inline int channels_of(const Bgr& p, ganrt_layout layout, int out[3]) {
    if (layout == GANRT_LAYOUT_GRAY) {
        out[0] = gray_of(p);
        return 1;
    }
    const bool rgb = layout == GANRT_LAYOUT_RGB;
    out[0] = rgb ? p.r : p.b;
    out[1] = p.g;
    out[2] = rgb ? p.b : p.r;
    return 3;
}

__device__ inline int pad_index(int i, int n, bool reflect) {
    if (i < n) return i;
    return reflect ? 2 * (n - 1) - i : n - 1;
}

__device__ inline int to_u8(float v, float lo, float a) {
    float t = __fmul_rn(__fsub_rn(v, lo), a);
    if (!(t > 0.0f)) t = 0.0f;  // also NaN -> 0
    if (t > 255.0f) t = 255.0f;
    return static_cast<int>(__fadd_rn(t, 0.5f));  // truncation, as the host cast
}

// --- kernels --------------------------------------------------------------------------

struct PreArgs {
    Source src;
    int roi_x, roi_y, roi_w, roi_h, out_w, out_h;
    bool reflect;
    ganrt_layout layout;
    float scale, offset;
    void* dst;
    ganrt_dtype dtype;
};

__global__ void pre_kernel(PreArgs p) {
    const int ox = blockIdx.x * blockDim.x + threadIdx.x, oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= p.out_w || oy >= p.out_h) return;
    const int sx = p.roi_x + pad_index(ox, p.roi_w, p.reflect), sy = p.roi_y + pad_index(oy, p.roi_h, p.reflect);
    int c[3];
    const int n = channels_of(fetch_bgr(p.src, sx, sy), p.layout, c);
    const size_t plane = static_cast<size_t>(p.out_h) * p.out_w, i = static_cast<size_t>(oy) * p.out_w + ox;
    for (int k = 0; k < n; ++k) {
        const float v = __fadd_rn(__fmul_rn(static_cast<float>(c[k]), p.scale), p.offset);
        if (p.dtype == GANRT_DTYPE_F16)
            static_cast<__half*>(p.dst)[k * plane + i] = __float2half_rn(v);
        else
            static_cast<float*>(p.dst)[k * plane + i] = v;
    }
}

struct PostArgs {
    const void* src;
    ganrt_dtype dtype;
    ganrt_layout src_layout, dst_layout;
    int src_h, src_w, out_h, out_w;
    float lo, a;
    uint8_t* dst;
    int dst_stride;
    const uint8_t* raw;
    int raw_stride;
    const uint8_t* mask;
    int mask_stride;
};

__global__ void post_kernel(PostArgs p) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= p.out_w || y >= p.out_h) return;
    const size_t plane = static_cast<size_t>(p.src_h) * p.src_w, i = static_cast<size_t>(y) * p.src_w + x;
    const int cin = p.src_layout == GANRT_LAYOUT_GRAY ? 1 : 3;
    int v[3];
    for (int k = 0; k < cin; ++k) {
        const float f = p.dtype == GANRT_DTYPE_F16 ? __half2float(static_cast<const __half*>(p.src)[k * plane + i])
                                                   : static_cast<const float*>(p.src)[k * plane + i];
        v[k] = to_u8(f, p.lo, p.a);
    }
    const Bgr px = cin == 1 ? Bgr{v[0], v[0], v[0]}
                            : (p.src_layout == GANRT_LAYOUT_RGB ? Bgr{v[2], v[1], v[0]} : Bgr{v[0], v[1], v[2]});
    int c[3];
    const int n = channels_of(px, p.dst_layout, c);
    if (p.raw) {
        const int al = p.mask[static_cast<ptrdiff_t>(y) * p.mask_stride + x];
        const uint8_t* r = p.raw + static_cast<ptrdiff_t>(y) * p.raw_stride + x * n;
        for (int k = 0; k < n; ++k) c[k] = (c[k] * al + r[k] * (255 - al) + 127) / 255;
    }
    uint8_t* out = p.dst + static_cast<ptrdiff_t>(y) * p.dst_stride + x * n;
    for (int k = 0; k < n; ++k) out[k] = static_cast<uint8_t>(c[k]);
}

__global__ void label_box_kernel(uint8_t* img, int stride, int channels, int x0, int y0, int bw, int bh, float c0,
                                 float c1, float c2, float b) {
    const int dx = blockIdx.x * blockDim.x + threadIdx.x, dy = blockIdx.y * blockDim.y + threadIdx.y;
    if (dx >= bw || dy >= bh) return;
    uint8_t* px = img + static_cast<ptrdiff_t>(y0 + dy) * stride + (x0 + dx) * channels;
    const float col[3] = {c0, c1, c2};  // already multiplied by alpha
    for (int k = 0; k < channels; ++k)
        px[k] = static_cast<uint8_t>(
            clamp255(__float2int_rn(__fadd_rn(__fmul_rn(static_cast<float>(px[k]), b), col[k]))));
}

// --- launching ------------------------------------------------------------------------

const dim3 kBlock(32, 8);

dim3 grid_for(int w, int h) { return dim3((w + kBlock.x - 1) / kBlock.x, (h + kBlock.y - 1) / kBlock.y); }

ganrt_status launched() {
    const cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess) return GANRT_OK;
    g_last_error = cudaGetErrorString(err);
    return GANRT_ERR_CUDA;
}

int host_clamp255(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

}  // namespace

extern "C" {

GANRT_API int ganrt_ops_has_cuda(void) { return 1; }

GANRT_API int ganrt_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // no driver or no device: not an error for the next launch to report
        return 0;
    }
    return n;
}

GANRT_API const char* ganrt_cuda_last_error(void) { return g_last_error; }

GANRT_API ganrt_status ganrt_pre_cuda(const uint8_t* src, const uint8_t* src_uv, int src_w, int src_h, int src_stride,
                                      ganrt_format fmt, ganrt_yuv_range yuv_range, int roi_x, int roi_y, int roi_w,
                                      int roi_h, ganrt_layout layout, double lo, double hi, int size_multiple,
                                      void* dst, ganrt_dtype dst_dtype, void* stream) {
    const ganrt_status st = ganrt_detail::check_pre(src, src_w, src_h, src_stride, fmt, yuv_range, roi_x, roi_y,
                                                    roi_w, roi_h, layout, lo, hi, size_multiple, dst, dst_dtype);
    if (st != GANRT_OK) return st;
    PreArgs p;
    p.src = {src, src_uv ? src_uv : src + static_cast<ptrdiff_t>(src_h) * src_stride, src_stride, fmt,
             yuv_range == GANRT_YUV_LIMITED ? kYuvLimited : kYuvFull};
    p.roi_x = roi_x, p.roi_y = roi_y, p.roi_w = roi_w, p.roi_h = roi_h;
    p.out_h = ganrt_padded(roi_h, size_multiple), p.out_w = ganrt_padded(roi_w, size_multiple);
    p.reflect = roi_h > p.out_h - roi_h && roi_w > p.out_w - roi_w;
    p.layout = layout;
    p.scale = static_cast<float>((hi - lo) / 255.0), p.offset = static_cast<float>(lo);
    p.dst = dst, p.dtype = dst_dtype;
    pre_kernel<<<grid_for(p.out_w, p.out_h), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(p);
    return launched();
}

GANRT_API ganrt_status ganrt_post_cuda(const void* src, ganrt_dtype src_dtype, ganrt_layout src_layout, int src_h,
                                       int src_w, int out_h, int out_w, double lo, double hi, uint8_t* dst,
                                       int dst_stride, ganrt_layout dst_layout, const uint8_t* raw, int raw_stride,
                                       const uint8_t* mask, int mask_stride, void* stream) {
    const ganrt_status st = ganrt_detail::check_post(src, src_dtype, src_layout, src_h, src_w, out_h, out_w, lo, hi,
                                                     dst, dst_stride, dst_layout, raw, raw_stride, mask, mask_stride);
    if (st != GANRT_OK) return st;
    const PostArgs p{src,   src_dtype, src_layout, dst_layout, src_h, src_w, out_h,     out_w,
                     static_cast<float>(lo), static_cast<float>(255.0 / (hi - lo)),
                     dst,   dst_stride, raw,       raw_stride, mask,  mask_stride};
    post_kernel<<<grid_for(out_w, out_h), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(p);
    return launched();
}

GANRT_API ganrt_status ganrt_label_box_cuda(uint8_t* img, int w, int h, int stride, int channels, int x, int y,
                                            int box_w, int box_h, int c0, int c1, int c2, float alpha, void* stream) {
    const ganrt_status st = ganrt_detail::check_label_box(img, w, h, stride, channels);
    if (st != GANRT_OK) return st;
    const int x0 = x > 0 ? x : 0, y0 = y > 0 ? y : 0;  // clip the box to the image, as the host form
    const int x1 = std::min(w, x + std::max(0, box_w)), y1 = std::min(h, y + std::max(0, box_h));
    if (x1 <= x0 || y1 <= y0) return GANRT_OK;  // nothing to draw
    const float a = alpha > 0.0f ? std::min(alpha, 1.0f) : 0.0f, b = 1.0f - a;  // NaN -> 0
    label_box_kernel<<<grid_for(x1 - x0, y1 - y0), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(
        img, stride, channels, x0, y0, x1 - x0, y1 - y0, static_cast<float>(host_clamp255(c0)) * a,
        static_cast<float>(host_clamp255(c1)) * a, static_cast<float>(host_clamp255(c2)) * a, b);
    return launched();
}

}  // extern "C"
