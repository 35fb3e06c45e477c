/// @file
/// The definitions of idx_dataset.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/data/idx_dataset.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/data/idx.hpp"
#include "diffuse/data/image_dataset.hpp"

namespace diffuse::data {

namespace detail {

/// root/<stem> with ".gz" or without, also under root/raw (torchvision's layout).
DIFFUSE_COLD DIFFUSE_INLINE std::filesystem::path find_idx_file(const std::filesystem::path& root,
                                                                const std::string& stem,
                                                                const std::string& dataset) {
  for (const auto& dir : {root, root / "raw"})
    for (const char* ext : {".gz", ""}) {
      const auto p = dir / (stem + ext);
      std::error_code ec;
      if (std::filesystem::is_regular_file(p, ec)) return p;
    }
  throw FileError(
      dataset + ": '" + (root / (stem + ".gz")).string() + "' not found (nor without .gz, nor under raw/)" +
      (std::filesystem::is_directory(root) ? std::string()
                                           : "; the folder '" + root.string() + "' does not exist") +
      detail::dataset_hint(root / stem));
}

}  // namespace detail

DIFFUSE_COLD DIFFUSE_INLINE ImageDataset load_idx_dataset(const std::filesystem::path& images_path,
                                                          const std::filesystem::path& labels_path,
                                                          std::vector<std::string> class_names,
                                                          const std::string& dataset) {
  IdxArray images = read_idx(images_path);
  IdxArray labels = read_idx(labels_path);
  if (images.shape.size() != 3)
    throw FileError(dataset + ": '" + images_path.string() + "' should hold images [N,H,W], has " +
                    std::to_string(images.shape.size()) + " dimensions");
  if (labels.shape.size() != 1)
    throw FileError(dataset + ": '" + labels_path.string() + "' should hold labels [N], has " +
                    std::to_string(labels.shape.size()) + " dimensions");
  if (images.shape[0] != labels.shape[0])
    throw FileError(dataset + ": " + std::to_string(images.shape[0]) + " images in '" + images_path.string() +
                    "' but " + std::to_string(labels.shape[0]) + " labels in '" + labels_path.string() + "'");
  std::vector<std::int64_t> ids(labels.data.begin(), labels.data.end());
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (!class_names.empty() && ids[i] >= static_cast<std::int64_t>(class_names.size()))
      throw FileError(dataset + ": label " + std::to_string(ids[i]) + " of sample " + std::to_string(i) +
                      " in '" + labels_path.string() + "' is not a class (0.." +
                      std::to_string(class_names.size() - 1) + ")");
  return ImageDataset(std::move(images.data), {1, images.shape[1], images.shape[2]}, std::move(ids),
                      std::move(class_names));
}

namespace detail {

DIFFUSE_COLD DIFFUSE_INLINE ImageDataset load_idx_split(const std::filesystem::path& root,
                                                        const std::string& split,
                                                        std::vector<std::string> class_names,
                                                        const std::string& dataset) {
  const auto images =
      find_idx_file(root, split + "-images-idx3-ubyte", dataset);  // images first: clearer errors
  const auto labels = find_idx_file(root, split + "-labels-idx1-ubyte", dataset);
  return load_idx_dataset(images, labels, std::move(class_names), dataset);
}

}  // namespace detail

}  // namespace diffuse::data
