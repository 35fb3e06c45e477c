/// @file
/// Differentiable layout changes that copy: permute/transpose and concatenation.
#pragma once
#include <numeric>

#include "diffuse/autograd/elementwise.hpp"
#include "diffuse/core/precompiled.hpp"

namespace diffuse {

/// Reorders the axes (like torch.permute) into a new contiguous tensor.
template <class T>
Tensor<T> permute(const Tensor<T>& x, const std::vector<std::int64_t>& dims) {
  if (static_cast<std::int64_t>(dims.size()) != x.dim())
    throw Error("permute: " + std::to_string(dims.size()) + " axes given for a tensor of shape " +
                to_string(x.shape()));
  std::vector<std::size_t> perm;
  std::vector<bool> used(dims.size(), false);
  Shape out_shape;
  for (auto d : dims) {
    auto a = static_cast<std::size_t>(normalize_axis(d, x.dim()));
    if (used[a]) throw Error("permute: axis repeated in the permutation");
    used[a] = true;
    perm.push_back(a);
    out_shape.push_back(x.shape()[a]);
  }
  Tensor<T> out = Tensor<T>::empty(out_shape);
  // Output axis k walks input axis perm[k].
  const Shape in_strides = contiguous_strides(x.shape());
  std::vector<std::int64_t> strides(perm.size());
  for (std::size_t k = 0; k < perm.size(); ++k) strides[k] = in_strides[perm[k]];
  const T* px = x.data();
  T* po = out.data();
  detail::for_each_strided(out_shape, strides, strides,
                           [&](std::int64_t o, std::int64_t i, std::int64_t) { po[o] = px[i]; });
  std::vector<std::int64_t> inverse(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<std::int64_t>(i);
  return detail::record(out, {&x}, "permute", [inverse](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{permute(g, inverse)};
  });
}

/// Swaps two axes, into a new contiguous tensor (like torch.transpose, which returns a view).
template <class T>
Tensor<T> transpose(const Tensor<T>& x, std::int64_t a, std::int64_t b) {
  std::vector<std::int64_t> dims(static_cast<std::size_t>(x.dim()));
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[normalize_axis(a, x.dim())], dims[normalize_axis(b, x.dim())]);
  return permute(x, dims);
}

/// Joins tensors along an axis (like torch.cat); the other extents must agree (diffuse::Error otherwise).
template <class T>
Tensor<T> concat(const std::vector<Tensor<T>>& xs, std::int64_t axis = 0) {
  if (xs.empty()) throw Error("concat: no tensors given");
  const Shape& s0 = xs[0].shape();
  const std::int64_t a = normalize_axis(axis, xs[0].dim());
  Shape out_shape = s0;
  out_shape[a] = 0;
  for (auto& t : xs) {
    bool ok = t.dim() == xs[0].dim();
    for (std::int64_t i = 0; ok && i < t.dim(); ++i) ok = (i == a) || t.shape()[i] == s0[i];
    if (!ok)
      throw Error("concat along axis " + std::to_string(axis) + ": shape " + to_string(t.shape()) +
                  " does not match " + to_string(s0));
    out_shape[a] += t.shape()[a];
  }
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t i = 0; i < a; ++i) outer *= s0[i];
  for (std::int64_t i = a + 1; i < xs[0].dim(); ++i) inner *= s0[i];
  Tensor<T> out = Tensor<T>::empty(out_shape);
  std::vector<std::int64_t> extents;
  const std::int64_t out_row = out_shape[a] * inner;
  std::int64_t offset = 0;
  for (auto& t : xs) {
    const std::int64_t row = t.shape()[a] * inner;
    const T* src = t.data();
    T* dst = out.data() + offset;
    detail::parallel_for_items(
        outer, [&](std::int64_t o) { std::copy(src + o * row, src + (o + 1) * row, dst + o * out_row); });
    extents.push_back(t.shape()[a]);
    offset += row;
  }
  return detail::record(out, xs, "concat", [extents, outer, inner, out_row, xs_shapes = [&] {
                          std::vector<Shape> v;
                          for (auto& t : xs) v.push_back(t.shape());
                          return v;
                        }()](const Tensor<T>& g) {
    std::vector<Tensor<T>> grads;
    std::int64_t off = 0;
    for (std::size_t k = 0; k < extents.size(); ++k) {
      Tensor<T> gk = Tensor<T>::empty(xs_shapes[k]);
      const std::int64_t row = extents[k] * inner;
      for (std::int64_t o = 0; o < outer; ++o)
        std::copy(g.data() + o * out_row + off, g.data() + o * out_row + off + row, gk.data() + o * row);
      off += row;
      grads.push_back(gk);
    }
    return grads;
  });
}

/// The operations the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_AUTOGRAD_SHAPE_OPS_TEMPLATES(X, T)                                   \
  X(Tensor<T> permute<T>(const Tensor<T>& x, const std::vector<std::int64_t>& dims)) \
  X(Tensor<T> transpose<T>(const Tensor<T>& x, std::int64_t a, std::int64_t b))      \
  X(Tensor<T> concat<T>(const std::vector<Tensor<T>>& xs, std::int64_t axis))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_AUTOGRAD_SHAPE_OPS_TEMPLATES)

}  // namespace diffuse
