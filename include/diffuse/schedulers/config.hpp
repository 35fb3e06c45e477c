/// @file
/// Scheduler configs in diffusers' scheduler_config.json format, read and written by the shared
/// config reader (io/config.hpp). As in diffusers, a scheduler can be built from another's config:
/// the keys of diffusers' other schedulers pass quietly (ConfigMixin drops the keys of a class's
/// "_compatibles"); any other unknown key gets a warning. Python's json module writes -Infinity
/// for DPM-Solver's lambda_min_clipped; the io JSON functions read and write it the same way.
#pragma once
#include <filesystem>
#include <set>
#include <string>
#include <string_view>

#include "diffuse/io/config.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::schedulers {

/// The JSON type of scheduler configs and step options.
using json = nlohmann::json;

namespace detail {

/// Keys of diffusers' schedulers (0.21 and later) that are not every scheduler's own: reading one
/// scheduler's config from another's must not warn about them.
inline const std::set<std::string_view>& scheduler_config_keys() {
  static const std::set<std::string_view> keys = {"algorithm_type",
                                                  "beta_end",
                                                  "beta_schedule",
                                                  "beta_start",
                                                  "clip_sample",
                                                  "clip_sample_range",
                                                  "disable_corrector",
                                                  "dynamic_thresholding_ratio",
                                                  "euler_at_final",
                                                  "final_sigmas_type",
                                                  "interpolation_type",
                                                  "lambda_min_clipped",
                                                  "lower_order_final",
                                                  "noise_sampler_seed",
                                                  "num_train_timesteps",
                                                  "predict_x0",
                                                  "prediction_type",
                                                  "rescale_betas_zero_snr",
                                                  "sample_max_value",
                                                  "set_alpha_to_one",
                                                  "sigma_max",
                                                  "sigma_min",
                                                  "skip_prk_steps",
                                                  "solver_order",
                                                  "solver_p",
                                                  "solver_type",
                                                  "steps_offset",
                                                  "thresholding",
                                                  "timestep_spacing",
                                                  "timestep_type",
                                                  "trained_betas",
                                                  "use_beta_sigmas",
                                                  "use_exponential_sigmas",
                                                  "use_karras_sigmas",
                                                  "use_lu_lambdas",
                                                  "variance_type"};
  return keys;
}

template <class Config>
Config config_from_json(const json& j, const std::string& class_name) {
  return io::config_from_json<Config>(j, class_name, scheduler_config_keys());
}

template <class Config>
json config_to_json(const Config& c, const std::string& class_name) {
  return io::config_to_json(c, class_name);
}

}  // namespace detail
}  // namespace diffuse::schedulers
