/// @file
/// The definitions of pytorch_bin.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/io/pytorch_bin.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <zlib.h>

#include "diffuse/core/error.hpp"

namespace diffuse::io {

namespace detail {

// ---------------------------------------------------------------- zip archive

DIFFUSE_COLD DIFFUSE_INLINE ZipReader::ZipReader(const std::string& bytes, std::string where)
    : b_(bytes), where_(std::move(where)) {
  read_directory();
}

DIFFUSE_COLD DIFFUSE_INLINE std::string ZipReader::read(const ZipEntry& e, std::uint64_t max_size) const {
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

DIFFUSE_COLD DIFFUSE_INLINE FileError ZipReader::fail(const std::string& what) const {
  return FileError(where_ + ": " + what);
}

DIFFUSE_COLD DIFFUSE_INLINE std::string ZipReader::checked(const ZipEntry& e, std::string data) const {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (std::size_t at = 0; at < data.size(); at += 1u << 30) {
    const auto n = static_cast<uInt>(std::min<std::size_t>(data.size() - at, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data() + at), n);
  }
  if (crc != e.crc) throw fail("entry '" + e.name + "' is damaged (CRC-32 mismatch)");
  return data;
}

DIFFUSE_COLD DIFFUSE_INLINE std::uint16_t ZipReader::u16(std::uint64_t at) const {
  std::uint16_t v;
  std::memcpy(&v, b_.data() + at, 2);
  return v;
}

DIFFUSE_COLD DIFFUSE_INLINE std::uint32_t ZipReader::u32(std::uint64_t at) const {
  std::uint32_t v;
  std::memcpy(&v, b_.data() + at, 4);
  return v;
}

DIFFUSE_COLD DIFFUSE_INLINE std::uint64_t ZipReader::u64(std::uint64_t at) const {
  std::uint64_t v;
  std::memcpy(&v, b_.data() + at, 8);
  return v;
}

DIFFUSE_COLD DIFFUSE_INLINE void ZipReader::read_directory() {
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

// ---------------------------------------------------------------- restricted unpickler

/// The storage classes torch.save names, with their safetensors-style dtype.
DIFFUSE_COLD DIFFUSE_INLINE std::string torch_storage_dtype(const std::string& global) {
  static const std::map<std::string, std::string> types = {
      {"torch.FloatStorage", "F32"},     {"torch.DoubleStorage", "F64"}, {"torch.HalfStorage", "F16"},
      {"torch.BFloat16Storage", "BF16"}, {"torch.LongStorage", "I64"},   {"torch.IntStorage", "I32"},
      {"torch.ShortStorage", "I16"},     {"torch.CharStorage", "I8"},    {"torch.ByteStorage", "U8"},
      {"torch.BoolStorage", "BOOL"}};
  auto it = types.find(global);
  return it == types.end() ? std::string() : it->second;
}

DIFFUSE_COLD DIFFUSE_INLINE std::size_t torch_dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64") return 8;
  if (d == "F32" || d == "I32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16") return 2;
  return 1;
}

DIFFUSE_COLD DIFFUSE_INLINE RestrictedUnpickler::RestrictedUnpickler(const std::string& bytes,
                                                                     std::string where)
    : b_(bytes), where_(std::move(where)), recall_budget_(16 * bytes.size() + (1u << 20)) {}

DIFFUSE_COLD DIFFUSE_INLINE PickleValue RestrictedUnpickler::load() {
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
      case 0x8c: push(PickleValue{take(le(1))}); break;                                    // SHORT_BINUNICODE
      case 'T': push(PickleValue{take(le(4))}); break;                                     // BINSTRING
      case 'U': push(PickleValue{take(le(1))}); break;                                     // SHORT_BINSTRING
      case ')': push(tuple({})); break;                                                    // EMPTY_TUPLE
      case ']': push(list({}, false)); break;                                              // EMPTY_LIST
      case '}': push(PickleValue{std::make_shared<PickleDict>()}); break;                  // EMPTY_DICT
      case 't': push(tuple(pop_to_mark())); break;                                         // TUPLE
      case 0x85: push(tuple(pop_n(1))); break;                                             // TUPLE1
      case 0x86: push(tuple(pop_n(2))); break;                                             // TUPLE2
      case 0x87: push(tuple(pop_n(3))); break;                                             // TUPLE3
      case 'a': {                                                                          // APPEND
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

DIFFUSE_COLD DIFFUSE_INLINE FileError RestrictedUnpickler::fail(const std::string& what) const {
  return FileError(where_ + ": " + what);
}

DIFFUSE_COLD DIFFUSE_INLINE std::uint8_t RestrictedUnpickler::byte() {
  if (pos_ >= b_.size()) throw fail("the pickle ends without STOP (truncated?)");
  return static_cast<std::uint8_t>(b_[pos_++]);
}

DIFFUSE_COLD DIFFUSE_INLINE std::string RestrictedUnpickler::take(std::uint64_t n) {
  if (n > b_.size() - pos_) throw fail("the pickle is cut off (a value of " + std::to_string(n) + " bytes)");
  std::string s = b_.substr(pos_, n);
  pos_ += n;
  return s;
}

DIFFUSE_COLD DIFFUSE_INLINE std::uint64_t RestrictedUnpickler::le(int n) {
  const std::string s = take(static_cast<std::uint64_t>(n));
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
  return v;
}

DIFFUSE_COLD DIFFUSE_INLINE std::int64_t RestrictedUnpickler::long1() {
  const std::uint64_t n = le(1);
  if (n > 8) throw fail("integer of " + std::to_string(n) + " bytes is too large");
  if (n == 0) return 0;
  const std::uint64_t raw = le(static_cast<int>(n));
  if (n == 8) return static_cast<std::int64_t>(raw);
  const std::uint64_t sign = std::uint64_t{1} << (8 * n - 1);
  return static_cast<std::int64_t>((raw ^ sign) - sign);
}

DIFFUSE_COLD DIFFUSE_INLINE double RestrictedUnpickler::binfloat() {  // big-endian IEEE double
  const std::string s = take(8);
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
  double d;
  std::memcpy(&d, &v, 8);
  return d;
}

DIFFUSE_COLD DIFFUSE_INLINE std::string RestrictedUnpickler::line() {
  const std::size_t nl = b_.find('\n', pos_);
  if (nl == std::string::npos || nl - pos_ > 256) throw fail("broken GLOBAL name");
  std::string s = b_.substr(pos_, nl - pos_);
  pos_ = nl + 1;
  return s;
}

DIFFUSE_COLD DIFFUSE_INLINE void RestrictedUnpickler::push(PickleValue v) {
  if (stack_.size() >= kMaxStack)
    throw fail("the pickle's stack grows beyond " + std::to_string(kMaxStack) + " values");
  stack_.push_back(std::move(v));
}

DIFFUSE_COLD DIFFUSE_INLINE PickleValue RestrictedUnpickler::pop() {
  if (stack_.empty() || std::holds_alternative<PickleMark>(stack_.back().v))
    throw fail("pickle stack underflow");
  PickleValue v = std::move(stack_.back());
  stack_.pop_back();
  return v;
}

DIFFUSE_COLD DIFFUSE_INLINE PickleValue& RestrictedUnpickler::top() {
  if (stack_.empty()) throw fail("pickle stack underflow");
  return stack_.back();
}

DIFFUSE_COLD DIFFUSE_INLINE std::vector<PickleValue> RestrictedUnpickler::pop_n(std::size_t n) {
  std::vector<PickleValue> out(n);
  for (std::size_t i = n; i-- > 0;) out[i] = pop();
  return out;
}

DIFFUSE_COLD DIFFUSE_INLINE std::vector<PickleValue> RestrictedUnpickler::pop_to_mark() {
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

DIFFUSE_COLD DIFFUSE_INLINE int RestrictedUnpickler::adopt(PickleValue& child, const void* parent) {
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

DIFFUSE_COLD DIFFUSE_INLINE PickleValue RestrictedUnpickler::list(std::vector<PickleValue> items,
                                                                  bool is_tuple) {
  auto l = std::make_shared<PickleList>();
  for (auto& v : items) l->depth = std::max(l->depth, adopt(v, l.get()) + 1);
  l->items = std::move(items);
  PickleValue v{l};
  v.is_tuple = is_tuple;
  return v;
}

DIFFUSE_COLD DIFFUSE_INLINE PickleValue RestrictedUnpickler::tuple(std::vector<PickleValue> items) {
  return list(std::move(items), true);
}

DIFFUSE_COLD DIFFUSE_INLINE void RestrictedUnpickler::append(PickleValue& target,
                                                             std::vector<PickleValue> items, const char* op) {
  auto* p = std::get_if<std::shared_ptr<PickleList>>(&target.v);
  if (!p || target.is_tuple) throw fail(std::string(op) + " on something that is not a list");
  PickleList& l = **p;
  if (l.contained) throw fail(std::string(op) + " on a list that already sits inside another container");
  for (auto& v : items) {
    l.depth = std::max(l.depth, adopt(v, &l) + 1);
    l.items.push_back(std::move(v));
  }
}

DIFFUSE_COLD DIFFUSE_INLINE void RestrictedUnpickler::set_items(PickleValue& target,
                                                                std::vector<PickleValue> items,
                                                                const char* op) {
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

DIFFUSE_COLD DIFFUSE_INLINE void RestrictedUnpickler::memo(std::uint64_t index) {
  if (index > kMaxMemo) throw fail("memo index " + std::to_string(index) + " is too large");
  if (memo_.size() <= index) memo_.resize(index + 1);
  memo_[index] = top();
}

DIFFUSE_COLD DIFFUSE_INLINE PickleValue RestrictedUnpickler::recall(std::uint64_t index) {
  if (index >= memo_.size()) throw fail("memo index " + std::to_string(index) + " was never stored");
  // Strings are copied: bound what recalling them can cost, so a small pickle cannot ask for terabytes.
  if (const auto* str = std::get_if<std::string>(&memo_[index].v)) {
    if (str->size() > recall_budget_) throw fail("the pickle recalls more string data than it could hold");
    recall_budget_ -= str->size();
  }
  return memo_[index];
}

DIFFUSE_COLD DIFFUSE_INLINE std::string RestrictedUnpickler::as_string(const PickleValue& v,
                                                                       const char* what) const {
  auto* p = std::get_if<std::string>(&v.v);
  if (!p) throw fail(std::string(what) + ": expected a string");
  return *p;
}

DIFFUSE_COLD DIFFUSE_INLINE std::int64_t RestrictedUnpickler::as_int(const PickleValue& v,
                                                                     const char* what) const {
  auto* p = std::get_if<std::int64_t>(&v.v);
  if (!p) throw fail(std::string(what) + ": expected an integer");
  return *p;
}

DIFFUSE_COLD DIFFUSE_INLINE const std::vector<PickleValue>& RestrictedUnpickler::as_tuple(
    const PickleValue& v, const char* what) const {
  auto* p = std::get_if<std::shared_ptr<PickleList>>(&v.v);
  if (!p) throw fail(std::string(what) + ": expected a tuple");
  return (*p)->items;
}

DIFFUSE_COLD DIFFUSE_INLINE PickleValue RestrictedUnpickler::global(const std::string& name) {
  static const char* allowed[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                  "torch._utils._rebuild_parameter",
                                  "torch._utils._rebuild_parameter_with_state"};
  for (const char* a : allowed)
    if (name == a) return PickleValue{PickleGlobal{name}};
  if (!torch_storage_dtype(name).empty()) return PickleValue{PickleGlobal{name}};
  throw fail("the pickle refers to '" + name +
             "', which a state dict does not need (refused: only tensors and OrderedDict are read)");
}

DIFFUSE_COLD DIFFUSE_INLINE PickleValue RestrictedUnpickler::persistent_load(const PickleValue& pid) {
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

DIFFUSE_COLD DIFFUSE_INLINE PickleValue RestrictedUnpickler::reduce(const PickleValue& fn,
                                                                    const PickleValue& args) {
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

}  // namespace detail

}  // namespace diffuse::io
