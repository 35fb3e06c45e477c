/// @file
/// The definitions of npy.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/io/npy.hpp"

#include <cctype>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "diffuse/core/error.hpp"
#include "diffuse/core/shape.hpp"

namespace diffuse::io {

namespace detail {

DIFFUSE_COLD DIFFUSE_INLINE NpyHeader parse_npy_header(const std::string& bytes, const std::string& where) {
  auto fail = [&](const std::string& what) { return FileError(where + ": " + what); };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw fail("not a .npy file (bad magic)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  std::size_t len = 0, start = 0;
  if (major == 1) {
    std::uint16_t n;
    std::memcpy(&n, bytes.data() + 8, 2);
    len = n, start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw fail("file too short for its header length");
    std::uint32_t n;
    std::memcpy(&n, bytes.data() + 8, 4);
    len = n, start = 12;
  } else {
    throw fail("unsupported .npy format version " + std::to_string(major));
  }
  if (len > bytes.size() - start)
    throw fail("header length " + std::to_string(len) + " runs past the end of the file (" +
               std::to_string(bytes.size()) + " bytes)");
  const std::string h = bytes.substr(start, len);
  NpyHeader out;
  out.data_start = start + len;

  // Position just after the ':' that follows key `k` (quoted with ' or ").
  auto value_of = [&](const std::string& k) -> std::size_t {
    std::size_t p = h.find("'" + k + "'");
    if (p == std::string::npos) p = h.find("\"" + k + "\"");
    if (p == std::string::npos) throw fail("header has no '" + k + "' key: " + h);
    p = h.find(':', p + k.size() + 2);
    if (p == std::string::npos) throw fail("header is malformed near '" + k + "': " + h);
    ++p;
    while (p < h.size() && std::isspace(static_cast<unsigned char>(h[p]))) ++p;
    return p;
  };

  std::size_t p = value_of("descr");
  if (p >= h.size() || (h[p] != '\'' && h[p] != '"')) throw fail("'descr' is not a string: " + h);
  const std::size_t q = h.find(h[p], p + 1);
  if (q == std::string::npos) throw fail("'descr' string is not terminated: " + h);
  out.descr = h.substr(p + 1, q - p - 1);

  p = value_of("fortran_order");
  if (h.compare(p, 4, "True") == 0)
    out.fortran_order = true;
  else if (h.compare(p, 5, "False") != 0)
    throw fail("'fortran_order' is neither True nor False: " + h);

  p = value_of("shape");
  if (p >= h.size() || h[p] != '(') throw fail("'shape' is not a tuple: " + h);
  const std::size_t close = h.find(')', p);
  if (close == std::string::npos) throw fail("'shape' tuple is not terminated: " + h);
  std::size_t i = p + 1;
  while (i < close) {
    while (i < close && (std::isspace(static_cast<unsigned char>(h[i])) || h[i] == ',')) ++i;
    if (i == close) break;
    if (!std::isdigit(static_cast<unsigned char>(h[i])))
      throw fail("'shape' entry is not a non-negative integer: " + h);
    std::int64_t v = 0;
    while (i < close && std::isdigit(static_cast<unsigned char>(h[i]))) {
      if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10)
        throw fail("'shape' entry is too large: " + h);
      v = v * 10 + (h[i++] - '0');
    }
    out.shape.push_back(v);
  }
  return out;
}

DIFFUSE_COLD DIFFUSE_INLINE std::size_t npy_descr_size(const std::string& d) {
  if (d == "<f8" || d == "<i8") return 8;
  if (d == "<f4" || d == "<i4") return 4;
  if (d == "<f2" || d == "<i2") return 2;
  if (d == "|u1" || d == "|i1" || d == "|b1") return 1;
  return 0;
}

}  // namespace detail

}  // namespace diffuse::io
