/// @file
/// JSON files (configs, manifests): read with errors naming the file, write atomically and
/// pretty-printed with a 2-space indent, sorted keys and a final newline, like diffusers'
/// config.json (json.dumps(config, indent=2, sort_keys=True) + "\n"). Reading accepts the bare
/// NaN, Infinity and -Infinity that Python's json module writes for non-finite floats.
#pragma once
#include <cmath>
#include <filesystem>
#include <iterator>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/io/atomic_file.hpp"

namespace diffuse::io {

/// The JSON value type of diffuse's readers and writers.
using json = nlohmann::json;

namespace detail {
/// Replaces Python's bare NaN / Infinity / -Infinity (outside strings) by tagged strings, so
/// nlohmann's strict parser accepts the text; restore_non_finite turns them back into numbers.
inline constexpr const char* kNonFiniteTag =
    "\x01"
    "diffuse-non-finite:";

inline std::string tag_python_non_finite(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size())
        out += text[++i];
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      continue;
    }
    bool replaced = false;
    for (const char* tok : {"-Infinity", "Infinity", "NaN"}) {
      const std::string t = tok;
      if (text.compare(i, t.size(), t) == 0) {
        out += "\"\\u0001diffuse-non-finite:" + t + "\"";
        i += t.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

template <class J>
void restore_non_finite(J& j) {
  if (j.is_string()) {
    const std::string& s = j.template get_ref<const std::string&>();
    const std::string tag = kNonFiniteTag;
    if (s.rfind(tag, 0) == 0) {
      const std::string v = s.substr(tag.size());
      j = v == "NaN" ? std::numeric_limits<double>::quiet_NaN()
                     : (v[0] == '-' ? -1.0 : 1.0) * std::numeric_limits<double>::infinity();
    }
  } else if (j.is_structured()) {
    for (auto& e : j) restore_non_finite(e);
  }
}

/// The inverse for writing: non-finite floats become tagged strings, unwrapped after dumping.
inline void tag_non_finite(json& j) {
  if (j.is_number_float() && !std::isfinite(j.get<double>())) {
    const double v = j.get<double>();
    j = std::string(kNonFiniteTag) + (std::isnan(v) ? "NaN" : (v < 0 ? "-Infinity" : "Infinity"));
  } else if (j.is_structured()) {
    for (auto& e : j) tag_non_finite(e);
  }
}
}  // namespace detail

/// A JSON value for a message: at most `max_chars` characters and 8 levels deep (a hostile file
/// must not make an error message huge or recurse without bound).
inline std::string describe_json(const json& v, std::size_t max_chars = 120) {
  std::string out;
  auto put = [&](auto&& self, const json& x, int depth) -> void {
    if (out.size() > max_chars) return;
    if (x.is_array() || x.is_object()) {
      if (depth >= 8) {
        out += x.is_array() ? "[...]" : "{...}";
        return;
      }
      out += x.is_array() ? '[' : '{';
      bool first = true;
      for (auto it = x.begin(); it != x.end() && out.size() <= max_chars; ++it) {
        if (!first) out += ", ";
        first = false;
        if (x.is_object()) out += json(it.key()).dump() + ": ";
        self(self, *it, depth + 1);
      }
      out += x.is_array() ? ']' : '}';
    } else {
      out += x.dump();
    }
  };
  put(put, v, 0);
  if (out.size() > max_chars) out = out.substr(0, max_chars) + "...";
  return out;
}

/// The integer a JSON value from a file holds, as I: a JSON integer within I's range, else an Error
/// naming `what` and the value. (nlohmann's get<I>() converts a float such as 1e300 or NaN with
/// undefined behaviour, and wraps an integer out of I's range.)
template <class I>
I json_integer(const json& v, const std::string& what) {
  static_assert(std::is_integral_v<I> && !std::is_same_v<I, bool>);
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (std::in_range<I>(u)) return static_cast<I>(u);
  } else if (v.is_number_integer()) {
    const auto s = v.get<std::int64_t>();
    if (std::in_range<I>(s)) return static_cast<I>(s);
  } else {
    throw Error(what + " must be an integer, got " + describe_json(v));
  }
  throw Error(what + " is out of range, got " + describe_json(v));
}

/// Arrays and objects nested deeper than this are refused before parsing: nlohmann's parser is
/// iterative, but dumping, copying and walking a value recurse, and a 200 KB file nested 100,000
/// deep overflowed the stack. diffusers' files nest 3 deep.
inline constexpr int kMaxJsonDepth = 256;

/// Throws Error if [begin, end) nests arrays/objects deeper than kMaxJsonDepth (brackets inside
/// strings do not count).
template <class It>
void check_json_depth(It begin, It end) {
  int depth = 0;
  bool in_string = false;
  for (It it = begin; it != end; ++it) {
    const char c = static_cast<char>(*it);
    if (in_string) {
      if (c == '\\') {
        if (++it == end) break;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw Error("JSON nested more than " + std::to_string(kMaxJsonDepth) + " levels deep (at byte " +
                    std::to_string(std::distance(begin, it)) + "); refusing it");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

/// Parses JSON text, accepting Python's NaN, Infinity and -Infinity; Error with the parser's
/// position and reason otherwise, or if it nests deeper than kMaxJsonDepth. J: json or
/// nlohmann::ordered_json.
template <class J = json>
J parse_json(const std::string& text) {
  check_json_depth(text.begin(), text.end());
  const bool python = text.find("NaN") != std::string::npos || text.find("Infinity") != std::string::npos;
  J j;
  try {
    j = J::parse(python ? detail::tag_python_non_finite(text) : text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("invalid JSON: ") + e.what());
  }
  if (python) detail::restore_non_finite(j);
  return j;
}

/// Parses a JSON file. FileError if it is missing or is not valid JSON (with the parser's
/// position and reason).
inline json read_json(const std::filesystem::path& path) {
  const std::string text = read_file_bytes(path);
  try {
    return parse_json(text);
  } catch (const Error& e) {
    throw FileError("'" + path.string() + "': " + e.what());
  }
}

/// JSON text with sorted keys (nlohmann's objects are ordered maps), non-ASCII escaped and
/// non-finite floats written bare (NaN, Infinity, -Infinity), as Python's json.dumps does.
inline std::string dump_json(json j, int indent = 2) {
  detail::tag_non_finite(j);
  std::string s = j.dump(indent, ' ', /*ensure_ascii=*/true);
  // The tag's leading \x01 is always escaped in the output as \u0001.
  const std::string tag = std::string("\"\\u0001") + (detail::kNonFiniteTag + 1);
  for (std::size_t pos; (pos = s.find(tag)) != std::string::npos;) {
    const std::size_t end = s.find('"', pos + tag.size());
    s = s.substr(0, pos) + s.substr(pos + tag.size(), end - pos - tag.size()) + s.substr(end + 1);
  }
  return s;
}

/// The JSON text exactly as write_json stores it: dump_json with a 2-space indent and a final newline.
inline std::string to_pretty_json(const json& j) { return dump_json(j, 2) + "\n"; }

/// Writes `j` to `path` atomically.
/// Error if `j` holds a string that is not valid UTF-8; FileError if the file cannot be written.
inline void write_json(const std::filesystem::path& path, const json& j) {
  std::string text;
  try {
    text = to_pretty_json(j);
  } catch (const json::exception& e) {  // e.g. a string that is not valid UTF-8
    throw Error("cannot write JSON to '" + path.string() + "': " + e.what());
  }
  write_file_atomic(path, text);
}

}  // namespace diffuse::io
