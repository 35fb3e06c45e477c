/// @file
/// The definitions of json.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/io/json.hpp"

#include <cmath>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/io/atomic_file.hpp"

namespace diffuse::io {

namespace detail {
DIFFUSE_COLD DIFFUSE_INLINE std::string tag_python_non_finite(const std::string& text) {
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

/// The inverse for writing: non-finite floats become tagged strings, unwrapped after dumping.
DIFFUSE_COLD DIFFUSE_INLINE void tag_non_finite(json& j) {
  if (j.is_number_float() && !std::isfinite(j.get<double>())) {
    const double v = j.get<double>();
    j = std::string(kNonFiniteTag) + (std::isnan(v) ? "NaN" : (v < 0 ? "-Infinity" : "Infinity"));
  } else if (j.is_structured()) {
    for (auto& e : j) tag_non_finite(e);
  }
}
}  // namespace detail

DIFFUSE_COLD DIFFUSE_INLINE std::string describe_json(const json& v, std::size_t max_chars) {
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

DIFFUSE_COLD DIFFUSE_INLINE json read_json(const std::filesystem::path& path) {
  const std::string text = read_file_bytes(path);
  try {
    return parse_json(text);
  } catch (const Error& e) {
    throw FileError("'" + path.string() + "': " + e.what());
  }
}

DIFFUSE_COLD DIFFUSE_INLINE std::string dump_json(json j, int indent) {
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

DIFFUSE_COLD DIFFUSE_INLINE std::string to_pretty_json(const json& j) { return dump_json(j, 2) + "\n"; }

DIFFUSE_COLD DIFFUSE_INLINE void write_json(const std::filesystem::path& path, const json& j) {
  std::string text;
  try {
    text = to_pretty_json(j);
  } catch (const json::exception& e) {  // e.g. a string that is not valid UTF-8
    throw Error("cannot write JSON to '" + path.string() + "': " + e.what());
  }
  write_file_atomic(path, text);
}

}  // namespace diffuse::io
