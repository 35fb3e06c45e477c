/// @file
/// ImageFolder: every image under a folder (recursively), decoded into memory as an
/// ImageDataset, like torchvision.datasets.ImageFolder. Subfolders of the root are classes
/// (sorted by name, labels 0, 1, ...); with no subfolders, the root's images form class 0.
///   data::ImageFolder butterflies("data/butterflies", {.size = 32, .channels = 3});
///   std::cout << butterflies.summary();   // counts, and every skipped file with its reason
/// Files: .png, .jpg and .jpeg (PNG and JPEG by their bytes, through stb_image; other formats are refused).
/// Every image is converted to `channels` (1 gray, 3 RGB, 4 RGBA); converted_count() says how
/// many were stored with another channel count (a grayscale/RGB mix).
/// Bad files (unreadable, corrupt, empty, zero-size) are found while loading, before any epoch:
/// with the default on_bad_file = skip they are left out and listed by skipped() with the reason;
/// with on_bad_file = error the first one throws a FileError naming it. Files whose extension is
/// not an image's are ignored and counted by ignored_count(). No image at all is a FileError.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/data/image_dataset.hpp"

namespace diffuse::data {

/// What ImageFolder does with an image file it cannot load: leave it out, or throw FileError.
enum class OnBadFile { skip, error };

/// Options of ImageFolder.
struct ImageFolderOptions {
  std::int64_t size = 0;  ///< resize every image to size x size (0: keep; then all must match)
  int channels = 3;       ///< 1 gray, 3 RGB, 4 RGBA
  /// Bad files: left out and listed by skipped(), or a FileError.
  OnBadFile on_bad_file = OnBadFile::skip;
};

/// A file left out of the dataset, and why.
struct SkippedFile {
  std::filesystem::path path;
  std::string reason;
};

/// The images under a folder, decoded into memory, like torchvision.datasets.ImageFolder (see the
/// top of this file).
class ImageFolder : public ImageDataset {
 public:
  /// Loads every image under `root`. FileError if `root` is not a folder or holds no readable image,
  /// if image sizes differ and options.size is 0, or for a bad file with on_bad_file = error.
  /// Error for a bad channels or size option.
  explicit ImageFolder(const std::filesystem::path& root, const ImageFolderOptions& options = {});

  /// The image files loaded, in label then name order (sample i is files()[i]).
  const std::vector<std::filesystem::path>& files() const { return files_; }
  /// Image files that could not be loaded (on_bad_file = skip), with the reason.
  const std::vector<SkippedFile>& skipped() const { return skipped_; }
  /// Images stored with another channel count than the dataset's (converted on loading).
  std::int64_t converted_count() const { return converted_; }
  /// Files ignored because their extension is not an image format's.
  std::int64_t ignored_count() const { return ignored_; }

  /// One line of counts, then one line per skipped file.
  std::string summary() const;

  /// Whether `p` has an extension read as an image: .png, .jpg or .jpeg, in any case.
  static bool is_image(const std::filesystem::path& p);

 private:
  struct Loaded {
    ImageDataset data;
    std::vector<std::filesystem::path> files;
    std::vector<SkippedFile> skipped;
    std::int64_t converted = 0, ignored = 0;
  };
  explicit ImageFolder(Loaded l);

  // Image files under dir (recursively, sorted); counts the other files in `ignored`.
  static std::vector<std::filesystem::path> images_in(const std::filesystem::path& dir,
                                                      std::int64_t& ignored);

  // One decoded image, as CHW bytes of the dataset's size, or why it could not be.
  struct Decoded {
    std::vector<std::uint8_t> chw;
    int width = 0, height = 0, file_channels = 0;
    std::string error;
  };
  static Decoded decode(const std::filesystem::path& f, const ImageFolderOptions& o);

  static Loaded load(const std::filesystem::path& root, const ImageFolderOptions& o);

  std::vector<std::filesystem::path> files_;
  std::vector<SkippedFile> skipped_;
  std::int64_t converted_ = 0, ignored_ = 0;
};

}  // namespace diffuse::data

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/data/image_folder-inl.hpp"
#endif
