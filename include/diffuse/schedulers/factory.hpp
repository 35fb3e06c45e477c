/// @file
/// make_scheduler: builds any scheduler from a diffusers scheduler_config.json (by its
/// "_class_name", or by an explicit class name to convert one scheduler's config into another's,
/// like diffusers' SomeScheduler.from_config(other.config)). Includes every scheduler header.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/io/config.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/schedulers/ddim.hpp"
#include "diffuse/schedulers/ddpm.hpp"
#include "diffuse/schedulers/dpm_solver_multistep.hpp"
#include "diffuse/schedulers/euler.hpp"
#include "diffuse/schedulers/euler_ancestral.hpp"
#include "diffuse/schedulers/heun.hpp"
#include "diffuse/schedulers/pndm.hpp"
#include "diffuse/schedulers/scheduler.hpp"
#include "diffuse/schedulers/unipc.hpp"

namespace diffuse::schedulers {

/// The class names make_scheduler accepts.
inline const std::vector<std::string>& scheduler_names() {
  static const std::vector<std::string> names{"DDPMScheduler",
                                              "DDIMScheduler",
                                              "PNDMScheduler",
                                              "EulerDiscreteScheduler",
                                              "EulerAncestralDiscreteScheduler",
                                              "HeunDiscreteScheduler",
                                              "DPMSolverMultistepScheduler",
                                              "UniPCMultistepScheduler"};
  return names;
}

namespace detail {
/// A scheduler of class S on the heap, built in place from S::from_config (guaranteed copy
/// elision): std::make_unique would bind the result to a reference and move all of it once more.
template <class T, template <class> class S>
DIFFUSE_COLD std::unique_ptr<Scheduler<T>> new_from_config(const json& config) {
  return std::unique_ptr<Scheduler<T>>(new S<T>(S<T>::from_config(config)));
}
}  // namespace detail

/// A scheduler of class `class_name` configured from `config` (keys it does not know are ignored).
/// Throws diffuse::Error for another class name or an invalid config.
template <class T = float>
DIFFUSE_COLD std::unique_ptr<Scheduler<T>> make_scheduler(const std::string& class_name, const json& config) {
  detail::check_one_of("make_scheduler", "scheduler class", class_name, scheduler_names());
  using detail::new_from_config;
  if (class_name == "DDPMScheduler") return new_from_config<T, DDPMScheduler>(config);
  if (class_name == "DDIMScheduler") return new_from_config<T, DDIMScheduler>(config);
  if (class_name == "PNDMScheduler") return new_from_config<T, PNDMScheduler>(config);
  if (class_name == "EulerDiscreteScheduler") return new_from_config<T, EulerDiscreteScheduler>(config);
  if (class_name == "EulerAncestralDiscreteScheduler")
    return new_from_config<T, EulerAncestralDiscreteScheduler>(config);
  if (class_name == "HeunDiscreteScheduler") return new_from_config<T, HeunDiscreteScheduler>(config);
  if (class_name == "DPMSolverMultistepScheduler")
    return new_from_config<T, DPMSolverMultistepScheduler>(config);
  return new_from_config<T, UniPCMultistepScheduler>(config);
}

/// A scheduler built from a config that names its class in "_class_name" (or, given just a
/// class name, a scheduler of that class with diffusers' defaults).
template <class T = float>
DIFFUSE_COLD std::unique_ptr<Scheduler<T>> make_scheduler(const json& config) {
  if (config.is_string()) return make_scheduler<T>(config.get<std::string>(), json::object());
  if (!config.is_object() || !config.contains("_class_name") || !config["_class_name"].is_string())
    throw Error("make_scheduler: the config has no \"_class_name\" string; pass the class name explicitly");
  return make_scheduler<T>(config["_class_name"].get<std::string>(), config);
}

/// A scheduler from a scheduler_config.json file, or from a pipeline folder's scheduler/ subfolder.
/// Throws diffuse::FileError if the file is missing or not JSON, diffuse::Error for an
/// invalid config.
template <class T = float>
std::unique_ptr<Scheduler<T>> load_scheduler(const std::filesystem::path& path) {
  // A scheduler folder holds scheduler_config.json; a pipeline folder holds scheduler/.
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path))
    file = std::filesystem::is_directory(path / "scheduler") &&
                   !std::filesystem::exists(path / "scheduler_config.json")
               ? path / "scheduler" / "scheduler_config.json"
               : path / "scheduler_config.json";
  const io::ConfigSource source(file.string());
  const io::json config = io::read_json(file);  // a FileError names the file already
  try {
    return make_scheduler<T>(config);
  } catch (const Error&) {
    rethrow_with_prefix("'" + file.string() + "': ");  // a bad value names the file, as the UNet's do
  }
}

/// Writes the scheduler's scheduler_config.json into `dir` (created if needed).
template <class T>
void save_scheduler(const Scheduler<T>& scheduler, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  io::write_json(dir / "scheduler_config.json", scheduler.to_json());
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_FACTORY_TEMPLATES(X, T)                                                      \
  X(std::unique_ptr<Scheduler<T>> make_scheduler<T>(const std::string& class_name, const json& config)) \
  X(std::unique_ptr<Scheduler<T>> make_scheduler<T>(const json& config))                                \
  X(std::unique_ptr<Scheduler<T>> load_scheduler<T>(const std::filesystem::path& path))                 \
  X(void save_scheduler<T>(const Scheduler<T>& scheduler, const std::filesystem::path& dir))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_FACTORY_TEMPLATES)

}  // namespace diffuse::schedulers
