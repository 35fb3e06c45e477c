/// @file
/// Gradient clipping with torch.nn.utils semantics:
/// @code
///   double total = optim::clip_grad_norm_(model.parameters(), 1.0);       // 2-norm over all grads
///   optim::clip_grad_norm_(params, 1.0, std::numeric_limits<double>::infinity());  // max |g|
///   optim::clip_grad_value_(params, 0.5);                                   // clamp each element
/// @endcode
/// clip_grad_norm_ computes the norm of all gradients together (as if concatenated), scales them
/// by max_norm / (total + 1e-6) when that is below 1, and returns the total norm. Parameters
/// without a gradient are skipped.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "diffuse/core/parallel.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse::optim {

/// The norm of all gradients together: p-norm for finite p > 0, max |g| for p = infinity.
template <class T>
double grad_norm(const std::vector<Tensor<T>>& parameters, double norm_type = 2.0) {
  if (!(norm_type > 0))
    throw Error("grad_norm: norm_type must be positive (or infinity), got " + std::to_string(norm_type));
  const bool inf = std::isinf(norm_type);
  double acc = 0;
  for (const auto& p : parameters) {
    if (!p.defined()) throw Error("grad_norm: undefined parameter tensor");
    const Tensor<T> g = p.grad();
    if (!g.defined()) continue;
    const T* d = g.data();
    const std::int64_t n = g.numel();
    // Sequential per tensor: a fixed summation order, whatever the thread count.
    double part = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const double a = std::abs(static_cast<double>(d[i]));
      if (inf) {
        if (a > part || std::isnan(a)) part = a;  // NaN sticks: NaN > x is false
      } else if (norm_type == 2.0)
        part += a * a;
      else if (norm_type == 1.0)
        part += a;
      else
        part += std::pow(a, norm_type);
    }
    if (!inf)
      acc += part;
    else if (part > acc || std::isnan(part))
      acc = part;
  }
  if (inf) return acc;
  return norm_type == 2.0 ? std::sqrt(acc) : norm_type == 1.0 ? acc : std::pow(acc, 1.0 / norm_type);
}

/// Scales the gradients in place so that their total norm is at most max_norm; returns the
/// total norm before clipping. With error_if_nonfinite a NaN or infinite norm throws.
template <class T>
double clip_grad_norm_(const std::vector<Tensor<T>>& parameters, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false) {
  if (!(max_norm >= 0))
    throw Error("clip_grad_norm_: max_norm must be non-negative, got " + std::to_string(max_norm));
  const double total = grad_norm(parameters, norm_type);
  if (error_if_nonfinite && !std::isfinite(total))
    throw Error("clip_grad_norm_: the total norm of order " + std::to_string(norm_type) +
                " of the gradients is non-finite (" + std::to_string(total) + "), so it cannot be clipped");
  const double coef = max_norm / (total + 1e-6);
  if (coef >= 1.0) return total;  // torch clamps the coefficient to 1 (a no-op multiply); NaN propagates
  const T c = static_cast<T>(coef);
  for (const auto& p : parameters) {
    Tensor<T> g = p.grad();
    if (!g.defined()) continue;
    T* d = g.data();
    diffuse::detail::parallel_for(g.numel(), [&](std::int64_t i) { d[i] *= c; });
  }
  return total;
}

/// Clamps every gradient element to [-clip_value, clip_value].
template <class T>
void clip_grad_value_(const std::vector<Tensor<T>>& parameters, double clip_value) {
  if (!(clip_value >= 0))
    throw Error("clip_grad_value_: clip_value must be non-negative, got " + std::to_string(clip_value));
  const T c = static_cast<T>(clip_value);
  for (const auto& p : parameters) {
    Tensor<T> g = p.grad();
    if (!g.defined()) continue;
    T* d = g.data();
    diffuse::detail::parallel_for(g.numel(), [&](std::int64_t i) { d[i] = std::clamp(d[i], -c, c); });
  }
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_OPTIM_CLIP_GRAD_TEMPLATES(X, T)                                      \
  X(double grad_norm<T>(const std::vector<Tensor<T>>& parameters, double norm_type)) \
  X(void clip_grad_value_<T>(const std::vector<Tensor<T>>& parameters, double clip_value))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_OPTIM_CLIP_GRAD_TEMPLATES)

}  // namespace diffuse::optim
