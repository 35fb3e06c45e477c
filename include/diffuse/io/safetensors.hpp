/// @file
/// safetensors: the Hugging Face tensor file format (diffusers' *.safetensors weights).
/// Layout: 8-byte little-endian header length N, N bytes of JSON
/// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
/// then the raw little-endian data. The reader validates everything before touching the data,
/// so a broken or hostile file throws FileError instead of reading out of bounds.
#pragma once
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/atomic_file.hpp"
#include "diffuse/io/half.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::io {

static_assert(std::endian::native == std::endian::little,
              "diffuse's file readers assume a little-endian host");

/// What the header says about one tensor.
struct SafetensorsInfo {
  std::string dtype;  ///< "F32", "F16", "BF16", ...
  Shape shape;
  std::uint64_t begin = 0, end = 0;  ///< byte range inside the data section
};

namespace detail {

/// Header larger than this is rejected (the reference implementation uses the same limit).
inline constexpr std::uint64_t kSafetensorsMaxHeader = 100'000'000;

/// Bytes per element of a safetensors dtype, 0 if unknown.
inline std::size_t safetensors_dtype_size(const std::string& d) {
  static const std::map<std::string, std::size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U8", 1},  {"U16", 2}, {"U32", 4},  {"U64", 8}, {"BOOL", 1}};
  auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

/// A parsed and validated file: the bytes, where the data starts, the tensors and the metadata.
struct SafetensorsFile {
  std::string bytes;
  std::size_t data_start = 0;
  std::map<std::string, SafetensorsInfo> tensors;
  std::map<std::string, std::string> metadata;
};

inline SafetensorsFile parse_safetensors(const std::filesystem::path& path) {
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
  try {
    check_json_depth(f.bytes.begin() + 8, f.bytes.begin() + static_cast<std::ptrdiff_t>(f.data_start));
  } catch (const Error& e) {
    throw fail(std::string("header: ") + e.what());
  }
  try {
    header = json::parse(f.bytes.begin() + 8, f.bytes.begin() + static_cast<std::ptrdiff_t>(f.data_start));
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

/// Converts n elements of safetensors dtype `dtype` at `src` into `dst`.
template <class T>
void convert_from_dtype(const std::string& dtype, const char* src, std::int64_t n, T* dst) {
  auto cast = [&]<class S>(S) {
    for (std::int64_t i = 0; i < n; ++i) {
      S s;
      std::memcpy(&s, src + i * sizeof(S), sizeof(S));
      dst[i] = static_cast<T>(s);
    }
  };
  auto bits16 = [&](auto convert) {
    for (std::int64_t i = 0; i < n; ++i) {
      std::uint16_t h;
      std::memcpy(&h, src + i * 2, 2);
      dst[i] = static_cast<T>(convert(h));
    }
  };
  if (dtype == "F32")
    cast(float{});
  else if (dtype == "F64")
    cast(double{});
  else if (dtype == "F16")
    bits16(half_to_float);
  else if (dtype == "BF16")
    bits16(bf16_to_float);
  else if (dtype == "I64")
    cast(std::int64_t{});
  else if (dtype == "I32")
    cast(std::int32_t{});
  else if (dtype == "I16")
    cast(std::int16_t{});
  else if (dtype == "I8")
    cast(std::int8_t{});
  else if (dtype == "U8")
    cast(std::uint8_t{});
  else if (dtype == "U16")
    cast(std::uint16_t{});
  else if (dtype == "U32")
    cast(std::uint32_t{});
  else if (dtype == "U64")
    cast(std::uint64_t{});
  else if (dtype == "BOOL")
    for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i] ? T(1) : T(0);
  else
    throw Error("unsupported dtype '" + dtype + "'");
}

}  // namespace detail

/// Reads every tensor of a .safetensors file, converting F16, BF16, F32, F64 (and the integer
/// and BOOL dtypes) to T. Throws FileError naming the file, the tensor and the problem.
/// Like safetensors.torch.load_file.
template <class T = float>
std::map<std::string, Tensor<T>> load_safetensors(const std::filesystem::path& path) {
  detail::SafetensorsFile f = detail::parse_safetensors(path);
  std::map<std::string, Tensor<T>> out;
  for (const auto& [name, info] : f.tensors) {
    Tensor<T> t = Tensor<T>::empty(info.shape);
    detail::convert_from_dtype(info.dtype, f.bytes.data() + f.data_start + info.begin, t.numel(), t.data());
    out.emplace(name, std::move(t));
  }
  return out;
}

/// The "__metadata__" string map of a .safetensors file (empty if it has none).
/// Like safe_open(path).metadata(). FileError as load_safetensors.
inline std::map<std::string, std::string> load_safetensors_metadata(const std::filesystem::path& path) {
  return detail::parse_safetensors(path).metadata;
}

/// Name -> dtype, shape and byte range of every tensor, without converting any data.
/// The whole file is still read and checked; FileError as load_safetensors.
inline std::map<std::string, SafetensorsInfo> load_safetensors_info(const std::filesystem::path& path) {
  return detail::parse_safetensors(path).tensors;
}

/// Writes tensors (sorted by name; header padded with spaces to a multiple of 8 bytes as the
/// format requires) with dtype "F32" (default), "F64", "F16" or "BF16". Atomic: written to a
/// temporary file in the same folder, then renamed into place.
/// Like safetensors.torch.save_file. Error for another dtype, an undefined tensor or one named
/// "__metadata__"; FileError if the file cannot be written.
template <class T>
void save_safetensors(const std::filesystem::path& path, const std::map<std::string, Tensor<T>>& tensors,
                      const std::map<std::string, std::string>& metadata = {},
                      const std::string& dtype = "F32") {
  using nlohmann::json;
  if (dtype != "F32" && dtype != "F64" && dtype != "F16" && dtype != "BF16")
    throw Error("save_safetensors('" + path.string() + "'): unsupported dtype '" + dtype +
                "' (use F32, F64, F16 or BF16)");
  const std::uint64_t dsize = detail::safetensors_dtype_size(dtype);
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__")
      throw Error("save_safetensors('" + path.string() + "'): '__metadata__' is reserved");
    if (!t.defined())
      throw Error("save_safetensors('" + path.string() + "'): tensor '" + name + "' is undefined");
    const std::uint64_t bytes = static_cast<std::uint64_t>(t.numel()) * dsize;
    header[name] = {{"dtype", dtype}, {"shape", t.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // a name or value that is not valid UTF-8
    throw Error("save_safetensors('" + path.string() + "'): " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  write_file_atomic(path, [&](std::ostream& out) {
    const std::uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    std::vector<char> buf;
    for (const auto& [name, t] : tensors) {
      const T* src = t.data();
      const std::int64_t count = t.numel();
      buf.resize(static_cast<std::size_t>(count) * dsize);
      char* dst = buf.data();
      for (std::int64_t i = 0; i < count; ++i) {
        if (dtype == "F32") {
          const float v = static_cast<float>(src[i]);
          std::memcpy(dst + 4 * i, &v, 4);
        } else if (dtype == "F64") {
          const double v = static_cast<double>(src[i]);
          std::memcpy(dst + 8 * i, &v, 8);
        } else {
          const std::uint16_t v = dtype == "F16" ? float_to_half(static_cast<float>(src[i]))
                                                 : float_to_bf16(static_cast<float>(src[i]));
          std::memcpy(dst + 2 * i, &v, 2);
        }
      }
      out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    }
  });
}

}  // namespace diffuse::io
