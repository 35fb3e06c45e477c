// Scheduler configs as JSON in diffusers' scheduler_config.json format. Reading follows
// diffusers' ConfigMixin.from_config: keys listed in "_use_default_values" and keys starting
// with "_" are skipped, keys the class does not know are ignored (so one scheduler can be built
// from another's config), a known key with a value of the wrong type throws diffuse::Error.
// Python's json module writes -Infinity/Infinity/NaN for non-finite floats (e.g. DPM-Solver's
// lambda_min_clipped); parse_config and dump_config read and write them the same way.
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/io/atomic_file.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::schedulers {

using json = nlohmann::json;

// The diffusers version whose semantics the schedulers follow (written as _diffusers_version).
inline constexpr const char* kDiffusersVersion = "0.21.4";

// Parses JSON text, accepting Python's bare NaN, Infinity and -Infinity (diffusers writes
// "lambda_min_clipped": -Infinity).
inline json parse_config(const std::string& text) { return io::parse_json(text); }

// JSON text (2-space indent, sorted keys) with non-finite floats written as Python does.
inline std::string dump_config(const json& j, int indent = 2) { return io::dump_json(j, indent); }

inline json read_config_file(const std::filesystem::path& path) {
  try {
    return parse_config(io::read_file_bytes(path));
  } catch (const FileError&) {
    throw;
  } catch (const Error& e) {
    throw FileError("'" + path.string() + "': " + e.what());
  }
}

inline void write_config_file(const std::filesystem::path& path, const json& config) {
  io::write_file_atomic(path, dump_config(config) + "\n");
}

namespace detail {

// Reads the fields of a Config struct from a diffusers config (see the top of this file).
class ConfigReader {
 public:
  ConfigReader(const json& j, std::string cls) : j_(j), cls_(std::move(cls)) {
    if (!j.is_object()) throw Error(cls_ + ": a scheduler config must be a JSON object, got " + j.dump());
    if (j.contains("_use_default_values") && j["_use_default_values"].is_array())
      for (const auto& k : j["_use_default_values"])
        if (k.is_string()) defaults_.insert(k.get<std::string>());
  }

  template <class V>
  void operator()(const char* key, V& field) const {
    if (!j_.contains(key) || defaults_.count(key)) return;
    read(j_[key], field, key);
  }

 private:
  [[noreturn]] void bad(const json& v, const char* key, const char* expected) const {
    throw Error(cls_ + ": config key '" + key + "' must be " + expected + ", got " + v.dump());
  }
  void read(const json& v, std::int64_t& f, const char* key) const {
    if (v.is_number_integer()) f = v.get<std::int64_t>();
    else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) f = static_cast<std::int64_t>(v.get<double>());
    else bad(v, key, "an integer");
  }
  void read(const json& v, int& f, const char* key) const {
    std::int64_t x = 0;
    read(v, x, key);
    f = static_cast<int>(x);
  }
  void read(const json& v, double& f, const char* key) const {
    if (!v.is_number()) bad(v, key, "a number");
    f = v.get<double>();
  }
  void read(const json& v, bool& f, const char* key) const {
    if (!v.is_boolean()) bad(v, key, "true or false");
    f = v.get<bool>();
  }
  void read(const json& v, std::string& f, const char* key) const {
    if (!v.is_string()) bad(v, key, "a string");
    f = v.get<std::string>();
  }
  void read(const json& v, std::optional<std::string>& f, const char* key) const {
    if (v.is_null()) f.reset();
    else if (v.is_string()) f = v.get<std::string>();
    else bad(v, key, "a string or null");
  }
  void read(const json& v, std::vector<double>& f, const char* key) const {  // null = none
    f.clear();
    if (v.is_null()) return;
    if (!v.is_array()) bad(v, key, "a list of numbers or null");
    for (const auto& e : v) {
      if (!e.is_number()) bad(v, key, "a list of numbers or null");
      f.push_back(e.get<double>());
    }
  }
  void read(const json& v, std::vector<std::int64_t>& f, const char* key) const {
    f.clear();
    if (v.is_null()) return;
    if (!v.is_array()) bad(v, key, "a list of integers");
    for (const auto& e : v) {
      if (!e.is_number_integer()) bad(v, key, "a list of integers");
      f.push_back(e.get<std::int64_t>());
    }
  }

  const json& j_;
  std::string cls_;
  std::set<std::string> defaults_;
};

// Writes the fields of a Config struct into a JSON object.
struct ConfigWriter {
  json& j;
  template <class V>
  void operator()(const char* key, const V& field) const {
    j[key] = field;
  }
  void operator()(const char* key, const std::optional<std::string>& field) const {
    j[key] = field ? json(*field) : json(nullptr);
  }
  void operator()(const char* key, const std::vector<double>& field) const {  // trained_betas
    j[key] = field.empty() ? json(nullptr) : json(field);
  }
};

// Config struct <-> JSON, for any Config with a static visit(config, visitor) listing its keys.
template <class Config>
Config config_from_json(const json& j, const std::string& cls) {
  Config c;
  ConfigReader reader(j, cls);
  Config::visit(c, reader);
  return c;
}

template <class Config>
json config_to_json(const Config& c, const std::string& cls) {
  json j = json::object();
  j["_class_name"] = cls;
  j["_diffusers_version"] = kDiffusersVersion;
  ConfigWriter writer{j};
  Config::visit(c, writer);
  return j;
}

}  // namespace detail
}  // namespace diffuse::schedulers
