/// @file
/// The definitions of config.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/io/config.hpp"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/warning.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::io {

DIFFUSE_COLD DIFFUSE_INLINE std::atomic<UnknownConfigKeys>& unknown_config_keys() {
  static std::atomic<UnknownConfigKeys> policy{[] {
    const char* s = std::getenv("DIFFUSE_STRICT_CONFIG");
    return s && *s && std::string_view(s) != "0" ? UnknownConfigKeys::error : UnknownConfigKeys::warn;
  }()};
  return policy;
}

DIFFUSE_COLD DIFFUSE_INLINE void read_config_value(const json& v, std::int64_t& f) {
  constexpr double kTwo63 = 9223372036854775808.0;
  if (v.is_number_unsigned()) {
    if (v.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
      throw ConfigTypeError{"an integer below 2^63"};
    f = static_cast<std::int64_t>(v.get<std::uint64_t>());
  } else if (v.is_number_integer()) {
    f = v.get<std::int64_t>();
  } else if (v.is_number_float()) {  // 1000.0 is an integer; 1e300 and 0.5 are not
    const double d = v.get<double>();
    if (!(std::floor(d) == d && d >= -kTwo63 && d < kTwo63)) throw ConfigTypeError{"an integer"};
    f = static_cast<std::int64_t>(d);
  } else {
    throw ConfigTypeError{"an integer"};
  }
}

DIFFUSE_COLD DIFFUSE_INLINE void read_config_value(const json& v, int& f) {
  std::int64_t x = 0;
  read_config_value(v, x);
  if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
    throw ConfigTypeError{"an integer of 32 bits"};
  f = static_cast<int>(x);
}

DIFFUSE_COLD DIFFUSE_INLINE void read_config_value(const json& v, double& f) {
  if (!v.is_number()) throw ConfigTypeError{"a number"};
  f = v.get<double>();
}

DIFFUSE_COLD DIFFUSE_INLINE void read_config_value(const json& v, bool& f) {
  if (!v.is_boolean()) throw ConfigTypeError{"true or false"};
  f = v.get<bool>();
}

DIFFUSE_COLD DIFFUSE_INLINE void read_config_value(const json& v, std::string& f) {
  if (!v.is_string()) throw ConfigTypeError{"a string"};
  f = v.get<std::string>();
}

DIFFUSE_COLD DIFFUSE_INLINE void read_config_value(const json& v, std::optional<std::string>& f) {
  if (v.is_null())
    f.reset();
  else if (v.is_string())
    f = v.get<std::string>();
  else
    throw ConfigTypeError{"a string or null"};
}

DIFFUSE_COLD DIFFUSE_INLINE void read_config_value(const json& v, std::optional<std::int64_t>& f) {
  if (v.is_null()) {
    f.reset();
    return;
  }
  std::int64_t x = 0;
  try {
    read_config_value(v, x);
  } catch (const ConfigTypeError&) {
    throw ConfigTypeError{"an integer or null"};
  }
  f = x;
}

DIFFUSE_COLD DIFFUSE_INLINE void read_config_value(const json& v,
                                                   std::vector<double>& f) {  // null: none (trained_betas)
  f.clear();
  if (v.is_null()) return;
  if (!v.is_array()) throw ConfigTypeError{"a list of numbers or null"};
  for (const auto& e : v) {
    if (!e.is_number()) throw ConfigTypeError{"a list of numbers or null"};
    f.push_back(e.get<double>());
  }
}

DIFFUSE_COLD DIFFUSE_INLINE void read_config_value(const json& v, std::vector<std::int64_t>& f) {
  if (!v.is_array()) throw ConfigTypeError{"a list of integers"};
  f.clear();
  for (const auto& e : v) {
    std::int64_t x = 0;
    if (!e.is_number_integer()) throw ConfigTypeError{"a list of integers"};
    try {
      read_config_value(e, x);
    } catch (const ConfigTypeError&) {
      throw ConfigTypeError{"a list of integers below 2^63"};
    }
    f.push_back(x);
  }
}

DIFFUSE_COLD DIFFUSE_INLINE void read_config_value(const json& v, std::vector<std::string>& f) {
  if (!v.is_array()) throw ConfigTypeError{"a list of strings"};
  f.clear();
  for (const auto& e : v) {
    if (!e.is_string()) throw ConfigTypeError{"a list of strings"};
    f.push_back(e.get<std::string>());
  }
}

DIFFUSE_COLD DIFFUSE_INLINE json to_config_value(const std::vector<double>& f) {
  return f.empty() ? json(nullptr) : json(f);
}

// ---- ConfigSource ----

DIFFUSE_COLD DIFFUSE_INLINE ConfigSource::ConfigSource(std::string file) : saved_(current()) {
  current() = std::move(file);
}

DIFFUSE_COLD DIFFUSE_INLINE ConfigSource::~ConfigSource() { current() = saved_; }

DIFFUSE_COLD DIFFUSE_INLINE std::string& ConfigSource::current() {
  thread_local std::string file;
  return file;
}

// ---- ConfigReader ----

DIFFUSE_COLD DIFFUSE_INLINE ConfigReader::ConfigReader(const json& j, std::string what)
    : j_(j), what_(std::move(what)) {
  if (!j.is_object()) throw Error(what_ + ": a config must be a JSON object, got " + describe_json(j));
  if (j.contains("_use_default_values") && j["_use_default_values"].is_array())
    for (const auto& k : j["_use_default_values"])
      if (k.is_string()) defaults_.insert(k.get<std::string>());
}

DIFFUSE_COLD DIFFUSE_INLINE void ConfigReader::read(const char* key, void* field,
                                                    void (*convert)(const json&, void*)) {
  accepted_.insert(key);
  const auto it = j_.find(key);
  if (it == j_.end() || defaults_.count(key)) return;
  try {
    convert(*it, field);
  } catch (const ConfigTypeError& e) {
    throw Error(what_ + ": config key '" + key + "' must be " + e.expected + ", got " + describe_json(*it));
  }
}

DIFFUSE_COLD DIFFUSE_INLINE void ConfigReader::check_unknown(const std::set<std::string_view>& quiet) const {
  std::string listed;
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    const std::string& k = it.key();
    if (k.empty() || k[0] == '_' || accepted_.count(k) || quiet.count(k)) continue;
    if (listed.size() > 400) {
      listed += ", ...";
      break;
    }
    listed += (listed.empty() ? "" : ", ") + json(k).dump() + ": " + describe_json(*it, 40);
  }
  if (listed.empty()) return;
  const std::string& file = ConfigSource::current();
  const std::string message =
      "the config attributes {" + listed + "} were passed to " + what_ +
      (file.empty() ? "" : " (in '" + file + "')") +
      ", but are not expected and will be ignored. Please verify the config's spelling";
  if (unknown_config_keys().load() == UnknownConfigKeys::error)
    throw Error(message + " (strict mode: unknown config keys are errors)");
  warn(message + ".");
}

// ---- ConfigWriter ----

DIFFUSE_COLD DIFFUSE_INLINE void ConfigWriter::write(const char* key, const void* field,
                                                     json (*convert)(const void*)) const {
  j[key] = convert(field);
}

}  // namespace diffuse::io
