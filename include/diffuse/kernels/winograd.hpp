/// @file
/// Winograd's minimal filtering F(4x4, RxR) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
/// Networks", 2016) for stride-1 3x3 and 5x5 convolutions. Each 4x4 block of outputs comes from an
/// AxA input tile (A = R + 3), y = A^T [(G g G^T) . (B^T d B)] A, in A^2 multiplies per (input,
/// output) channel pair instead of 16 R^2 (3x3: 36 instead of 144; 5x5: 64 instead of 400); the A^2
/// products of a block of tiles are A^2 GEMMs [O, C] x [C, tiles]. The matrices come from Toom-Cook
/// on the points 0, +-1, +-2 (and +-1/2 for 5x5) and infinity, built once in double. Blocks of tiles
/// have a size fixed by the geometry and each is computed by one thread, so results do not depend on
/// the number of threads.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "diffuse/kernels/common.hpp"
#include "diffuse/kernels/gemm.hpp"

namespace diffuse::kernels {

/// Whether float32 stride-1 3x3 and 5x5 convolutions with 16 or more channels on both sides use
/// Winograd (default: yes). Off, they take im2col + GEMM, whose rounding is that of a direct sum (Winograd's
/// float32 results differ from it by a few 1e-6 of the output's scale).
/// Switch it off with `diffuse::kernels::winograd_enabled() = false;`.
inline std::atomic<bool>& winograd_enabled() {
  static std::atomic<bool> on{true};
  return on;
}

}  // namespace diffuse::kernels

namespace diffuse::kernels::detail {

/// F(4x4, RxR): A^T [4xA], G [AxR], B^T [AxA], in the element type of the computation.
template <class T, int R>
struct WinogradMatrices {
  static constexpr int m = 4, r = R, a = R + 3;
  T AT[m][a], G[a][r], BT[a][a];
};

/// Toom-Cook: with V the evaluation matrix of polynomials of degree < A at the A - 1 points and at
/// infinity (its leading coefficient), B^T = (V^-1)^T, A^T[i][j] = p_j^i, G[j][k] = p_j^k (the row
/// of infinity picks the last coefficient). Each row of B^T is scaled to a largest entry of 1 and the
/// same row of G by the inverse, which leaves the product unchanged and the entries well scaled.
template <int R>
WinogradMatrices<double, R> make_winograd() {
  using W = WinogradMatrices<double, R>;
  constexpr int a = W::a, m = W::m, r = W::r;
  const double p[7] = {0, 1, -1, 2, -2, 0.5, -0.5};  // the first a - 1
  double V[a][a] = {}, Vinv[a][a] = {};
  for (int j = 0; j < a - 1; ++j)
    for (int i = 0; i < a; ++i) V[j][i] = std::pow(p[j], i);
  V[a - 1][a - 1] = 1;
  for (int i = 0; i < a; ++i) Vinv[i][i] = 1;
  for (int col = 0; col < a; ++col) {  // Gauss-Jordan with partial pivoting
    int piv = col;
    for (int row = col + 1; row < a; ++row)
      if (std::abs(V[row][col]) > std::abs(V[piv][col])) piv = row;
    std::swap(V[col], V[piv]);
    std::swap(Vinv[col], Vinv[piv]);
    const double d = V[col][col];
    for (int k = 0; k < a; ++k) V[col][k] /= d, Vinv[col][k] /= d;
    for (int row = 0; row < a; ++row) {
      if (row == col || V[row][col] == 0) continue;
      const double f = V[row][col];
      for (int k = 0; k < a; ++k) V[row][k] -= f * V[col][k], Vinv[row][k] -= f * Vinv[col][k];
    }
  }
  W w{};
  for (int j = 0; j < a; ++j) {
    for (int i = 0; i < m; ++i) w.AT[i][j] = j < a - 1 ? std::pow(p[j], i) : (i == m - 1);
    for (int k = 0; k < r; ++k) w.G[j][k] = j < a - 1 ? std::pow(p[j], k) : (k == r - 1);
    double big = 0;
    for (int k = 0; k < a; ++k) big = std::max(big, std::abs(w.BT[j][k] = Vinv[k][j]));
    for (int k = 0; k < a; ++k) w.BT[j][k] /= big;
    for (int k = 0; k < r; ++k) w.G[j][k] *= big;
  }
  return w;
}

template <class T, int R>
const WinogradMatrices<T, R>& winograd_matrices() {
  static const WinogradMatrices<T, R> cast = [] {
    const WinogradMatrices<double, R> d = make_winograd<R>();
    WinogradMatrices<T, R> t;
    for (int i = 0; i < t.m; ++i)
      for (int j = 0; j < t.a; ++j) t.AT[i][j] = T(d.AT[i][j]);
    for (int i = 0; i < t.a; ++i)
      for (int j = 0; j < t.r; ++j) t.G[i][j] = T(d.G[i][j]);
    for (int i = 0; i < t.a; ++i)
      for (int j = 0; j < t.a; ++j) t.BT[i][j] = T(d.BT[i][j]);
    return t;
  }();
  return cast;
}

/// float32, stride-1 square 3x3 or 5x5 convolutions where the GEMMs are well shaped (measured: below
/// 16 channels on either side, im2col or the one-channel path wins) and there are enough tiles of
/// 4x4 outputs in the batch to pay for transforming the weights (measured on the butterfly UNet at
/// batch 16, whose 4x4 level has 16 tiles: im2col wins there). float64 keeps im2col: Winograd's
/// rounding (about 1e-14 of the output's scale instead of 1e-16) would blur the float64 checks
/// against PyTorch that double precision is there for.
inline constexpr std::int64_t kWinogradMinTiles = 64;
inline std::int64_t winograd_tiles(std::int64_t N, std::int64_t OH, std::int64_t OW) {
  return N * ceil_div(OH, 4) * ceil_div(OW, 4);
}
template <class T>
bool winograd_applies(std::int64_t C, std::int64_t O, std::int64_t KH, std::int64_t KW, std::int64_t stride,
                      std::int64_t tiles) {
  return std::is_same_v<T, float> && winograd_enabled().load(std::memory_order_relaxed) && KH == KW &&
         (KH == 3 || KH == 5) && stride == 1 && C >= 16 && O >= 16 && tiles >= kWinogradMinTiles;
}

/// At most this many tiles per block (a multiple of the 16 or 8 lanes the transforms work on): the
/// block's transformed input and products, A^2 x channels x 128 values each, stay within a core's
/// L2. Batches of fewer than 512 tiles take blocks of a quarter of them, so both cores get work.
inline constexpr std::int64_t kWinogradBlock = 128;
inline std::int64_t winograd_block(std::int64_t tiles) {
  return std::clamp<std::int64_t>(ceil_div(ceil_div(tiles, 4), 16) * 16, 16, kWinogradBlock);
}

/// The convolution of an input [N, C, H, W] with padding p by an RxR kernel into [N, O, OH, OW],
/// OH = H + 2p - R + 1, cut into th x tw tiles of 4x4 outputs per image; the padded input plane is
/// Hw x Ww so that every AxA input tile lies inside it.
struct WinogradGeometry {
  std::int64_t N, C, H, W, pad, O, R;
  std::int64_t OH() const { return H + 2 * pad - R + 1; }
  std::int64_t OW() const { return W + 2 * pad - R + 1; }
  std::int64_t th() const { return ceil_div(OH(), 4); }
  std::int64_t tw() const { return ceil_div(OW(), 4); }
  std::int64_t Hw() const { return 4 * th() + R - 1; }
  std::int64_t Ww() const { return 4 * tw() + R - 1; }
  std::int64_t tiles() const { return winograd_tiles(N, OH(), OW()); }
};

/// U [A^2][O][C] = G w[o][c] G^T (computed in double), w [O, C, R, R]. Eight channels at a time, one
/// per lane. Work-shares over output channels; ends with a barrier.
template <int R, class T>
void winograd_weights(std::int64_t O, std::int64_t C, const T* w, T* U) {
  typedef double vec __attribute__((vector_size(64)));
  constexpr int L = 8, a = R + 3;
  const WinogradMatrices<double, R> mat = winograd_matrices<double, R>();  // built once; a local copy
  const std::int64_t OC = O * C;
#pragma omp for schedule(static)
  for (std::int64_t o = 0; o < O; ++o)
    for (std::int64_t c0 = 0; c0 < C; c0 += L) {
      const int lanes = int(std::min<std::int64_t>(L, C - c0));
      vec g[R * R] = {}, t[a][R];
      for (int l = 0; l < lanes; ++l)
        for (int k = 0; k < R * R; ++k) g[k][l] = double(w[(o * C + c0 + l) * R * R + k]);
      for (int i = 0; i < a; ++i)  // t = G g
        for (int j = 0; j < R; ++j) {
          vec acc = mat.G[i][0] * g[j];
          for (int k = 1; k < R; ++k) acc += mat.G[i][k] * g[k * R + j];
          t[i][j] = acc;
        }
      for (int i = 0; i < a; ++i)  // U = t G^T
        for (int j = 0; j < a; ++j) {
          vec acc = t[i][0] * mat.G[j][0];
          for (int k = 1; k < R; ++k) acc += t[i][k] * mat.G[j][k];
          T* u = U + (i * a + j) * OC + o * C + c0;
          for (int l = 0; l < lanes; ++l) u[l] = T(acc[l]);
        }
    }
}

// ---- the input gather for float32: 16 tiles per AVX-512 vector ---------------------------------
// d[i][j][l] = src_l[i * Ww + j] for the 16 tiles l of a group and i, j < A <= 8: per input row, one
// 8-float load per tile, then a 16 x 8 transpose in three rounds of two-source shuffles (24 shuffles
// instead of 128 scalar inserts). Reads up to 8 - A floats past each tile row.
typedef float f32x16 __attribute__((vector_size(64)));
typedef float f32x8 __attribute__((vector_size(32)));

template <class Index, std::size_t... K>
inline f32x16 shuffle16(f32x16 a, f32x16 b, std::index_sequence<K...>) {
  return __builtin_shufflevector(a, b, Index::idx(K)...);
}
/// Round 1: [tiles 4q..4q+3] x [columns 4G..4G+3], k = column * 4 + tile, from the two vectors that hold
/// tiles (4q, 4q+1) and (4q+2, 4q+3), eight columns each.
template <int G>
struct GatherRound1 {
  static constexpr int idx(std::size_t k) { return int((k % 4) / 2 * 16 + (k % 2) * 8 + 4 * G + k / 4); }
};
/// Round 2: [tiles 8h..8h+7] x [columns 2S, 2S+1 of the group], k = column * 8 + tile.
template <int S>
struct GatherRound2 {
  static constexpr int idx(std::size_t k) { return int((k % 8) / 4 * 16 + (2 * S + k / 8) * 4 + k % 4); }
};
/// Round 3: one column of all 16 tiles.
template <int CL>
struct GatherRound3 {
  static constexpr int idx(std::size_t k) { return int(k / 8 * 16 + CL * 8 + k % 8); }
};

template <int A>
inline void gather_tiles_f32(const float* base, const std::int64_t* off, std::int64_t Ww, f32x16 (&d)[A][A]) {
  static_assert(A <= 8);
  constexpr auto seq = std::make_index_sequence<16>{};
  for (int i = 0; i < A; ++i) {
    f32x16 z[8], u[4][2], w[2][2][2];
    for (int p = 0; p < 8; ++p) {
      f32x8 lo, hi;
      std::memcpy(&lo, base + off[2 * p] + i * Ww, sizeof(lo));
      std::memcpy(&hi, base + off[2 * p + 1] + i * Ww, sizeof(hi));
      z[p] = __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    }
    for (int q = 0; q < 4; ++q) {
      u[q][0] = shuffle16<GatherRound1<0>>(z[2 * q], z[2 * q + 1], seq);
      if constexpr (A > 4) u[q][1] = shuffle16<GatherRound1<1>>(z[2 * q], z[2 * q + 1], seq);
    }
    for (int h = 0; h < 2; ++h) {
      w[h][0][0] = shuffle16<GatherRound2<0>>(u[2 * h][0], u[2 * h + 1][0], seq);
      if constexpr (A > 2) w[h][0][1] = shuffle16<GatherRound2<1>>(u[2 * h][0], u[2 * h + 1][0], seq);
      if constexpr (A > 4) w[h][1][0] = shuffle16<GatherRound2<0>>(u[2 * h][1], u[2 * h + 1][1], seq);
      if constexpr (A > 6) w[h][1][1] = shuffle16<GatherRound2<1>>(u[2 * h][1], u[2 * h + 1][1], seq);
    }
    for (int c = 0; c < A; ++c) {
      const f32x16 &a = w[0][c / 4][c % 4 / 2], &b = w[1][c / 4][c % 4 / 2];
      d[i][c] = c % 2 ? shuffle16<GatherRound3<1>>(a, b, seq) : shuffle16<GatherRound3<0>>(a, b, seq);
    }
  }
}

/// y [N, O, OH, OW] = bias + conv(xw, w), xw the padded input [N, C, Hw, Ww], U from
/// winograd_weights. Work-shares over blocks of tiles: call inside a parallel region; no barrier at
/// the end.
template <int R, class T>
void winograd_forward(const WinogradGeometry& g, const T* xw, const T* U, const T* bias, T* y) {
  typedef T vec __attribute__((vector_size(64)));  // one AVX-512 register: the tiles of a group
  constexpr int L = 64 / sizeof(T), a = R + 3, aa = a * a;
  constexpr std::int64_t B = kWinogradBlock;
  const WinogradMatrices<T, R> mat = winograd_matrices<T, R>();  // a local copy: stores cannot alias it
  const std::int64_t tiles = g.tiles(), bs = winograd_block(tiles), blocks = ceil_div(tiles, bs), Ww = g.Ww(),
                     plane = g.Hw() * Ww;
  const std::int64_t OH = g.OH(), OW = g.OW(), C = g.C, O = g.O;
  T* V = thread_scratch<T, 8>(aa * C * B);
  T* M = thread_scratch<T, 9>(aa * O * B);
#pragma omp single nowait
  count_flops(g.N * O * OH * OW * C * R * R);  // the direct sum's count: effective GFLOP/s
#pragma omp for schedule(static) nowait
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t t0 = blk * bs, nt = std::min(bs, tiles - t0), groups = ceil_div(nt, L),
                       cols = groups * L;
    // Per tile of the block, computed once; lanes past the last tile read tile 0 again (their products
    // are computed and never stored).
    std::int64_t in_off[B], out_off[B], rows[B], cs[B];
    for (std::int64_t k = 0; k < nt; ++k) {
      const std::int64_t per_image = g.th() * g.tw(), rem = (t0 + k) % per_image, n = (t0 + k) / per_image;
      const std::int64_t ty = rem / g.tw(), tx = rem % g.tw();
      in_off[k] = n * C * plane + 4 * ty * Ww + 4 * tx;
      out_off[k] = n * O * OH * OW + 4 * ty * OW + 4 * tx;
      rows[k] = std::min<std::int64_t>(4, OH - 4 * ty);
      cs[k] = std::min<std::int64_t>(4, OW - 4 * tx);
    }
    std::fill(in_off + nt, in_off + cols, in_off[0]);
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t grp = 0; grp < groups; ++grp) {
        vec d[a][a], h[a][a];
        if constexpr (std::is_same_v<T, float>) {
          gather_tiles_f32<a>(xw + c * plane, in_off + grp * L, Ww, d);
        } else {
          for (int l = 0; l < L; ++l) {
            const T* src = xw + in_off[grp * L + l] + c * plane;
            for (int i = 0; i < a; ++i)
              for (int j = 0; j < a; ++j) d[i][j][l] = src[i * Ww + j];
          }
        }
        for (int i = 0; i < a; ++i)  // h = B^T d
          for (int j = 0; j < a; ++j) {
            vec acc = mat.BT[i][0] * d[0][j];
            for (int k = 1; k < a; ++k) acc += mat.BT[i][k] * d[k][j];
            h[i][j] = acc;
          }
        for (int i = 0; i < a; ++i)  // V = h B
          for (int j = 0; j < a; ++j) {
            vec acc = h[i][0] * mat.BT[j][0];
            for (int k = 1; k < a; ++k) acc += h[i][k] * mat.BT[j][k];
            std::memcpy(V + (c * aa + i * a + j) * B + grp * L, &acc, sizeof(vec));
          }
      }
    for (std::int64_t xi = 0; xi < aa; ++xi)
      gemm_serial_uncounted(false, false, O, cols, C, T(1), U + xi * O * C, C, V + xi * B, aa * B, T(0),
                            M + xi * B, aa * B);
    for (std::int64_t o = 0; o < O; ++o)
      for (std::int64_t grp = 0; grp < groups; ++grp) {
        vec mm[a][a], h[4][a], out[4][4];
        for (int i = 0; i < a; ++i)
          for (int j = 0; j < a; ++j)
            std::memcpy(&mm[i][j], M + (o * aa + i * a + j) * B + grp * L, sizeof(vec));
        for (int i = 0; i < 4; ++i)  // h = A^T m
          for (int j = 0; j < a; ++j) {
            vec acc = mat.AT[i][0] * mm[0][j];
            for (int k = 1; k < a; ++k) acc += mat.AT[i][k] * mm[k][j];
            h[i][j] = acc;
          }
        const T bo = bias ? bias[o] : T(0);
        for (int i = 0; i < 4; ++i)  // out = bias + h A
          for (int j = 0; j < 4; ++j) {
            vec acc = bo + h[i][0] * mat.AT[j][0];
            for (int k = 1; k < a; ++k) acc += h[i][k] * mat.AT[j][k];
            out[i][j] = acc;
          }
        for (int l = 0; l < L && grp * L + l < nt; ++l) {
          const std::int64_t k = grp * L + l;
          T* dst = y + out_off[k] + o * OH * OW;
          for (std::int64_t i = 0; i < rows[k]; ++i)
            for (std::int64_t j = 0; j < cs[k]; ++j) dst[i * OW + j] = out[i][j][l];
        }
      }
  }
}

}  // namespace diffuse::kernels::detail
