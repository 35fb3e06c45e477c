/// @file
/// The definitions of image_dataset.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/data/image_dataset.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/shape.hpp"

namespace diffuse::data {

DIFFUSE_INLINE ImageDataset::ImageDataset(std::vector<std::uint8_t> pixels, Shape sample_shape,
                                          std::vector<std::int64_t> labels,
                                          std::vector<std::string> class_names)
    : pixels_(std::move(pixels)),
      shape_(std::move(sample_shape)),
      labels_(std::move(labels)),
      class_names_(std::move(class_names)) {
  if (shape_.size() != 3) throw Error("ImageDataset: sample shape must be [C,H,W], got " + to_string(shape_));
  sample_numel_ = numel_of(shape_);
  const auto n = static_cast<std::int64_t>(labels_.size());
  if (static_cast<std::int64_t>(pixels_.size()) != n * sample_numel_)
    throw Error("ImageDataset: " + std::to_string(pixels_.size()) + " pixel bytes for " + std::to_string(n) +
                " labels of images " + to_string(shape_) + " (expected " + std::to_string(n * sample_numel_) +
                ")");
  for (std::int64_t i = 0; i < n; ++i)
    if (labels_[i] < 0 ||
        (!class_names_.empty() && labels_[i] >= static_cast<std::int64_t>(class_names_.size())))
      throw Error("ImageDataset: label " + std::to_string(labels_[i]) + " of sample " + std::to_string(i) +
                  " is out of range for " + std::to_string(class_names_.size()) + " classes");
}

DIFFUSE_INLINE std::int64_t ImageDataset::check(std::int64_t i) const {
  if (i < 0 || i >= size())
    throw Error("ImageDataset: index " + std::to_string(i) + " is out of range for " +
                std::to_string(size()) + " samples");
  return i;
}

}  // namespace diffuse::data
