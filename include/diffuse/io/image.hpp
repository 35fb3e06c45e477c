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
#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <stb_image.h>
#include <stb_image_write.h>

#include "diffuse/core/error.hpp"
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
inline std::atomic<std::int64_t>& max_image_pixels() {
  static std::atomic<std::int64_t> limit{89478485};
  return limit;
}

namespace detail {

enum class ImageFormat { png, jpeg, other };

inline ImageFormat image_format(const std::string& bytes) {
  if (bytes.rfind("\x89PNG\r\n\x1a\n", 0) == 0) return ImageFormat::png;
  if (bytes.size() >= 3 && bytes.compare(0, 3, "\xff\xd8\xff") == 0) return ImageFormat::jpeg;
  return ImageFormat::other;
}

/// Walks a JPEG's marker segments (and over entropy-coded data after each SOS) and refuses a DHT
/// table that declares more than 256 codes. Anything else malformed is left to stb to report.
inline void check_jpeg_huffman_tables(const std::string& b, const std::string& what) {
  const std::size_t n = b.size();
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(b[i]); };
  std::size_t i = 2;  // after SOI
  while (i + 1 < n) {
    if (byte(i) != 0xFF) return;  // not at a marker: malformed, stb will say so
    const unsigned char marker = byte(i + 1);
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    i += 2;
    if (marker == 0xD9) return;                                          // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;  // no length
    if (i + 1 >= n) return;
    const std::size_t len = (std::size_t(byte(i)) << 8) | byte(i + 1);
    if (len < 2 || i + len > n) return;
    if (marker == 0xC4) {  // DHT: tables of [class/id, 16 counts, symbols]
      for (std::size_t p = i + 2; p + 17 <= i + len;) {
        std::size_t codes = 0;
        for (int k = 1; k <= 16; ++k) codes += byte(p + k);
        if (codes > 256)
          throw FileError("cannot decode image '" + what + "': corrupt JPEG (a Huffman table declares " +
                          std::to_string(codes) + " codes; at most 256 exist)");
        p += 17 + codes;
      }
    }
    i += len;
    if (marker == 0xDA)  // SOS: skip the entropy-coded data up to the next marker
      while (i + 1 < n &&
             !(byte(i) == 0xFF && byte(i + 1) != 0 && !(byte(i + 1) >= 0xD0 && byte(i + 1) <= 0xD7)))
        ++i;
  }
}

/// Walks a PNG's chunks up to IEND and refuses one whose declared length runs past the end of the
/// file: stb 2.27 allocates an IDAT chunk's declared size (up to 2 GiB) before it notices that the
/// file is shorter (a 230-byte file asked for 1.8 GB; found by tests/fuzz/fuzz_image_folder). stb
/// cannot decode such a file anyway; a file that ends between two chunks is left to stb to report.
inline void check_png_chunks(const std::string& b, const std::string& what) {
  std::size_t i = 8;  // after the signature
  while (i + 8 <= b.size()) {
    const std::uint64_t len = (std::uint64_t(static_cast<unsigned char>(b[i])) << 24) |
                              (std::uint64_t(static_cast<unsigned char>(b[i + 1])) << 16) |
                              (std::uint64_t(static_cast<unsigned char>(b[i + 2])) << 8) |
                              static_cast<unsigned char>(b[i + 3]);
    std::string type = b.substr(i + 4, 4);
    if (type == "IEND") return;
    for (char& ch : type)
      if (!std::isalpha(static_cast<unsigned char>(ch))) ch = '?';
    const std::uint64_t left = b.size() - i - 8;
    if (len + 4 > left)  // the data and its CRC
      throw FileError("cannot decode image '" + what + "': corrupt or truncated PNG (chunk '" + type +
                      "' declares " + std::to_string(len) + " bytes, the file has " + std::to_string(left) +
                      " left)");
    i += 12 + static_cast<std::size_t>(len);
  }
}

}  // namespace detail

/// Decodes an image file to 8-bit pixels; `channels` as in read_image. FileError naming the
/// file and the reason when the file is missing, is not a PNG or JPEG, is larger than
/// max_image_pixels() or cannot be decoded.
inline ImageU8 read_image_u8(const std::filesystem::path& path, int channels = 0) {
  if (channels < 0 || channels > 4)
    throw Error("read_image('" + path.string() + "'): channels must be 0..4, got " +
                std::to_string(channels));
  const std::string bytes = read_file_bytes(path);
  const std::string fail = "cannot decode image '" + path.string() + "': ";
  if (bytes.empty()) throw FileError(fail + "the file is empty (0 bytes)");
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) throw FileError(fail + "file is larger than 2 GB");
  const detail::ImageFormat format = detail::image_format(bytes);
  if (format == detail::ImageFormat::other)
    throw FileError(fail + "not a PNG or JPEG file (by its first bytes); diffuse reads PNG and JPEG only");
  if (format == detail::ImageFormat::jpeg) detail::check_jpeg_huffman_tables(bytes, path.string());
  if (format == detail::ImageFormat::png) detail::check_png_chunks(bytes, path.string());
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(data, static_cast<int>(bytes.size()), &w, &h, &c)) {
    const char* why = stbi_failure_reason();
    throw FileError(fail + (why ? why : "unreadable header"));
  }
  if (static_cast<std::int64_t>(w) * h > max_image_pixels().load())
    throw FileError(fail + std::to_string(w) + "x" + std::to_string(h) +
                    " pixels is more than the limit of " + std::to_string(max_image_pixels().load()) +
                    " (io::max_image_pixels())");
  ImageU8 img;
  int file_channels = 0;
  unsigned char* pixels = stbi_load_from_memory(data, static_cast<int>(bytes.size()), &img.width, &img.height,
                                                &file_channels, channels);
  if (!pixels) {
    const char* why = stbi_failure_reason();
    throw FileError("cannot decode image '" + path.string() + "': " + (why ? why : "unknown reason"));
  }
  if (img.width < 1 || img.height < 1) {
    stbi_image_free(pixels);
    throw FileError("cannot decode image '" + path.string() + "': zero-size image (" +
                    std::to_string(img.width) + "x" + std::to_string(img.height) + ")");
  }
  img.channels = channels ? channels : file_channels;
  img.file_channels = file_channels;
  const std::size_t n = static_cast<std::size_t>(img.width) * img.height * img.channels;
  try {
    img.pixels.assign(pixels, pixels + n);
  } catch (...) {
    stbi_image_free(pixels);
    throw;
  }
  stbi_image_free(pixels);
  return img;
}

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

inline void append_to_string(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

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

}  // namespace diffuse::io
