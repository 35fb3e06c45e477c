/// @file
/// The definitions of idx.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/data/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"

namespace diffuse::data {

DIFFUSE_COLD DIFFUSE_INLINE std::atomic<std::uint64_t>& max_idx_bytes() {
  static std::atomic<std::uint64_t> limit{std::uint64_t(1) << 30};
  return limit;
}

namespace detail {

DIFFUSE_COLD DIFFUSE_INLINE std::string dataset_hint(const std::filesystem::path& path) {
  return path.string().find("/usr/share/datasets/fashion-mnist") != std::string::npos
             ? " (install it with: apt-get install dataset-fashion-mnist, or set DIFFUSE_FASHION_MNIST to "
               "its folder)"
             : "";
}

DIFFUSE_COLD DIFFUSE_INLINE std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

DIFFUSE_COLD DIFFUSE_INLINE const char* idx_type_name(int code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return nullptr;
  }
}

}  // namespace detail

DIFFUSE_COLD DIFFUSE_INLINE IdxArray read_idx(const std::filesystem::path& path) {
  const std::string where = "IDX file '" + path.string() + "'";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw FileError(where + ": file does not exist" + detail::dataset_hint(path));
  if (std::filesystem::is_directory(path, ec)) throw FileError(where + ": it is a folder, not a file");

  std::unique_ptr<gzFile_s, int (*)(gzFile)> gz(gzopen(path.c_str(), "rb"), gzclose);
  if (!gz) throw FileError(where + ": cannot open the file");
  gzbuffer(gz.get(), 1 << 17);

  // Reads up to n bytes; returns how many were read, throws on a decompression error.
  auto read = [&](void* dst, std::size_t n) -> std::size_t {
    std::size_t got = 0;
    while (got < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
      const int r = gzread(gz.get(), static_cast<char*>(dst) + got, chunk);
      if (r < 0) {
        int err = 0;
        const char* msg = gzerror(gz.get(), &err);
        throw FileError(where + ": corrupt or unreadable data (" + (msg ? msg : "zlib error") + ")");
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  };

  unsigned char magic[4];
  const std::size_t got_magic = read(magic, 4);
  if (got_magic < 4)
    throw FileError(where + ": file is " + std::to_string(got_magic) +
                    " bytes, too short for the 4-byte magic number");
  const std::uint32_t magic_value = (std::uint32_t(magic[0]) << 24) | (std::uint32_t(magic[1]) << 16) |
                                    (std::uint32_t(magic[2]) << 8) | magic[3];
  if (magic[0] != 0 || magic[1] != 0)
    throw FileError(where + ": bad magic number " + detail::hex32(magic_value) +
                    " (an IDX file starts with two zero bytes, e.g. 0x00000803); not an IDX file?");
  const char* type = detail::idx_type_name(magic[2]);
  if (!type)
    throw FileError(where + ": unknown data type code 0x" + detail::hex32(magic[2]).substr(8) +
                    " in magic number " + detail::hex32(magic_value));
  if (magic[2] != 0x08)
    throw FileError(where + ": data type " + type + " (code " + detail::hex32(magic[2]).substr(8) +
                    ") is not supported; only unsigned byte (0x08) images and labels are");
  const int ndim = magic[3];
  if (ndim < 1 || ndim > 8)
    throw FileError(where + ": absurd number of dimensions " + std::to_string(ndim) + " (magic " +
                    detail::hex32(magic_value) + ")");

  IdxArray out;
  std::uint64_t numel = 1;
  for (int d = 0; d < ndim; ++d) {
    unsigned char b[4];
    if (read(b, 4) < 4)
      throw FileError(where + ": truncated header (ends inside dimension " + std::to_string(d) + " of " +
                      std::to_string(ndim) + ")");
    const std::uint64_t n =
        (std::uint64_t(b[0]) << 24) | (std::uint64_t(b[1]) << 16) | (std::uint64_t(b[2]) << 8) | b[3];
    out.shape.push_back(static_cast<std::int64_t>(n));
    // Checked before multiplying, so the product never overflows.
    if (n != 0 && numel > detail::kIdxMaxElements / n) {
      std::string dims;
      for (auto v : out.shape) dims += (dims.empty() ? "" : " x ") + std::to_string(v);
      throw FileError(where + ": absurd dimensions " + dims + " (more than 2^34 elements); corrupt header?");
    }
    numel *= n;
  }

  if (numel > max_idx_bytes().load()) {
    std::string dims;
    for (auto v : out.shape) dims += (dims.empty() ? "" : " x ") + std::to_string(v);
    throw FileError(where + ": the header describes " + dims + " = " + std::to_string(numel) +
                    " bytes, more than the limit of " + std::to_string(max_idx_bytes().load()) +
                    " (data::max_idx_bytes())");
  }
  // Read in chunks so a lying header cannot make us allocate more than the file holds.
  const std::size_t expected = static_cast<std::size_t>(numel);
  std::size_t have = 0;
  while (have < expected) {
    const std::size_t want = std::min<std::size_t>(expected - have, std::size_t(1) << 24);
    out.data.resize(have + want);
    const std::size_t got = read(out.data.data() + have, want);
    have += got;
    if (got < want) break;
  }
  if (have < expected)
    throw FileError(where + ": truncated data: expected " + std::to_string(expected) +
                    " bytes for the shape, got " + std::to_string(have));
  unsigned char extra;
  if (read(&extra, 1) != 0)
    throw FileError(where + ": more data than the header's shape describes (" + std::to_string(expected) +
                    " bytes)");
  return out;
}

}  // namespace diffuse::data
