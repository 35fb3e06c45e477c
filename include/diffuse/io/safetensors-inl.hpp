/// @file
/// The definitions of safetensors.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/io/safetensors.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/io/atomic_file.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::io {

namespace detail {

DIFFUSE_COLD DIFFUSE_INLINE std::size_t safetensors_dtype_size(const std::string& d) {
  struct Entry {
    const char* name;
    std::size_t size;
  };
  static constexpr Entry sizes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                    {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"U16", 2},
                                    {"U32", 4}, {"U64", 8}, {"BOOL", 1}};
  for (const Entry& e : sizes)
    if (d == e.name) return e.size;
  return 0;
}

DIFFUSE_COLD DIFFUSE_INLINE SafetensorsFile parse_safetensors(const std::filesystem::path& path) {
  using nlohmann::json;
  const std::string where = "safetensors file '" + path.string() + "'";
  auto fail = [&](const std::string& what) -> FileError { return FileError(where + ": " + what); };

  SafetensorsFile f;
  f.bytes = read_file_bytes(path);
  const std::uint64_t file_size = f.bytes.size();
  if (file_size < 8)
    throw fail("file is " + std::to_string(file_size) + " bytes, too short for the 8-byte header length");
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, f.bytes.data(), 8);
  if (header_len > kSafetensorsMaxHeader)
    throw fail("header length " + std::to_string(header_len) + " is absurdly large (limit " +
               std::to_string(kSafetensorsMaxHeader) + " bytes); not a safetensors file?");
  if (header_len > file_size - 8)
    throw fail("header length " + std::to_string(header_len) + " runs past the end of the file (" +
               std::to_string(file_size) + " bytes)");
  f.data_start = 8 + static_cast<std::size_t>(header_len);
  const std::uint64_t data_size = file_size - f.data_start;

  json header;
  // Through the parser parse_json() uses: nlohmann's parser is compiled once per iterator type,
  // and it is the largest part of the JSON code.
  const std::string& bytes = f.bytes;
  const auto header_begin = bytes.begin() + 8,
             header_end = bytes.begin() + static_cast<std::ptrdiff_t>(f.data_start);
  try {
    check_json_depth(header_begin, header_end);
  } catch (const Error& e) {
    throw fail(std::string("header: ") + e.what());
  }
  try {
    header = detail::parse_without_callback<json>(header_begin, header_end);
  } catch (const json::exception& e) {
    throw fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail("header is not a JSON object");

  // A non-negative integer that fits in int64 (so later arithmetic cannot wrap).
  auto read_count = [&](const json& v, const std::string& what) -> std::uint64_t {
    if (v.is_number_integer() && !v.is_number_unsigned())
      throw fail(what + " is negative (" + v.dump() + ")");
    if (!v.is_number_unsigned()) throw fail(what + " is not a non-negative integer (" + v.dump() + ")");
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw fail(what + " is too large");
    return u;
  };

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw fail("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) throw fail("__metadata__ value of '" + m.key() + "' is not a string");
        f.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string t = "tensor '" + name + "'";
    if (!v.is_object()) throw fail(t + ": entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) throw fail(t + ": missing or non-string 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array()) throw fail(t + ": missing or non-array 'shape'");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      throw fail(t + ": missing 'data_offsets' (an array [begin, end])");

    SafetensorsInfo info;
    info.dtype = v["dtype"].get<std::string>();
    const std::size_t dsize = safetensors_dtype_size(info.dtype);
    if (dsize == 0) throw fail(t + ": unknown dtype '" + info.dtype + "'");

    // Element count, saturating at data_size + 1 ("more than the file holds") so it cannot overflow.
    std::uint64_t numel = 1;
    bool has_zero = false;
    for (const json& d : v["shape"]) {
      const std::uint64_t n = read_count(d, t + ": shape entry");
      info.shape.push_back(static_cast<std::int64_t>(n));
      if (n == 0)
        has_zero = true;
      else
        numel = numel > data_size / n ? data_size + 1 : numel * n;
    }
    if (has_zero) numel = 0;
    info.begin = read_count(v["data_offsets"][0], t + ": data_offsets begin");
    info.end = read_count(v["data_offsets"][1], t + ": data_offsets end");
    if (info.begin > info.end)
      throw fail(t + ": data_offsets begin " + std::to_string(info.begin) + " > end " +
                 std::to_string(info.end));
    if (info.end > data_size)
      throw fail(t + ": data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                 "] out of range of the " + std::to_string(data_size) + "-byte data section");
    if (numel > data_size || info.end - info.begin != numel * dsize)
      throw fail(
          t + ": " + std::to_string(info.end - info.begin) + " bytes of data for shape " +
          to_string(info.shape) + " of dtype " + info.dtype + " (expected " +
          (numel > data_size ? std::string("more than the file holds") : std::to_string(numel * dsize)) +
          ")");
    f.tensors.emplace(name, std::move(info));
  }

  // The tensors must tile the data section exactly: no overlap, no gap, nothing left over.
  std::vector<std::pair<const std::string*, const SafetensorsInfo*>> order;
  for (const auto& [name, info] : f.tensors) order.emplace_back(&name, &info);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second->begin != b.second->begin ? a.second->begin < b.second->begin
                                              : a.second->end < b.second->end;
  });
  std::uint64_t pos = 0;
  for (const auto& [name, info] : order) {
    if (info->begin < pos)
      throw fail("tensor '" + *name + "': data_offsets [" + std::to_string(info->begin) + ", " +
                 std::to_string(info->end) + "] overlap the previous tensor (which ends at " +
                 std::to_string(pos) + ")");
    if (info->begin > pos)
      throw fail("tensor '" + *name + "': data_offsets are not contiguous (gap of bytes " +
                 std::to_string(pos) + ".." + std::to_string(info->begin) + ")");
    pos = info->end;
  }
  if (pos != data_size)
    throw fail("data section is " + std::to_string(data_size) + " bytes but the tensors cover only " +
               std::to_string(pos));
  return f;
}

}  // namespace detail

DIFFUSE_COLD DIFFUSE_INLINE std::map<std::string, std::string> load_safetensors_metadata(
    const std::filesystem::path& path) {
  return detail::parse_safetensors(path).metadata;
}

DIFFUSE_COLD DIFFUSE_INLINE std::map<std::string, SafetensorsInfo> load_safetensors_info(
    const std::filesystem::path& path) {
  return detail::parse_safetensors(path).tensors;
}

}  // namespace diffuse::io
