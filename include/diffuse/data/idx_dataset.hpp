/// @file
/// Loading an ImageDataset from IDX files: a pair of images [N,H,W] / labels [N] files, or a
/// split ("train", "t10k") of an MNIST-style folder: {train,t10k}-{images-idx3,labels-idx1}-ubyte,
/// gzipped or not, directly in the folder or under raw/ (torchvision's layout).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/data/idx.hpp"
#include "diffuse/data/image_dataset.hpp"

namespace diffuse::data {

/// Loads images [N,H,W] and labels [N] (IDX files of unsigned bytes) into an ImageDataset of
/// [1,H,W] samples; `dataset` names it in errors. Labels must index class_names (if given).
/// FileError if the files do not hold images [N,H,W] and labels [N] of the same N.
ImageDataset load_idx_dataset(const std::filesystem::path& images_path,
                              const std::filesystem::path& labels_path, std::vector<std::string> class_names,
                              const std::string& dataset = "IDX dataset");

namespace detail {
/// One split ("train" or "t10k") of an MNIST-style folder.
ImageDataset load_idx_split(const std::filesystem::path& root, const std::string& split,
                            std::vector<std::string> class_names, const std::string& dataset);
}  // namespace detail

}  // namespace diffuse::data

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/data/idx_dataset-inl.hpp"
#endif
