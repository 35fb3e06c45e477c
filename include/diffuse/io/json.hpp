/// @file
/// JSON files (configs, manifests): read with errors naming the file, write atomically and
/// pretty-printed with a 2-space indent, sorted keys and a final newline, like diffusers'
/// config.json (json.dumps(config, indent=2, sort_keys=True) + "\n"). Reading accepts the bare
/// NaN, Infinity and -Infinity that Python's json module writes for non-finite floats.
#pragma once
#include <filesystem>
#include <iterator>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
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

std::string tag_python_non_finite(const std::string& text);

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
}  // namespace detail

/// A JSON value for a message: at most `max_chars` characters and 8 levels deep (a hostile file
/// must not make an error message huge or recurse without bound).
std::string describe_json(const json& v, std::size_t max_chars = 120);

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

namespace detail {
/// J::parse(text), without the second parser nlohmann's parse() compiles for a callback this
/// library never passes (an eighth of the JSON code a program compiles). With the nlohmann
/// version Debian 12 ships (3.11), its parser class is called as parse() calls it.
template <class J>
J parse_without_callback(std::string::const_iterator begin, std::string::const_iterator end) {
#if NLOHMANN_JSON_VERSION_MAJOR == 3 && NLOHMANN_JSON_VERSION_MINOR == 11
  J result;
  auto input = nlohmann::detail::input_adapter(begin, end);
  nlohmann::detail::json_sax_dom_parser<J> dom(result, /*allow_exceptions=*/true);
  nlohmann::detail::parser<J, decltype(input)>(std::move(input), nullptr, /*allow_exceptions=*/true,
                                               /*skip_comments=*/false)
      .sax_parse(&dom, /*strict=*/true);
  return result;
#else
  return J::parse(begin, end);
#endif
}
}  // namespace detail

/// Parses JSON text, accepting Python's NaN, Infinity and -Infinity; Error with the parser's
/// position and reason otherwise, or if it nests deeper than kMaxJsonDepth. J: json or
/// nlohmann::ordered_json.
template <class J = json>
J parse_json(const std::string& text) {
  check_json_depth(text.begin(), text.end());
  const bool python = text.find("NaN") != std::string::npos || text.find("Infinity") != std::string::npos;
  J j;
  try {
    std::string tagged;
    if (python) tagged = detail::tag_python_non_finite(text);
    const std::string& input = python ? tagged : text;
    j = detail::parse_without_callback<J>(input.begin(), input.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("invalid JSON: ") + e.what());
  }
  if (python) detail::restore_non_finite(j);
  return j;
}

/// Parses a JSON file. FileError if it is missing or is not valid JSON (with the parser's
/// position and reason).
json read_json(const std::filesystem::path& path);

/// JSON text with sorted keys (nlohmann's objects are ordered maps), non-ASCII escaped and
/// non-finite floats written bare (NaN, Infinity, -Infinity), as Python's json.dumps does.
std::string dump_json(json j, int indent = 2);

/// The JSON text exactly as write_json stores it: dump_json with a 2-space indent and a final newline.
std::string to_pretty_json(const json& j);

/// Writes `j` to `path` atomically.
/// Error if `j` holds a string that is not valid UTF-8; FileError if the file cannot be written.
void write_json(const std::filesystem::path& path, const json& j);

}  // namespace diffuse::io

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/io/json-inl.hpp"
#endif
