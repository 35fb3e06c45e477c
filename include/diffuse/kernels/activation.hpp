/// @file
/// SiLU (x * sigmoid(x)) forward and backward with Eigen's vectorised exp: the activation of
/// every UNet block, where a scalar expf per element is a measurable part of a training step.
/// Work is cut into fixed chunks and blocks of kPacketBlock (16) elements at fixed offsets, so
/// results do not depend on the thread count or on the buffers' alignment.
#pragma once
#include <algorithm>
#include <cstdint>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/common.hpp"
#include "diffuse/kernels/packet.hpp"

namespace diffuse::kernels {

namespace detail {
inline constexpr std::int64_t kActivationChunk = 1 << 14;  // elements per parallel task

/// Calls block(offset, count) over [0, n) in blocks of kPacketBlock elements (the last may be
/// shorter), chunked across threads at fixed boundaries.
template <class F>
void for_each_block(std::int64_t n, F&& block) {
  const std::int64_t chunks = (n + kActivationChunk - 1) / kActivationChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t end = std::min(n, (c + 1) * kActivationChunk);
    for (std::int64_t i = c * kActivationChunk; i < end; i += kPacketBlock)
      block(i, std::min<std::int64_t>(kPacketBlock, end - i));
  }
}
}  // namespace detail

/// y = x / (1 + exp(-x))
/// for n elements (the forward of diffuse::silu()).
template <class T>
void silu_forward(std::int64_t n, const T* x, T* y) {
  namespace ei = Eigen::internal;
  using P = detail::Packet<T>;
  constexpr int B = detail::kPacketBlock;
  auto block = [](const T* xs, T* ys) {  // one block, in registers
    const P one = ei::pset1<P>(T(1));
    for (int j = 0; j < B; j += detail::kPacketSize<T>) {
      const P v = ei::ploadu<P>(xs + j);
      ei::pstoreu(ys + j, ei::pdiv(v, ei::padd(one, ei::pexp(ei::pnegate(v)))));
    }
  };
  detail::for_each_block(n, [&](std::int64_t i, std::int64_t m) {
    if (m == B) return block(x + i, y + i);
    T v[B] = {}, out[B];  // the tail, padded to a full block: the same packet code
    std::copy_n(x + i, m, v);
    block(v, out);
    std::copy_n(out, m, y + i);
  });
}

/// gx = gy * s * (1 + x * (1 - s)), s = sigmoid(x)
/// for n elements (the backward of diffuse::silu()).
template <class T>
void silu_backward(std::int64_t n, const T* x, const T* gy, T* gx) {
  namespace ei = Eigen::internal;
  using P = detail::Packet<T>;
  constexpr int B = detail::kPacketBlock;
  auto block = [](const T* xs, const T* gs, T* out) {  // one block, in registers
    const P one = ei::pset1<P>(T(1));
    for (int j = 0; j < B; j += detail::kPacketSize<T>) {
      const P v = ei::ploadu<P>(xs + j), g = ei::ploadu<P>(gs + j);
      const P s = ei::pdiv(one, ei::padd(one, ei::pexp(ei::pnegate(v))));
      ei::pstoreu(out + j, ei::pmul(ei::pmul(g, s), ei::padd(one, ei::pmul(v, ei::psub(one, s)))));
    }
  };
  detail::for_each_block(n, [&](std::int64_t i, std::int64_t m) {
    if (m == B) return block(x + i, gy + i, gx + i);
    T v[B] = {}, g[B] = {}, out[B];
    std::copy_n(x + i, m, v);
    std::copy_n(gy + i, m, g);
    block(v, g, out);
    std::copy_n(out, m, gx + i);
  });
}

/// The kernels the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_KERNELS_ACTIVATION_TEMPLATES(X, T)    \
  X(void silu_forward<T>(std::int64_t, const T*, T*)) \
  X(void silu_backward<T>(std::int64_t, const T*, const T*, T*))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_KERNELS_ACTIVATION_TEMPLATES)

}  // namespace diffuse::kernels
