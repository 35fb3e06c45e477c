// Winograd's minimal filtering F(4x4, 5x5) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016) for the stride-1 5x5 convolutions of the course's BasicUNet. Each 4x4 block of
// outputs comes from an 8x8 input tile, y = A^T [(G g G^T) . (B^T d B)] A, in 64 multiplies per
// (input, output) channel pair instead of 400; the 64 products of a block of tiles are 64 GEMMs
// [O, C] x [C, tiles]. The matrices come from Toom-Cook on the points 0, +-1, +-2, +-1/2 and
// infinity, built once in double. Blocks of tiles have a size fixed by the geometry and each is
// computed by one thread, so results do not depend on the number of threads.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "diffuse/kernels/common.hpp"
#include "diffuse/kernels/gemm.hpp"

namespace diffuse::kernels {

// Whether stride-1 5x5 convolutions with 16 or more channels on both sides use Winograd (default:
// yes). Off, they take im2col + GEMM, whose rounding is that of a direct sum (Winograd's float32
// results differ from it by about 1e-6 of the output's scale).
inline std::atomic<bool>& winograd_enabled() {
  static std::atomic<bool> on{true};
  return on;
}

}  // namespace diffuse::kernels

namespace diffuse::kernels::detail {

// A^T [4x8], G [8x5], B^T [8x8] of F(4x4, 5x5), in the element type of the computation.
template <class T>
struct Winograd45Matrices {
  T AT[4][8], G[8][5], BT[8][8];
};

// Toom-Cook: with V the evaluation matrix of polynomials of degree < 8 at the seven points and at
// infinity (its leading coefficient), B^T = (V^-1)^T, A^T[i][j] = p_j^i, G[j][k] = p_j^k (the row
// of infinity picks the last coefficient). Each row of B^T is scaled to a largest entry of 1 and the
// same row of G by the inverse, which leaves the product unchanged and the entries well scaled.
inline Winograd45Matrices<double> make_winograd45() {
  constexpr int a = 8, m = 4, r = 5;
  const double p[a - 1] = {0, 1, -1, 2, -2, 0.5, -0.5};
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
  Winograd45Matrices<double> w{};
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

template <class T>
const Winograd45Matrices<T>& winograd45() {
  static const Winograd45Matrices<T> cast = [] {
    const Winograd45Matrices<double> d = make_winograd45();
    Winograd45Matrices<T> t;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 8; ++j) t.AT[i][j] = T(d.AT[i][j]);
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 5; ++j) t.G[i][j] = T(d.G[i][j]);
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 8; ++j) t.BT[i][j] = T(d.BT[i][j]);
    return t;
  }();
  return cast;
}

// Stride-1 5x5 convolutions where the 64 GEMMs are well shaped (measured: below 16 channels on either
// side, im2col or the one-channel path wins).
inline bool winograd45_applies(std::int64_t C, std::int64_t O, std::int64_t KH, std::int64_t KW,
                               std::int64_t stride) {
  return winograd_enabled().load(std::memory_order_relaxed) && KH == 5 && KW == 5 && stride == 1 && C >= 16 &&
         O >= 16;
}

// Tiles per block (a multiple of the 16 or 8 lanes the transforms work on): the block's transformed
// input and products, 64 x channels x 128 values each, stay within a core's L2.
inline constexpr std::int64_t kWinogradBlock = 128;

// The convolution of an input [N, C, H, W] with padding p into [N, O, OH, OW], OH = H + 2p - 4, cut
// into th x tw tiles of 4x4 outputs per image; the padded input plane is Hw x Ww so that every 8x8
// input tile lies inside it.
struct Winograd45Geometry {
  std::int64_t N, C, H, W, pad, O;
  std::int64_t OH() const { return H + 2 * pad - 4; }
  std::int64_t OW() const { return W + 2 * pad - 4; }
  std::int64_t th() const { return ceil_div(OH(), 4); }
  std::int64_t tw() const { return ceil_div(OW(), 4); }
  std::int64_t Hw() const { return 4 * th() + 4; }
  std::int64_t Ww() const { return 4 * tw() + 4; }
  std::int64_t tiles() const { return N * th() * tw(); }
};

// U [64][O][C] = G w[o][c] G^T (computed in double), w [O, C, 5, 5]. Eight channels at a time, one
// per lane. Work-shares over output channels; ends with a barrier.
template <class T>
void winograd45_weights(std::int64_t O, std::int64_t C, const T* w, T* U) {
  typedef double vec __attribute__((vector_size(64)));
  constexpr int L = 8;
  const Winograd45Matrices<double> mat = make_winograd45();
  const std::int64_t OC = O * C;
#pragma omp for schedule(static)
  for (std::int64_t o = 0; o < O; ++o)
    for (std::int64_t c0 = 0; c0 < C; c0 += L) {
      const int lanes = int(std::min<std::int64_t>(L, C - c0));
      vec g[25] = {}, t[8][5];
      for (int l = 0; l < lanes; ++l)
        for (int k = 0; k < 25; ++k) g[k][l] = double(w[(o * C + c0 + l) * 25 + k]);
      for (int i = 0; i < 8; ++i)  // t = G g
        for (int j = 0; j < 5; ++j) {
          vec acc = mat.G[i][0] * g[j];
          for (int k = 1; k < 5; ++k) acc += mat.G[i][k] * g[k * 5 + j];
          t[i][j] = acc;
        }
      for (int i = 0; i < 8; ++i)  // U = t G^T
        for (int j = 0; j < 8; ++j) {
          vec acc = t[i][0] * mat.G[j][0];
          for (int k = 1; k < 5; ++k) acc += t[i][k] * mat.G[j][k];
          T* u = U + (i * 8 + j) * OC + o * C + c0;
          for (int l = 0; l < lanes; ++l) u[l] = T(acc[l]);
        }
    }
}

// y [N, O, OH, OW] = bias + conv(xw, w), xw the padded input [N, C, Hw, Ww], U from
// winograd45_weights. Work-shares over blocks of tiles: call inside a parallel region; no barrier
// at the end.
template <class T>
void winograd45_forward(const Winograd45Geometry& g, const T* xw, const T* U, const T* bias, T* y) {
  typedef T vec __attribute__((vector_size(64)));  // one AVX-512 register: the tiles of a group
  constexpr int L = 64 / sizeof(T);
  constexpr std::int64_t B = kWinogradBlock;
  const Winograd45Matrices<T> mat = winograd45<T>();  // a local copy: stores to V, M, y cannot alias it
  const std::int64_t tiles = g.tiles(), blocks = ceil_div(tiles, B), Ww = g.Ww(), plane = g.Hw() * Ww;
  const std::int64_t OH = g.OH(), OW = g.OW(), C = g.C, O = g.O;
  T* V = thread_scratch<T, 8>(64 * C * B);
  T* M = thread_scratch<T, 9>(64 * O * B);
#pragma omp single nowait
  count_flops(g.N * O * OH * OW * C * 25);  // the direct sum's count: effective GFLOP/s
#pragma omp for schedule(static) nowait
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t t0 = blk * B, nt = std::min(B, tiles - t0), groups = ceil_div(nt, L), cols = groups * L;
    std::int64_t in_off[B], out_off[B], rows[B], cs[B];  // per tile of the block, computed once
    for (std::int64_t k = 0; k < nt; ++k) {
      const std::int64_t per_image = g.th() * g.tw(), r = (t0 + k) % per_image, n = (t0 + k) / per_image;
      const std::int64_t ty = r / g.tw(), tx = r % g.tw();
      in_off[k] = n * C * plane + 4 * ty * Ww + 4 * tx;
      out_off[k] = n * O * OH * OW + 4 * ty * OW + 4 * tx;
      rows[k] = std::min<std::int64_t>(4, OH - 4 * ty);
      cs[k] = std::min<std::int64_t>(4, OW - 4 * tx);
    }
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t grp = 0; grp < groups; ++grp) {
        vec d[8][8], h[8][8];
        for (int l = 0; l < L; ++l) {
          const std::int64_t k = grp * L + l;
          if (k >= nt) {
            for (int i = 0; i < 8; ++i)
              for (int j = 0; j < 8; ++j) d[i][j][l] = T(0);
            continue;
          }
          const T* src = xw + in_off[k] + c * plane;
          for (int i = 0; i < 8; ++i)
            for (int j = 0; j < 8; ++j) d[i][j][l] = src[i * Ww + j];
        }
        for (int a = 0; a < 8; ++a)  // h = B^T d
          for (int j = 0; j < 8; ++j) {
            vec acc = mat.BT[a][0] * d[0][j];
            for (int i = 1; i < 8; ++i) acc += mat.BT[a][i] * d[i][j];
            h[a][j] = acc;
          }
        for (int a = 0; a < 8; ++a)  // V = h B
          for (int b = 0; b < 8; ++b) {
            vec acc = h[a][0] * mat.BT[b][0];
            for (int j = 1; j < 8; ++j) acc += h[a][j] * mat.BT[b][j];
            std::memcpy(V + (c * 64 + a * 8 + b) * B + grp * L, &acc, sizeof(vec));
          }
      }
    for (std::int64_t xi = 0; xi < 64; ++xi)
      gemm_serial_uncounted(false, false, O, cols, C, T(1), U + xi * O * C, C, V + xi * B, 64 * B, T(0),
                            M + xi * B, 64 * B);
    for (std::int64_t o = 0; o < O; ++o)
      for (std::int64_t grp = 0; grp < groups; ++grp) {
        vec m[8][8], h[4][8], out[4][4];
        for (int a = 0; a < 8; ++a)
          for (int b = 0; b < 8; ++b) std::memcpy(&m[a][b], M + (o * 64 + a * 8 + b) * B + grp * L, sizeof(vec));
        for (int i = 0; i < 4; ++i)  // h = A^T m
          for (int b = 0; b < 8; ++b) {
            vec acc = mat.AT[i][0] * m[0][b];
            for (int a = 1; a < 8; ++a) acc += mat.AT[i][a] * m[a][b];
            h[i][b] = acc;
          }
        const T bo = bias ? bias[o] : T(0);
        for (int i = 0; i < 4; ++i)  // out = bias + h A
          for (int j = 0; j < 4; ++j) {
            vec acc = bo + h[i][0] * mat.AT[j][0];
            for (int b = 1; b < 8; ++b) acc += h[i][b] * mat.AT[j][b];
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
