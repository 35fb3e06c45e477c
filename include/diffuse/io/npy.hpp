/// @file
/// NumPy .npy files: save a tensor as '<f4' / '<f8', load '<f4', '<f8', '<f2', '<i8', '<i4',
/// '<i2', '|i1', '|u1' and '|b1' converting to T. C order only; the header and the data size
/// are checked so a broken file throws FileError instead of reading out of bounds.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <type_traits>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/atomic_file.hpp"
#include "diffuse/io/half.hpp"

namespace diffuse::io {

static_assert(std::endian::native == std::endian::little,
              "diffuse's file readers assume a little-endian host");

namespace detail {

/// The parsed header of a .npy file.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
  std::size_t data_start = 0;
};

/// Parses and checks the header of a .npy file's `bytes`; FileError prefixed with `where`.
NpyHeader parse_npy_header(const std::string& bytes, const std::string& where);

/// Bytes per element of a supported descr, 0 if unsupported.
std::size_t npy_descr_size(const std::string& d);

template <class S, class T>
void npy_cast(const char* src, std::int64_t n, T* dst) {
  for (std::int64_t i = 0; i < n; ++i) {
    S s;
    std::memcpy(&s, src + i * sizeof(S), sizeof(S));
    dst[i] = static_cast<T>(s);
  }
}

}  // namespace detail

/// Writes `t` as a version 1.0 .npy file ('<f4' for float, '<f8' for double), atomically.
/// Like numpy.save.
template <class T>
void save_npy(const std::filesystem::path& path, const Tensor<T>& t) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "save_npy writes float32 or float64");
  std::string shape = "(";
  for (auto d : t.shape()) shape += std::to_string(d) + ", ";
  if (t.dim() > 0) shape.erase(shape.size() - 1);  // "(3, 4)" or "(3,)"
  if (t.dim() > 1) shape.erase(shape.size() - 1);
  shape += ")";
  std::string header = std::string("{'descr': '") + (sizeof(T) == 4 ? "<f4" : "<f8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so magic + version + length + header ends on a 64-byte boundary, then '\n'.
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  const auto n = static_cast<std::uint16_t>(header.size());
  bytes.append(reinterpret_cast<const char*>(&n), 2);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(t.data()), sizeof(T) * static_cast<std::size_t>(t.numel()));
  write_file_atomic(path, bytes);
}

/// Reads a C-order .npy file, converting its dtype to T. FileError for a Fortran-order file, an
/// unsupported dtype, a malformed header or a data size that does not match the shape.
/// Like numpy.load for a single array.
template <class T = float>
Tensor<T> load_npy(const std::filesystem::path& path) {
  const std::string where = ".npy file '" + path.string() + "'";
  const std::string bytes = read_file_bytes(path);
  const detail::NpyHeader h = detail::parse_npy_header(bytes, where);
  if (h.fortran_order)
    throw FileError(where + ": Fortran-order arrays are not supported (save with C order)");
  const std::size_t dsize = detail::npy_descr_size(h.descr);
  if (dsize == 0)
    throw FileError(where + ": unsupported dtype '" + h.descr +
                    "' (supported: <f4 <f8 <f2 <i8 <i4 <i2 |i1 |u1 |b1, little-endian)");
  const std::uint64_t avail = bytes.size() - h.data_start;
  std::uint64_t numel = 1;
  bool has_zero = false;
  for (auto d : h.shape) {
    const auto u = static_cast<std::uint64_t>(d);
    if (u == 0)
      has_zero = true;
    else
      numel = numel > avail / u ? avail + 1 : numel * u;  // saturate: more than the file holds
  }
  if (has_zero) numel = 0;
  if (numel > avail || numel * dsize != avail)
    throw FileError(where + ": shape " + to_string(h.shape) + " of dtype " + h.descr + " needs " +
                    (numel > avail ? std::string("more bytes than the file holds")
                                   : std::to_string(numel * dsize) + " bytes") +
                    ", the file has " + std::to_string(avail) + " bytes of data");
  Tensor<T> t = Tensor<T>::empty(h.shape);
  const char* src = bytes.data() + h.data_start;
  const auto n = static_cast<std::int64_t>(numel);
  T* dst = t.data();
  const std::string& d = h.descr;
  if (d == "<f4")
    detail::npy_cast<float>(src, n, dst);
  else if (d == "<f8")
    detail::npy_cast<double>(src, n, dst);
  else if (d == "<i8")
    detail::npy_cast<std::int64_t>(src, n, dst);
  else if (d == "<i4")
    detail::npy_cast<std::int32_t>(src, n, dst);
  else if (d == "<i2")
    detail::npy_cast<std::int16_t>(src, n, dst);
  else if (d == "|i1")
    detail::npy_cast<std::int8_t>(src, n, dst);
  else if (d == "|u1")
    detail::npy_cast<std::uint8_t>(src, n, dst);
  else if (d == "|b1")
    for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i] ? T(1) : T(0);
  else  // "<f2"
    for (std::int64_t i = 0; i < n; ++i) {
      std::uint16_t v;
      std::memcpy(&v, src + 2 * i, 2);
      dst[i] = static_cast<T>(half_to_float(v));
    }
  return t;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_IO_NPY_TEMPLATES(X, T)                                       \
  X(void save_npy<T>(const std::filesystem::path& path, const Tensor<T>& t)) \
  X(Tensor<T> load_npy<T>(const std::filesystem::path& path))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_IO_NPY_TEMPLATES)

}  // namespace diffuse::io

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/io/npy-inl.hpp"
#endif
