// ops_cpu.cpp: host reference of the ganrt_ops C ABI (see native/include/ganrt_ops.h).
//
// Written for clarity, not speed: one gather per output pixel, the same per-pixel
// maths as the CUDA kernels in ops_cuda.cu, so the two can be compared bit for bit.
// Compiled with -ffp-contract=off: a fused multiply-add would round differently
// from numpy's separate multiply and add (and from the CUDA kernels' __fmul_rn/__fadd_rn).
#include "ganrt_ops.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

namespace {

struct Bgr {
    int b, g, r;
};

inline int clamp255(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

// BT.601 YUV -> 8-bit BGR in 20-bit fixed point, OpenCV's scheme (its YUV2BGR_NV12 and
// _YUYV are exactly the LIMITED row), so every platform gets the same integers.
struct YuvCoeffs {
    int y_off, cy, cvr, cug, cvg, cub;
};
constexpr YuvCoeffs kYuvFull{0, 1 << 20, 1470104, -360853, -748826, 1858077};  // 1.402, .344136, .714136, 1.772
constexpr YuvCoeffs kYuvLimited{16, 1220542, 1673527, -409993, -852492, 2116026};  // 255/219 and 255/224 folded in

inline Bgr yuv_to_bgr(int Y, int U, int V, const YuvCoeffs& k) {
    const int y = std::max(0, Y - k.y_off) * k.cy;  // OpenCV clamps Y below black at 0
    const int u = U - 128, v = V - 128, half = 1 << 19;
    return {clamp255((y + half + k.cub * u) >> 20), clamp255((y + half + k.cug * u + k.cvg * v) >> 20),
            clamp255((y + half + k.cvr * v) >> 20)};
}

// 0.114 B + 0.587 G + 0.299 R in 15-bit fixed point: bit-exact with cv2 COLOR_BGR2GRAY
// (checked over all 2^24 inputs against OpenCV 5.0).
inline int gray_of(const Bgr& p) { return (3735 * p.b + 19235 * p.g + 9798 * p.r + 16384) >> 15; }

struct Source {
    const uint8_t* y;   // first row
    const uint8_t* uv;  // NV12 chroma plane
    int stride;
    ganrt_format fmt;
    YuvCoeffs k;
};

inline Bgr fetch_bgr(const Source& s, int x, int y) {
    const uint8_t* row = s.y + static_cast<std::ptrdiff_t>(y) * s.stride;
    switch (s.fmt) {
    case GANRT_FMT_GRAY8: return {row[x], row[x], row[x]};
    case GANRT_FMT_BGR8: return {row[3 * x], row[3 * x + 1], row[3 * x + 2]};
    case GANRT_FMT_RGB8: return {row[3 * x + 2], row[3 * x + 1], row[3 * x]};
    case GANRT_FMT_YUYV: {
        const uint8_t* pair = row + 4 * (x >> 1);  // Y0 U Y1 V
        return yuv_to_bgr(pair[2 * (x & 1)], pair[1], pair[3], s.k);
    }
    case GANRT_FMT_NV12: {
        const uint8_t* c = s.uv + static_cast<std::ptrdiff_t>(y >> 1) * s.stride + 2 * (x >> 1);  // U V
        return yuv_to_bgr(row[x], c[0], c[1], s.k);
    }
    }
    return {0, 0, 0};
}

// Channel values of a pixel in a layout; returns the channel count.
inline int channels_of(const Bgr& p, ganrt_layout layout, int out[3]) {
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

// Source index of output index i along a side of n pixels padded at its end.
// reflect-101 mirrors about the last pixel (..., n-2, n-1, n-2, ...); it needs pad < n.
inline int pad_index(int i, int n, bool reflect) {
    if (i < n) return i;
    return reflect ? 2 * (n - 1) - i : n - 1;
}

// IEEE binary16 <-> binary32, round to nearest even (what numpy's astype(float16) does).
inline uint16_t float_to_half(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u);  // inf, NaN
    if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
    if (ax < 0x38800000u) {                        // below 2^-14: subnormal half, steps of 2^-24
        float a;
        std::memcpy(&a, &ax, 4);
        return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));  // exact scaling, RNE
    }
    const uint32_t v = ax - 0x38000000u;  // rebias the exponent 127 -> 15
    uint32_t h = v >> 13;
    const uint32_t rest = v & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
    return sign | static_cast<uint16_t>(h);
}

inline float half_to_float(uint16_t h) {
    const uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t x;
    if (e == 0) {
        const float f = std::ldexp(static_cast<float>(m), -24);  // zero or subnormal
        return sign ? -f : f;
    }
    x = sign | (e == 31 ? 0x7f800000u | (m << 13) : ((e + 112) << 23) | (m << 13));
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

inline void store(void* dst, ganrt_dtype dtype, std::size_t i, float v) {
    if (dtype == GANRT_DTYPE_F16)
        static_cast<uint16_t*>(dst)[i] = float_to_half(v);
    else
        static_cast<float*>(dst)[i] = v;
}

inline float load(const void* src, ganrt_dtype dtype, std::size_t i) {
    return dtype == GANRT_DTYPE_F16 ? half_to_float(static_cast<const uint16_t*>(src)[i])
                                    : static_cast<const float*>(src)[i];
}

// Model value -> uint8 as Postprocessor does: clamp((v - lo) * a, 0, 255) + 0.5, truncated.
inline int to_u8(float v, float lo, float a) {
    float t = (v - lo) * a;
    if (!(t > 0.0f)) t = 0.0f;  // also NaN -> 0
    if (t > 255.0f) t = 255.0f;
    return static_cast<int>(t + 0.5f);
}

inline int layout_channels(ganrt_layout l) { return l == GANRT_LAYOUT_GRAY ? 1 : 3; }

bool valid_layout(int l) { return l >= GANRT_LAYOUT_GRAY && l <= GANRT_LAYOUT_BGR; }
bool valid_dtype(int d) { return d == GANRT_DTYPE_F32 || d == GANRT_DTYPE_F16; }

int bytes_per_pixel(int fmt) {
    switch (fmt) {
    case GANRT_FMT_GRAY8:
    case GANRT_FMT_NV12: return 1;
    case GANRT_FMT_YUYV: return 2;
    case GANRT_FMT_BGR8:
    case GANRT_FMT_RGB8: return 3;
    default: return 0;  // unknown format
    }
}

}  // namespace

// Argument checks shared with ops_cuda.cu (which declares them), so both forms accept
// and refuse exactly the same calls. Hidden: not part of the ABI.
namespace ganrt_detail {

ganrt_status check_pre(const uint8_t* src, int src_w, int src_h, int src_stride, int fmt, int yuv_range,
                       int roi_x, int roi_y, int roi_w, int roi_h, int layout, double lo, double hi,
                       int size_multiple, const void* dst, int dst_dtype) {
    const int bpp = bytes_per_pixel(fmt);
    if (!src || !dst || bpp == 0 || !valid_layout(layout) || !valid_dtype(dst_dtype)) return GANRT_ERR_INVALID_ARG;
    if (yuv_range != GANRT_YUV_FULL && yuv_range != GANRT_YUV_LIMITED) return GANRT_ERR_INVALID_ARG;
    if (src_w < 1 || src_h < 1 || src_stride < src_w * bpp || size_multiple < 1) return GANRT_ERR_INVALID_ARG;
    if (fmt == GANRT_FMT_YUYV && src_w % 2) return GANRT_ERR_INVALID_ARG;                  // whole pixel pairs
    if (fmt == GANRT_FMT_NV12 && (src_w % 2 || src_h % 2)) return GANRT_ERR_INVALID_ARG;   // whole 2x2 blocks
    if (roi_w < 1 || roi_h < 1 || roi_x < 0 || roi_y < 0 || roi_x > src_w - roi_w || roi_y > src_h - roi_h)
        return GANRT_ERR_INVALID_ARG;
    if (!(hi != lo) || !std::isfinite(lo) || !std::isfinite(hi)) return GANRT_ERR_INVALID_ARG;
    return GANRT_OK;
}

ganrt_status check_post(const void* src, int src_dtype, int src_layout, int src_h, int src_w, int out_h, int out_w,
                        double lo, double hi, const uint8_t* dst, int dst_stride, int dst_layout,
                        const uint8_t* raw, int raw_stride, const uint8_t* mask, int mask_stride) {
    if (!src || !dst || !valid_dtype(src_dtype) || !valid_layout(src_layout) || !valid_layout(dst_layout))
        return GANRT_ERR_INVALID_ARG;
    if (out_h < 1 || out_w < 1 || out_h > src_h || out_w > src_w) return GANRT_ERR_INVALID_ARG;
    const int row = out_w * layout_channels(static_cast<ganrt_layout>(dst_layout));
    if (dst_stride < row) return GANRT_ERR_INVALID_ARG;
    if ((raw == nullptr) != (mask == nullptr)) return GANRT_ERR_INVALID_ARG;  // the blend needs both
    if (raw && (raw_stride < row || mask_stride < out_w)) return GANRT_ERR_INVALID_ARG;
    if (!(hi != lo) || !std::isfinite(lo) || !std::isfinite(hi)) return GANRT_ERR_INVALID_ARG;
    return GANRT_OK;
}

ganrt_status check_label_box(const uint8_t* img, int w, int h, int stride, int channels) {
    if (!img || w < 1 || h < 1 || (channels != 1 && channels != 3) || stride < w * channels)
        return GANRT_ERR_INVALID_ARG;
    return GANRT_OK;
}

}  // namespace ganrt_detail

extern "C" {

GANRT_API int ganrt_ops_version(void) { return GANRT_OPS_VERSION; }

GANRT_API const char* ganrt_status_string(int status) {
    switch (status) {
    case GANRT_OK: return "ok";
    case GANRT_ERR_INVALID_ARG: return "invalid argument";
    case GANRT_ERR_NOT_AVAILABLE: return "not available (library built without CUDA)";
    case GANRT_ERR_CUDA: return "CUDA error";
    default: return "unknown status";
    }
}

GANRT_API int ganrt_padded(int n, int multiple) {
    if (multiple < 1) multiple = 1;
    return (n + multiple - 1) / multiple * multiple;
}

GANRT_API ganrt_status ganrt_pre_cpu(const uint8_t* src, const uint8_t* src_uv, int src_w, int src_h, int src_stride,
                                     ganrt_format fmt, ganrt_yuv_range yuv_range, int roi_x, int roi_y, int roi_w,
                                     int roi_h, ganrt_layout layout, double lo, double hi, int size_multiple,
                                     void* dst, ganrt_dtype dst_dtype) {
    const ganrt_status st = ganrt_detail::check_pre(src, src_w, src_h, src_stride, fmt, yuv_range, roi_x, roi_y,
                                                    roi_w, roi_h, layout, lo, hi, size_multiple, dst, dst_dtype);
    if (st != GANRT_OK) return st;
    const Source s{src, src_uv ? src_uv : src + static_cast<std::ptrdiff_t>(src_h) * src_stride, src_stride, fmt,
                   yuv_range == GANRT_YUV_LIMITED ? kYuvLimited : kYuvFull};
    const int out_h = ganrt_padded(roi_h, size_multiple), out_w = ganrt_padded(roi_w, size_multiple);
    const bool reflect = roi_h > out_h - roi_h && roi_w > out_w - roi_w;  // else replicate, as ops.Preprocessor
    const float scale = static_cast<float>((hi - lo) / 255.0), offset = static_cast<float>(lo);
    const std::size_t plane = static_cast<std::size_t>(out_h) * out_w;

    for (int oy = 0; oy < out_h; ++oy) {
        const int sy = roi_y + pad_index(oy, roi_h, reflect);
        for (int ox = 0; ox < out_w; ++ox) {
            const int sx = roi_x + pad_index(ox, roi_w, reflect);
            int c[3];
            const int n = channels_of(fetch_bgr(s, sx, sy), layout, c);
            const std::size_t i = static_cast<std::size_t>(oy) * out_w + ox;
            for (int k = 0; k < n; ++k) store(dst, dst_dtype, k * plane + i, static_cast<float>(c[k]) * scale + offset);
        }
    }
    return GANRT_OK;
}

GANRT_API ganrt_status ganrt_post_cpu(const void* src, ganrt_dtype src_dtype, ganrt_layout src_layout, int src_h,
                                      int src_w, int out_h, int out_w, double lo, double hi, uint8_t* dst,
                                      int dst_stride, ganrt_layout dst_layout, const uint8_t* raw, int raw_stride,
                                      const uint8_t* mask, int mask_stride) {
    const ganrt_status st = ganrt_detail::check_post(src, src_dtype, src_layout, src_h, src_w, out_h, out_w, lo, hi,
                                                     dst, dst_stride, dst_layout, raw, raw_stride, mask, mask_stride);
    if (st != GANRT_OK) return st;
    const float flo = static_cast<float>(lo), a = static_cast<float>(255.0 / (hi - lo));
    const std::size_t plane = static_cast<std::size_t>(src_h) * src_w;
    const int cin = layout_channels(src_layout);

    for (int y = 0; y < out_h; ++y) {
        uint8_t* out = dst + static_cast<std::ptrdiff_t>(y) * dst_stride;
        for (int x = 0; x < out_w; ++x) {
            const std::size_t i = static_cast<std::size_t>(y) * src_w + x;
            int v[3];
            for (int k = 0; k < cin; ++k) v[k] = to_u8(load(src, src_dtype, k * plane + i), flo, a);
            // Through 8-bit BGR, so 3 -> 1 channel is exactly pre's (and OpenCV's) gray.
            const Bgr p = cin == 1 ? Bgr{v[0], v[0], v[0]}
                                   : (src_layout == GANRT_LAYOUT_RGB ? Bgr{v[2], v[1], v[0]} : Bgr{v[0], v[1], v[2]});
            int c[3];
            const int n = channels_of(p, dst_layout, c);  // gray of a gray pixel is itself
            if (raw) {  // passthrough blend: alpha 255 keeps the model's pixel, 0 the raw one
                const int al = mask[static_cast<std::ptrdiff_t>(y) * mask_stride + x];
                const uint8_t* r = raw + static_cast<std::ptrdiff_t>(y) * raw_stride + x * n;
                for (int k = 0; k < n; ++k) c[k] = (c[k] * al + r[k] * (255 - al) + 127) / 255;
            }
            for (int k = 0; k < n; ++k) out[x * n + k] = static_cast<uint8_t>(c[k]);
        }
    }
    return GANRT_OK;
}

GANRT_API ganrt_status ganrt_label_box_cpu(uint8_t* img, int w, int h, int stride, int channels, int x, int y,
                                           int box_w, int box_h, int c0, int c1, int c2, float alpha) {
    const ganrt_status st = ganrt_detail::check_label_box(img, w, h, stride, channels);
    if (st != GANRT_OK) return st;
    const int x0 = std::max(0, x), y0 = std::max(0, y);  // clip the box to the image
    const int x1 = std::min(w, x + std::max(0, box_w)), y1 = std::min(h, y + std::max(0, box_h));
    const float a = alpha > 0.0f ? std::min(alpha, 1.0f) : 0.0f, b = 1.0f - a;  // NaN -> 0
    const float col[3] = {static_cast<float>(clamp255(c0)) * a, static_cast<float>(clamp255(c1)) * a,
                          static_cast<float>(clamp255(c2)) * a};
    for (int yy = y0; yy < y1; ++yy) {
        uint8_t* row = img + static_cast<std::ptrdiff_t>(yy) * stride;
        for (int xx = x0; xx < x1; ++xx)
            for (int k = 0; k < channels; ++k) {
                uint8_t& v = row[xx * channels + k];
                const float blended = static_cast<float>(v) * b + col[k];
                v = static_cast<uint8_t>(clamp255(static_cast<int>(std::nearbyint(blended))));  // half to even
            }
    }
    return GANRT_OK;
}

#ifndef GANRT_WITH_CUDA
// Built without CUDA: the entry points exist (one ABI for every build) and say so.
GANRT_API int ganrt_ops_has_cuda(void) { return 0; }
GANRT_API int ganrt_cuda_device_count(void) { return 0; }
GANRT_API const char* ganrt_cuda_last_error(void) { return ""; }

GANRT_API ganrt_status ganrt_pre_cuda(const uint8_t*, const uint8_t*, int, int, int, ganrt_format, ganrt_yuv_range,
                                      int, int, int, int, ganrt_layout, double, double, int, void*, ganrt_dtype,
                                      void*) {
    return GANRT_ERR_NOT_AVAILABLE;
}

GANRT_API ganrt_status ganrt_post_cuda(const void*, ganrt_dtype, ganrt_layout, int, int, int, int, double, double,
                                       uint8_t*, int, ganrt_layout, const uint8_t*, int, const uint8_t*, int, void*) {
    return GANRT_ERR_NOT_AVAILABLE;
}

GANRT_API ganrt_status ganrt_label_box_cuda(uint8_t*, int, int, int, int, int, int, int, int, int, int, int, float,
                                            void*) {
    return GANRT_ERR_NOT_AVAILABLE;
}
#endif

}  // extern "C"
