/// @file
/// The definitions of mnist.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/data/mnist.hpp"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/data/idx_dataset.hpp"

namespace diffuse::data {

DIFFUSE_COLD DIFFUSE_INLINE std::vector<std::string> MNIST::classes() {
  return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
}

DIFFUSE_COLD DIFFUSE_INLINE MNIST MNIST::train(const std::filesystem::path& root) {
  return load(root, "train");
}

DIFFUSE_COLD DIFFUSE_INLINE MNIST MNIST::test(const std::filesystem::path& root) {
  return load(root, "t10k");
}

DIFFUSE_COLD DIFFUSE_INLINE MNIST::MNIST(ImageDataset d) : ImageDataset(std::move(d)) {}

DIFFUSE_COLD DIFFUSE_INLINE MNIST MNIST::load(const std::filesystem::path& root, const std::string& split) {
  return MNIST(detail::load_idx_split(root, split, classes(), "MNIST"));
}

}  // namespace diffuse::data
