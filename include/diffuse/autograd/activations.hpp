/// @file
/// Differentiable activations beyond elementwise.hpp's silu/relu/sigmoid/tanh: GELU (exact, erf form,
/// like torch.nn.GELU()) and Mish (x * tanh(softplus(x)), like torch.nn.Mish). Each is one fused
/// elementwise pass forward and one backward.
#pragma once
#include <cmath>
#include <numbers>

#include "diffuse/autograd/elementwise.hpp"
#include "diffuse/core/precompiled.hpp"

namespace diffuse {

/// GELU(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); derivative Phi(x) + x phi(x).
template <class T>
Tensor<T> gelu(const Tensor<T>& x) {
  constexpr T inv_sqrt2 = T(1) / std::numbers::sqrt2_v<T>;
  constexpr T inv_sqrt_2pi = std::numbers::inv_sqrtpi_v<T> * inv_sqrt2;
  return detail::unary(
      x, "gelu", [](T v) { return T(0.5) * v * (T(1) + std::erf(v * inv_sqrt2)); },
      [](T v, T) {
        return T(0.5) * (T(1) + std::erf(v * inv_sqrt2)) + v * inv_sqrt_2pi * std::exp(T(-0.5) * v * v);
      });
}

namespace detail {
/// log(1 + e^v) without overflow (torch.nn.functional.softplus with threshold 20 returns v above it).
template <class T>
T softplus(T v) {
  return v > T(20) ? v : std::log1p(std::exp(v));
}
}  // namespace detail

/// Mish(x) = x tanh(softplus(x)); derivative tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2).
template <class T>
Tensor<T> mish(const Tensor<T>& x) {
  return detail::unary(
      x, "mish", [](T v) { return v * std::tanh(detail::softplus(v)); },
      [](T v, T) {
        const T t = std::tanh(detail::softplus(v));
        const T s = T(1) / (T(1) + std::exp(-v));
        return t + v * s * (T(1) - t * t);
      });
}

/// The operations the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_AUTOGRAD_ACTIVATIONS_TEMPLATES(X, T) \
  X(Tensor<T> gelu<T>(const Tensor<T>& x))           \
  X(Tensor<T> mish<T>(const Tensor<T>& x))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_AUTOGRAD_ACTIVATIONS_TEMPLATES)

}  // namespace diffuse
