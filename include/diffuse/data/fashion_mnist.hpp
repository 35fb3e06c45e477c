/// @file
/// Fashion-MNIST (Zalando): 28x28 grayscale clothing images in 10 classes, 60000 for training
/// and 10000 for testing, read from the IDX files (gzipped or not) into memory.
///   auto train = data::FashionMNIST::train();  // $DIFFUSE_FASHION_MNIST, else
///                                              // /usr/share/datasets/fashion-mnist
///   auto [image, label] = train.get(0);        // [1,28,28] in [0,1], 9 ("Ankle boot")
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/data/idx_dataset.hpp"

namespace diffuse::data {

/// Fashion-MNIST as an ImageDataset of [1,28,28] samples, like torchvision.datasets.FashionMNIST.
class FashionMNIST : public ImageDataset {
 public:
  /// $DIFFUSE_FASHION_MNIST if set, else the Debian package's folder.
  static std::filesystem::path default_root();
  /// The 10 class names, in label order.
  static std::vector<std::string> classes();
  /// 60000 training images.
  /// FileError naming the file (with an install hint) if one is missing or malformed.
  static FashionMNIST train(const std::filesystem::path& root = default_root());
  /// 10000 test images.
  static FashionMNIST test(const std::filesystem::path& root = default_root());

 private:
  explicit FashionMNIST(ImageDataset d);
  static FashionMNIST load(const std::filesystem::path& root, const std::string& split);
};

}  // namespace diffuse::data

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/data/fashion_mnist-inl.hpp"
#endif
