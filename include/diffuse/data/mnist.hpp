/// @file
/// MNIST: 28x28 grayscale handwritten digits, from the IDX files of the original download
/// (gzipped or not) in a folder the user names.
///   auto digits = data::MNIST::train("/data/mnist");
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/data/idx_dataset.hpp"

namespace diffuse::data {

/// MNIST as an ImageDataset of [1,28,28] samples, like torchvision.datasets.MNIST.
class MNIST : public ImageDataset {
 public:
  /// The class names "0" to "9".
  static std::vector<std::string> classes();
  /// The 60000 training images in `root` (or root/raw). FileError naming the file if one is missing
  /// or malformed.
  static MNIST train(const std::filesystem::path& root);
  /// The 10000 test images; errors as train().
  static MNIST test(const std::filesystem::path& root);

 private:
  explicit MNIST(ImageDataset d);
  static MNIST load(const std::filesystem::path& root, const std::string& split);
};

}  // namespace diffuse::data

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/data/mnist-inl.hpp"
#endif
