/// @file
/// The definitions of fashion_mnist.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/data/fashion_mnist.hpp"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/data/idx_dataset.hpp"

namespace diffuse::data {

DIFFUSE_COLD DIFFUSE_INLINE std::filesystem::path FashionMNIST::default_root() {
  const char* env = std::getenv("DIFFUSE_FASHION_MNIST");
  return env && *env ? std::filesystem::path(env)
                     : std::filesystem::path("/usr/share/datasets/fashion-mnist");
}

DIFFUSE_COLD DIFFUSE_INLINE std::vector<std::string> FashionMNIST::classes() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

DIFFUSE_COLD DIFFUSE_INLINE FashionMNIST FashionMNIST::train(const std::filesystem::path& root) {
  return load(root, "train");
}

DIFFUSE_COLD DIFFUSE_INLINE FashionMNIST FashionMNIST::test(const std::filesystem::path& root) {
  return load(root, "t10k");
}

DIFFUSE_COLD DIFFUSE_INLINE FashionMNIST::FashionMNIST(ImageDataset d) : ImageDataset(std::move(d)) {}

DIFFUSE_COLD DIFFUSE_INLINE FashionMNIST FashionMNIST::load(const std::filesystem::path& root,
                                                            const std::string& split) {
  return FashionMNIST(detail::load_idx_split(root, split, classes(), "FashionMNIST"));
}

}  // namespace diffuse::data
