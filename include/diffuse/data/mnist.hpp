// MNIST: 28x28 grayscale handwritten digits, from the IDX files of the original download
// (gzipped or not) in a folder the user names.
//   auto digits = data::MNIST::train("/data/mnist");
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/data/idx_dataset.hpp"

namespace diffuse::data {

class MNIST : public ImageDataset {
 public:
  static std::vector<std::string> classes() { return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; }
  static MNIST train(const std::filesystem::path& root) { return load(root, "train"); }
  static MNIST test(const std::filesystem::path& root) { return load(root, "t10k"); }

 private:
  explicit MNIST(ImageDataset d) : ImageDataset(std::move(d)) {}
  static MNIST load(const std::filesystem::path& root, const std::string& split) {
    return MNIST(detail::load_idx_split(root, split, classes(), "MNIST"));
  }
};

}  // namespace diffuse::data
