/// @file
/// The definitions of image_folder.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/data/image_folder.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <stb_image_resize.h>

#include "diffuse/core/error.hpp"
#include "diffuse/core/parallel.hpp"
#include "diffuse/data/image_dataset.hpp"
#include "diffuse/io/image.hpp"

namespace diffuse::data {

DIFFUSE_INLINE ImageFolder::ImageFolder(const std::filesystem::path& root, const ImageFolderOptions& options)
    : ImageFolder(load(root, options)) {}

DIFFUSE_INLINE std::string ImageFolder::summary() const {
  const int c = static_cast<int>(sample_shape()[0]);
  std::string s = "ImageFolder: " + std::to_string(size()) + " images in " +
                  std::to_string(std::max<std::size_t>(class_names().size(), 1)) + " classes, " +
                  to_string(sample_shape()) + "; " + std::to_string(skipped_.size()) + " skipped, " +
                  std::to_string(converted_) + " converted to " +
                  (c == 1   ? "grayscale"
                   : c == 3 ? "RGB"
                            : "RGBA") +
                  ", " + std::to_string(ignored_) + " non-image files ignored\n";
  for (const auto& f : skipped_) s += "  skipped '" + f.path.string() + "': " + f.reason + "\n";
  return s;
}

DIFFUSE_INLINE bool ImageFolder::is_image(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  for (const char* e : {".png", ".jpg", ".jpeg"})  // what io::read_image decodes
    if (ext == e) return true;
  return false;
}

DIFFUSE_INLINE ImageFolder::ImageFolder(Loaded l)
    : ImageDataset(std::move(l.data)),
      files_(std::move(l.files)),
      skipped_(std::move(l.skipped)),
      converted_(l.converted),
      ignored_(l.ignored) {}

DIFFUSE_INLINE std::vector<std::filesystem::path> ImageFolder::images_in(const std::filesystem::path& dir,
                                                                         std::int64_t& ignored) {
  namespace fs = std::filesystem;
  std::vector<fs::path> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code fec;
    if (!it->is_regular_file(fec)) continue;
    if (is_image(it->path()))
      out.push_back(it->path());
    else
      ++ignored;
  }
  if (ec) throw FileError("ImageFolder: cannot list '" + dir.string() + "': " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

DIFFUSE_INLINE ImageFolder::Decoded ImageFolder::decode(const std::filesystem::path& f,
                                                        const ImageFolderOptions& o) {
  Decoded d;
  io::ImageU8 img;
  try {
    img = io::read_image_u8(f, o.channels);
  } catch (const std::exception& e) {
    d.error = e.what();
    return d;
  }
  const int h = o.size ? static_cast<int>(o.size) : img.height,
            w = o.size ? static_cast<int>(o.size) : img.width;
  d.width = w, d.height = h, d.file_channels = img.file_channels;
  std::vector<std::uint8_t> hwc;
  if (img.height == h && img.width == w) {
    hwc = std::move(img.pixels);
  } else {
    hwc.resize(static_cast<std::size_t>(h) * w * o.channels);
    if (!stbir_resize_uint8(img.pixels.data(), img.width, img.height, 0, hwc.data(), w, h, 0, o.channels)) {
      d.error = "cannot resize '" + f.string() + "' to " + std::to_string(w) + "x" + std::to_string(h);
      return d;
    }
  }
  const std::size_t plane = static_cast<std::size_t>(h) * w;  // HWC -> CHW
  d.chw.resize(plane * o.channels);
  for (std::size_t p = 0; p < plane; ++p)
    for (int k = 0; k < o.channels; ++k) d.chw[k * plane + p] = hwc[p * o.channels + k];
  return d;
}

DIFFUSE_INLINE ImageFolder::Loaded ImageFolder::load(const std::filesystem::path& root,
                                                     const ImageFolderOptions& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw FileError("ImageFolder: '" + root.string() + "' is not a folder" +
                    (fs::exists(root, ec) ? "" : " (it does not exist)"));
  if (o.channels != 1 && o.channels != 3 && o.channels != 4)
    throw Error("ImageFolder: channels must be 1, 3 or 4, got " + std::to_string(o.channels));
  if (o.size < 0 || o.size > 1 << 15) throw Error("ImageFolder: bad size " + std::to_string(o.size));

  // Classes are the subfolders; without any, the root's own images form one class.
  Loaded out;
  std::vector<fs::path> class_dirs;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code dec;
    if (it->is_directory(dec)) class_dirs.push_back(it->path());
  }
  if (ec) throw FileError("ImageFolder: cannot list '" + root.string() + "': " + ec.message());
  std::sort(class_dirs.begin(), class_dirs.end());
  std::vector<fs::path> files;
  std::vector<std::int64_t> labels;
  std::vector<std::string> names;
  if (class_dirs.empty()) {
    files = images_in(root, out.ignored);
    labels.assign(files.size(), 0);
  } else {
    for (const auto& dir : class_dirs) {
      for (auto& f : images_in(dir, out.ignored))
        files.push_back(f), labels.push_back(static_cast<std::int64_t>(names.size()));
      names.push_back(dir.filename().string());
    }
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code fec;
      if (it->is_regular_file(fec)) ++out.ignored;  // loose files next to class folders
    }
  }
  if (files.empty())
    throw FileError(
        "ImageFolder: no images (.png, .jpg, .jpeg) under '" + root.string() + "'" +
        (out.ignored ? " (" + std::to_string(out.ignored) + " other files ignored)" : std::string()));

  // Decode in parallel; decisions (skip, error, sizes) are taken in file order afterwards.
  std::vector<Decoded> decoded(files.size());
  diffuse::detail::parallel_for_items(static_cast<std::int64_t>(files.size()),
                                      [&](std::int64_t i) { decoded[i] = decode(files[i], o); });

  std::int64_t h = o.size, w = o.size;
  std::vector<std::uint8_t> pixels;
  std::vector<std::int64_t> kept_labels;
  for (std::size_t i = 0; i < files.size(); ++i) {
    Decoded& d = decoded[i];
    if (!d.error.empty()) {
      if (o.on_bad_file == OnBadFile::error)
        throw FileError("ImageFolder: " + d.error +
                        " (set on_bad_file = OnBadFile::skip to leave such files out)");
      out.skipped.push_back({files[i], d.error});
      continue;
    }
    if (h == 0) h = d.height, w = d.width;
    if (d.height != h || d.width != w)
      throw FileError("ImageFolder: '" + files[i].string() + "' is " + std::to_string(d.width) + "x" +
                      std::to_string(d.height) + " but earlier images are " + std::to_string(w) + "x" +
                      std::to_string(h) + "; set ImageFolderOptions::size to resize them");
    // stb reports 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; an alpha channel dropped or added counts too.
    if (d.file_channels != o.channels) ++out.converted;
    pixels.insert(pixels.end(), d.chw.begin(), d.chw.end());
    std::vector<std::uint8_t>().swap(d.chw);
    out.files.push_back(files[i]);
    kept_labels.push_back(labels[i]);
  }
  if (out.files.empty()) {
    std::string why;
    for (std::size_t k = 0; k < out.skipped.size() && k < 3; ++k)
      why += "\n  '" + out.skipped[k].path.string() + "': " + out.skipped[k].reason;
    throw FileError("ImageFolder: none of the " + std::to_string(files.size()) + " image files under '" +
                    root.string() + "' could be read:" + why);
  }
  out.data = ImageDataset(std::move(pixels), {o.channels, h, w}, std::move(kept_labels), std::move(names));
  return out;
}

}  // namespace diffuse::data
