/// @file
/// Scaled dot-product attention, out = softmax(scale * q k^T) v, batched over B (batch * heads),
/// forward and backward. GEMMs are single-threaded Eigen inside our OpenMP loop.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/common.hpp"
#include "diffuse/kernels/gemm.hpp"
#include "diffuse/kernels/softmax.hpp"

namespace diffuse::kernels {

namespace detail {
inline void check_attention(std::int64_t B, std::int64_t Lq, std::int64_t Lk, std::int64_t D,
                            std::int64_t Dv) {
  check_positive("attention", {{"B", B}, {"Lq", Lq}, {"Lk", Lk}, {"D", D}, {"Dv", Dv}});
}
/// Query rows per forward task: a fixed split, so a single long sequence still spreads over threads.
inline constexpr std::int64_t kAttnTileQ = 64;
}  // namespace detail

/// q [B,Lq,D], k [B,Lk,D], v [B,Lk,Dv] -> out [B,Lq,Dv]; probs [B,Lq,Lk] = softmax(scale*q k^T) saved
/// for backward.
/// Throws diffuse::Error unless every size is positive.
template <class T>
void attention_forward(std::int64_t B, std::int64_t Lq, std::int64_t Lk, std::int64_t D, std::int64_t Dv,
                       T scale, const T* q, const T* k, const T* v, T* out, T* probs) {
  detail::check_attention(B, Lq, Lk, D, Dv);
  const std::int64_t tiles = detail::ceil_div(Lq, detail::kAttnTileQ), tasks = B * tiles;
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (std::int64_t t = 0; t < tasks; ++t) {
    const std::int64_t b = t / tiles, i0 = (t % tiles) * detail::kAttnTileQ;
    const std::int64_t rows = std::min(detail::kAttnTileQ, Lq - i0);
    T* p = probs + (b * Lq + i0) * Lk;
    detail::gemm_serial(false, true, rows, Lk, D, scale, q + (b * Lq + i0) * D, D, k + b * Lk * D, D, T(0), p,
                        Lk);
    for (std::int64_t r = 0; r < rows; ++r) detail::softmax_row(Lk, p + r * Lk, p + r * Lk);
    detail::gemm_serial(false, false, rows, Dv, Lk, T(1), p, Lk, v + b * Lk * Dv, Dv, T(0),
                        out + (b * Lq + i0) * Dv, Dv);
  }
}

/// Gradients of attention_forward's inputs from gout [B,Lq,Dv] and the saved probs;
/// gq, gk, gv overwritten (same shapes as q, k, v).
template <class T>
void attention_backward(std::int64_t B, std::int64_t Lq, std::int64_t Lk, std::int64_t D, std::int64_t Dv,
                        T scale, const T* q, const T* k, const T* v, const T* probs, const T* gout, T* gq,
                        T* gk, T* gv) {
  detail::check_attention(B, Lq, Lk, D, Dv);
#pragma omp parallel if (B > 1)
  {
    std::vector<T> gs(Lq * Lk);  // per-thread scratch: gradient of the scores
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < B; ++b) {
      const T* qb = q + b * Lq * D;
      const T* kb = k + b * Lk * D;
      const T* vb = v + b * Lk * Dv;
      const T* pb = probs + b * Lq * Lk;
      const T* gob = gout + b * Lq * Dv;
      // gv = P^T gout; gP = gout v^T
      detail::gemm_serial(true, false, Lk, Dv, Lq, T(1), pb, Lk, gob, Dv, T(0), gv + b * Lk * Dv, Dv);
      detail::gemm_serial(false, true, Lq, Lk, Dv, T(1), gob, Dv, vb, Dv, T(0), gs.data(), Lk);
      // through the softmax: gS = P * (gP - rowsum(gP * P)); the scale goes into the GEMMs below
      for (std::int64_t r = 0; r < Lq; ++r)
        detail::softmax_backward_row(Lk, pb + r * Lk, gs.data() + r * Lk, gs.data() + r * Lk);
      detail::gemm_serial(false, false, Lq, D, Lk, scale, gs.data(), Lk, kb, D, T(0), gq + b * Lq * D, D);
      detail::gemm_serial(true, false, Lk, D, Lq, scale, gs.data(), Lk, qb, D, T(0), gk + b * Lk * D, D);
    }
  }
}

/// The kernels the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_KERNELS_ATTENTION_TEMPLATES(X, T)                                                       \
  X(void attention_forward<T>(std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, T,  \
                              const T*, const T*, const T*, T*, T*))                                    \
  X(void attention_backward<T>(std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, T, \
                               const T*, const T*, const T*, const T*, const T*, T*, T*, T*))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_KERNELS_ATTENTION_TEMPLATES)

}  // namespace diffuse::kernels
