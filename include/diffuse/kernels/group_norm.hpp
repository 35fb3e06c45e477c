/// @file
/// Group normalisation (torch.nn.GroupNorm) on [N, C, HW] buffers, forward and backward.
/// Statistics are accumulated in double in a fixed order, one (image, group) per task.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/common.hpp"

namespace diffuse::kernels {

namespace detail {
inline void check_group_norm(std::int64_t N, std::int64_t C, std::int64_t HW, std::int64_t G) {
  check_positive("group_norm", {{"N", N}, {"C", C}, {"HW", HW}, {"G", G}});
  if (C % G != 0)
    throw Error("group_norm: channel count C=" + std::to_string(C) +
                " is not divisible by the number of groups G=" + std::to_string(G));
}

/// a = sum(gy), b = sum(gy * (x - m)) over n elements, in fixed_sum's order.
template <class T>
void grad_sums(std::int64_t n, const T* gy, const T* x, double m, double& a, double& b) {
  a = fixed_sum<double>(n, [&](std::int64_t i) { return gy[i]; });
  b = fixed_sum<double>(n, [&](std::int64_t i) { return double(gy[i]) * (double(x[i]) - m); });
}
}  // namespace detail

/// GroupNorm forward (like torch.nn.functional.group_norm); throws diffuse::Error unless the
/// sizes are positive and G divides C.
/// x viewed as [N, C, HW], G groups of C/G channels; gamma/beta [C] or nullptr.
/// mean and rstd [N*G] are written for the backward pass.
template <class T>
void group_norm_forward(std::int64_t N, std::int64_t C, std::int64_t HW, std::int64_t G, T eps, const T* x,
                        const T* gamma, const T* beta, T* y, T* mean, T* rstd) {
  detail::check_group_norm(N, C, HW, G);
  const std::int64_t CG = C / G, len = CG * HW;
#pragma omp parallel for schedule(static) if (N * G > 1)
  for (std::int64_t ng = 0; ng < N * G; ++ng) {
    const T* xg = x + ng * len;  // the group's channels are contiguous
    const double m = detail::fixed_sum<double>(len, [&](std::int64_t i) { return xg[i]; }) / double(len);
    // two passes: no cancellation for inputs with a large mean
    const double v = detail::fixed_sum<double>(len, [&](std::int64_t i) {
      const double d = xg[i] - m;
      return d * d;
    });
    const double r = 1.0 / std::sqrt(v / double(len) + double(eps));
    mean[ng] = T(m);
    rstd[ng] = T(r);
    const std::int64_t g = ng % G;
    T* yg = y + ng * len;
    for (std::int64_t cc = 0; cc < CG; ++cc) {
      const std::int64_t c = g * CG + cc;
      // y = (x - m) * r * gamma + beta = x * a + b
      const T a = T(r * (gamma ? double(gamma[c]) : 1.0));
      const T b = T((beta ? double(beta[c]) : 0.0) - m * double(a));
      const T* xc = xg + cc * HW;
      T* yc = yg + cc * HW;
      for (std::int64_t i = 0; i < HW; ++i) yc[i] = xc[i] * a + b;
    }
  }
}

/// GroupNorm backward, from the mean and rstd the forward wrote;
/// gx [N,C,HW] overwritten; ggamma/gbeta [C] overwritten, may be nullptr.
template <class T>
void group_norm_backward(std::int64_t N, std::int64_t C, std::int64_t HW, std::int64_t G, const T* x,
                         const T* gamma, const T* mean, const T* rstd, const T* gy, T* gx, T* ggamma,
                         T* gbeta) {
  detail::check_group_norm(N, C, HW, G);
  if (!gx && !ggamma && !gbeta) return;
  const std::int64_t CG = C / G, len = CG * HW;
  // Per (image, channel): a = sum(gy), b = sum(gy * (x - m)). gx and ggamma/gbeta both need them,
  // so one pass over the data computes them for both.
  std::vector<double> sa(N * C), sb(N * C);
#pragma omp parallel for schedule(static) if (N * G > 1)
  for (std::int64_t ng = 0; ng < N * G; ++ng) {
    const std::int64_t g = ng % G, nc0 = ng * CG;  // first (n, c) row of the group
    const double m = mean[ng], r = rstd[ng];
    for (std::int64_t cc = 0; cc < CG; ++cc)
      detail::grad_sums(HW, gy + (nc0 + cc) * HW, x + (nc0 + cc) * HW, m, sa[nc0 + cc], sb[nc0 + cc]);
    if (!gx) continue;
    // gx = r * (d - mean(d) - xhat * mean(d * xhat)) with d = gy * gamma, xhat = (x - m) * r
    double sd = 0, sdx = 0;
    for (std::int64_t cc = 0; cc < CG; ++cc) {
      const double ga = gamma ? double(gamma[g * CG + cc]) : 1.0;
      sd += ga * sa[nc0 + cc];
      sdx += ga * sb[nc0 + cc] * r;
    }
    const double md = sd / double(len), mdx = sdx / double(len);
    for (std::int64_t cc = 0; cc < CG; ++cc) {
      const double ga = gamma ? double(gamma[g * CG + cc]) : 1.0;
      const T* xc = x + (nc0 + cc) * HW;
      const T* gc = gy + (nc0 + cc) * HW;
      T* oc = gx + (nc0 + cc) * HW;
      // gx = r*ga*gy - r*md - r*r*mdx*(x - m): one multiply-add per element
      const T k1 = T(r * ga), k2 = T(r * r * mdx), k0 = T(-r * md + r * r * mdx * m);
      for (std::int64_t i = 0; i < HW; ++i) oc[i] = k1 * gc[i] - k2 * xc[i] + k0;
    }
  }
  // ggamma = sum_n b * r, gbeta = sum_n a: per channel, over images in order.
  for (std::int64_t c = 0; c < C; ++c) {
    double sg = 0, sbeta = 0;
    for (std::int64_t n = 0; n < N; ++n) {
      sg += sb[n * C + c] * double(rstd[n * G + c / CG]);
      sbeta += sa[n * C + c];
    }
    if (ggamma) ggamma[c] = T(sg);
    if (gbeta) gbeta[c] = T(sbeta);
  }
}

/// The kernels the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_KERNELS_GROUP_NORM_TEMPLATES(X, T)                                                          \
  X(void group_norm_forward<T>(std::int64_t, std::int64_t, std::int64_t, std::int64_t, T, const T*,         \
                               const T*, const T*, T*, T*, T*))                                             \
  X(void group_norm_backward<T>(std::int64_t, std::int64_t, std::int64_t, std::int64_t, const T*, const T*, \
                                const T*, const T*, const T*, T*, T*, T*))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_KERNELS_GROUP_NORM_TEMPLATES)

}  // namespace diffuse::kernels
