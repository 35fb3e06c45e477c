/// @file
/// TensorDataset: samples that are already a tensor [N, ...] (e.g. 2-D points for toy
/// diffusion models, or preprocessed images), with optional integer labels. Models the
/// DataLoader's Dataset concept.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse::data {

/// The slices of one tensor along dim 0, like torch.utils.data.TensorDataset (with optional labels).
template <class T = float>
class TensorDataset {
 public:
  /// data [N, ...]; labels empty (all 0) or one per sample.
  /// Error for an undefined or 0-d tensor, or a wrong number of labels.
  explicit TensorDataset(Tensor<T> data, std::vector<std::int64_t> labels = {})
      : data_(std::move(data)), labels_(std::move(labels)) {
    if (!data_.defined() || data_.dim() < 1) throw Error("TensorDataset: data must be a tensor [N, ...]");
    if (!labels_.empty() && static_cast<std::int64_t>(labels_.size()) != data_.size(0))
      throw Error("TensorDataset: " + std::to_string(labels_.size()) + " labels for " +
                  std::to_string(data_.size(0)) + " samples");
    shape_.assign(data_.shape().begin() + 1, data_.shape().end());
    per_ = numel_of(shape_);
  }

  /// N, the first dimension of the data.
  std::int64_t size() const { return data_.size(0); }
  /// The data's shape without its first dimension.
  const Shape& sample_shape() const { return shape_; }
  /// Label of sample i (0 without labels); Error if i is out of range.
  std::int64_t label(std::int64_t i) const {
    check(i);  // an index out of range is an error with or without labels
    return labels_.empty() ? 0 : labels_[i];
  }
  /// Writes sample i, converted to U, to dst; Error if i is out of range.
  template <class U>
  void get_into(std::int64_t i, U* dst) const {
    const T* src = data_.data() + check(i) * per_;
    std::transform(src, src + per_, dst, [](T v) { return static_cast<U>(v); });
  }
  /// The whole data tensor [N, ...].
  const Tensor<T>& data() const { return data_; }

 private:
  std::int64_t check(std::int64_t i) const {
    if (i < 0 || i >= size())
      throw Error("TensorDataset: index " + std::to_string(i) + " is out of range for " +
                  std::to_string(size()) + " samples");
    return i;
  }
  Tensor<T> data_;
  std::vector<std::int64_t> labels_;
  Shape shape_;
  std::int64_t per_ = 0;
};

}  // namespace diffuse::data
