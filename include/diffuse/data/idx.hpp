/// @file
/// IDX files: the format of MNIST and Fashion-MNIST (gzipped or not). read_idx returns the
/// shape and the raw unsigned bytes; every malformed header or truncated file throws FileError.
/// Format: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, one
/// big-endian uint32 per dimension, then the data in row-major order.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"

namespace diffuse::data {

/// The contents of an IDX file: its shape and its bytes.
struct IdxArray {
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> data;  ///< row-major, shape's product bytes
};

/// The most bytes of data an IDX file may describe; larger headers are refused before anything is
/// allocated or decompressed (a 4 MB gzip file may expand to 4 GiB). Default 1 GiB: EMNIST's
/// largest file holds 547 MB, Fashion-MNIST's 47 MB. Raise it to read larger sets.
std::atomic<std::uint64_t>& max_idx_bytes();

namespace detail {

/// Refuse headers describing more than this many elements (16 GiB) before multiplying further.
inline constexpr std::uint64_t kIdxMaxElements = std::uint64_t(1) << 34;

/// A hint for a missing file in the packaged Fashion-MNIST folder.
std::string dataset_hint(const std::filesystem::path& path);

}  // namespace detail

/// Reads an IDX file of unsigned bytes; a ".gz" (or any gzip) file is decompressed on the fly
/// (zlib reads plain files transparently too).
/// FileError naming the file if it is missing, truncated or corrupt, holds another type than
/// unsigned bytes, or describes more than max_idx_bytes().
IdxArray read_idx(const std::filesystem::path& path);

}  // namespace diffuse::data

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/data/idx-inl.hpp"
#endif
