/// @file
/// 2-D convolution (cross-correlation, like torch.nn.functional.conv2d) on NCHW buffers, forward and
/// backward. Stride 1 (the common case): the batch is zero-padded once, then the output pixels of the
/// whole batch, flattened image after image, are cut into tiles of a fixed width; each tile is one
/// branch-free im2col and one Eigen GEMM, so small images share a well-shaped GEMM. The input
/// gradient is the forward convolution of the padded output gradient with the flipped, transposed
/// weights (no col2im); the weight gradient sums fixed chunks of tiles, reduced in a fixed order.
/// One output channel takes a direct path (a GEMV would be memory-bound). Other strides use
/// im2col + GEMM per band of output rows. float32 stride-1 3x3 and 5x5 convolutions with 16 or more
/// channels on both sides (forward and input gradient) take Winograd's F(4x4, RxR) instead
/// (kernels/winograd.hpp).
/// Every partition depends on the geometry alone, so results do not depend on the number of threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/common.hpp"
#include "diffuse/kernels/gemm.hpp"
#include "diffuse/kernels/winograd.hpp"

namespace diffuse::kernels {

/// The sizes of a 2-D convolution: one stride and one padding for both axes, no dilation or groups.
struct Conv2dGeometry {
  std::int64_t N, C, H, W;  ///< input
  std::int64_t O, KH, KW;   ///< output channels, kernel
  std::int64_t stride = 1, padding = 0;
  /// Output height.
  std::int64_t OH() const { return (H + 2 * padding - KH) / stride + 1; }
  /// Output width.
  std::int64_t OW() const { return (W + 2 * padding - KW) / stride + 1; }

  /// Throws diffuse::Error naming the values when the geometry is impossible.
  void validate() const {
    detail::check_positive(
        "conv2d",
        {{"N", N}, {"C", C}, {"H", H}, {"W", W}, {"O", O}, {"KH", KH}, {"KW", KW}, {"stride", stride}});
    detail::check_nonnegative("conv2d", {{"padding", padding}});
    if (H + 2 * padding < KH || W + 2 * padding < KW)
      throw Error("conv2d: kernel " + std::to_string(KH) + "x" + std::to_string(KW) +
                  " larger than padded input " + std::to_string(H + 2 * padding) + "x" +
                  std::to_string(W + 2 * padding) + " (H=" + std::to_string(H) + ", W=" + std::to_string(W) +
                  ", padding=" + std::to_string(padding) + ")");
  }
  /// A 1x1, stride-1, unpadded convolution is a plain GEMM on the input: no im2col needed.
  bool is_pointwise() const { return KH == 1 && KW == 1 && stride == 1 && padding == 0; }
};

namespace detail {

/// Output columns ow in [lo, hi) read an input column inside [0, W) for kernel column kw.
inline void valid_range(std::int64_t OW, std::int64_t W, std::int64_t stride, std::int64_t pad,
                        std::int64_t k, std::int64_t& lo, std::int64_t& hi) {
  // iw = ow*stride - pad + k must satisfy 0 <= iw < W
  lo = pad - k > 0 ? ceil_div(pad - k, stride) : 0;
  hi = W - 1 + pad - k >= 0 ? (W - 1 + pad - k) / stride + 1 : 0;
  lo = std::min(lo, OW);
  hi = std::clamp(hi, lo, OW);
}

/// col[(c-c0)*KH*KW + kh*KW + kw][(oh-oh0)*OW + ow] = x[c][ih][iw] (0 outside), for one image,
/// channels [c0, c1) and output rows [oh0, oh1). ldcol = row stride of col.
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

/// The adjoint of im2col over all output rows: gx[c][ih][iw] += col[...] for channels [c0, c1).
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

/// About this many output pixels per forward GEMM: big enough for Eigen to run at full speed,
/// small enough that a single large image still splits into tasks.
inline constexpr std::int64_t kConvTileCols = 256;
/// About this many im2col rows (channels x KH x KW) per backward task.
inline constexpr std::int64_t kConvBlockRows = 144;

// ---- stride-1 path ------------------------------------------------------------------------------

/// Weight-gradient partial sums: the tiles are split into at most this many fixed chunks.
inline constexpr std::int64_t kGradChunks = 8;

/// A stride-1 convolution of an already zero-padded input [N, C, Hp, Wp] with weights [O, C, KH, KW].
struct S1Conv {
  std::int64_t N, C, Hp, Wp, KH, KW, O;
  std::int64_t OH() const { return Hp - KH + 1; }
  std::int64_t OW() const { return Wp - KW + 1; }
  std::int64_t CKK() const { return C * KH * KW; }
  std::int64_t cols() const { return N * OH() * OW(); }  // output pixels of the whole batch
  /// Columns per tile. At most a multiple of 48 (Eigen's float panel height with AVX-512) that keeps
  /// the im2col tile near 512 Ki elements (measured best on the BasicUNet layers among 128-1024 Ki);
  /// then the tiles are made equal (multiples of 16) and even in number (a multiple of kGradChunks past
  /// it), so two threads, and the weight gradient's chunks, get the same work: a 4x4 layer of
  /// 256 pixels was split 192 + 64 and ran at two thirds of both cores.
  std::int64_t tile() const {
    const std::int64_t cap = std::clamp<std::int64_t>(kS1ColBudget / CKK() / 48 * 48, 48, 1536);
    std::int64_t n = (cols() + cap - 1) / cap;
    n = n <= kGradChunks ? n + (n & 1) : (n + kGradChunks - 1) / kGradChunks * kGradChunks;
    return std::max<std::int64_t>(16, ((cols() + n - 1) / n + 15) / 16 * 16);
  }
  static constexpr std::int64_t kS1ColBudget = std::int64_t(1) << 19;
};

/// im2col copies rows in whole chunks of this many elements (reading and writing a little past the
/// end of a segment, into slack that the next segment or nothing else uses), so no copy has a tail.
inline constexpr std::int64_t kCopyChunk = 8;
/// Elements of zeroed slack after every padded buffer, so chunked copies may read past its end.
inline constexpr std::int64_t kPadSlack = 16;

/// A run of output pixels on one output row of one image: x = offset of its first input pixel in the
/// padded batch (channel 0, kernel tap 0), y = offset of its first output in [N, O, OH, OW] (channel
/// 0), pos = its first column in the tile, len = its length.
struct ConvSeg {
  std::int64_t x, y, pos, len;
};

inline void s1_segments(const S1Conv& s, std::int64_t j0, std::int64_t j1, std::vector<ConvSeg>& segs) {
  segs.clear();
  const std::int64_t OW = s.OW(), OHW = s.OH() * OW;
  for (std::int64_t j = j0; j < j1;) {
    const std::int64_t n = j / OHW, r = j % OHW, oh = r / OW, ow = r % OW, len = std::min(OW - ow, j1 - j);
    segs.push_back({(n * s.C * s.Hp + oh) * s.Wp + ow, n * s.O * OHW + r, j - j0, len});
    j += len;
  }
}

/// thread_scratch of n elements followed by kPadSlack zeros.
template <class T, int Slot>
T* padded_buffer(std::int64_t n) {
  T* b = thread_scratch<T, Slot>(n + kPadSlack);
  std::fill(b + n, b + n + kPadSlack, T(0));
  return b;
}

/// xp[i] [Hp, Wp] = zeros with plane x[i] [H, W] placed at row `top`, column `left` (Hp >= top + H,
/// Wp >= left + W). Work-shares over the planes: call inside a parallel region (ends with a barrier).
template <class T>
void place_planes(std::int64_t planes, std::int64_t H, std::int64_t W, std::int64_t top, std::int64_t left,
                  std::int64_t Hp, std::int64_t Wp, const T* x, T* xp) {
#pragma omp for schedule(static)
  for (std::int64_t i = 0; i < planes; ++i) {
    T* d = xp + i * Hp * Wp;
    const T* src = x + i * H * W;
    std::fill(d, d + top * Wp, T(0));
    for (std::int64_t h = 0; h < H; ++h) {
      T* r = d + (top + h) * Wp;
      std::fill(r, r + left, T(0));
      std::copy(src + h * W, src + h * W + W, r + left);
      std::fill(r + left + W, r + Wp, T(0));
    }
    std::fill(d + (top + H) * Wp, d + Hp * Wp, T(0));
  }
}

/// xp[i] = planes x[i] [H, W] with ph zero rows above and below and pw zero columns left and right.
template <class T>
void pad_planes(std::int64_t planes, std::int64_t H, std::int64_t W, std::int64_t ph, std::int64_t pw,
                const T* x, T* xp) {
  place_planes(planes, H, W, ph, pw, H + 2 * ph, W + 2 * pw, x, xp);
}

/// Winograd F(4x4, RxR) of x [N, C, H, W] padded by pad, weights w [O, C, R, R], into y; Slot picks
/// the calling thread's buffer for the padded input. Opens its own parallel region.
template <class T, int Slot>
void winograd_conv(const WinogradGeometry& wg, const T* x, const T* w, const T* bias, T* y) {
  T* xw = thread_scratch<T, Slot>(wg.N * wg.C * wg.Hw() * wg.Ww() + 8);  // + 8: tile rows are read 8 wide
  T* U = thread_scratch<T, 7>((wg.R + 3) * (wg.R + 3) * wg.O * wg.C);
#pragma omp parallel
  {
    place_planes(wg.N * wg.C, wg.H, wg.W, wg.pad, wg.pad, wg.Hw(), wg.Ww(), x, xw);
    if (wg.R == 3) {
      winograd_weights<3>(wg.O, wg.C, w, U);
      winograd_forward<3>(wg, xw, U, bias, y);
    } else {
      winograd_weights<5>(wg.O, wg.C, w, U);
      winograd_forward<5>(wg, xw, U, bias, y);
    }
  }
}

/// col[(c*KH + kh)*KW + kw][pos..] = the tile's patches, from the padded batch: no bounds checks.
template <class T>
void s1_im2col(const S1Conv& s, const T* xp, const std::vector<ConvSeg>& segs, T* col, std::int64_t ldcol) {
  const std::int64_t plane = s.Hp * s.Wp;
  for (std::int64_t c = 0; c < s.C; ++c)
    for (std::int64_t kh = 0; kh < s.KH; ++kh)
      for (std::int64_t kw = 0; kw < s.KW; ++kw) {
        T* row = col + ((c * s.KH + kh) * s.KW + kw) * ldcol;
        const T* base = xp + c * plane + kh * s.Wp + kw;
        for (const ConvSeg& sg : segs) {
          const T* src = base + sg.x;
          T* dst = row + sg.pos;
          for (std::int64_t i = 0; i < sg.len; i += kCopyChunk)
            std::memcpy(dst + i, src + i, kCopyChunk * sizeof(T));
        }
      }
}

/// y [N, O, OH, OW] = bias + conv(xp, w), w as [O, CKK]. Work-shares over tiles of output pixels:
/// call inside a parallel region; no barrier at the end.
template <class T>
void s1_forward(const S1Conv& s, const T* xp, const T* w, const T* bias, T* y) {
  const std::int64_t tile = s.tile(), total = s.cols(), ntiles = ceil_div(total, tile), CKK = s.CKK();
  const std::int64_t OHW = s.OH() * s.OW(), ld = tile + kCopyChunk;
  T* col = thread_scratch<T, 3>(CKK * ld);
  T* out = thread_scratch<T, 4>(s.O * tile);
  std::vector<ConvSeg> segs;
  segs.reserve(tile + 1);
#pragma omp for schedule(static) nowait
  for (std::int64_t t = 0; t < ntiles; ++t) {
    const std::int64_t j0 = t * tile, j1 = std::min(total, j0 + tile), cols = j1 - j0;
    s1_segments(s, j0, j1, segs);
    s1_im2col(s, xp, segs, col, ld);
    gemm_serial(false, false, s.O, cols, CKK, T(1), w, CKK, col, ld, T(0), out, cols);
    for (std::int64_t o = 0; o < s.O; ++o) {
      const T b = bias ? bias[o] : T(0);
      const T* src = out + o * cols;
      T* dst = y + o * OHW;
      for (const ConvSeg& sg : segs)
        for (std::int64_t i = 0; i < sg.len; ++i) dst[sg.y + i] = src[sg.pos + i] + b;
    }
  }
}

/// acc[0, n) += sum over t < TAPS of w[t] * b[t, n + t), in 64-byte vectors (n a multiple of 16).
template <int TAPS, class T>
void shifted_axpys(std::int64_t n, const T* w, const T* b, T* acc) {
  typedef T vec __attribute__((vector_size(64)));
  constexpr int lanes = 64 / sizeof(T);
  for (std::int64_t i = 0; i < n; i += lanes) {
    vec a;
    std::memcpy(&a, acc + i, sizeof(vec));
    for (int t = 0; t < TAPS; ++t) {
      vec bv;
      std::memcpy(&bv, b + i + t, sizeof(vec));
      a += w[t] * bv;
    }
    std::memcpy(acc + i, &a, sizeof(vec));
  }
}

/// One output channel: y[n] = bias + sum over (c, kh, kw) of w * shifted padded plane, accumulated on
/// the padded-width grid (rounded up to whole 16-element blocks) in L1, each kernel row's taps at once.
/// Work-shares over images; no barrier at the end.
template <class T>
void s1_forward_one(const S1Conv& s, const T* xp, const T* w, const T* bias, T* y) {
  const std::int64_t OH = s.OH(), OW = s.OW(), L = ceil_div((OH - 1) * s.Wp + OW, 16) * 16,
                     plane = s.Hp * s.Wp;
  std::vector<T> acc(L);
#pragma omp single nowait
  count_flops(s.N * OH * OW * s.CKK());
#pragma omp for schedule(static) nowait
  for (std::int64_t n = 0; n < s.N; ++n) {
    std::fill(acc.begin(), acc.end(), bias ? bias[0] : T(0));
    T* a = acc.data();
    for (std::int64_t c = 0; c < s.C; ++c)
      for (std::int64_t kh = 0; kh < s.KH; ++kh)
        for (std::int64_t kw = 0; kw < s.KW; kw += 4) {
          const T* wr = w + (c * s.KH + kh) * s.KW + kw;
          const T* src = xp + (n * s.C + c) * plane + kh * s.Wp + kw;
          if (s.KW - kw == 5) {  // the 5x5 kernels of the course's UNet in one pass
            shifted_axpys<5>(L, wr, src, a);
            break;
          }
          switch (std::min<std::int64_t>(4, s.KW - kw)) {
            case 1: shifted_axpys<1>(L, wr, src, a); break;
            case 2: shifted_axpys<2>(L, wr, src, a); break;
            case 3: shifted_axpys<3>(L, wr, src, a); break;
            default: shifted_axpys<4>(L, wr, src, a); break;
          }
        }
    for (std::int64_t oh = 0; oh < OH; ++oh)
      std::copy(a + oh * s.Wp, a + oh * s.Wp + OW, y + (n * OH + oh) * OW);
  }
}

/// part[chunk] [CKK, O] = sum over the chunk's tiles of col_tile * gy_tile^T, tiles in order; chunk
/// ch holds tiles [ch * ntiles / chunks, (ch + 1) * ntiles / chunks). Work-shares over the chunks; no barrier
/// at the end.
template <class T>
void s1_weight_grad(const S1Conv& s, const T* xp, const T* gy, T* part, std::int64_t chunks) {
  const std::int64_t tile = s.tile(), total = s.cols(), ntiles = ceil_div(total, tile), CKK = s.CKK();
  const std::int64_t OHW = s.OH() * s.OW(), ld = tile + kCopyChunk;
  T* col = thread_scratch<T, 5>(CKK * ld);
  T* gyt = thread_scratch<T, 6>(s.O * tile);
  std::vector<ConvSeg> segs;
  segs.reserve(tile + 1);
#pragma omp for schedule(static) nowait
  for (std::int64_t ch = 0; ch < chunks; ++ch)
    for (std::int64_t t = ch * ntiles / chunks; t < (ch + 1) * ntiles / chunks; ++t) {
      const std::int64_t j0 = t * tile, j1 = std::min(total, j0 + tile), cols = j1 - j0;
      s1_segments(s, j0, j1, segs);
      s1_im2col(s, xp, segs, col, ld);
      for (std::int64_t o = 0; o < s.O; ++o) {
        const T* src = gy + o * OHW;
        T* dst = gyt + o * cols;
        for (const ConvSeg& sg : segs) std::copy(src + sg.y, src + sg.y + sg.len, dst + sg.pos);
      }
      // part^T [CKK, O] (+)= col [CKK, cols] * gy_tile^T
      gemm_serial(false, true, CKK, s.O, cols, T(1), col, ld, gyt, cols,
                  t == ch * ntiles / chunks ? T(0) : T(1), part + ch * s.O * CKK, s.O);
    }
}

/// TAPS dot products of a with b + 0, b + 1, ..., b + TAPS - 1 at once (a is loaded once for all),
/// each in an order fixed by n alone: 64-byte vectors of partial sums, lanes combined pairwise.
/// n is a multiple of 16.
template <int TAPS, class T>
void shifted_dots(std::int64_t n, const T* a, const T* b, T* out) {
  constexpr int lanes = 64 / sizeof(T);
  typedef T vec __attribute__((vector_size(64)));
  vec p[TAPS];
  for (int t = 0; t < TAPS; ++t) p[t] = vec{};
  for (std::int64_t i = 0; i < n; i += lanes) {
    vec av;
    std::memcpy(&av, a + i, sizeof(vec));
    for (int t = 0; t < TAPS; ++t) {
      vec bv;
      std::memcpy(&bv, b + i + t, sizeof(vec));
      p[t] += av * bv;
    }
  }
  for (int t = 0; t < TAPS; ++t) {
    T l[lanes];
    std::memcpy(l, &p[t], sizeof(vec));
    for (int h = lanes / 2; h >= 1; h /= 2)
      for (int j = 0; j < h; ++j) l[j] += l[j + h];
    out[t] = l[0];
  }
}

template <class T>
void shifted_dots(std::int64_t n, int taps, const T* a, const T* b, T* out) {
  switch (taps) {
    case 1: return shifted_dots<1>(n, a, b, out);
    case 2: return shifted_dots<2>(n, a, b, out);
    case 3: return shifted_dots<3>(n, a, b, out);
    case 4: return shifted_dots<4>(n, a, b, out);
    case 5: return shifted_dots<5>(n, a, b, out);
    case 6: return shifted_dots<6>(n, a, b, out);
    case 7: return shifted_dots<7>(n, a, b, out);
    default: return shifted_dots<8>(n, a, b, out);
  }
}

/// One output channel: gw[c][kh][kw] = sum over images of gyl[n] . shifted padded plane, where gyl
/// holds gy on the padded-width grid [N, L16] (zeros past OW and past the last row, L16 a multiple of
/// 16). Work-shares over the input channels (each owns its weights and sums the images in order);
/// no barrier at the end.
template <class T>
void s1_weight_grad_one(const S1Conv& s, const T* xp, const T* gyl, std::int64_t L16, T* gw) {
  const std::int64_t plane = s.Hp * s.Wp, KK = s.KH * s.KW;
  std::vector<T> acc(KK), dots(8);
#pragma omp single nowait
  count_flops(s.N * s.OH() * s.OW() * s.CKK());
#pragma omp for schedule(static) nowait
  for (std::int64_t c = 0; c < s.C; ++c) {
    std::fill(acc.begin(), acc.end(), T(0));
    for (std::int64_t n = 0; n < s.N; ++n)
      for (std::int64_t kh = 0; kh < s.KH; ++kh)
        for (std::int64_t kw0 = 0; kw0 < s.KW; kw0 += 8) {
          const int taps = int(std::min<std::int64_t>(8, s.KW - kw0));
          shifted_dots(L16, taps, gyl + n * L16, xp + (n * s.C + c) * plane + kh * s.Wp + kw0, dots.data());
          for (int t = 0; t < taps; ++t) acc[kh * s.KW + kw0 + t] += dots[t];
        }
    std::copy(acc.begin(), acc.end(), gw + c * KK);
  }
}

/// Any stride: im2col + GEMM per (image, band of output rows).
template <class T>
void conv2d_forward_banded(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
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

/// Any stride: gx and gw per block of input channels, image after image (col2im for gx).
template <class T>
void conv2d_backward_blocked(const Conv2dGeometry& g, const T* x, const T* w, const T* gy, T* gx, T* gw) {
  const std::int64_t OHW = g.OH() * g.OW(), KK = g.KH * g.KW, CKK = g.C * KK;
  // Tasks: blocks of input channels. A block owns its columns of gw (summed over images in order)
  // and its channels of gx, so tasks never write the same memory.
  // An even number of equal blocks (a 1x1 convolution of 192 channels was 144 + 48).
  std::int64_t even = detail::ceil_div(g.C, std::clamp<std::int64_t>(detail::kConvBlockRows / KK, 1, g.C));
  if (even > 1) even += even & 1;
  const std::int64_t cb = detail::ceil_div(g.C, even), blocks = detail::ceil_div(g.C, cb);
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
        if (gw) {                      // gw[:, block] (+)= gy_n [O, OHW] * col_n[block]^T
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
            detail::gemm_serial(true, false, rows, OHW, g.O, T(1), w + c0 * KK, CKK, gyn, OHW, T(0),
                                gcol.data(), OHW);
            std::fill(gxn + c0 * g.H * g.W, gxn + c1 * g.H * g.W, T(0));
            detail::col2im(g, gcol.data(), c0, c1, gxn);
          }
        }
      }
    }
  }
}

}  // namespace detail

/// Convolution forward (like torch.nn.functional.conv2d); throws diffuse::Error when validate() does.
/// x [N,C,H,W], w [O,C,KH,KW], bias [O] or nullptr, y [N,O,OH,OW] (overwritten)
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  g.validate();
  if (g.stride != 1 || g.is_pointwise()) {
    detail::conv2d_forward_banded(g, x, w, bias, y);
    return;
  }
  const std::int64_t p = g.padding;
  if (detail::winograd_applies<T>(g.C, g.O, g.KH, g.KW, g.stride,
                                  detail::winograd_tiles(g.N, g.OH(), g.OW()))) {
    detail::winograd_conv<T, 0>({g.N, g.C, g.H, g.W, p, g.O, g.KH}, x, w, bias, y);
    return;
  }
  const detail::S1Conv s{g.N, g.C, g.H + 2 * p, g.W + 2 * p, g.KH, g.KW, g.O};
  T* xp = detail::padded_buffer<T, 0>(g.N * g.C * s.Hp * s.Wp);
#pragma omp parallel
  {
    detail::pad_planes(g.N * g.C, g.H, g.W, p, p, x, xp);
    if (g.O == 1)
      detail::s1_forward_one(s, xp, w, bias, y);
    else
      detail::s1_forward(s, xp, w, bias, y);
  }
}

/// Convolution backward: gradients of the input, weights and bias; throws diffuse::Error when
/// validate() does.
/// gy [N,O,OH,OW]; any of gx [N,C,H,W], gw [O,C,KH,KW], gb [O] may be nullptr (not wanted).
/// Outputs are OVERWRITTEN.
template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb) {
  g.validate();
  const std::int64_t OH = g.OH(), OW = g.OW(), OHW = OH * OW, KK = g.KH * g.KW, CKK = g.C * KK;
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
  if (g.stride != 1 || g.is_pointwise()) {
    detail::conv2d_backward_blocked(g, x, w, gy, gx, gw);
    return;
  }
  const std::int64_t p = g.padding;
  // gx = stride-1 convolution of gy padded by K-1-p with wt[c][o][kh][kw] = w[o][c][KH-1-kh][KW-1-kw].
  const bool flip_any = gx && p <= g.KH - 1 && p <= g.KW - 1;
  const bool winograd_gx = flip_any && detail::winograd_applies<T>(g.O, g.C, g.KH, g.KW, g.stride,
                                                                   detail::winograd_tiles(g.N, g.H, g.W));
  const bool flip = flip_any && !winograd_gx;  // through im2col in the parallel region below
  const std::int64_t ph = g.KH - 1 - p, pw = g.KW - 1 - p;
  const detail::S1Conv sx{g.N, g.C, g.H + 2 * p, g.W + 2 * p, g.KH, g.KW, g.O};
  const detail::S1Conv sg{g.N, g.O, OH + 2 * ph, OW + 2 * pw, g.KH, g.KW, g.C};
  T *xp = nullptr, *gyp = nullptr, *part = nullptr, *wt = nullptr;
  // One output channel: gy on the padded-width grid, rounded up to whole blocks of 16.
  const std::int64_t L = detail::ceil_div((OH - 1) * sx.Wp + OW, 16) * 16;
  const std::int64_t ntiles = detail::ceil_div(sx.cols(), sx.tile());
  const std::int64_t chunks = std::min(ntiles, detail::kGradChunks);
  if (gw) {
    xp = detail::padded_buffer<T, 0>(g.N * g.C * sx.Hp * sx.Wp);
    part = detail::padded_buffer<T, 2>(g.O == 1 ? g.N * L : chunks * g.O * CKK);
  }
  if (flip_any) {
    if (flip) gyp = detail::padded_buffer<T, 1>(g.N * g.O * sg.Hp * sg.Wp);
    wt = detail::thread_scratch<T, 10>(g.O * CKK);
#pragma omp parallel for schedule(static) if (g.O * CKK > (1 << 14))
    for (std::int64_t c = 0; c < g.C; ++c)
      for (std::int64_t o = 0; o < g.O; ++o)
        for (std::int64_t kh = 0; kh < g.KH; ++kh)
          for (std::int64_t kw = 0; kw < g.KW; ++kw)
            wt[((c * g.O + o) * g.KH + kh) * g.KW + kw] =
                w[((o * g.C + c) * g.KH + g.KH - 1 - kh) * g.KW + g.KW - 1 - kw];
  }
  if (winograd_gx)
    detail::winograd_conv<T, 1>({g.N, g.O, OH, OW, ph, g.C, g.KH}, gy, wt, static_cast<const T*>(nullptr),
                                gx);
#pragma omp parallel
  {
    if (gw) {
      detail::pad_planes(g.N * g.C, g.H, g.W, p, p, x, xp);
      if (g.O == 1) {
        T* gyl = part;
#pragma omp for schedule(static)
        for (std::int64_t n = 0; n < g.N; ++n) {
          T* d = gyl + n * L;
          std::fill(d, d + L, T(0));
          for (std::int64_t oh = 0; oh < OH; ++oh)
            std::copy(gy + (n * OH + oh) * OW, gy + (n * OH + oh + 1) * OW, d + oh * sx.Wp);
        }
      }
    }
    if (flip) detail::pad_planes(g.N * g.O, OH, OW, ph, pw, gy, gyp);
    if (flip) detail::s1_forward(sg, gyp, wt, static_cast<const T*>(nullptr), gx);
    if (gw) {
      if (g.O == 1) {
        detail::s1_weight_grad_one(sx, xp, part, L, gw);
      } else {
        detail::s1_weight_grad(sx, xp, gy, part, chunks);
#pragma omp barrier
        const std::int64_t n = g.O * CKK;
        const T* pt = part;
#pragma omp for schedule(static)
        for (std::int64_t r = 0; r < CKK; ++r)  // gw[o][r] = sum over chunks in order of part[ch][r][o]
          for (std::int64_t o = 0; o < g.O; ++o) {
            T acc = pt[r * g.O + o];
            for (std::int64_t ch = 1; ch < chunks; ++ch) acc += pt[ch * n + r * g.O + o];
            gw[o * CKK + r] = acc;
          }
      }
    }
  }
  if (gx && !flip_any) detail::conv2d_backward_blocked(g, x, w, gy, gx, static_cast<T*>(nullptr));
}

/// The kernels the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_KERNELS_CONV2D_TEMPLATES(X, T)                                       \
  X(void conv2d_forward<T>(const Conv2dGeometry&, const T*, const T*, const T*, T*)) \
  X(void conv2d_backward<T>(const Conv2dGeometry&, const T*, const T*, const T*, T*, T*, T*))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_KERNELS_CONV2D_TEMPLATES)

}  // namespace diffuse::kernels
