/// @file
/// Reading and writing images: PNG and JPEG. Tensors are [C,H,W] (or [H,W] for grayscale) with
/// values in [0,1], like torchvision's ToTensor; writing clamps to [0,1] and rounds to 8 bits as
/// torchvision.utils.save_image does.
/// Reading is guarded against hostile files before stb_image sees them: the format is decided by
/// the file's first bytes and only PNG and JPEG are decoded (stb guesses the format from the bytes,
/// so a 35-byte RLE TGA named .png "decoded" into a 4.7 GB image); the pixel count is read from
/// the header and refused above max_image_pixels(); JPEG Huffman tables (DHT) declaring more than
/// 256 codes are refused (Debian's stb_image 2.27 writes past a buffer on them), and so are PNG
/// chunks longer than the rest of the file (stb allocates their declared size first).
#pragma once
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <stb_image_write.h>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/atomic_file.hpp"

namespace diffuse::io {

/// An image decoded to 8 bits: interleaved HWC pixels.
struct ImageU8 {
  int width = 0, height = 0, channels = 0;
  std::vector<std::uint8_t> pixels;  ///< height * width * channels, row-major, channels last
  int file_channels = 0;             ///< the channel count stored in the file (before any conversion)
};

/// The most pixels (width x height) an image may have to be decoded; larger ones are refused
/// before any pixel memory is allocated. Default: PIL's Image.MAX_IMAGE_PIXELS (89,478,485, about
/// 9459 x 9459); set it to read larger images.
std::atomic<std::int64_t>& max_image_pixels();

/// Decodes an image file to 8-bit pixels; `channels` as in read_image. FileError naming the
/// file and the reason when the file is missing, is not a PNG or JPEG, is larger than
/// max_image_pixels() or cannot be decoded.
ImageU8 read_image_u8(const std::filesystem::path& path, int channels = 0);

/// Decodes an image file into a [C,H,W] tensor with values in [0,1]. `channels` = 0 keeps the
/// file's channel count; 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) converts to it.
/// Like PIL's Image.open followed by torchvision's ToTensor. Throws as read_image_u8.
template <class T = float>
Tensor<T> read_image(const std::filesystem::path& path, int channels = 0) {
  const ImageU8 img = read_image_u8(path, channels);
  const int c = img.channels;
  Tensor<T> t = Tensor<T>::empty({c, img.height, img.width});
  // HWC uint8 -> CHW in [0,1].
  T* dst = t.data();
  const std::int64_t plane = static_cast<std::int64_t>(img.height) * img.width;
  for (std::int64_t p = 0; p < plane; ++p)
    for (int k = 0; k < c; ++k) dst[k * plane + p] = static_cast<T>(img.pixels[p * c + k]) / T(255);
  return t;
}

namespace detail {

/// [H,W], [C,H,W] or [1,C,H,W] with C in 1..4 -> (C, H, W), or throws naming `what`.
template <class T>
std::array<std::int64_t, 3> image_dims(const Tensor<T>& t, const std::string& what) {
  if (!t.defined()) throw Error(what + ": the image tensor is undefined");
  const Shape& s = t.shape();
  Shape chw;
  if (s.size() == 2)
    chw = {1, s[0], s[1]};
  else if (s.size() == 3)
    chw = s;
  else if (s.size() == 4 && s[0] == 1)
    chw = {s[1], s[2], s[3]};
  else
    throw Error(what + ": expected an image [C,H,W] or [H,W], got shape " + to_string(s) +
                (s.size() == 4 ? " (use make_grid or save_image for a batch)" : ""));
  if (chw[0] < 1 || chw[0] > 4)
    throw Error(what + ": an image has 1, 2, 3 or 4 channels, got shape " + to_string(s));
  if (chw[1] < 1 || chw[2] < 1 || chw[1] > (1 << 24) || chw[2] > (1 << 24))
    throw Error(what + ": image size " + std::to_string(chw[1]) + "x" + std::to_string(chw[2]) +
                " is not writable");
  return {chw[0], chw[1], chw[2]};
}

/// [C,H,W] values in [0,1] -> interleaved 8-bit HWC: clamp(v * 255 + 0.5) truncated, as
/// torchvision.utils.save_image does; NaN becomes 0.
template <class T>
std::vector<unsigned char> to_hwc_u8(const Tensor<T>& t, std::int64_t c, std::int64_t h, std::int64_t w) {
  std::vector<unsigned char> out(static_cast<std::size_t>(c * h * w));
  const T* src = t.data();
  const std::int64_t plane = h * w;
  for (std::int64_t k = 0; k < c; ++k)
    for (std::int64_t p = 0; p < plane; ++p) {
      const double v = static_cast<double>(src[k * plane + p]) * 255.0 + 0.5;
      out[static_cast<std::size_t>(p * c + k)] =
          static_cast<unsigned char>(v >= 255.0 ? 255.0 : (v > 0.0 ? v : 0.0));
    }
  return out;
}

/// The stb_image_write callback that appends the encoded bytes to the std::string `ctx`.
void append_to_string(void* ctx, void* data, int size);

}  // namespace detail

/// PNG bytes of an image tensor (see write_png).
template <class T>
std::string encode_png(const Tensor<T>& image) {
  const auto [c, h, w] = detail::image_dims(image, "encode_png");
  const auto px = detail::to_hwc_u8(image, c, h, w);
  std::string out;
  if (!stbi_write_png_to_func(detail::append_to_string, &out, static_cast<int>(w), static_cast<int>(h),
                              static_cast<int>(c), px.data(), static_cast<int>(w * c)))
    throw Error("encode_png: stb_image_write failed");
  return out;
}

/// JPEG bytes of an image tensor (see write_jpeg).
/// Error for a tensor that is not an image or a quality outside 1..100.
template <class T>
std::string encode_jpeg(const Tensor<T>& image, int quality = 95) {
  const auto [c, h, w] = detail::image_dims(image, "encode_jpeg");
  if (quality < 1 || quality > 100)
    throw Error("encode_jpeg: quality must be 1..100, got " + std::to_string(quality));
  const auto px = detail::to_hwc_u8(image, c, h, w);
  std::string out;
  if (!stbi_write_jpg_to_func(detail::append_to_string, &out, static_cast<int>(w), static_cast<int>(h),
                              static_cast<int>(c), px.data(), quality))
    throw Error("encode_jpeg: stb_image_write failed");
  return out;
}

/// Writes an image ([C,H,W] with C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; or [H,W]) as an
/// 8-bit PNG. Values are clamped to [0,1]. Atomic.
template <class T>
void write_png(const std::filesystem::path& path, const Tensor<T>& image) {
  try {
    write_file_atomic(path, encode_png(image));
  } catch (const FileError&) {
    throw;
  } catch (const Error& e) {
    throw Error("write_png('" + path.string() + "'): " + e.what());
  }
}

/// Writes an image as a baseline JPEG (alpha, if any, is dropped). Atomic.
template <class T>
void write_jpeg(const std::filesystem::path& path, const Tensor<T>& image, int quality = 95) {
  try {
    write_file_atomic(path, encode_jpeg(image, quality));
  } catch (const FileError&) {
    throw;
  } catch (const Error& e) {
    throw Error("write_jpeg('" + path.string() + "'): " + e.what());
  }
}

/// Writes PNG or JPEG chosen by the file extension (.png, .jpg, .jpeg; case-insensitive).
/// Error for another extension; FileError if the file cannot be written.
template <class T>
void write_image(const std::filesystem::path& path, const Tensor<T>& image) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (ext == ".png")
    write_png(path, image);
  else if (ext == ".jpg" || ext == ".jpeg")
    write_jpeg(path, image);
  else
    throw Error("write_image('" + path.string() + "'): unknown image format '" + ext +
                "' (use .png, .jpg or .jpeg)");
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_IO_IMAGE_TEMPLATES(X, T)                                                        \
  X(Tensor<T> read_image<T>(const std::filesystem::path& path, int channels))                   \
  X(std::string encode_png<T>(const Tensor<T>& image))                                          \
  X(std::string encode_jpeg<T>(const Tensor<T>& image, int quality))                            \
  X(void write_png<T>(const std::filesystem::path& path, const Tensor<T>& image))               \
  X(void write_jpeg<T>(const std::filesystem::path& path, const Tensor<T>& image, int quality)) \
  X(void write_image<T>(const std::filesystem::path& path, const Tensor<T>& image))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_IO_IMAGE_TEMPLATES)

}  // namespace diffuse::io

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/io/image-inl.hpp"
#endif
