/* ganrt_ops.h: native pre/post-processing for ganrt, with a plain C ABI.
 *
 * Every operation has a host reference (`*_cpu`, always built) and a CUDA form
 * (`*_cuda`, device pointers, asynchronous on the caller's cudaStream_t passed
 * as `void* stream`; NULL = the legacy default stream). A library built without
 * CUDA still exports the `*_cuda` symbols; they return GANRT_ERR_NOT_AVAILABLE.
 * Both forms produce bit-identical results (same integer colour maths, same
 * float rounding).
 *
 * Conventions
 *  - Images are uint8, row-major, rows `stride` bytes apart (stride >= row bytes).
 *  - Tensors are NCHW with N = 1, densely packed: channel planes of h*w values.
 *    Half precision is IEEE binary16 stored as uint16_t.
 *  - Sizes and coordinates are in pixels; (x, y) = (column, row).
 *  - Functions validate their arguments and write nothing on error. The CUDA
 *    forms report launch errors only (GANRT_ERR_CUDA); errors during execution
 *    surface at the caller's next synchronisation, as with any CUDA kernel.
 */
#ifndef GANRT_OPS_H
#define GANRT_OPS_H

#include <stdint.h>

#if defined(_WIN32)
#define GANRT_API __declspec(dllexport)
#else
#define GANRT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this ABI: major * 10000 + minor * 100 + patch. A change of major
 * breaks callers; ganrt.runtime.native refuses a library of another major. */
#define GANRT_OPS_VERSION 10000

typedef enum {
    GANRT_OK = 0,
    GANRT_ERR_INVALID_ARG = 1,   /* a NULL pointer, bad size, ROI outside the image, unknown enum */
    GANRT_ERR_NOT_AVAILABLE = 2, /* CUDA entry point of a library built without CUDA */
    GANRT_ERR_CUDA = 3           /* a kernel launch failed (see ganrt_cuda_last_error()) */
} ganrt_status;

/* Source pixel formats (8 bits per sample).
 *  GRAY8  1 byte per pixel.
 *  BGR8   3 bytes per pixel, B G R (OpenCV's order).   RGB8: R G B.
 *  YUYV   4:2:2 packed, 2 bytes per pixel: Y0 U Y1 V for each pixel pair; width even.
 *  NV12   4:2:0: a Y plane (height rows of `stride` bytes) followed by an interleaved
 *         U V plane of height/2 rows with the same stride; width and height even.
 * YUYV and NV12 take chroma from the sample covering the pixel (no interpolation),
 * as OpenCV's cvtColor does. */
typedef enum {
    GANRT_FMT_GRAY8 = 0,
    GANRT_FMT_BGR8 = 1,
    GANRT_FMT_RGB8 = 2,
    GANRT_FMT_YUYV = 3,
    GANRT_FMT_NV12 = 4
} ganrt_format;

/* Range of the YUV samples (YUYV, NV12 only), BT.601 matrix either way.
 *  FULL     Y, U, V in 0..255 (JPEG/JFIF): R = Y + 1.402 (V-128), ...
 *  LIMITED  Y in 16..235, UV in 16..240 (video range); this is what OpenCV's
 *           COLOR_YUV2BGR_NV12 / _YUYV assume, and matches them exactly. */
typedef enum {
    GANRT_YUV_FULL = 0,
    GANRT_YUV_LIMITED = 1
} ganrt_yuv_range;

/* Channel layout of a tensor or an output image: 1 channel (luma) or 3 (RGB or BGR order). */
typedef enum {
    GANRT_LAYOUT_GRAY = 0,
    GANRT_LAYOUT_RGB = 1,
    GANRT_LAYOUT_BGR = 2
} ganrt_layout;

typedef enum {
    GANRT_DTYPE_F32 = 0,
    GANRT_DTYPE_F16 = 1
} ganrt_dtype;

/* ABI version (GANRT_OPS_VERSION of the build). */
GANRT_API int ganrt_ops_version(void);
/* 1 when the library was built with the CUDA kernels, else 0 (a build property, not a device check). */
GANRT_API int ganrt_ops_has_cuda(void);
/* Number of CUDA devices the runtime can use; 0 without CUDA, a driver or a device. */
GANRT_API int ganrt_cuda_device_count(void);
/* Text of the last CUDA error seen by this library on the calling thread ("" if none). */
GANRT_API const char* ganrt_cuda_last_error(void);
/* Short text for a status code. */
GANRT_API const char* ganrt_status_string(int status);

/* Padded side: n rounded up to a multiple of `multiple` (>= 1). The pre-processed
 * tensor of an h x w ROI is ganrt_padded(h, m) x ganrt_padded(w, m). */
GANRT_API int ganrt_padded(int n, int multiple);

/* Pre-processing: uint8 frame -> normalised NCHW tensor, fused in one pass.
 *
 *  src, src_w, src_h, src_stride, fmt   the frame. For NV12, src_uv is the UV plane
 *                                       (NULL: src + src_h * src_stride); ignored otherwise.
 *  yuv_range                            for YUYV and NV12 (ignored otherwise).
 *  roi_x, roi_y, roi_w, roi_h           the crop of the frame to process (inside it).
 *  layout                               tensor channels: GRAY (1), RGB or BGR (3).
 *  lo, hi                               value range: v = u8 * (float)((hi - lo) / 255) + (float)lo.
 *  size_multiple                        pad bottom/right to multiples of this (>= 1).
 *  dst, dst_dtype                       1 x C x Hp x Wp tensor, Hp = ganrt_padded(roi_h, m).
 *
 * Per pixel: the source pixel becomes 8-bit B, G, R (YUV through BT.601 in 20-bit
 * fixed point, rounded and saturated), then 8-bit gray when layout is GRAY:
 * gray = (3735 B + 19235 G + 9798 R + 16384) >> 15, i.e. 0.114 B + 0.587 G + 0.299 R
 * exactly as OpenCV's COLOR_BGR2GRAY. A GRAY8 frame is its own gray (and is
 * replicated for 3 channels). Then the value mapping above, in float32 (mul then
 * add, no FMA, as numpy does), and a round-to-nearest-even cast to half if asked.
 * Padding: reflect-101 (dcb|abcd|cb) when roi_h > pad_h and roi_w > pad_w, else
 * replicate (edge) on both sides: the convention of ganrt.runtime.ops.Preprocessor. */
GANRT_API ganrt_status ganrt_pre_cpu(
    const uint8_t* src, const uint8_t* src_uv, int src_w, int src_h, int src_stride,
    ganrt_format fmt, ganrt_yuv_range yuv_range,
    int roi_x, int roi_y, int roi_w, int roi_h,
    ganrt_layout layout, double lo, double hi, int size_multiple,
    void* dst, ganrt_dtype dst_dtype);

GANRT_API ganrt_status ganrt_pre_cuda(
    const uint8_t* src, const uint8_t* src_uv, int src_w, int src_h, int src_stride,
    ganrt_format fmt, ganrt_yuv_range yuv_range,
    int roi_x, int roi_y, int roi_w, int roi_h,
    ganrt_layout layout, double lo, double hi, int size_multiple,
    void* dst, ganrt_dtype dst_dtype, void* stream);

/* Post-processing: NCHW tensor -> uint8 image, optionally blended with the raw frame.
 *
 *  src, src_dtype, src_layout, src_h, src_w   the 1 x C x src_h x src_w model output.
 *  out_h, out_w                               the crop kept (top-left; <= src_h, src_w).
 *  lo, hi                                     value range mapped to 0..255:
 *      u8 = (uint8)(clamp((v - (float)lo) * (float)(255 / (hi - lo)), 0, 255) + 0.5f)
 *      (NaN -> 0), as ganrt.runtime.ops.Postprocessor computes it.
 *  dst, dst_stride, dst_layout                out_h x out_w image: GRAY (1 byte per
 *      pixel), BGR or RGB (3 bytes). 3 -> 1 channel uses the gray formula of pre;
 *      1 -> 3 replicates the gray value.
 *  raw, raw_stride, mask, mask_stride          optional passthrough blend (both NULL = none):
 *      raw is an out_h x out_w image in dst_layout (the frame as it came), mask an
 *      out_h x out_w alpha plane, 255 = model output, 0 = raw:
 *      out = (model * a + raw * (255 - a) + 127) / 255 (integer division).
 *      Use it to keep scanner UI outside the imaging region, or to draw a
 *      pre-rendered label (raw = the label's pixels, mask = its coverage). */
GANRT_API ganrt_status ganrt_post_cpu(
    const void* src, ganrt_dtype src_dtype, ganrt_layout src_layout, int src_h, int src_w,
    int out_h, int out_w, double lo, double hi,
    uint8_t* dst, int dst_stride, ganrt_layout dst_layout,
    const uint8_t* raw, int raw_stride, const uint8_t* mask, int mask_stride);

GANRT_API ganrt_status ganrt_post_cuda(
    const void* src, ganrt_dtype src_dtype, ganrt_layout src_layout, int src_h, int src_w,
    int out_h, int out_w, double lo, double hi,
    uint8_t* dst, int dst_stride, ganrt_layout dst_layout,
    const uint8_t* raw, int raw_stride, const uint8_t* mask, int mask_stride, void* stream);

/* Label box: blend a filled rectangle into an image in place, like
 * cv2.addWeighted(roi, 1 - alpha, colour, alpha, 0) on the box:
 *      v = round_half_even(v * (1 - alpha) + colour * alpha)   (float32 maths)
 *  img, w, h, stride, channels (1 or 3)   the image.
 *  x, y, box_w, box_h                     the box, clipped to the image (may be empty).
 *  c0, c1, c2                             colour in the image's channel order (c0 for gray).
 *  alpha                                  opacity, clamped to [0, 1]. */
GANRT_API ganrt_status ganrt_label_box_cpu(
    uint8_t* img, int w, int h, int stride, int channels,
    int x, int y, int box_w, int box_h, int c0, int c1, int c2, float alpha);

GANRT_API ganrt_status ganrt_label_box_cuda(
    uint8_t* img, int w, int h, int stride, int channels,
    int x, int y, int box_w, int box_h, int c0, int c1, int c2, float alpha, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* GANRT_OPS_H */
