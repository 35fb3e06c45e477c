/// @file
/// Multi-head self-attention on channel-first buffers, the layout of a UNet feature map: qkv is
/// [B, 3*heads*D, L] (rows q | k | v, head h = rows h*D .. h*D+D-1 of each), out is [B, heads*D, L].
/// out_h = v_h softmax(scale q_h^T k_h)^T, so no transposes or head permutes are needed around it.
/// The attention matrix is never stored: forward keeps each query row's max and exp-sum, backward
/// recomputes the probabilities from them (bit for bit). Tasks are fixed tiles of query rows, so
/// results do not depend on the thread count. Optionally (float_softmax) the softmax of double data
/// runs in float32 exactly as PyTorch's CPU kernel computes it, to reproduce diffusers' upcast_softmax.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/common.hpp"
#include "diffuse/kernels/gemm.hpp"
#include "diffuse/kernels/softmax.hpp"

namespace diffuse::kernels {

namespace detail {
inline constexpr std::int64_t kMhaTileQ = 64;  // query rows per task

/// softmax of one row in place, keeping (max, exp-sum) or reusing them (bit-identical recompute).
template <class S>
void mha_softmax_row(std::int64_t L, S* p, S& m, S& s, bool compute_stats) {
  if (compute_stats) m = row_max(L, p);
  exp_shifted(L, p, m, p);
  if (compute_stats) s = fixed_sum<S>(L, [&](std::int64_t j) { return p[j]; });
  const S inv = S(1) / s;
  for (std::int64_t j = 0; j < L; ++j) p[j] *= inv;
}

// ---- PyTorch's float32 softmax, bit for bit (its AVX2 CPU kernel: Sleef expf_u10, 8-lane
// reductions folded by the same shuffle tree, FMA accumulation in the backward dot product).
// diffusers' Attention casts the scores to float32 before the softmax (upcast_softmax) whatever the
// model's dtype, so a double model needs this to reproduce diffusers run in float64.

/// Sleef_expf8_u10, one lane.
inline float torch_expf(float d) {
  if (d < -104.0f) return 0.0f;
  if (d > 100.0f) return INFINITY;
  const int q = static_cast<int>(
      std::nearbyint(d * 1.442695040888963407359924681001892137426645954152985934135449406931f));
  float s = std::fma(static_cast<float>(q), -0.693145751953125f, d);
  s = std::fma(static_cast<float>(q), -1.428606765330187045e-06f, s);
  float u = 0.000198527617612853646278381f;
  u = std::fma(u, s, 0.00139304355252534151077271f);
  u = std::fma(u, s, 0.00833336077630519866943359f);
  u = std::fma(u, s, 0.0416664853692054748535156f);
  u = std::fma(u, s, 0.166666671633720397949219f);
  u = std::fma(u, s, 0.5f);
  u = 1.0f + std::fma(s * s, u, s);
  return std::ldexp(std::ldexp(u, q >> 1), q - (q >> 1));
}

/// vec::reduce_all / map2_reduce_all over n values: 8 lane accumulators (first block by `first`,
/// later ones by `next`), folded lane i with i^4, then i^2, then i^1; fewer than 8 values are folded
/// in order.
template <class First, class Next, class Fold>
float torch_reduce(std::int64_t n, First first, Next next, Fold fold) {
  if (n < 8) {
    float a = first(0);
    for (std::int64_t i = 1; i < n; ++i) a = fold(a, first(i));
    return a;
  }
  float acc[8], w[8];
  for (int i = 0; i < 8; ++i) acc[i] = first(i);
  std::int64_t d = 8;
  for (; d < n - n % 8; d += 8)
    for (int i = 0; i < 8; ++i) acc[i] = next(acc[i], d + i);
  for (int i = 0; d + i < n; ++i) acc[i] = next(acc[i], d + i);
  for (int i = 0; i < 8; ++i) w[i] = fold(acc[i], acc[i ^ 4]);
  for (int i = 0; i < 8; ++i) acc[i] = fold(w[i], w[i ^ 2]);
  return fold(acc[0], acc[1]);
}

inline void torch_softmax_row(std::int64_t L, float* p, float& m, float& s, bool compute_stats) {
  auto value = [&](std::int64_t i) { return p[i]; };
  if (compute_stats)
    m = torch_reduce(
        L, value, [&](float a, std::int64_t i) { return std::max(a, p[i]); },
        [](float a, float b) { return std::max(a, b); });
  for (std::int64_t j = 0; j < L; ++j) p[j] = torch_expf(p[j] - m);
  if (compute_stats)
    s = torch_reduce(
        L, value, [&](float a, std::int64_t i) { return a + p[i]; }, [](float a, float b) { return a + b; });
  const float inv = 1.0f / s;
  for (std::int64_t j = 0; j < L; ++j) p[j] *= inv;
}

/// g <- (g - sum(g * y)) * y, as torch's softmax backward.
inline void torch_softmax_backward_row(std::int64_t L, const float* y, float* g) {
  // fma(a, b, -0) is the rounded product: keeps the compiler from fusing it into the next add
  auto product = [&](std::int64_t i) { return std::fma(g[i], y[i], -0.0f); };
  const float dot = torch_reduce(
      L, product, [&](float a, std::int64_t i) { return std::fma(g[i], y[i], a); },
      [](float a, float b) { return a + b; });
  for (std::int64_t j = 0; j < L; ++j) g[j] = (g[j] - dot) * y[j];
}

/// Probabilities of query rows [i0, i0+rows) against all L keys: P = softmax(scale q^T k).
/// Forward (compute_stats) stores each row's max and exp-sum; backward passes them back in.
/// float_softmax: the softmax of a double model runs in float32 like PyTorch's (see above);
/// fbuf is float scratch of L elements.
template <class T>
void mha_probs(std::int64_t L, std::int64_t D, T scale, const T* q, const T* k, std::int64_t i0,
               std::int64_t rows, T* P, T* row_max_out, T* row_sum_out, bool compute_stats,
               bool float_softmax, float* fbuf) {
  gemm_serial(true, false, rows, L, D, scale, q + i0, L, k, L, T(0), P, L);
  for (std::int64_t r = 0; r < rows; ++r) {
    T* p = P + r * L;
    if constexpr (!std::is_same_v<T, float>) {
      if (float_softmax) {
        float m = float(row_max_out[r]), s = float(row_sum_out[r]);
        for (std::int64_t j = 0; j < L; ++j) fbuf[j] = float(p[j]);
        torch_softmax_row(L, fbuf, m, s, compute_stats);
        for (std::int64_t j = 0; j < L; ++j) p[j] = T(fbuf[j]);
        row_max_out[r] = T(m);
        row_sum_out[r] = T(s);
        continue;
      }
    }
    mha_softmax_row(L, p, row_max_out[r], row_sum_out[r], compute_stats);
  }
}
}  // namespace detail

/// Forward: qkv [B, 3*heads*D, L] -> out [B, heads*D, L] (see the file comment); throws
/// diffuse::Error unless every size is positive.
/// stats [B*heads*L*2] receives (max, sum) per query row for the backward pass.
template <class T>
void mha_channels_first_forward(std::int64_t B, std::int64_t heads, std::int64_t D, std::int64_t L, T scale,
                                const T* qkv, T* out, T* stats, bool float_softmax = false) {
  detail::check_positive("attention", {{"B", B}, {"heads", heads}, {"D", D}, {"L", L}});
  const std::int64_t C = heads * D, tiles = detail::ceil_div(L, detail::kMhaTileQ), tasks = B * heads * tiles;
#pragma omp parallel if (tasks > 1)
  {
    std::vector<T> P(std::min(L, detail::kMhaTileQ) * L), mx(detail::kMhaTileQ), sm(detail::kMhaTileQ);
    std::vector<float> fbuf(float_softmax ? L : 0);
#pragma omp for schedule(static)
    for (std::int64_t t = 0; t < tasks; ++t) {
      const std::int64_t bh = t / tiles, b = bh / heads, h = bh % heads;
      const std::int64_t i0 = (t % tiles) * detail::kMhaTileQ, rows = std::min(detail::kMhaTileQ, L - i0);
      const T* q = qkv + (b * 3 * C + h * D) * L;
      const T* k = q + C * L;
      const T* v = q + 2 * C * L;
      detail::mha_probs(L, D, scale, q, k, i0, rows, P.data(), mx.data(), sm.data(), true, float_softmax,
                        fbuf.data());
      for (std::int64_t r = 0; r < rows; ++r) {
        stats[2 * (bh * L + i0 + r)] = mx[r];
        stats[2 * (bh * L + i0 + r) + 1] = sm[r];
      }
      // out[:, i0:i0+rows] = v [D, L] * P^T [L, rows]
      detail::gemm_serial(false, true, D, rows, L, T(1), v, L, P.data(), L, T(0),
                          out + (b * C + h * D) * L + i0, L);
    }
  }
}

/// Backward from the stats the forward wrote, with the same scale and float_softmax:
/// gout [B, C, L] -> gqkv [B, 3C, L] (overwritten).
template <class T>
void mha_channels_first_backward(std::int64_t B, std::int64_t heads, std::int64_t D, std::int64_t L, T scale,
                                 const T* qkv, const T* stats, const T* gout, T* gqkv,
                                 bool float_softmax = false) {
  detail::check_positive("attention", {{"B", B}, {"heads", heads}, {"D", D}, {"L", L}});
  const std::int64_t C = heads * D, tiles = detail::ceil_div(L, detail::kMhaTileQ), tasks = B * heads;
#pragma omp parallel if (tasks > 1)
  {
    const std::int64_t tile = std::min(L, detail::kMhaTileQ);
    std::vector<T> P(tile * L), G(tile * L), mx(tile), sm(tile);
    std::vector<float> fbuf(float_softmax ? 2 * L : 0);
#pragma omp for schedule(static)
    for (std::int64_t bh = 0; bh < tasks; ++bh) {
      const std::int64_t b = bh / heads, h = bh % heads;
      const T* q = qkv + (b * 3 * C + h * D) * L;
      const T* k = q + C * L;
      const T* v = q + 2 * C * L;
      const T* go = gout + (b * C + h * D) * L;
      T* gq = gqkv + (b * 3 * C + h * D) * L;
      T* gk = gq + C * L;
      T* gv = gq + 2 * C * L;
      for (std::int64_t it = 0; it < tiles; ++it) {
        const std::int64_t i0 = it * detail::kMhaTileQ, rows = std::min(detail::kMhaTileQ, L - i0);
        for (std::int64_t r = 0; r < rows; ++r) {
          mx[r] = stats[2 * (bh * L + i0 + r)];
          sm[r] = stats[2 * (bh * L + i0 + r) + 1];
        }
        detail::mha_probs(L, D, scale, q, k, i0, rows, P.data(), mx.data(), sm.data(), false, float_softmax,
                          fbuf.data());
        const T beta = it == 0 ? T(0) : T(1);
        // gv [D, L] += gout[:, tile] [D, rows] * P [rows, L]
        detail::gemm_serial(false, false, D, L, rows, T(1), go + i0, L, P.data(), L, beta, gv, L);
        // gP [rows, L] = gout[:, tile]^T v
        detail::gemm_serial(true, false, rows, L, D, T(1), go + i0, L, v, L, T(0), G.data(), L);
        for (std::int64_t r = 0; r < rows; ++r) {
          T* pr = P.data() + r * L;
          T* gr = G.data() + r * L;
          if constexpr (!std::is_same_v<T, float>) {
            if (float_softmax) {  // the softmax backward in float, as autograd runs it for diffusers' cast
              float* pf = fbuf.data();
              float* gf = pf + L;
              for (std::int64_t j = 0; j < L; ++j) {
                pf[j] = float(pr[j]);
                gf[j] = float(gr[j]);
              }
              detail::torch_softmax_backward_row(L, pf, gf);
              for (std::int64_t j = 0; j < L; ++j) gr[j] = T(gf[j]);
              continue;
            }
          }
          detail::softmax_backward_row(L, pr, gr, gr);
        }
        // gq[:, tile] [D, rows] = scale * k [D, L] * gS^T [L, rows]
        detail::gemm_serial(false, true, D, rows, L, scale, k, L, G.data(), L, T(0), gq + i0, L);
        // gk [D, L] += scale * q[:, tile] [D, rows] * gS [rows, L]
        detail::gemm_serial(false, false, D, L, rows, scale, q + i0, L, G.data(), L, beta, gk, L);
      }
    }
  }
}

/// The kernels the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_KERNELS_ATTENTION_CHANNELS_FIRST_TEMPLATES(X, T)                                             \
  X(void mha_channels_first_forward<T>(std::int64_t, std::int64_t, std::int64_t, std::int64_t, T, const T*,  \
                                       T*, T*, bool))                                                        \
  X(void mha_channels_first_backward<T>(std::int64_t, std::int64_t, std::int64_t, std::int64_t, T, const T*, \
                                        const T*, const T*, T*, bool))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_KERNELS_ATTENTION_CHANNELS_FIRST_TEMPLATES)

}  // namespace diffuse::kernels
