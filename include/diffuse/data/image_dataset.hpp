/// @file
/// ImageDataset: labelled 8-bit images held in memory ([N,C,H,W] bytes + one label each), the
/// storage behind FashionMNIST and MNIST. It models the Dataset concept of the DataLoader:
///   size()                      number of samples
///   sample_shape()              shape of one sample, here [C,H,W]
///   get_into(i, T* dst)         writes sample i (numel of sample_shape values) to dst
///   label(i)                    class id of sample i
/// get(i) returns one sample as a tensor in [0,1] (like torchvision's ToTensor) and its label.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse::data {

/// One sample: an image and its label (what ImageDataset::get returns).
template <class T = float>
struct Sample {
  Tensor<T> image;  ///< [C,H,W] in [0,1]
  std::int64_t label = 0;
};

namespace detail {
/// v / 255 for every byte value: the exact ToTensor result, looked up instead of divided.
template <class T>
const std::array<T, 256>& byte_to_unit() {
  static const std::array<T, 256> table = [] {
    std::array<T, 256> t{};
    for (int v = 0; v < 256; ++v) t[v] = static_cast<T>(v) / T(255);
    return t;
  }();
  return table;
}
}  // namespace detail

/// Labelled 8-bit images in memory; a Dataset for the DataLoader (see the top of this file).
class ImageDataset {
 public:
  /// An empty dataset.
  ImageDataset() = default;
  /// pixels: N * C * H * W bytes, sample_shape [C,H,W], one label per image in
  /// [0, class_names.size()) (any non-negative label if class_names is empty).
  /// Error if the sizes or the labels do not fit.
  ImageDataset(std::vector<std::uint8_t> pixels, Shape sample_shape, std::vector<std::int64_t> labels,
               std::vector<std::string> class_names = {});

  /// Number of images.
  std::int64_t size() const { return static_cast<std::int64_t>(labels_.size()); }
  /// [C,H,W] of one image.
  const Shape& sample_shape() const { return shape_; }
  /// Label of image i; Error if i is out of range.
  std::int64_t label(std::int64_t i) const { return labels_[check(i)]; }
  /// Every label, in sample order.
  const std::vector<std::int64_t>& labels() const { return labels_; }
  /// The class names by label (empty if none were given).
  const std::vector<std::string>& class_names() const { return class_names_; }
  /// The raw bytes of image i ([C,H,W], numel of sample_shape()).
  const std::uint8_t* raw(std::int64_t i) const { return pixels_.data() + check(i) * sample_numel_; }

  /// Writes image i as values in [0,1] to dst (sample_shape() elements).
  template <class T>
  void get_into(std::int64_t i, T* dst) const {
    const auto& table = detail::byte_to_unit<T>();
    const std::uint8_t* src = raw(i);
    for (std::int64_t k = 0; k < sample_numel_; ++k) dst[k] = table[src[k]];
  }

  /// Image i as a [C,H,W] tensor in [0,1] and its label.
  template <class T = float>
  Sample<T> get(std::int64_t i) const {
    Tensor<T> img = Tensor<T>::empty(shape_);
    get_into(i, img.data());
    return {img, label(i)};
  }
  /// Same as get(i).
  template <class T = float>
  Sample<T> operator[](std::int64_t i) const {
    return get<T>(i);
  }

  /// Every image as one tensor [N,C,H,W] in [0,1] (handy for small experiments).
  template <class T = float>
  Tensor<T> images() const {
    Shape s{size()};
    s.insert(s.end(), shape_.begin(), shape_.end());
    Tensor<T> t = Tensor<T>::empty(s);
    const auto& table = detail::byte_to_unit<T>();
    T* d = t.data();
    for (std::size_t k = 0; k < pixels_.size(); ++k) d[k] = table[pixels_[k]];
    return t;
  }

 private:
  std::int64_t check(std::int64_t i) const;

  std::vector<std::uint8_t> pixels_;
  Shape shape_{1, 0, 0};
  std::vector<std::int64_t> labels_;
  std::vector<std::string> class_names_;
  std::int64_t sample_numel_ = 0;
};

}  // namespace diffuse::data

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/data/image_dataset-inl.hpp"
#endif
