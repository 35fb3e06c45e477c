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
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <zlib.h>

#include "diffuse/core/error.hpp"
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
  ZipReader(const std::string& bytes, std::string where) : b_(bytes), where_(std::move(where)) {
    read_directory();
  }

  const std::vector<ZipEntry>& entries() const { return entries_; }

  /// The bytes of an entry, checked against the archive's bounds and the recorded size.
  std::string read(const ZipEntry& e, std::uint64_t max_size) const {
    if (e.size > max_size)
      throw fail("entry '" + e.name + "' claims " + std::to_string(e.size) + " bytes, more than expected (" +
                 std::to_string(max_size) + ")");
    const std::uint64_t h = e.local_offset;
    if (h > b_.size() || b_.size() - h < 30 || u32(h) != 0x04034b50)
      throw fail("entry '" + e.name + "': no local header at offset " + std::to_string(h));
    const std::uint64_t start = h + 30 + u16(h + 26) + u16(h + 28);
    if (start > b_.size() || b_.size() - start < e.compressed)
      throw fail("entry '" + e.name + "' runs past the end of the file (truncated?)");
    if (e.method == 0) {
      if (e.compressed != e.size) throw fail("stored entry '" + e.name + "' has two different sizes");
      return checked(e, b_.substr(start, e.size));
    }
    if (e.size / 1032 > e.compressed)  // deflate cannot compress better than 1032:1
      throw fail("entry '" + e.name + "' claims to inflate " + std::to_string(e.compressed) + " bytes into " +
                 std::to_string(e.size));
    if (e.method != 8)
      throw fail("entry '" + e.name + "' uses compression method " + std::to_string(e.method) +
                 " (only stored and deflate are read)");
    std::string out(e.size, '\0');
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw fail("cannot start zlib");
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(b_.data() + start));
    z.avail_in = static_cast<uInt>(std::min<std::uint64_t>(e.compressed, std::numeric_limits<uInt>::max()));
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(std::min<std::uint64_t>(e.size, std::numeric_limits<uInt>::max()));
    const int rc = inflate(&z, Z_FINISH);
    const std::uint64_t produced = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END || produced != e.size)
      throw fail("entry '" + e.name + "' does not inflate to its recorded " + std::to_string(e.size) +
                 " bytes");
    return checked(e, std::move(out));
  }

  FileError fail(const std::string& what) const { return FileError(where_ + ": " + what); }

 private:
  std::string checked(const ZipEntry& e, std::string data) const {
    uLong crc = crc32(0L, Z_NULL, 0);
    for (std::size_t at = 0; at < data.size(); at += 1u << 30) {
      const auto n = static_cast<uInt>(std::min<std::size_t>(data.size() - at, 1u << 30));
      crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data() + at), n);
    }
    if (crc != e.crc) throw fail("entry '" + e.name + "' is damaged (CRC-32 mismatch)");
    return data;
  }
  std::uint16_t u16(std::uint64_t at) const {
    std::uint16_t v;
    std::memcpy(&v, b_.data() + at, 2);
    return v;
  }
  std::uint32_t u32(std::uint64_t at) const {
    std::uint32_t v;
    std::memcpy(&v, b_.data() + at, 4);
    return v;
  }
  std::uint64_t u64(std::uint64_t at) const {
    std::uint64_t v;
    std::memcpy(&v, b_.data() + at, 8);
    return v;
  }
  bool fits(std::uint64_t at, std::uint64_t n) const { return at <= b_.size() && b_.size() - at >= n; }

  void read_directory() {
    const std::uint64_t n = b_.size();
    if (n < 22) throw fail("file is " + std::to_string(n) + " bytes, too short for a zip archive");
    // The end-of-central-directory record sits in the last 22 + 65535 bytes.
    std::uint64_t eocd = n - 22;
    const std::uint64_t lowest = n > 22 + 65535 ? n - 22 - 65535 : 0;
    while (u32(eocd) != 0x06054b50) {
      if (eocd == lowest) throw fail("not a zip archive (no end-of-central-directory record)");
      --eocd;
    }
    std::uint64_t count = u16(eocd + 10), dir_size = u32(eocd + 12), dir_offset = u32(eocd + 16);
    // Zip64: the locator right before the record points at the zip64 record.
    if ((count == 0xFFFF || dir_size == 0xFFFFFFFF || dir_offset == 0xFFFFFFFF) && eocd >= 20 &&
        u32(eocd - 20) == 0x07064b50) {
      const std::uint64_t z = u64(eocd - 20 + 8);
      if (!fits(z, 56) || u32(z) != 0x06064b50) throw fail("broken zip64 end-of-central-directory record");
      count = u64(z + 32), dir_size = u64(z + 40), dir_offset = u64(z + 48);
    }
    if (!fits(dir_offset, dir_size)) throw fail("the central directory lies outside the file (truncated?)");
    if (count > dir_size / 46) throw fail("the central directory claims more entries than it can hold");
    std::uint64_t p = dir_offset;
    const std::uint64_t end = dir_offset + dir_size;
    for (std::uint64_t i = 0; i < count; ++i) {
      if (p > end || end - p < 46 || u32(p) != 0x02014b50)
        throw fail("broken central directory entry " + std::to_string(i));
      ZipEntry e;
      e.method = u16(p + 10);
      e.crc = u32(p + 16);
      e.compressed = u32(p + 20);
      e.size = u32(p + 24);
      const std::uint64_t name_len = u16(p + 28), extra_len = u16(p + 30), comment_len = u16(p + 32);
      e.local_offset = u32(p + 42);
      if (end - p - 46 < name_len + extra_len + comment_len)
        throw fail("central directory entry " + std::to_string(i) + " is cut off");
      e.name = b_.substr(p + 46, name_len);
      // Zip64 extra field: the 64-bit values of the fields that read 0xFFFFFFFF, in order.
      std::uint64_t x = p + 46 + name_len;
      const std::uint64_t x_end = x + extra_len;
      while (x + 4 <= x_end) {
        const std::uint16_t id = u16(x), len = u16(x + 2);
        if (x + 4 + len > x_end) throw fail("broken extra field in entry '" + e.name + "'");
        if (id == 0x0001) {
          std::uint64_t q = x + 4;
          auto take = [&](std::uint64_t& field) {
            if (field != 0xFFFFFFFF) return;
            if (q + 8 > x + 4 + len) throw fail("short zip64 field in entry '" + e.name + "'");
            field = u64(q);
            q += 8;
          };
          take(e.size);
          take(e.compressed);
          take(e.local_offset);
        }
        x += 4 + len;
      }
      entries_.push_back(std::move(e));
      p += 46 + name_len + extra_len + comment_len;
    }
  }

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

/// The storage classes torch.save names, with their safetensors-style dtype.
inline std::string torch_storage_dtype(const std::string& global) {
  static const std::map<std::string, std::string> types = {
      {"torch.FloatStorage", "F32"},     {"torch.DoubleStorage", "F64"}, {"torch.HalfStorage", "F16"},
      {"torch.BFloat16Storage", "BF16"}, {"torch.LongStorage", "I64"},   {"torch.IntStorage", "I32"},
      {"torch.ShortStorage", "I16"},     {"torch.CharStorage", "I8"},    {"torch.ByteStorage", "U8"},
      {"torch.BoolStorage", "BOOL"}};
  auto it = types.find(global);
  return it == types.end() ? std::string() : it->second;
}

inline std::size_t torch_dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64") return 8;
  if (d == "F32" || d == "I32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16") return 2;
  return 1;
}

class RestrictedUnpickler {
 public:
  RestrictedUnpickler(const std::string& bytes, std::string where)
      : b_(bytes), where_(std::move(where)), recall_budget_(16 * bytes.size() + (1u << 20)) {}

  PickleValue load() {
    while (true) {
      const std::uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;   // PROTO
        case 0x95: take(8); break;  // FRAME (protocol 4)
        case '.': {                 // STOP
          if (stack_.size() != 1)
            throw fail("the pickle ends with " + std::to_string(stack_.size()) + " values on the stack");
          return pop();
        }
        case '(': push(PickleValue{PickleMark{}}); break;                                    // MARK
        case 'N': push(PickleValue{}); break;                                                // NONE
        case 0x88: push(PickleValue{true}); break;                                           // NEWTRUE
        case 0x89: push(PickleValue{false}); break;                                          // NEWFALSE
        case 'J': push(PickleValue{std::int64_t{static_cast<std::int32_t>(le(4))}}); break;  // BININT
        case 'K': push(PickleValue{static_cast<std::int64_t>(le(1))}); break;                // BININT1
        case 'M': push(PickleValue{static_cast<std::int64_t>(le(2))}); break;                // BININT2
        case 0x8a: push(PickleValue{long1()}); break;                                        // LONG1
        case 'G': push(PickleValue{binfloat()}); break;                                      // BINFLOAT
        case 'X': push(PickleValue{take(le(4))}); break;                                     // BINUNICODE
        case 0x8c: push(PickleValue{take(le(1))}); break;                    // SHORT_BINUNICODE
        case 'T': push(PickleValue{take(le(4))}); break;                     // BINSTRING
        case 'U': push(PickleValue{take(le(1))}); break;                     // SHORT_BINSTRING
        case ')': push(tuple({})); break;                                    // EMPTY_TUPLE
        case ']': push(list({}, false)); break;                              // EMPTY_LIST
        case '}': push(PickleValue{std::make_shared<PickleDict>()}); break;  // EMPTY_DICT
        case 't': push(tuple(pop_to_mark())); break;                         // TUPLE
        case 0x85: push(tuple(pop_n(1))); break;                             // TUPLE1
        case 0x86: push(tuple(pop_n(2))); break;                             // TUPLE2
        case 0x87: push(tuple(pop_n(3))); break;                             // TUPLE3
        case 'a': {                                                          // APPEND
          std::vector<PickleValue> items{pop()};
          append(top(), std::move(items), "APPEND");
          break;
        }
        case 'e': {  // APPENDS
          std::vector<PickleValue> items = pop_to_mark();
          append(top(), std::move(items), "APPENDS");
          break;
        }
        case 's': {  // SETITEM
          std::vector<PickleValue> items = pop_n(2);
          set_items(top(), std::move(items), "SETITEM");
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<PickleValue> items = pop_to_mark();
          set_items(top(), std::move(items), "SETITEMS");
          break;
        }
        case 'q': memo(le(1)); break;          // BINPUT
        case 'r': memo(le(4)); break;          // LONG_BINPUT
        case 0x94: memo(memo_.size()); break;  // MEMOIZE
        case 'h': push(recall(le(1))); break;  // BINGET
        case 'j': push(recall(le(4))); break;  // LONG_BINGET
        case 'c': {                            // GLOBAL "module\nname\n"
          const std::string module = line(), name = line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          PickleValue name = pop(), module = pop();
          push(global(as_string(module, "STACK_GLOBAL") + "." + as_string(name, "STACK_GLOBAL")));
          break;
        }
        case 'Q': push(persistent_load(pop())); break;  // BINPERSID
        case 'R': {                                     // REDUCE
          PickleValue args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 'b': {  // BUILD: state of an OrderedDict (_metadata)
          pop();
          if (!std::holds_alternative<std::shared_ptr<PickleDict>>(top().v))
            throw fail("BUILD on something that is not a dict");
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          throw fail(std::string("pickle opcode ") + hex + " at byte " + std::to_string(pos_ - 1) +
                     " is not allowed in a state dict (refused: nothing is executed)");
        }
      }
    }
  }

 private:
  FileError fail(const std::string& what) const { return FileError(where_ + ": " + what); }

  std::uint8_t byte() {
    if (pos_ >= b_.size()) throw fail("the pickle ends without STOP (truncated?)");
    return static_cast<std::uint8_t>(b_[pos_++]);
  }
  std::string take(std::uint64_t n) {
    if (n > b_.size() - pos_)
      throw fail("the pickle is cut off (a value of " + std::to_string(n) + " bytes)");
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::uint64_t le(int n) {
    const std::string s = take(static_cast<std::uint64_t>(n));
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
    return v;
  }
  std::int64_t long1() {
    const std::uint64_t n = le(1);
    if (n > 8) throw fail("integer of " + std::to_string(n) + " bytes is too large");
    if (n == 0) return 0;
    const std::uint64_t raw = le(static_cast<int>(n));
    if (n == 8) return static_cast<std::int64_t>(raw);
    const std::uint64_t sign = std::uint64_t{1} << (8 * n - 1);
    return static_cast<std::int64_t>((raw ^ sign) - sign);
  }
  double binfloat() {  // big-endian IEEE double
    const std::string s = take(8);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
    double d;
    std::memcpy(&d, &v, 8);
    return d;
  }
  std::string line() {
    const std::size_t nl = b_.find('\n', pos_);
    if (nl == std::string::npos || nl - pos_ > 256) throw fail("broken GLOBAL name");
    std::string s = b_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return s;
  }

  void push(PickleValue v) {
    if (stack_.size() >= kMaxStack)
      throw fail("the pickle's stack grows beyond " + std::to_string(kMaxStack) + " values");
    stack_.push_back(std::move(v));
  }
  PickleValue pop() {
    if (stack_.empty() || std::holds_alternative<PickleMark>(stack_.back().v))
      throw fail("pickle stack underflow");
    PickleValue v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PickleValue& top() {
    if (stack_.empty()) throw fail("pickle stack underflow");
    return stack_.back();
  }
  std::vector<PickleValue> pop_n(std::size_t n) {
    std::vector<PickleValue> out(n);
    for (std::size_t i = n; i-- > 0;) out[i] = pop();
    return out;
  }
  std::vector<PickleValue> pop_to_mark() {
    std::vector<PickleValue> out;
    while (true) {
      if (stack_.empty()) throw fail("no MARK on the pickle stack");
      if (std::holds_alternative<PickleMark>(stack_.back().v)) break;
      out.push_back(std::move(stack_.back()));
      stack_.pop_back();
    }
    stack_.pop_back();
    std::reverse(out.begin(), out.end());
    return out;
  }
  // Marks `child` as placed inside a container and returns its depth (0 for a plain value).
  int adopt(PickleValue& child, const void* parent) {
    auto mark = [&](auto& c) {  // (a tuple is immutable, so it may be shared)
      if (c.get() == parent || (c->contained && !child.is_tuple))
        throw fail("a list or dict is put inside two containers or itself");
      if (c->depth >= kMaxDepth) throw fail("containers nest deeper than " + std::to_string(kMaxDepth));
      c->contained = true;
      return c->depth;
    };
    if (auto* l = std::get_if<std::shared_ptr<PickleList>>(&child.v)) return mark(*l);
    if (auto* d = std::get_if<std::shared_ptr<PickleDict>>(&child.v)) return mark(*d);
    return 0;
  }
  PickleValue list(std::vector<PickleValue> items, bool is_tuple) {
    auto l = std::make_shared<PickleList>();
    for (auto& v : items) l->depth = std::max(l->depth, adopt(v, l.get()) + 1);
    l->items = std::move(items);
    PickleValue v{l};
    v.is_tuple = is_tuple;
    return v;
  }
  PickleValue tuple(std::vector<PickleValue> items) { return list(std::move(items), true); }
  void append(PickleValue& target, std::vector<PickleValue> items, const char* op) {
    auto* p = std::get_if<std::shared_ptr<PickleList>>(&target.v);
    if (!p || target.is_tuple) throw fail(std::string(op) + " on something that is not a list");
    PickleList& l = **p;
    if (l.contained) throw fail(std::string(op) + " on a list that already sits inside another container");
    for (auto& v : items) {
      l.depth = std::max(l.depth, adopt(v, &l) + 1);
      l.items.push_back(std::move(v));
    }
  }
  void set_items(PickleValue& target, std::vector<PickleValue> items, const char* op) {
    auto* p = std::get_if<std::shared_ptr<PickleDict>>(&target.v);
    if (!p) throw fail(std::string(op) + " on something that is not a dict");
    PickleDict& d = **p;
    if (d.contained) throw fail(std::string(op) + " on a dict that already sits inside another container");
    if (items.size() % 2) throw fail(std::string(op) + " with an odd number of values");
    for (std::size_t i = 0; i < items.size(); i += 2) {
      d.depth = std::max({d.depth, adopt(items[i], &d) + 1, adopt(items[i + 1], &d) + 1});
      d.items.emplace_back(std::move(items[i]), std::move(items[i + 1]));
    }
  }

  void memo(std::uint64_t index) {
    if (index > kMaxMemo) throw fail("memo index " + std::to_string(index) + " is too large");
    if (memo_.size() <= index) memo_.resize(index + 1);
    memo_[index] = top();
  }
  PickleValue recall(std::uint64_t index) {
    if (index >= memo_.size()) throw fail("memo index " + std::to_string(index) + " was never stored");
    // Strings are copied: bound what recalling them can cost, so a small pickle cannot ask for terabytes.
    if (const auto* str = std::get_if<std::string>(&memo_[index].v)) {
      if (str->size() > recall_budget_) throw fail("the pickle recalls more string data than it could hold");
      recall_budget_ -= str->size();
    }
    return memo_[index];
  }

  std::string as_string(const PickleValue& v, const char* what) const {
    auto* p = std::get_if<std::string>(&v.v);
    if (!p) throw fail(std::string(what) + ": expected a string");
    return *p;
  }
  std::int64_t as_int(const PickleValue& v, const char* what) const {
    auto* p = std::get_if<std::int64_t>(&v.v);
    if (!p) throw fail(std::string(what) + ": expected an integer");
    return *p;
  }
  const std::vector<PickleValue>& as_tuple(const PickleValue& v, const char* what) const {
    auto* p = std::get_if<std::shared_ptr<PickleList>>(&v.v);
    if (!p) throw fail(std::string(what) + ": expected a tuple");
    return (*p)->items;
  }

  PickleValue global(const std::string& name) {
    static const char* allowed[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                    "torch._utils._rebuild_parameter",
                                    "torch._utils._rebuild_parameter_with_state"};
    for (const char* a : allowed)
      if (name == a) return PickleValue{PickleGlobal{name}};
    if (!torch_storage_dtype(name).empty()) return PickleValue{PickleGlobal{name}};
    throw fail("the pickle refers to '" + name +
               "', which a state dict does not need (refused: only tensors and OrderedDict are read)");
  }

  // ('storage', torch.FloatStorage, key, location, numel)
  PickleValue persistent_load(const PickleValue& pid) {
    const auto& t = as_tuple(pid, "persistent id");
    if (t.size() != 5 || as_string(t[0], "persistent id") != "storage")
      throw fail("persistent id is not ('storage', type, key, location, numel)");
    auto* type = std::get_if<PickleGlobal>(&t[1].v);
    if (!type || torch_storage_dtype(type->name).empty())
      throw fail("persistent id names no torch storage type");
    auto s = std::make_shared<PickleStorage>();
    s->dtype = torch_storage_dtype(type->name);
    s->key = as_string(t[2], "storage key");
    s->numel = as_int(t[4], "storage size");
    if (s->numel < 0 || s->numel > (std::int64_t{1} << 40))
      throw fail("storage '" + s->key + "' has an impossible size " + std::to_string(s->numel));
    return PickleValue{s};
  }

  PickleValue reduce(const PickleValue& fn, const PickleValue& args) {
    auto* g = std::get_if<PickleGlobal>(&fn.v);
    if (!g) throw fail("REDUCE of something that is not an allowed global");
    const auto& a = as_tuple(args, g->name.c_str());
    if (g->name == "collections.OrderedDict") {
      if (!a.empty()) throw fail("OrderedDict built from arguments");
      return PickleValue{std::make_shared<PickleDict>()};
    }
    if (g->name == "torch._utils._rebuild_parameter" ||
        g->name == "torch._utils._rebuild_parameter_with_state") {  // (tensor, requires_grad,
                                                                    // backward_hooks[, state])
      if (a.empty() || !std::holds_alternative<std::shared_ptr<PickleTensor>>(a[0].v))
        throw fail("bad _rebuild_parameter");
      return a[0];
    }
    if (g->name == "torch._utils._rebuild_tensor_v2") {  // (storage, offset, size, stride, requires_grad,
                                                         // hooks[, metadata])
      if (a.size() < 4) throw fail("_rebuild_tensor_v2 with " + std::to_string(a.size()) + " arguments");
      auto* s = std::get_if<std::shared_ptr<PickleStorage>>(&a[0].v);
      if (!s) throw fail("_rebuild_tensor_v2 without a storage");
      auto t = std::make_shared<PickleTensor>();
      t->storage = *s;
      t->offset = as_int(a[1], "storage offset");
      for (const auto& v : as_tuple(a[2], "tensor size")) t->size.push_back(as_int(v, "tensor size"));
      for (const auto& v : as_tuple(a[3], "tensor stride")) t->stride.push_back(as_int(v, "tensor stride"));
      if (t->size.size() != t->stride.size()) throw fail("tensor size and stride differ in length");
      return PickleValue{t};
    }
    throw fail("'" + g->name + "' cannot be called");
  }

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

}  // namespace diffuse::io
