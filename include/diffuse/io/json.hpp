// JSON files (configs, manifests): read with errors naming the file, write atomically and
// pretty-printed with a 2-space indent, sorted keys and a final newline, like diffusers'
// config.json (json.dumps(config, indent=2, sort_keys=True) + "\n").
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/io/atomic_file.hpp"

namespace diffuse::io {

using json = nlohmann::json;

// Parses a JSON file. FileError if it is missing or is not valid JSON (with the parser's
// position and reason).
inline json read_json(const std::filesystem::path& path) {
  const std::string text = read_file_bytes(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw FileError("invalid JSON in '" + path.string() + "': " + e.what());
  }
}

// The JSON text exactly as write_json stores it (keys sorted: nlohmann's objects are ordered
// maps; non-ASCII escaped as Python's json.dumps does by default).
inline std::string to_pretty_json(const json& j) { return j.dump(2, ' ', /*ensure_ascii=*/true) + "\n"; }

// Writes `j` to `path` atomically.
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
