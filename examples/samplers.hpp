// The samplers of the command-line tools by their short names (--scheduler, --eval_scheduler),
// each built from a pipeline's scheduler config as diffusers' SomeScheduler.from_config does.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <diffuse/schedulers/factory.hpp>

namespace tools {

inline const std::vector<std::pair<std::string, std::string>>& samplers() {
  static const std::vector<std::pair<std::string, std::string>> table{
      {"ddpm", "DDPMScheduler"},
      {"ddim", "DDIMScheduler"},
      {"pndm", "PNDMScheduler"},
      {"euler", "EulerDiscreteScheduler"},
      {"euler_ancestral", "EulerAncestralDiscreteScheduler"},
      {"heun", "HeunDiscreteScheduler"},
      {"dpmpp_2m", "DPMSolverMultistepScheduler"},  // diffusers' defaults: DPM-Solver++, order 2
      {"unipc", "UniPCMultistepScheduler"}};
  return table;
}

inline std::vector<std::string> sampler_names() {
  std::vector<std::string> names;
  for (const auto& [name, cls] : samplers()) names.push_back(name);
  return names;
}

// The scheduler `name` (a short name above) configured from `config` (a scheduler_config.json).
template <class T>
std::unique_ptr<diffuse::schedulers::Scheduler<T>> make_sampler(const std::string& name,
                                                                const nlohmann::json& config) {
  for (const auto& [short_name, cls] : samplers())
    if (short_name == name) return diffuse::schedulers::make_scheduler<T>(cls, config);
  throw diffuse::Error("unknown sampler '" + name + "'");
}

}  // namespace tools
