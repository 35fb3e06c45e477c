// 2-D convolution (cross-correlation, like torch.nn.functional.conv2d) on NCHW buffers, forward and
// backward. im2col + one Eigen GEMM per tile of output rows; the work is split in tiles fixed by the
// geometry alone, so results do not depend on the number of threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/kernels/common.hpp"
#include "diffuse/kernels/gemm.hpp"

namespace diffuse::kernels {

struct Conv2dGeometry {
  std::int64_t N, C, H, W;  // input
  std::int64_t O, KH, KW;   // output channels, kernel
  std::int64_t stride = 1, padding = 0;
  std::int64_t OH() const { return (H + 2 * padding - KH) / stride + 1; }
  std::int64_t OW() const { return (W + 2 * padding - KW) / stride + 1; }

  // Throws diffuse::Error naming the values when the geometry is impossible.
  void validate() const {
    detail::check_positive("conv2d", {{"N", N}, {"C", C}, {"H", H}, {"W", W}, {"O", O}, {"KH", KH}, {"KW", KW},
                                      {"stride", stride}});
    detail::check_nonnegative("conv2d", {{"padding", padding}});
    if (H + 2 * padding < KH || W + 2 * padding < KW)
      throw Error("conv2d: kernel " + std::to_string(KH) + "x" + std::to_string(KW) + " larger than padded input " +
                  std::to_string(H + 2 * padding) + "x" + std::to_string(W + 2 * padding) + " (H=" +
                  std::to_string(H) + ", W=" + std::to_string(W) + ", padding=" + std::to_string(padding) + ")");
  }
  // A 1x1, stride-1, unpadded convolution is a plain GEMM on the input: no im2col needed.
  bool is_pointwise() const { return KH == 1 && KW == 1 && stride == 1 && padding == 0; }
};

namespace detail {

// Output columns ow in [lo, hi) read an input column inside [0, W) for kernel column kw.
inline void valid_range(std::int64_t OW, std::int64_t W, std::int64_t stride, std::int64_t pad, std::int64_t k,
                        std::int64_t& lo, std::int64_t& hi) {
  // iw = ow*stride - pad + k must satisfy 0 <= iw < W
  lo = pad - k > 0 ? ceil_div(pad - k, stride) : 0;
  hi = W - 1 + pad - k >= 0 ? (W - 1 + pad - k) / stride + 1 : 0;
  lo = std::min(lo, OW);
  hi = std::clamp(hi, lo, OW);
}

// col[(c-c0)*KH*KW + kh*KW + kw][(oh-oh0)*OW + ow] = x[c][ih][iw] (0 outside), for one image,
// channels [c0, c1) and output rows [oh0, oh1). ldcol = row stride of col.
template <class T>
void im2col(const Conv2dGeometry& g, const T* x, std::int64_t c0, std::int64_t c1, std::int64_t oh0,
            std::int64_t oh1, T* col, std::int64_t ldcol) {
  const std::int64_t OW = g.OW(), s = g.stride, p = g.padding;
  for (std::int64_t c = c0; c < c1; ++c)
    for (std::int64_t kh = 0; kh < g.KH; ++kh)
      for (std::int64_t kw = 0; kw < g.KW; ++kw) {
        T* row = col + ((c - c0) * g.KH * g.KW + kh * g.KW + kw) * ldcol;
        std::int64_t lo, hi;
        valid_range(OW, g.W, s, p, kw, lo, hi);
        for (std::int64_t oh = oh0; oh < oh1; ++oh) {
          T* out = row + (oh - oh0) * OW;
          const std::int64_t ih = oh * s - p + kh;
          if (ih < 0 || ih >= g.H) {
            std::fill(out, out + OW, T(0));
            continue;
          }
          const T* in = x + (c * g.H + ih) * g.W;
          const std::int64_t off = kw - p;  // output column ow reads in[ow*s + off]
          std::fill(out, out + lo, T(0));
          if (s == 1)
            std::copy(in + lo + off, in + hi + off, out + lo);
          else
            for (std::int64_t ow = lo; ow < hi; ++ow) out[ow] = in[ow * s + off];
          std::fill(out + hi, out + OW, T(0));
        }
      }
}

// The adjoint of im2col over all output rows: gx[c][ih][iw] += col[...] for channels [c0, c1).
template <class T>
void col2im(const Conv2dGeometry& g, const T* col, std::int64_t c0, std::int64_t c1, T* gx) {
  const std::int64_t OH = g.OH(), OW = g.OW(), s = g.stride, p = g.padding, ldcol = OH * OW;
  for (std::int64_t c = c0; c < c1; ++c)
    for (std::int64_t kh = 0; kh < g.KH; ++kh)
      for (std::int64_t kw = 0; kw < g.KW; ++kw) {
        const T* row = col + ((c - c0) * g.KH * g.KW + kh * g.KW + kw) * ldcol;
        std::int64_t lo, hi;
        valid_range(OW, g.W, s, p, kw, lo, hi);
        for (std::int64_t oh = 0; oh < OH; ++oh) {
          const std::int64_t ih = oh * s - p + kh;
          if (ih < 0 || ih >= g.H) continue;
          const T* in = row + oh * OW;
          T* out = gx + (c * g.H + ih) * g.W;
          const std::int64_t off = kw - p;
          for (std::int64_t ow = lo; ow < hi; ++ow) out[ow * s + off] += in[ow];
        }
      }
}

// About this many output pixels per forward GEMM: big enough for Eigen to run at full speed,
// small enough that a single large image still splits into tasks.
inline constexpr std::int64_t kConvTileCols = 256;
// About this many im2col rows (channels x KH x KW) per backward task.
inline constexpr std::int64_t kConvBlockRows = 144;

}  // namespace detail

// x [N,C,H,W], w [O,C,KH,KW], bias [O] or nullptr, y [N,O,OH,OW] (overwritten)
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  g.validate();
  const std::int64_t OH = g.OH(), OW = g.OW(), CKK = g.C * g.KH * g.KW;
  // Tasks: (image, band of output rows); the band height depends on the geometry only.
  const std::int64_t bands = detail::ceil_div(OH, std::max<std::int64_t>(1, detail::kConvTileCols / OW));
  const std::int64_t band_h = detail::ceil_div(OH, bands);
  const std::int64_t tasks = g.N * bands;
  const bool pointwise = g.is_pointwise();
#pragma omp parallel if (tasks > 1)
  {
    std::vector<T> col(pointwise ? 0 : CKK * band_h * OW);  // per-thread scratch, once per call
#pragma omp for schedule(static)
    for (std::int64_t t = 0; t < tasks; ++t) {
      const std::int64_t n = t / bands, oh0 = (t % bands) * band_h, oh1 = std::min(OH, oh0 + band_h);
      if (oh0 >= oh1) continue;
      const std::int64_t cols = (oh1 - oh0) * OW;
      T* yt = y + n * g.O * OH * OW + oh0 * OW;  // [O, cols] with row stride OH*OW
      for (std::int64_t o = 0; o < g.O; ++o)
        std::fill(yt + o * OH * OW, yt + o * OH * OW + cols, bias ? bias[o] : T(0));
      const T* b;
      std::int64_t ldb;
      if (pointwise) {
        b = x + n * g.C * g.H * g.W + oh0 * OW;
        ldb = g.H * g.W;
      } else {
        detail::im2col(g, x + n * g.C * g.H * g.W, 0, g.C, oh0, oh1, col.data(), cols);
        b = col.data();
        ldb = cols;
      }
      detail::gemm_serial(false, false, g.O, cols, CKK, T(1), w, CKK, b, ldb, T(1), yt, OH * OW);
    }
  }
}

// gy [N,O,OH,OW]; any of gx [N,C,H,W], gw [O,C,KH,KW], gb [O] may be nullptr (not wanted).
// Outputs are OVERWRITTEN.
template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb) {
  g.validate();
  const std::int64_t OHW = g.OH() * g.OW(), KK = g.KH * g.KW, CKK = g.C * KK;
  if (gb) {
#pragma omp parallel for schedule(static) if (g.O > 1)
    for (std::int64_t o = 0; o < g.O; ++o) {
      double s = 0;  // fixed order over images and pixels
      for (std::int64_t n = 0; n < g.N; ++n) {
        const T* p = gy + (n * g.O + o) * OHW;
        s += detail::fixed_sum<double>(OHW, [&](std::int64_t i) { return p[i]; });
      }
      gb[o] = T(s);
    }
  }
  if (!gx && !gw) return;
  // Tasks: blocks of input channels. A block owns its columns of gw (summed over images in order)
  // and its channels of gx, so tasks never write the same memory.
  const std::int64_t cb = std::clamp<std::int64_t>(detail::kConvBlockRows / KK, 1, g.C);
  const std::int64_t blocks = detail::ceil_div(g.C, cb);
  const bool pointwise = g.is_pointwise();
#pragma omp parallel if (blocks > 1)
  {
    std::vector<T> col(pointwise ? 0 : cb * KK * OHW), gcol(pointwise || !gx ? 0 : cb * KK * OHW);
#pragma omp for schedule(static)
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      const std::int64_t c0 = blk * cb, c1 = std::min(g.C, c0 + cb), rows = (c1 - c0) * KK;
      for (std::int64_t n = 0; n < g.N; ++n) {
        const T* xn = x + n * g.C * g.H * g.W;
        const T* gyn = gy + n * g.O * OHW;
        if (gw) {  // gw[:, block] (+)= gy_n [O, OHW] * col_n[block]^T
          const T* b = xn + c0 * OHW;  // pointwise: the input itself is the column matrix
          if (!pointwise) {
            detail::im2col(g, xn, c0, c1, 0, g.OH(), col.data(), OHW);
            b = col.data();
          }
          detail::gemm_serial(false, true, g.O, rows, OHW, T(1), gyn, OHW, b, OHW, n == 0 ? T(0) : T(1),
                              gw + c0 * KK, CKK);
        }
        if (gx) {  // gcol = w[:, block]^T * gy_n, then scatter back into the image
          T* gxn = gx + n * g.C * g.H * g.W;
          if (pointwise) {
            detail::gemm_serial(true, false, rows, OHW, g.O, T(1), w + c0 * KK, CKK, gyn, OHW, T(0),
                                gxn + c0 * OHW, OHW);
          } else {
            detail::gemm_serial(true, false, rows, OHW, g.O, T(1), w + c0 * KK, CKK, gyn, OHW, T(0), gcol.data(),
                                OHW);
            std::fill(gxn + c0 * g.H * g.W, gxn + c1 * g.H * g.W, T(0));
            detail::col2im(g, gcol.data(), c0, c1, gxn);
          }
        }
      }
    }
  }
}

}  // namespace diffuse::kernels
