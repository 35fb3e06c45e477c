/// @file
/// The definitions of image.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/io/image.hpp"

#include <atomic>
#include <cctype>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <stb_image.h>

#include "diffuse/core/error.hpp"
#include "diffuse/io/atomic_file.hpp"

namespace diffuse::io {

DIFFUSE_INLINE std::atomic<std::int64_t>& max_image_pixels() {
  static std::atomic<std::int64_t> limit{89478485};
  return limit;
}

namespace detail {

enum class ImageFormat { png, jpeg, other };

DIFFUSE_INLINE ImageFormat image_format(const std::string& bytes) {
  if (bytes.rfind("\x89PNG\r\n\x1a\n", 0) == 0) return ImageFormat::png;
  if (bytes.size() >= 3 && bytes.compare(0, 3, "\xff\xd8\xff") == 0) return ImageFormat::jpeg;
  return ImageFormat::other;
}

/// Walks a JPEG's marker segments (and over entropy-coded data after each SOS) and refuses a DHT
/// table that declares more than 256 codes. Anything else malformed is left to stb to report.
DIFFUSE_INLINE void check_jpeg_huffman_tables(const std::string& b, const std::string& what) {
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
DIFFUSE_INLINE void check_png_chunks(const std::string& b, const std::string& what) {
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

DIFFUSE_INLINE ImageU8 read_image_u8(const std::filesystem::path& path, int channels) {
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

namespace detail {

DIFFUSE_INLINE void append_to_string(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

}  // namespace detail

}  // namespace diffuse::io
