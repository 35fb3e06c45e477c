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
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::io {

using json = nlohmann::json;

/// The diffusers version whose config semantics diffuse follows (written as "_diffusers_version").
inline constexpr const char* kDiffusersVersion = "0.21.4";

/// What reading a config does with a key the class neither accepts nor declares quiet.
enum class UnknownConfigKeys { warn, error };

/// The process-wide policy for unknown keys: `error` if DIFFUSE_STRICT_CONFIG is set (and not "0")
/// when first used, else `warn`. Assign to it to change it.
std::atomic<UnknownConfigKeys>& unknown_config_keys();

/// A config value of the wrong JSON type; ConfigReader adds the key and the value to the message.
struct ConfigTypeError {
  const char* expected;
};

// ---- JSON value -> field (found by argument-dependent lookup, so a model may add its own types) ----

/// Sets `f` from a config value, or throws ConfigTypeError. An integer: a JSON integer, or a float
/// with an integral value (1000.0), within int64's range.
void read_config_value(const json& v, std::int64_t& f);
/// An integer within int's range (32 bits).
void read_config_value(const json& v, int& f);
/// Any JSON number.
void read_config_value(const json& v, double& f);
/// true or false.
void read_config_value(const json& v, bool& f);
/// A JSON string.
void read_config_value(const json& v, std::string& f);
/// A string, or null for none.
void read_config_value(const json& v, std::optional<std::string>& f);
/// An integer, or null for none.
void read_config_value(const json& v, std::optional<std::int64_t>& f);
/// A list of numbers, or null for an empty list.
void read_config_value(const json& v, std::vector<double>& f);  // null: none (trained_betas)
/// A list of JSON integers within int64's range.
void read_config_value(const json& v, std::vector<std::int64_t>& f);
/// A list of strings.
void read_config_value(const json& v, std::vector<std::string>& f);

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
json to_config_value(const std::vector<double>& f);

/// While one is alive on a thread, the unknown-key warnings of configs read there name this file
/// (errors are prefixed with the file by the function that read it).
class ConfigSource {
 public:
  /// Names `file` in this thread's warnings until destroyed, then restores the previous name.
  explicit ConfigSource(std::string file);
  ~ConfigSource();
  ConfigSource(const ConfigSource&) = delete;
  ConfigSource& operator=(const ConfigSource&) = delete;
  /// The file named by this thread's innermost ConfigSource (empty if none).
  static std::string& current();

 private:
  std::string saved_;
};

/// Sets the fields of a config from a JSON object; `what` names it in messages ("DDPMScheduler").
class ConfigReader {
 public:
  /// Throws Error if `j` is not a JSON object.
  ConfigReader(const json& j, std::string what);

  /// The visitor: sets `field` from `key` if the config has it (and does not list it in
  /// "_use_default_values"); Error naming the key for a value of the wrong type.
  template <class V>
  void operator()(const char* key, V& field) {
    // Only this conversion depends on V; the rest is compiled once, not once per field.
    read(key, &field, [](const json& v, void* f) { read_config_value(v, *static_cast<V*>(f)); });
  }
  /// After the visit: warns about (or, in strict mode, refuses) the keys that were not accepted,
  /// apart from "_..." keys and `quiet` ones.
  void check_unknown(const std::set<std::string_view>& quiet = {}) const;

 private:
  void read(const char* key, void* field, void (*convert)(const json&, void*));

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
    write(key, &field, [](const void* f) { return to_config_value(*static_cast<const V*>(f)); });
  }

 private:
  void write(const char* key, const void* field, json (*convert)(const void*)) const;
};

/// Config struct <-> diffusers JSON, for a Config with a static visit(config, visitor).
/// Reading, like diffusers' ConfigMixin.from_config: fields missing from `j` keep their defaults;
/// `quiet` keys pass without a warning. Error naming `class_name` for a value of the wrong type or,
/// in strict mode, an unknown key.
template <class Config>
DIFFUSE_COLD Config config_from_json(const json& j, const std::string& class_name,
                                     const std::set<std::string_view>& quiet = {}) {
  Config c;
  ConfigReader reader(j, class_name);
  Config::visit(c, reader);
  reader.check_unknown(quiet);
  return c;
}

/// Writing, like diffusers' to_json_string: every field, plus "_class_name" and "_diffusers_version".
template <class Config>
DIFFUSE_COLD json config_to_json(const Config& c, const std::string& class_name) {
  json j = json::object();
  j["_class_name"] = class_name;
  j["_diffusers_version"] = kDiffusersVersion;
  Config::visit(c, ConfigWriter{j});
  return j;
}

}  // namespace diffuse::io

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/io/config-inl.hpp"
#endif
