// Views that share storage with their base: reshape, unsqueeze/squeeze, select and slice
// along the first axis. Each is differentiable.
#pragma once
#include "diffuse/autograd/function.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse {

namespace detail {
template <class T>
Tensor<T> make_view(const Tensor<T>& base, const Shape& shape, std::int64_t extra_offset) {
  auto impl = std::make_shared<TensorImpl<T>>();
  impl->storage = base.impl()->storage;
  impl->offset = base.impl()->offset + extra_offset;
  impl->shape = shape;
  return Tensor<T>::from_impl(impl);
}
}  // namespace detail

template <class T>
Tensor<T> Tensor<T>::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  std::int64_t known = 1, infer = -1;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw Error("reshape: only one extent may be -1 in " + to_string(new_shape));
      infer = static_cast<std::int64_t>(i);
    } else if (s[i] < 0) {
      throw Error("reshape: invalid extent in " + to_string(new_shape));
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel() % known != 0)
      throw Error("reshape: cannot reshape tensor of shape " + to_string(shape()) + " into " + to_string(new_shape));
    s[infer] = numel() / known;
  }
  if (numel_of(s) != numel())
    throw Error("reshape: cannot reshape tensor of shape " + to_string(shape()) + " (" + std::to_string(numel()) +
                " elements) into " + to_string(new_shape));
  Shape old = shape();
  return detail::record(detail::make_view(*this, s, 0), {this}, "reshape",
                        [old](const Tensor<T>& g) { return std::vector<Tensor<T>>{g.reshape(old)}; });
}

template <class T>
Tensor<T> Tensor<T>::unsqueeze(std::int64_t axis) const {
  Shape s = shape();
  std::int64_t a = normalize_axis(axis, dim() + 1);
  s.insert(s.begin() + a, 1);
  return reshape(s);
}

template <class T>
Tensor<T> Tensor<T>::squeeze(std::int64_t axis) const {
  Shape s = shape();
  std::int64_t a = normalize_axis(axis, dim());
  if (s[a] != 1) throw Error("squeeze: axis " + std::to_string(axis) + " of shape " + to_string(s) + " is not 1");
  s.erase(s.begin() + a);
  return reshape(s);
}

template <class T>
Tensor<T> Tensor<T>::slice(std::int64_t begin, std::int64_t end) const {
  if (dim() == 0) throw Error("slice: a scalar has no first axis");
  const std::int64_t n = shape()[0];
  if (begin < 0) begin += n;
  if (end < 0) end += n;
  if (begin < 0 || end > n || begin > end)
    throw Error("slice [" + std::to_string(begin) + ", " + std::to_string(end) + ") is out of range for shape " +
                to_string(shape()));
  Shape s = shape();
  s[0] = end - begin;
  const std::int64_t row = n ? numel() / n : 0;
  Shape full = shape();
  return detail::record(detail::make_view(*this, s, begin * row), {this}, "slice",
                        [full, begin, row](const Tensor<T>& g) {
                          Tensor<T> out = Tensor<T>::zeros(full);
                          std::copy(g.begin(), g.end(), out.data() + begin * row);
                          return std::vector<Tensor<T>>{out};
                        });
}

template <class T>
Tensor<T> Tensor<T>::select(std::int64_t i) const {
  if (dim() == 0) throw Error("select: a scalar has no first axis");
  const std::int64_t n = shape()[0];
  if (i < -n || i >= n)
    throw Error("index " + std::to_string(i) + " is out of range for the first axis of shape " + to_string(shape()));
  if (i < 0) i += n;
  Shape s(shape().begin() + 1, shape().end());
  return slice(i, i + 1).reshape(s);
}

}  // namespace diffuse
