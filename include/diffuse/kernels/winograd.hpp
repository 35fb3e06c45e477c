// Winograd's minimal filtering F(4x4, RxR) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016) for stride-1 3x3 and 5x5 convolutions. Each 4x4 block of outputs comes from an
// AxA input tile (A = R + 3), y = A^T [(G g G^T) . (B^T d B)] A, in A^2 multiplies per (input,
// output) channel pair instead of 16 R^2 (3x3: 36 instead of 144; 5x5: 64 instead of 400); the A^2
// products of a block of tiles are A^2 GEMMs [O, C] x [C, tiles]. The matrices come from Toom-Cook
// on the points 0, +-1, +-2 (and +-1/2 for 5x5) and infinity, built once in double. Blocks of tiles
// have a size fixed by the geometry and each is computed by one thread, so results do not depend on
// the number of threads.
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

// Whether float32 stride-1 3x3 and 5x5 convolutions with 16 or more channels on both sides use
// Winograd (default: yes). Off, they take im2col + GEMM, whose rounding is that of a direct sum (Winograd's
// float32 results differ from it by a few 1e-6 of the output's scale).
inline std::atomic<bool>& winograd_enabled() {
  static std::atomic<bool> on{true};
  return on;
}

}  // namespace diffuse::kernels

namespace diffuse::kernels::detail {

// F(4x4, RxR): A^T [4xA], G [AxR], B^T [AxA], in the element type of the computation.
template <class T, int R>
struct WinogradMatrices {
  static constexpr int m = 4, r = R, a = R + 3;
  T AT[m][a], G[a][r], BT[a][a];
};

// Toom-Cook: with V the evaluation matrix of polynomials of degree < A at the A - 1 points and at
// infinity (its leading coefficient), B^T = (V^-1)^T, A^T[i][j] = p_j^i, G[j][k] = p_j^k (the row
// of infinity picks the last coefficient). Each row of B^T is scaled to a largest entry of 1 and the
// same row of G by the inverse, which leaves the product unchanged and the entries well scaled.
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

// float32, stride-1 square 3x3 or 5x5 convolutions where the GEMMs are well shaped (measured: below
// 16 channels on either side, im2col or the one-channel path wins) and there are enough tiles of
// 4x4 outputs in the batch to pay for transforming the weights (measured on the butterfly UNet at
// batch 16, whose 4x4 level has 16 tiles: im2col wins there). float64 keeps im2col: Winograd's
// rounding (about 1e-14 of the output's scale instead of 1e-16) would blur the float64 checks
// against PyTorch that double precision is there for.
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

// At most this many tiles per block (a multiple of the 16 or 8 lanes the transforms work on): the
// block's transformed input and products, A^2 x channels x 128 values each, stay within a core's
// L2. Batches of fewer than 512 tiles take blocks of a quarter of them, so both cores get work.
inline constexpr std::int64_t kWinogradBlock = 128;
inline std::int64_t winograd_block(std::int64_t tiles) {
  return std::clamp<std::int64_t>(ceil_div(ceil_div(tiles, 4), 16) * 16, 16, kWinogradBlock);
}

// The convolution of an input [N, C, H, W] with padding p by an RxR kernel into [N, O, OH, OW],
// OH = H + 2p - R + 1, cut into th x tw tiles of 4x4 outputs per image; the padded input plane is
// Hw x Ww so that every AxA input tile lies inside it.
struct WinogradGeometry {
  std::int64_t N, C, H, W, pad, O, R;
  std::int64_t OH() const { return H + 2 * pad - R + 1; }
  std::int64_t OW() const { return W + 2 * pad - R + 1; }
  std::int64_t th() const { return ceil_div(OH(), 4); }
  std::int64_t tw() const { return ceil_div(OW(), 4); }
  std::int64_t Hw() const { return 4 * th() + R - 1; }
  std::int64_t Ww() const { return 4 * tw() + R - 1; }
  std::int64_t tiles() const { return N * th() * tw(); }
};

// U [A^2][O][C] = G w[o][c] G^T (computed in double), w [O, C, R, R]. Eight channels at a time, one
// per lane. Work-shares over output channels; ends with a barrier.
template <int R, class T>
void winograd_weights(std::int64_t O, std::int64_t C, const T* w, T* U) {
  typedef double vec __attribute__((vector_size(64)));
  constexpr int L = 8, a = R + 3;
  const WinogradMatrices<double, R> mat = make_winograd<R>();
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

// y [N, O, OH, OW] = bias + conv(xw, w), xw the padded input [N, C, Hw, Ww], U from
// winograd_weights. Work-shares over blocks of tiles: call inside a parallel region; no barrier at
// the end.
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
    std::int64_t in_off[B], out_off[B], rows[B], cs[B];  // per tile of the block, computed once
    for (std::int64_t k = 0; k < nt; ++k) {
      const std::int64_t per_image = g.th() * g.tw(), rem = (t0 + k) % per_image, n = (t0 + k) / per_image;
      const std::int64_t ty = rem / g.tw(), tx = rem % g.tw();
      in_off[k] = n * C * plane + 4 * ty * Ww + 4 * tx;
      out_off[k] = n * O * OH * OW + 4 * ty * OW + 4 * tx;
      rows[k] = std::min<std::int64_t>(4, OH - 4 * ty);
      cs[k] = std::min<std::int64_t>(4, OW - 4 * tx);
    }
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t grp = 0; grp < groups; ++grp) {
        vec d[a][a], h[a][a];
        for (int l = 0; l < L; ++l) {
          const std::int64_t k = grp * L + l;
          if (k >= nt) {
            for (int i = 0; i < a; ++i)
              for (int j = 0; j < a; ++j) d[i][j][l] = T(0);
            continue;
          }
          const T* src = xw + in_off[k] + c * plane;
          for (int i = 0; i < a; ++i)
            for (int j = 0; j < a; ++j) d[i][j][l] = src[i * Ww + j];
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
