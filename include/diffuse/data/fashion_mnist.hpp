/// @file
/// Fashion-MNIST (Zalando): 28x28 grayscale clothing images in 10 classes, 60000 for training
/// and 10000 for testing, read from the IDX files (gzipped or not) into memory.
///   auto train = data::FashionMNIST::train();  // $DIFFUSE_FASHION_MNIST, else
///                                              // /usr/share/datasets/fashion-mnist
///   auto [image, label] = train.get(0);        // [1,28,28] in [0,1], 9 ("Ankle boot")
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/data/idx_dataset.hpp"

namespace diffuse::data {

/// Fashion-MNIST as an ImageDataset of [1,28,28] samples, like torchvision.datasets.FashionMNIST.
class FashionMNIST : public ImageDataset {
 public:
  /// $DIFFUSE_FASHION_MNIST if set, else the Debian package's folder.
  static std::filesystem::path default_root() {
    const char* env = std::getenv("DIFFUSE_FASHION_MNIST");
    return env && *env ? std::filesystem::path(env)
                       : std::filesystem::path("/usr/share/datasets/fashion-mnist");
  }
  /// The 10 class names, in label order.
  static std::vector<std::string> classes() {
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  }
  /// 60000 training images.
  /// FileError naming the file (with an install hint) if one is missing or malformed.
  static FashionMNIST train(const std::filesystem::path& root = default_root()) {
    return load(root, "train");
  }
  /// 10000 test images.
  static FashionMNIST test(const std::filesystem::path& root = default_root()) { return load(root, "t10k"); }

 private:
  explicit FashionMNIST(ImageDataset d) : ImageDataset(std::move(d)) {}
  static FashionMNIST load(const std::filesystem::path& root, const std::string& split) {
    return FashionMNIST(detail::load_idx_split(root, split, classes(), "FashionMNIST"));
  }
};

}  // namespace diffuse::data
