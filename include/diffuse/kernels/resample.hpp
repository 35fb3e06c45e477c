/// @file
/// Resampling of image planes (P = N*C planes of H x W): nearest 2x upsampling and 2x2/stride-2
/// max and average pooling (odd sizes drop the last row/column, like PyTorch), forward and backward.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/common.hpp"

namespace diffuse::kernels {

namespace detail {
inline void check_pool(const char* what, std::int64_t P, std::int64_t H, std::int64_t W) {
  check_positive(what, {{"P", P}, {"H", H}, {"W", W}});
  if (H < 2 || W < 2)
    throw Error(std::string(what) + ": a 2x2 pool needs H, W >= 2, got H=" + std::to_string(H) +
                ", W=" + std::to_string(W));
}
}  // namespace detail

/// Nearest 2x upsampling of x [P,H,W] (like F.interpolate(x, scale_factor=2, mode="nearest")):
/// y [P,2H,2W]
template <class T>
void upsample_nearest2x_forward(std::int64_t P, std::int64_t H, std::int64_t W, const T* x, T* y) {
  detail::check_positive("upsample_nearest2x", {{"P", P}, {"H", H}, {"W", W}});
#pragma omp parallel for schedule(static) if (P * H * W > (1 << 14))
  for (std::int64_t p = 0; p < P; ++p)
    for (std::int64_t i = 0; i < H; ++i) {
      const T* in = x + (p * H + i) * W;
      T* out = y + (p * 2 * H + 2 * i) * 2 * W;
      for (std::int64_t j = 0; j < W; ++j) out[2 * j] = out[2 * j + 1] = in[j];
      std::copy(out, out + 2 * W, out + 2 * W);  // the second output row is the same
    }
}

/// gx [P,H,W] overwritten: each input pixel collects its 2x2 block of gy.
template <class T>
void upsample_nearest2x_backward(std::int64_t P, std::int64_t H, std::int64_t W, const T* gy, T* gx) {
  detail::check_positive("upsample_nearest2x", {{"P", P}, {"H", H}, {"W", W}});
#pragma omp parallel for schedule(static) if (P * H * W > (1 << 14))
  for (std::int64_t p = 0; p < P; ++p)
    for (std::int64_t i = 0; i < H; ++i) {
      const T* g0 = gy + (p * 2 * H + 2 * i) * 2 * W;
      const T* g1 = g0 + 2 * W;
      T* out = gx + (p * H + i) * W;
      for (std::int64_t j = 0; j < W; ++j) out[j] = (g0[2 * j] + g0[2 * j + 1]) + (g1[2 * j] + g1[2 * j + 1]);
    }
}

/// 2x2, stride-2 max pooling of x [P,H,W] (like F.max_pool2d(x, 2)); throws diffuse::Error
/// when H or W is below 2.
/// y [P,H/2,W/2]; argmax [P,H/2,W/2] (or nullptr: not wanted) holds the flat input index (i*W + j) of
/// the max within the plane (the first one on ties).
template <class T>
void max_pool2x_forward(std::int64_t P, std::int64_t H, std::int64_t W, const T* x, T* y,
                        std::int32_t* argmax) {
  detail::check_pool("max_pool2x", P, H, W);
  const std::int64_t OH = H / 2, OW = W / 2;
#pragma omp parallel for schedule(static) if (P * H * W > (1 << 14))
  for (std::int64_t p = 0; p < P; ++p)
    for (std::int64_t i = 0; i < OH; ++i) {
      const T* r0 = x + (p * H + 2 * i) * W;
      const T* r1 = r0 + W;
      T* out = y + (p * OH + i) * OW;
      if (!argmax) {  // no-grad: branch-free, vectorised; the same order as below, so the same value
        for (std::int64_t j = 0; j < OW; ++j)
          out[j] = std::max(std::max(std::max(r0[2 * j], r0[2 * j + 1]), r1[2 * j]), r1[2 * j + 1]);
        continue;
      }
      std::int32_t* arg = argmax + (p * OH + i) * OW;
      for (std::int64_t j = 0; j < OW; ++j) {
        const T* xp = x + p * H * W;
        std::int64_t best = 2 * i * W + 2 * j;
        for (std::int64_t idx : {2 * i * W + 2 * j + 1, (2 * i + 1) * W + 2 * j, (2 * i + 1) * W + 2 * j + 1})
          if (xp[idx] > xp[best]) best = idx;
        out[j] = xp[best];
        arg[j] = static_cast<std::int32_t>(best);
      }
    }
}

/// gx [P,H,W] overwritten: gy goes to the max of each window, zero elsewhere.
template <class T>
void max_pool2x_backward(std::int64_t P, std::int64_t H, std::int64_t W, const std::int32_t* argmax,
                         const T* gy, T* gx) {
  detail::check_pool("max_pool2x", P, H, W);
  const std::int64_t OHW = (H / 2) * (W / 2);
#pragma omp parallel for schedule(static) if (P * H * W > (1 << 14))
  for (std::int64_t p = 0; p < P; ++p) {
    T* gp = gx + p * H * W;
    std::fill(gp, gp + H * W, T(0));
    for (std::int64_t o = 0; o < OHW; ++o) gp[argmax[p * OHW + o]] += gy[p * OHW + o];
  }
}

/// 2x2, stride-2 average pooling of x [P,H,W] (like F.avg_pool2d(x, 2)); throws diffuse::Error
/// when H or W is below 2.
/// y [P,H/2,W/2] = mean of each 2x2 window.
template <class T>
void avg_pool2x_forward(std::int64_t P, std::int64_t H, std::int64_t W, const T* x, T* y) {
  detail::check_pool("avg_pool2x", P, H, W);
  const std::int64_t OH = H / 2, OW = W / 2;
#pragma omp parallel for schedule(static) if (P * H * W > (1 << 14))
  for (std::int64_t p = 0; p < P; ++p)
    for (std::int64_t i = 0; i < OH; ++i) {
      const T* r0 = x + (p * H + 2 * i) * W;
      const T* r1 = r0 + W;
      T* out = y + (p * OH + i) * OW;
      for (std::int64_t j = 0; j < OW; ++j)
        out[j] = T(0.25) * ((r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]));
    }
}

/// gx [P,H,W] overwritten: a quarter of gy to each pixel of its window (zero on a dropped odd edge).
template <class T>
void avg_pool2x_backward(std::int64_t P, std::int64_t H, std::int64_t W, const T* gy, T* gx) {
  detail::check_pool("avg_pool2x", P, H, W);
  const std::int64_t OH = H / 2, OW = W / 2;
#pragma omp parallel for schedule(static) if (P * H * W > (1 << 14))
  for (std::int64_t p = 0; p < P; ++p) {
    T* gp = gx + p * H * W;
    std::fill(gp, gp + H * W, T(0));
    for (std::int64_t i = 0; i < OH; ++i)
      for (std::int64_t j = 0; j < OW; ++j) {
        const T g = T(0.25) * gy[(p * OH + i) * OW + j];
        gp[2 * i * W + 2 * j] = gp[2 * i * W + 2 * j + 1] = g;
        gp[(2 * i + 1) * W + 2 * j] = gp[(2 * i + 1) * W + 2 * j + 1] = g;
      }
  }
}

/// The kernels the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_KERNELS_RESAMPLE_TEMPLATES(X, T)                                                         \
  X(void upsample_nearest2x_forward<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*))          \
  X(void upsample_nearest2x_backward<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*))         \
  X(void max_pool2x_forward<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*, std::int32_t*))   \
  X(void max_pool2x_backward<T>(std::int64_t, std::int64_t, std::int64_t, const std::int32_t*, const T*, \
                                T*))                                                                     \
  X(void avg_pool2x_forward<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*))                  \
  X(void avg_pool2x_backward<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_KERNELS_RESAMPLE_TEMPLATES)

}  // namespace diffuse::kernels
