/// @file
/// PyTorch checkpoints (diffusers' diffusion_pytorch_model.bin): the zip archive torch.save writes
/// (torch >= 1.6): "<name>/data.pkl", a pickle of the state dict, and "<name>/data/<key>", the raw
/// little-endian bytes of each storage.
///
/// The pickle is read by a restricted unpickler: a small stack machine that knows only the opcodes
/// a state dict uses and only these globals: collections.OrderedDict,
/// torch._utils._rebuild_tensor_v2 (and _rebuild_parameter) and the torch.*Storage types. Nothing
/// is ever executed; any other global, opcode or shape of data is refused with a FileError, and
/// every size and offset is checked before it is used.
///
///   auto weights = io::load_pytorch_bin<float>("unet/diffusion_pytorch_model.bin");
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/atomic_file.hpp"
#include "diffuse/io/half.hpp"

namespace diffuse::io {

namespace detail {

// ---------------------------------------------------------------- zip archive

struct ZipEntry {
  std::string name;
  std::uint16_t method = 0;  // 0 stored, 8 deflate
  std::uint64_t compressed = 0, size = 0, local_offset = 0;
  std::uint32_t crc = 0;
};

class ZipReader {
 public:
  ZipReader(const std::string& bytes, std::string where);

  const std::vector<ZipEntry>& entries() const { return entries_; }

  /// The bytes of an entry, checked against the archive's bounds and the recorded size.
  std::string read(const ZipEntry& e, std::uint64_t max_size) const;

  FileError fail(const std::string& what) const;

 private:
  std::string checked(const ZipEntry& e, std::string data) const;
  std::uint16_t u16(std::uint64_t at) const;
  std::uint32_t u32(std::uint64_t at) const;
  std::uint64_t u64(std::uint64_t at) const;
  bool fits(std::uint64_t at, std::uint64_t n) const { return at <= b_.size() && b_.size() - at >= n; }

  void read_directory();

  const std::string& b_;
  std::string where_;
  std::vector<ZipEntry> entries_;
};

// ---------------------------------------------------------------- restricted unpickler

struct PickleValue;
/// Lists, tuples and dicts record how deep they nest and whether they already sit inside another
/// container: a container is filled before it is put into another (as pickle writes them), which
/// rules out cycles and, with the depth limit, recursion too deep to free.
struct PickleList {
  std::vector<PickleValue> items;
  int depth = 1;
  bool contained = false;
};

struct PickleStorage {
  std::string dtype;  // "F32", "F64", "F16", "BF16", "I64", ...
  std::string key;
  std::int64_t numel = 0;
};
struct PickleTensor {
  std::shared_ptr<PickleStorage> storage;
  std::int64_t offset = 0;
  std::vector<std::int64_t> size, stride;
};
struct PickleGlobal {
  std::string name;  // "module.name"
};
struct PickleDict {
  std::vector<std::pair<PickleValue, PickleValue>> items;
  int depth = 1;
  bool contained = false;
};
struct PickleMark {};

struct PickleValue {
  std::variant<std::monostate, bool, std::int64_t, double, std::string, std::shared_ptr<PickleList>,
               std::shared_ptr<PickleDict>, PickleGlobal, std::shared_ptr<PickleStorage>,
               std::shared_ptr<PickleTensor>, PickleMark>
      v;
  bool is_tuple = false;  // a PickleList that came from a TUPLE opcode
};

/// Bytes per element of a storage dtype ("F32", "I64", ...).
std::size_t torch_dtype_size(const std::string& d);

class RestrictedUnpickler {
 public:
  RestrictedUnpickler(const std::string& bytes, std::string where);

  PickleValue load();

 private:
  FileError fail(const std::string& what) const;

  std::uint8_t byte();
  std::string take(std::uint64_t n);
  std::uint64_t le(int n);
  std::int64_t long1();
  double binfloat();  // big-endian IEEE double
  std::string line();

  void push(PickleValue v);
  PickleValue pop();
  PickleValue& top();
  std::vector<PickleValue> pop_n(std::size_t n);
  std::vector<PickleValue> pop_to_mark();
  // Marks `child` as placed inside a container and returns its depth (0 for a plain value).
  int adopt(PickleValue& child, const void* parent);
  PickleValue list(std::vector<PickleValue> items, bool is_tuple);
  PickleValue tuple(std::vector<PickleValue> items);
  void append(PickleValue& target, std::vector<PickleValue> items, const char* op);
  void set_items(PickleValue& target, std::vector<PickleValue> items, const char* op);

  void memo(std::uint64_t index);
  PickleValue recall(std::uint64_t index);

  std::string as_string(const PickleValue& v, const char* what) const;
  std::int64_t as_int(const PickleValue& v, const char* what) const;
  const std::vector<PickleValue>& as_tuple(const PickleValue& v, const char* what) const;

  PickleValue global(const std::string& name);

  // ('storage', torch.FloatStorage, key, location, numel)
  PickleValue persistent_load(const PickleValue& pid);

  PickleValue reduce(const PickleValue& fn, const PickleValue& args);

  static constexpr std::size_t kMaxStack = 1'000'000, kMaxMemo = 1'000'000;
  static constexpr int kMaxDepth = 64;
  const std::string& b_;
  std::string where_;
  std::size_t pos_ = 0;
  std::size_t recall_budget_;
  std::vector<PickleValue> stack_, memo_;
};

/// Copies the elements of a strided view of a storage into a contiguous tensor.
template <class T>
Tensor<T> torch_tensor_from_storage(const PickleTensor& t, const std::string& data, const std::string& name,
                                    const std::string& where) {
  auto fail = [&](const std::string& what) { return FileError(where + ": tensor '" + name + "': " + what); };
  const std::size_t es = torch_dtype_size(t.storage->dtype);
  if (data.size() != static_cast<std::uint64_t>(t.storage->numel) * es)
    throw fail("its storage holds " + std::to_string(data.size()) + " bytes, the pickle says " +
               std::to_string(t.storage->numel) + " elements of " + std::to_string(es));
  Shape shape(t.size.begin(), t.size.end());
  std::int64_t n = 0;
  try {
    n = numel_of(shape);
  } catch (const Error& e) {
    throw fail(e.what());
  }
  // The highest element the view touches must lie inside the storage.
  std::int64_t lo = t.offset, hi = t.offset;
  if (t.offset < 0) throw fail("negative storage offset");
  if (n > 0)
    for (std::size_t d = 0; d < shape.size(); ++d) {
      if (t.stride[d] < 0) throw fail("negative stride");
      if (shape[d] > 1 && t.stride[d] > (std::numeric_limits<std::int64_t>::max() - hi) / (shape[d] - 1))
        throw fail("stride overflows");
      hi += (shape[d] - 1) * t.stride[d];
    }
  if (n > t.storage->numel)
    throw fail("view of " + std::to_string(n) + " elements over a storage of " +
               std::to_string(t.storage->numel));
  if (n > 0 && (lo < 0 || hi >= t.storage->numel))
    throw fail("view [offset " + std::to_string(t.offset) + ", shape " + to_string(shape) +
               "] reaches past its storage of " + std::to_string(t.storage->numel) + " elements");
  Tensor<T> out = Tensor<T>::empty(shape);
  T* o = out.data();
  const std::string& d = t.storage->dtype;
  auto element = [&](std::int64_t i) -> T {
    const char* p = data.data() + static_cast<std::size_t>(i) * es;
    if (d == "F32") {
      float v;
      std::memcpy(&v, p, 4);
      return static_cast<T>(v);
    }
    if (d == "F64") {
      double v;
      std::memcpy(&v, p, 8);
      return static_cast<T>(v);
    }
    if (d == "F16") {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<T>(half_to_float(v));
    }
    if (d == "BF16") {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<T>(bf16_to_float(v));
    }
    if (d == "I64") {
      std::int64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<T>(v);
    }
    if (d == "I32") {
      std::int32_t v;
      std::memcpy(&v, p, 4);
      return static_cast<T>(v);
    }
    if (d == "I16") {
      std::int16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<T>(v);
    }
    if (d == "I8") return static_cast<T>(static_cast<std::int8_t>(*p));
    return static_cast<T>(static_cast<std::uint8_t>(*p));  // U8, BOOL
  };
  std::vector<std::int64_t> index(shape.size(), 0);
  for (std::int64_t k = 0; k < n; ++k) {
    std::int64_t at = t.offset;
    for (std::size_t dim = 0; dim < shape.size(); ++dim) at += index[dim] * t.stride[dim];
    o[k] = element(at);
    for (std::size_t dim = shape.size(); dim-- > 0;) {
      if (++index[dim] < shape[dim]) break;
      index[dim] = 0;
    }
  }
  return out;
}

}  // namespace detail

/// Reads a state dict that torch.save wrote (zip format) as tensors of type T.
/// Like torch.load(path, weights_only=True) on a state dict. FileError naming the file (and the
/// tensor) for a legacy or big-endian file, a damaged archive, or a pickle holding anything else.
template <class T = float>
std::map<std::string, Tensor<T>> load_pytorch_bin(const std::filesystem::path& path) {
  const std::string where = "PyTorch file '" + path.string() + "'";
  const std::string bytes = read_file_bytes(path);
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x80 && bytes[1] == 0x02)
    throw FileError(where +
                    ": written in PyTorch's legacy (pre-1.6) format; re-save it with a newer torch.save");
  detail::ZipReader zip(bytes, where);
  const detail::ZipEntry* pickle = nullptr;
  std::map<std::string, const detail::ZipEntry*> storages;  // key -> entry
  for (const auto& e : zip.entries()) {
    const auto slash = e.name.find('/');
    if (slash == std::string::npos) continue;
    const std::string rest = e.name.substr(slash + 1);
    if (rest == "data.pkl")
      pickle = &e;
    else if (rest == "byteorder" && zip.read(e, 16) != "little")
      throw FileError(where + ": written on a big-endian machine; only little-endian files are read");
    else if (rest.rfind("data/", 0) == 0)
      storages[rest.substr(5)] = &e;
  }
  if (!pickle) throw FileError(where + ": no data.pkl inside (not a torch.save archive)");
  const std::string pkl = zip.read(*pickle, bytes.size() * 64 + (1u << 20));
  detail::PickleValue root = detail::RestrictedUnpickler(pkl, where).load();
  auto* dict = std::get_if<std::shared_ptr<detail::PickleDict>>(&root.v);
  if (!dict) throw FileError(where + ": the pickle holds no dict of tensors");
  std::map<std::string, Tensor<T>> out;
  std::map<std::string, std::string> loaded;  // storage key -> bytes
  // Many names may point at one tensor; all of them together may not hold more than the file could.
  std::uint64_t total = 0;
  const std::uint64_t max_total = 4 * static_cast<std::uint64_t>(bytes.size()) + (1u << 20);
  for (const auto& [k, v] : (*dict)->items) {
    auto* name = std::get_if<std::string>(&k.v);
    auto* tensor = std::get_if<std::shared_ptr<detail::PickleTensor>>(&v.v);
    if (!name || !tensor) throw FileError(where + ": an entry of the dict is not a (name, tensor) pair");
    const auto& key = (*tensor)->storage->key;
    if (!loaded.count(key)) {
      auto it = storages.find(key);
      if (it == storages.end())
        throw FileError(where + ": tensor '" + *name + "': storage '" + key + "' is missing");
      loaded[key] = zip.read(*it->second, static_cast<std::uint64_t>((*tensor)->storage->numel) *
                                              detail::torch_dtype_size((*tensor)->storage->dtype));
    }
    std::uint64_t elements = 1;
    for (auto d : (*tensor)->size) {  // saturating at max_total + 1
      const auto u = static_cast<std::uint64_t>(std::max<std::int64_t>(d, 0));
      elements = u != 0 && elements > max_total / u ? max_total + 1 : elements * u;
    }
    if ((total += std::min(elements, max_total + 1)) > max_total)
      throw FileError(where + ": the tensors together hold more values than the file's storages could");
    out[*name] = detail::torch_tensor_from_storage<T>(**tensor, loaded[key], *name, where);
  }
  return out;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_IO_PYTORCH_BIN_TEMPLATES(X, T) \
  X(std::map<std::string, Tensor<T>> load_pytorch_bin<T>(const std::filesystem::path& path))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_IO_PYTORCH_BIN_TEMPLATES)

}  // namespace diffuse::io

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/io/pytorch_bin-inl.hpp"
#endif
