// Where the diffusers reference fixtures are, for the conformance tests: the folder named by
// $DIFFUSE_DIFFUSERS_FIXTURES, else the copy kept in the repository (tests/fixtures/diffusers).
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include "diffuse/core/error.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::testing {

inline std::filesystem::path fixtures_dir() {
  const char* env = std::getenv("DIFFUSE_DIFFUSERS_FIXTURES");
  return env && *env ? std::filesystem::path(env) : std::filesystem::path(DIFFUSE_FIXTURES_DEFAULT);
}

// The manifest (Python's json: scheduler configs hold -Infinity). A missing folder is an error
// that says where the fixtures were looked for and how to point elsewhere.
inline io::json read_manifest() {
  const auto path = fixtures_dir() / "manifest.json";
  if (!std::filesystem::exists(path))
    throw Error("no diffusers fixtures at '" + path.string() +
                "'; set DIFFUSE_DIFFUSERS_FIXTURES to the folder that holds manifest.json");
  return io::read_json(path);
}

}  // namespace diffuse::testing
