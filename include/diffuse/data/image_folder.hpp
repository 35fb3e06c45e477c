// ImageFolder: every image under a folder, decoded into memory as an ImageDataset, like
// torchvision.datasets.ImageFolder. Subfolders are classes (sorted by name, labels 0, 1, ...);
// images directly in the root get label 0 when there are no class subfolders.
//   data::ImageFolder butterflies("data/butterflies", {.size = 32, .channels = 3});
#pragma once
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <stb_image_resize.h>

#include "diffuse/core/error.hpp"
#include "diffuse/data/image_dataset.hpp"
#include "diffuse/io/image.hpp"

namespace diffuse::data {

struct ImageFolderOptions {
  std::int64_t size = 0;  // resize every image to size x size (0: keep; then all must match)
  int channels = 3;       // 1 gray, 3 RGB, 4 RGBA
};

class ImageFolder : public ImageDataset {
 public:
  explicit ImageFolder(const std::filesystem::path& root, const ImageFolderOptions& options = {})
      : ImageFolder(load(root, options)) {}

  // The image files found, in label then name order (sample i is files()[i]).
  const std::vector<std::filesystem::path>& files() const { return files_; }

 private:
  struct Loaded {
    ImageDataset data;
    std::vector<std::filesystem::path> files;
  };
  explicit ImageFolder(Loaded l) : ImageDataset(std::move(l.data)), files_(std::move(l.files)) {}

  static bool is_image(const std::filesystem::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".gif" ||
           ext == ".tga";
  }
  static std::vector<std::filesystem::path> images_in(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
      if (e.is_regular_file() && is_image(e.path())) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }

  static Loaded load(const std::filesystem::path& root, const ImageFolderOptions& o) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(root)) throw FileError("ImageFolder: '" + root.string() + "' is not a folder");
    if (o.channels != 1 && o.channels != 3 && o.channels != 4)
      throw Error("ImageFolder: channels must be 1, 3 or 4, got " + std::to_string(o.channels));
    if (o.size < 0 || o.size > 1 << 15) throw Error("ImageFolder: bad size " + std::to_string(o.size));

    // Classes are the subfolders; without any, the root's own images form one class.
    std::vector<fs::path> class_dirs;
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory()) class_dirs.push_back(e.path());
    std::sort(class_dirs.begin(), class_dirs.end());
    std::vector<fs::path> files;
    std::vector<std::string> names;
    std::vector<std::int64_t> labels;
    if (class_dirs.empty()) {
      files = images_in(root);
      labels.assign(files.size(), 0);
    } else {
      for (const auto& dir : class_dirs) {
        for (auto& f : images_in(dir))
          files.push_back(f), labels.push_back(static_cast<std::int64_t>(names.size()));
        names.push_back(dir.filename().string());
      }
    }
    if (files.empty())
      throw FileError("ImageFolder: no images (.png, .jpg, ...) under '" + root.string() + "'");

    std::int64_t h = o.size, w = o.size;
    std::vector<std::uint8_t> pixels;
    for (const auto& f : files) {
      const io::ImageU8 img = io::read_image_u8(f, o.channels);
      if (h == 0) h = img.height, w = img.width;
      std::vector<std::uint8_t> hwc;
      if (img.height == h && img.width == w) {
        hwc = img.pixels;
      } else if (o.size > 0) {
        hwc.resize(static_cast<std::size_t>(h * w * o.channels));
        if (!stbir_resize_uint8(img.pixels.data(), img.width, img.height, 0, hwc.data(), static_cast<int>(w),
                                static_cast<int>(h), 0, o.channels))
          throw FileError("ImageFolder: cannot resize '" + f.string() + "'");
      } else {
        throw FileError("ImageFolder: '" + f.string() + "' is " + std::to_string(img.width) + "x" +
                        std::to_string(img.height) + " but earlier images are " + std::to_string(w) + "x" +
                        std::to_string(h) + "; set ImageFolderOptions::size to resize them");
      }
      // HWC -> CHW, appended.
      const std::size_t base = pixels.size(), plane = static_cast<std::size_t>(h * w);
      pixels.resize(base + plane * o.channels);
      for (std::size_t p = 0; p < plane; ++p)
        for (int k = 0; k < o.channels; ++k) pixels[base + k * plane + p] = hwc[p * o.channels + k];
    }
    return {ImageDataset(std::move(pixels), {o.channels, h, w}, std::move(labels), std::move(names)),
            std::move(files)};
  }

  std::vector<std::filesystem::path> files_;
};

}  // namespace diffuse::data
