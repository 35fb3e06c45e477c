/// @file
/// Configs in diffusers' config.json format, for every class diffusers configures (UNet2DModel, the
/// schedulers): one reader, one writer, one diffusers version. A class lists its keys once, in a
/// static visit(config, visitor) that calls visitor("key", config.field) for each.
///
/// Reading follows diffusers' ConfigMixin.extract_init_dict: keys starting with "_" and the keys
/// named in "_use_default_values" are skipped; a key the class accepts sets its field (a value of
/// the wrong type, or an integer out of range, is an Error naming the key); any other key is
/// ignored with a warning that lists them, as diffusers warns "The config attributes {...} were
/// passed to ..., but are not expected and will be ignored". Keys a class declares quiet pass
/// without one (another scheduler's keys, keys of newer diffusers versions that change nothing
/// here). Strict mode turns the warning into an Error: `io::unknown_config_keys() =
/// io::UnknownConfigKeys::error`, or DIFFUSE_STRICT_CONFIG=1 in the environment.
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/warning.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::io {

using json = nlohmann::json;

/// The diffusers version whose config semantics diffuse follows (written as "_diffusers_version").
inline constexpr const char* kDiffusersVersion = "0.21.4";

/// What reading a config does with a key the class neither accepts nor declares quiet.
enum class UnknownConfigKeys { warn, error };

/// The process-wide policy for unknown keys: `error` if DIFFUSE_STRICT_CONFIG is set (and not "0")
/// when first used, else `warn`. Assign to it to change it.
inline std::atomic<UnknownConfigKeys>& unknown_config_keys() {
  static std::atomic<UnknownConfigKeys> policy{[] {
    const char* s = std::getenv("DIFFUSE_STRICT_CONFIG");
    return s && *s && std::string_view(s) != "0" ? UnknownConfigKeys::error : UnknownConfigKeys::warn;
  }()};
  return policy;
}

/// A config value of the wrong JSON type; ConfigReader adds the key and the value to the message.
struct ConfigTypeError {
  const char* expected;
};

// ---- JSON value -> field (found by argument-dependent lookup, so a model may add its own types) ----

/// Sets `f` from a config value, or throws ConfigTypeError. An integer: a JSON integer, or a float
/// with an integral value (1000.0), within int64's range.
inline void read_config_value(const json& v, std::int64_t& f) {
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
/// An integer within int's range (32 bits).
inline void read_config_value(const json& v, int& f) {
  std::int64_t x = 0;
  read_config_value(v, x);
  if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
    throw ConfigTypeError{"an integer of 32 bits"};
  f = static_cast<int>(x);
}
/// Any JSON number.
inline void read_config_value(const json& v, double& f) {
  if (!v.is_number()) throw ConfigTypeError{"a number"};
  f = v.get<double>();
}
/// true or false.
inline void read_config_value(const json& v, bool& f) {
  if (!v.is_boolean()) throw ConfigTypeError{"true or false"};
  f = v.get<bool>();
}
/// A JSON string.
inline void read_config_value(const json& v, std::string& f) {
  if (!v.is_string()) throw ConfigTypeError{"a string"};
  f = v.get<std::string>();
}
/// A string, or null for none.
inline void read_config_value(const json& v, std::optional<std::string>& f) {
  if (v.is_null())
    f.reset();
  else if (v.is_string())
    f = v.get<std::string>();
  else
    throw ConfigTypeError{"a string or null"};
}
/// An integer, or null for none.
inline void read_config_value(const json& v, std::optional<std::int64_t>& f) {
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
/// A list of numbers, or null for an empty list.
inline void read_config_value(const json& v, std::vector<double>& f) {  // null: none (trained_betas)
  f.clear();
  if (v.is_null()) return;
  if (!v.is_array()) throw ConfigTypeError{"a list of numbers or null"};
  for (const auto& e : v) {
    if (!e.is_number()) throw ConfigTypeError{"a list of numbers or null"};
    f.push_back(e.get<double>());
  }
}
/// A list of JSON integers within int64's range.
inline void read_config_value(const json& v, std::vector<std::int64_t>& f) {
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
/// A list of strings.
inline void read_config_value(const json& v, std::vector<std::string>& f) {
  if (!v.is_array()) throw ConfigTypeError{"a list of strings"};
  f.clear();
  for (const auto& e : v) {
    if (!e.is_string()) throw ConfigTypeError{"a list of strings"};
    f.push_back(e.get<std::string>());
  }
}

// ---- field -> JSON value ----

/// The JSON value a config writes for a field.
template <class V>
json to_config_value(const V& f) {
  return json(f);
}
/// An empty optional is written as null.
template <class V>
json to_config_value(const std::optional<V>& f) {
  return f ? json(*f) : json(nullptr);
}
/// An empty list is written as null (diffusers' trained_betas = None).
inline json to_config_value(const std::vector<double>& f) { return f.empty() ? json(nullptr) : json(f); }

/// While one is alive on a thread, the unknown-key warnings of configs read there name this file
/// (errors are prefixed with the file by the function that read it).
class ConfigSource {
 public:
  /// Names `file` in this thread's warnings until destroyed, then restores the previous name.
  explicit ConfigSource(std::string file) : saved_(current()) { current() = std::move(file); }
  ~ConfigSource() { current() = saved_; }
  ConfigSource(const ConfigSource&) = delete;
  ConfigSource& operator=(const ConfigSource&) = delete;
  /// The file named by this thread's innermost ConfigSource (empty if none).
  static std::string& current() {
    thread_local std::string file;
    return file;
  }

 private:
  std::string saved_;
};

/// Sets the fields of a config from a JSON object; `what` names it in messages ("DDPMScheduler").
class ConfigReader {
 public:
  /// Throws Error if `j` is not a JSON object.
  ConfigReader(const json& j, std::string what) : j_(j), what_(std::move(what)) {
    if (!j.is_object()) throw Error(what_ + ": a config must be a JSON object, got " + describe_json(j));
    if (j.contains("_use_default_values") && j["_use_default_values"].is_array())
      for (const auto& k : j["_use_default_values"])
        if (k.is_string()) defaults_.insert(k.get<std::string>());
  }

  /// The visitor: sets `field` from `key` if the config has it (and does not list it in
  /// "_use_default_values"); Error naming the key for a value of the wrong type.
  template <class V>
  void operator()(const char* key, V& field) {
    accepted_.insert(key);
    const auto it = j_.find(key);
    if (it == j_.end() || defaults_.count(key)) return;
    try {
      read_config_value(*it, field);
    } catch (const ConfigTypeError& e) {
      throw Error(what_ + ": config key '" + key + "' must be " + e.expected + ", got " + describe_json(*it));
    }
  }

  /// After the visit: warns about (or, in strict mode, refuses) the keys that were not accepted,
  /// apart from "_..." keys and `quiet` ones.
  void check_unknown(const std::set<std::string_view>& quiet = {}) const {
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

 private:
  const json& j_;
  std::string what_;
  std::set<std::string> defaults_;
  std::set<std::string, std::less<>> accepted_;
};

/// Writes the fields of a config into a JSON object.
struct ConfigWriter {
  json& j;
  /// The visitor: writes `field` under `key`.
  template <class V>
  void operator()(const char* key, const V& field) const {
    j[key] = to_config_value(field);
  }
};

/// Config struct <-> diffusers JSON, for a Config with a static visit(config, visitor).
/// Reading, like diffusers' ConfigMixin.from_config: fields missing from `j` keep their defaults;
/// `quiet` keys pass without a warning. Error naming `class_name` for a value of the wrong type or,
/// in strict mode, an unknown key.
template <class Config>
Config config_from_json(const json& j, const std::string& class_name,
                        const std::set<std::string_view>& quiet = {}) {
  Config c;
  ConfigReader reader(j, class_name);
  Config::visit(c, reader);
  reader.check_unknown(quiet);
  return c;
}

/// Writing, like diffusers' to_json_string: every field, plus "_class_name" and "_diffusers_version".
template <class Config>
json config_to_json(const Config& c, const std::string& class_name) {
  json j = json::object();
  j["_class_name"] = class_name;
  j["_diffusers_version"] = kDiffusersVersion;
  Config::visit(c, ConfigWriter{j});
  return j;
}

}  // namespace diffuse::io
