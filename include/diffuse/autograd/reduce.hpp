/// @file
/// Differentiable reductions: sum and mean (all elements or over axes), max over one axis.
#pragma once
#include <limits>

#include "diffuse/autograd/elementwise.hpp"
#include "diffuse/core/precompiled.hpp"

namespace diffuse {

namespace detail {
/// Sorted, unique, normalised axes.
inline std::vector<std::size_t> reduction_axes(const std::vector<std::int64_t>& axes, std::int64_t ndim) {
  std::vector<std::size_t> out;
  for (auto a : axes) out.push_back(static_cast<std::size_t>(normalize_axis(a, ndim)));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end()) throw Error("reduction: an axis is repeated");
  return out;
}
inline Shape reduced_shape(const Shape& s, const std::vector<std::size_t>& axes, bool keepdim) {
  Shape out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced)
      out.push_back(s[i]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}
/// Broadcasts g (shape with the reduced axes kept as 1) back to `full`, times `scale`.
template <class T>
Tensor<T> expand_scaled(const Tensor<T>& g_kept, const Shape& full, T scale) {
  Tensor<T> out = Tensor<T>::empty(full);
  const T* pg = g_kept.data();
  T* po = out.data();
  const auto strides = broadcast_strides(g_kept.shape(), full);
  for_each_strided(full, strides, strides,
                   [&](std::int64_t o, std::int64_t ig, std::int64_t) { po[o] = pg[ig] * scale; });
  return out;
}
}  // namespace detail

/// Sum of all elements (a scalar tensor, like torch.sum).
template <class T>
Tensor<T> sum(const Tensor<T>& x) {
  // Fixed-order pairwise blocks so the value does not depend on the thread count.
  const std::int64_t n = x.numel(), block = 4096, nb = (n + block - 1) / block;
  std::vector<double> part(static_cast<std::size_t>(nb));
  const T* p = x.data();
  detail::parallel_for_items(nb, [&](std::int64_t b) {
    double s = 0;
    for (std::int64_t i = b * block; i < std::min(n, (b + 1) * block); ++i) s += p[i];
    part[b] = s;
  });
  double total = 0;
  for (double v : part) total += v;
  Tensor<T> out = Tensor<T>::scalar(static_cast<T>(total));
  return detail::record(out, {&x}, "sum", [s = x.shape()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{Tensor<T>::full(s, g.item())};
  });
}

/// Mean of all elements (a scalar tensor, like torch.mean); throws diffuse::Error on an empty tensor.
template <class T>
Tensor<T> mean(const Tensor<T>& x) {
  if (x.numel() == 0) throw Error("mean of an empty tensor");
  return mul_scalar(sum(x), T(1) / static_cast<T>(x.numel()));
}

/// Sum over the given axes.
/// Like torch.sum(x, dims, keepdim); throws diffuse::Error on a repeated or out-of-range axis.
template <class T>
Tensor<T> sum(const Tensor<T>& x, const std::vector<std::int64_t>& axes, bool keepdim = false) {
  auto ax = detail::reduction_axes(axes, x.dim());
  std::vector<bool> reduce(static_cast<std::size_t>(x.dim()), false);
  for (auto a : ax) reduce[a] = true;
  Tensor<T> out =
      detail::sum_keepdim(x, reduce).detach().reshape(detail::reduced_shape(x.shape(), ax, keepdim));
  return detail::record(out, {&x}, "sum_axes", [full = x.shape(), ax](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{
        detail::expand_scaled(g.detach().reshape(detail::reduced_shape(full, ax, true)), full, T(1))};
  });
}

/// Mean over the given axes (like torch.mean(x, dims, keepdim)); throws diffuse::Error when
/// they hold no element.
template <class T>
Tensor<T> mean(const Tensor<T>& x, const std::vector<std::int64_t>& axes, bool keepdim = false) {
  auto ax = detail::reduction_axes(axes, x.dim());
  std::int64_t count = 1;
  for (auto a : ax) count *= x.shape()[a];
  if (count == 0) throw Error("mean over an empty axis of shape " + to_string(x.shape()));
  return mul_scalar(sum(x, axes, keepdim), T(1) / static_cast<T>(count));
}

/// Maximum over one axis; the gradient goes to the (first) maximal element.
/// The values of torch.max(x, axis, keepdim).
template <class T>
Tensor<T> max(const Tensor<T>& x, std::int64_t axis, bool keepdim = false) {
  const std::int64_t a = normalize_axis(axis, x.dim());
  const Shape& s = x.shape();
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t i = 0; i < a; ++i) outer *= s[i];
  for (std::int64_t i = a + 1; i < x.dim(); ++i) inner *= s[i];
  const std::int64_t n = s[a];
  if (n == 0) throw Error("max over an empty axis of shape " + to_string(s));
  Tensor<T> out = Tensor<T>::empty(detail::reduced_shape(s, {static_cast<std::size_t>(a)}, keepdim));
  auto arg = std::make_shared<std::vector<std::int64_t>>(static_cast<std::size_t>(outer * inner));
  const T* p = x.data();
  T* po = out.data();
  detail::parallel_for(outer * inner, [&](std::int64_t oi) {
    const std::int64_t o = oi / inner, i = oi % inner;
    std::int64_t best = 0;
    for (std::int64_t k = 1; k < n; ++k)
      if (p[(o * n + k) * inner + i] > p[(o * n + best) * inner + i]) best = k;
    po[oi] = p[(o * n + best) * inner + i];
    (*arg)[oi] = (o * n + best) * inner + i;
  });
  return detail::record(out, {&x}, "max", [s, arg](const Tensor<T>& g) {
    Tensor<T> gx = Tensor<T>::zeros(s);
    for (std::size_t k = 0; k < arg->size(); ++k) gx.data()[(*arg)[k]] = g.data()[k];
    return std::vector<Tensor<T>>{gx};
  });
}

/// Maximum of all elements (not differentiable; for inspection and tolerances).
template <class T>
T max_value(const Tensor<T>& x) {
  if (x.numel() == 0) throw Error("max_value of an empty tensor");
  return *std::max_element(x.begin(), x.end());
}

/// max |x|
/// Not differentiable; 0 for an empty tensor.
template <class T>
T max_abs(const Tensor<T>& x) {
  T m = 0;
  for (T v : x) m = std::max(m, std::abs(v));
  return m;
}

/// The operations the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_AUTOGRAD_REDUCE_TEMPLATES(X, T)                                                 \
  X(Tensor<T> sum<T>(const Tensor<T>& x))                                                       \
  X(Tensor<T> mean<T>(const Tensor<T>& x))                                                      \
  X(Tensor<T> sum<T>(const Tensor<T>& x, const std::vector<std::int64_t>& axes, bool keepdim))  \
  X(Tensor<T> mean<T>(const Tensor<T>& x, const std::vector<std::int64_t>& axes, bool keepdim)) \
  X(Tensor<T> max<T>(const Tensor<T>& x, std::int64_t axis, bool keepdim))                      \
  X(T max_value<T>(const Tensor<T>& x))                                                         \
  X(T max_abs<T>(const Tensor<T>& x))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_AUTOGRAD_REDUCE_TEMPLATES)

}  // namespace diffuse
