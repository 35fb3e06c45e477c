/// @file
/// SiLU (x * sigmoid(x)) forward and backward with Eigen's vectorised exp: the activation of
/// every UNet block, where a scalar expf per element is a measurable part of a training step.
/// Work is cut into fixed chunks and 16-element blocks at fixed offsets, so results do not
/// depend on the thread count or on the buffers' alignment.
#pragma once
// See gemm.hpp: GCC 12 false (maybe-)uninitialized warnings in AVX-512 intrinsics inlined from
// Eigen (here from the min/max inside its vectorised exp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>
#include <algorithm>
#include <cstdint>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/common.hpp"

namespace diffuse::kernels {

namespace detail {
inline constexpr std::int64_t kActivationChunk = 1 << 14;  // elements per parallel task

/// Calls block(offset, count) over [0, n) in 16-element blocks (the last may be shorter),
/// chunked across threads at fixed boundaries.
template <class F>
void for_each_block16(std::int64_t n, F&& block) {
  const std::int64_t chunks = (n + kActivationChunk - 1) / kActivationChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t end = std::min(n, (c + 1) * kActivationChunk);
    for (std::int64_t i = c * kActivationChunk; i < end; i += 16)
      block(i, std::min<std::int64_t>(16, end - i));
  }
}
}  // namespace detail

/// y = x / (1 + exp(-x))
/// for n elements (the forward of diffuse::silu()).
template <class T>
void silu_forward(std::int64_t n, const T* x, T* y) {
  using Block = Eigen::Array<T, 16, 1>;
  auto f = [](const Block& v) -> Block { return v / (T(1) + (-v).exp()); };
  detail::for_each_block16(n, [&](std::int64_t i, std::int64_t m) {
    if (m == 16) {  // fixed-size maps: packet code only, whatever the alignment
      Eigen::Map<Block>(y + i) = f(Eigen::Map<const Block>(x + i));
      return;
    }
    Block v = Block::Zero();  // the tail, padded to a full block: the same packet code
    for (std::int64_t j = 0; j < m; ++j) v[j] = x[i + j];
    const Block out = f(v);
    for (std::int64_t j = 0; j < m; ++j) y[i + j] = out[j];
  });
}

/// gx = gy * s * (1 + x * (1 - s)), s = sigmoid(x)
/// for n elements (the backward of diffuse::silu()).
template <class T>
void silu_backward(std::int64_t n, const T* x, const T* gy, T* gx) {
  using Block = Eigen::Array<T, 16, 1>;
  auto f = [](const Block& v, const Block& g) -> Block {
    const Block s = T(1) / (T(1) + (-v).exp());
    return g * s * (T(1) + v * (T(1) - s));
  };
  detail::for_each_block16(n, [&](std::int64_t i, std::int64_t m) {
    if (m == 16) {
      Eigen::Map<Block>(gx + i) = f(Eigen::Map<const Block>(x + i), Eigen::Map<const Block>(gy + i));
      return;
    }
    Block v = Block::Zero(), g = Block::Zero();
    for (std::int64_t j = 0; j < m; ++j) v[j] = x[i + j], g[j] = gy[i + j];
    const Block out = f(v, g);
    for (std::int64_t j = 0; j < m; ++j) gx[i + j] = out[j];
  });
}

/// The kernels the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_KERNELS_ACTIVATION_TEMPLATES(X, T)    \
  X(void silu_forward<T>(std::int64_t, const T*, T*)) \
  X(void silu_backward<T>(std::int64_t, const T*, const T*, T*))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_KERNELS_ACTIVATION_TEMPLATES)

}  // namespace diffuse::kernels

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
