/// @file
/// Zero-copy views of a Tensor as an xtensor expression or an Eigen matrix, for code that
/// wants those libraries' algorithms on diffuse's memory.
#pragma once
#include <Eigen/Core>
#include <xtensor/xadapt.hpp>

#include "diffuse/core/tensor.hpp"

namespace diffuse {

namespace detail {
inline std::vector<std::size_t> xshape(const Shape& s) {
  return std::vector<std::size_t>(s.begin(), s.end());
}
}  // namespace detail

/// An xtensor adaptor over the tensor's buffer (writes go to the tensor).
template <class T>
auto as_xtensor(Tensor<T>& t) {
  return xt::adapt(t.data(), static_cast<std::size_t>(t.numel()), xt::no_ownership(),
                   detail::xshape(t.shape()));
}
/// The same over a const tensor (read-only).
template <class T>
auto as_xtensor(const Tensor<T>& t) {
  return xt::adapt(t.data(), static_cast<std::size_t>(t.numel()), xt::no_ownership(),
                   detail::xshape(t.shape()));
}

/// A dynamic-size, row-major Eigen matrix: the layout of a 2-D Tensor.
template <class T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A 2-D tensor as a row-major Eigen map.
/// Writes go to the tensor. Throws diffuse::Error unless the tensor is 2-D.
template <class T>
Eigen::Map<RowMajorMatrix<T>> as_eigen(Tensor<T>& t) {
  if (t.dim() != 2) throw Error("as_eigen: needs a 2-D tensor, got shape " + to_string(t.shape()));
  return Eigen::Map<RowMajorMatrix<T>>(t.data(), t.size(0), t.size(1));
}
/// The same over a const tensor (read-only).
template <class T>
Eigen::Map<const RowMajorMatrix<T>> as_eigen(const Tensor<T>& t) {
  if (t.dim() != 2) throw Error("as_eigen: needs a 2-D tensor, got shape " + to_string(t.shape()));
  return Eigen::Map<const RowMajorMatrix<T>>(t.data(), t.size(0), t.size(1));
}

}  // namespace diffuse
