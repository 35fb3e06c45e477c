/// @file
/// Differentiable per-(image, channel) broadcasts of the UNet's time conditioning, fused into one
/// pass each: add_per_channel (x + b[:, :, None, None]) and scale_shift
/// (x * (1 + scale[:, :, None, None]) + shift[:, :, None, None], diffusers' "scale_shift" norm).
/// x is [N, C, ...]; the per-channel tensors are [N, C] (or [N, 2C] for scale_shift).
#pragma once
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/kernels/common.hpp"

namespace diffuse {

namespace detail {
/// N, C and the plane size of x [N, C, ...]; throws unless `per` is [N, k*C].
template <class T>
void channel_geometry(const Tensor<T>& x, const Tensor<T>& per, std::int64_t k, const char* op,
                      std::int64_t& N, std::int64_t& C, std::int64_t& HW) {
  if (x.dim() < 2 || per.dim() != 2 || per.size(0) != x.size(0) || per.size(1) != k * x.size(1))
    throw Error(std::string(op) + ": per-channel tensor of shape " + to_string(per.shape()) +
                " does not fit input " + to_string(x.shape()) + " (expected [N, " + (k == 1 ? "C" : "2C") +
                "])");
  N = x.size(0);
  C = x.size(1);
  HW = (N * C) != 0 ? x.numel() / (N * C) : 0;
}
}  // namespace detail

/// y[n, c, ...] = x[n, c, ...] + b[n, c]
/// x is [N, C, ...] and b is [N, C]; throws diffuse::Error otherwise.
template <class T>
Tensor<T> add_per_channel(const Tensor<T>& x, const Tensor<T>& b) {
  std::int64_t N, C, HW;
  detail::channel_geometry(x, b, 1, "add_per_channel", N, C, HW);
  Tensor<T> y = Tensor<T>::empty(x.shape());
  const T *px = x.data(), *pb = b.data();
  T* py = y.data();
  detail::parallel_for_items(N * C, [&](std::int64_t nc) {
    const T v = pb[nc];
    for (std::int64_t i = 0; i < HW; ++i) py[nc * HW + i] = px[nc * HW + i] + v;
  });
  const bool nb = b.requires_grad();
  return detail::record(y, {&x, &b}, "add_per_channel", [N, C, HW, nb](const Tensor<T>& g) {
    Tensor<T> gb;
    if (nb) {
      gb = Tensor<T>::empty({N, C});
      const T* pg = g.data();
      T* pgb = gb.data();
      detail::parallel_for_items(N * C, [&](std::int64_t nc) {
        pgb[nc] = T(kernels::detail::fixed_sum<double>(HW, [&](std::int64_t i) { return pg[nc * HW + i]; }));
      });
    }
    return std::vector<Tensor<T>>{g, gb};
  });
}

/// y = x * (1 + scale) + shift with scale = ss[:, :C], shift = ss[:, C:] (torch.chunk(ss, 2, dim=1)).
/// x is [N, C, ...] and ss is [N, 2C]; throws diffuse::Error otherwise.
template <class T>
Tensor<T> scale_shift(const Tensor<T>& x, const Tensor<T>& ss) {
  std::int64_t N, C, HW;
  detail::channel_geometry(x, ss, 2, "scale_shift", N, C, HW);
  Tensor<T> y = Tensor<T>::empty(x.shape());
  const T *px = x.data(), *ps = ss.data();
  T* py = y.data();
  detail::parallel_for_items(N * C, [&](std::int64_t nc) {
    const std::int64_t n = nc / C, c = nc % C;
    const T a = T(1) + ps[n * 2 * C + c], b = ps[n * 2 * C + C + c];
    for (std::int64_t i = 0; i < HW; ++i) py[nc * HW + i] = px[nc * HW + i] * a + b;
  });
  const bool nx = x.requires_grad(), ns = ss.requires_grad();
  return detail::record(y, {&x, &ss}, "scale_shift", [x, ss, N, C, HW, nx, ns](const Tensor<T>& g) {
    Tensor<T> gx, gss;
    const T *pg = g.data(), *px = x.data(), *ps = ss.data();
    if (nx) gx = Tensor<T>::empty(x.shape());
    if (ns) gss = Tensor<T>::empty(ss.shape());
    T* pgx = nx ? gx.data() : nullptr;
    T* pgs = ns ? gss.data() : nullptr;
    detail::parallel_for_items(N * C, [&](std::int64_t nc) {
      const std::int64_t n = nc / C, c = nc % C;
      const T* gp = pg + nc * HW;
      if (pgx) {
        const T a = T(1) + ps[n * 2 * C + c];
        for (std::int64_t i = 0; i < HW; ++i) pgx[nc * HW + i] = gp[i] * a;
      }
      if (pgs) {
        const T* xp = px + nc * HW;
        pgs[n * 2 * C + c] =
            T(kernels::detail::fixed_sum<double>(HW, [&](std::int64_t i) { return double(gp[i]) * xp[i]; }));
        pgs[n * 2 * C + C + c] =
            T(kernels::detail::fixed_sum<double>(HW, [&](std::int64_t i) { return gp[i]; }));
      }
    });
    return std::vector<Tensor<T>>{gx, gss};
  });
}

/// The operations the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_AUTOGRAD_CHANNEL_OPS_TEMPLATES(X, T)                      \
  X(Tensor<T> add_per_channel<T>(const Tensor<T>& x, const Tensor<T>& b)) \
  X(Tensor<T> scale_shift<T>(const Tensor<T>& x, const Tensor<T>& ss))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_AUTOGRAD_CHANNEL_OPS_TEMPLATES)

}  // namespace diffuse
