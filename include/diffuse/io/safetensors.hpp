/// @file
/// safetensors: the Hugging Face tensor file format (diffusers' *.safetensors weights).
/// Layout: 8-byte little-endian header length N, N bytes of JSON
/// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
/// then the raw little-endian data. The reader validates everything before touching the data,
/// so a broken or hostile file throws FileError instead of reading out of bounds.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
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
std::size_t safetensors_dtype_size(const std::string& d);

/// A parsed and validated file: the bytes, where the data starts, the tensors and the metadata.
struct SafetensorsFile {
  std::string bytes;
  std::size_t data_start = 0;
  std::map<std::string, SafetensorsInfo> tensors;
  std::map<std::string, std::string> metadata;
};

/// Reads and validates a whole .safetensors file; FileError naming the file and the problem.
SafetensorsFile parse_safetensors(const std::filesystem::path& path);

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
DIFFUSE_COLD std::map<std::string, Tensor<T>> load_safetensors(const std::filesystem::path& path) {
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
std::map<std::string, std::string> load_safetensors_metadata(const std::filesystem::path& path);

/// Name -> dtype, shape and byte range of every tensor, without converting any data.
/// The whole file is still read and checked; FileError as load_safetensors.
std::map<std::string, SafetensorsInfo> load_safetensors_info(const std::filesystem::path& path);

/// Writes tensors (sorted by name; header padded with spaces to a multiple of 8 bytes as the
/// format requires) with dtype "F32" (default), "F64", "F16" or "BF16". Atomic: written to a
/// temporary file in the same folder, then renamed into place.
/// Like safetensors.torch.save_file. Error for another dtype, an undefined tensor or one named
/// "__metadata__"; FileError if the file cannot be written.
template <class T>
DIFFUSE_COLD void save_safetensors(const std::filesystem::path& path,
                                   const std::map<std::string, Tensor<T>>& tensors,
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

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_IO_SAFETENSORS_TEMPLATES(X, T)                                               \
  X(std::map<std::string, Tensor<T>> load_safetensors<T>(const std::filesystem::path& path)) \
  X(void save_safetensors<T>(const std::filesystem::path& path,                              \
                             const std::map<std::string, Tensor<T>>& tensors,                \
                             const std::map<std::string, std::string>& metadata, const std::string& dtype))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_IO_SAFETENSORS_TEMPLATES)

}  // namespace diffuse::io

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/io/safetensors-inl.hpp"
#endif
