/// @file
/// EulerAncestralDiscreteScheduler: Euler steps with ancestral sampling (k-diffusion's
/// sample_euler_ancestral): each step goes down to sigma_down and adds fresh noise of size
/// sigma_up. diffusers 0.21 semantics; every step draws noise.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/schedulers/sigma_scheduler.hpp"

namespace diffuse::schedulers {

/// Euler ancestral sampling (see the file comment); every step draws noise.
template <class T = float>
class EulerAncestralDiscreteScheduler : public SigmaScheduler<T> {
 public:
  /// The diffusers config: the keys of scheduler_config.json, with diffusers' defaults.
  struct Config {
    /// Number of diffusion steps the model was trained with: the length of the schedule.
    std::int64_t num_train_timesteps = 1000;
    /// Beta (the variance of the noise added) at the first training timestep.
    double beta_start = 0.0001;
    /// Beta at the last training timestep.
    double beta_end = 0.02;
    /// How the betas go from beta_start to beta_end (squaredcos_cap_v2 ignores both).
    std::string beta_schedule = "linear";  // linear, scaled_linear, squaredcos_cap_v2, sigmoid
    /// Betas given explicitly, one per training timestep; when non-empty they replace beta_schedule.
    std::vector<double> trained_betas = {};
    /// What the model predicts: the noise (epsilon) or v (v_prediction, section 2.4 of the Imagen
    /// Video paper).
    std::string prediction_type = "epsilon";  // epsilon, v_prediction
    /// How the inference timesteps spread over the training ones (Table 2 of Lin et al. 2023,
    /// "Common Diffusion Noise Schedules and Sample Steps are Flawed").
    std::string timestep_spacing = "linspace";  // linspace, leading, trailing
    /// Added to every inference timestep with "leading" spacing (Stable Diffusion uses 1).
    std::int64_t steps_offset = 0;

    template <class C, class V>
    static void visit(C& c, V&& v) {
      v("num_train_timesteps", c.num_train_timesteps);
      v("beta_start", c.beta_start);
      v("beta_end", c.beta_end);
      v("beta_schedule", c.beta_schedule);
      v("trained_betas", c.trained_betas);
      v("prediction_type", c.prediction_type);
      v("timestep_spacing", c.timestep_spacing);
      v("steps_offset", c.steps_offset);
    }
  };
  /// diffusers' class name, the "_class_name" of the config.
  static constexpr const char* kClassName = "EulerAncestralDiscreteScheduler";

  /// Builds the training schedule. Throws diffuse::Error for an unknown option value, a
  /// num_train_timesteps out of range or a beta outside (0, 1).
  explicit EulerAncestralDiscreteScheduler(Config config = {});
  /// From a diffusers config (any scheduler's: keys this one does not know are ignored).
  /// Throws diffuse::Error for a value of the wrong type or an invalid one.
  DIFFUSE_COLD static EulerAncestralDiscreteScheduler from_config(const json& j) {
    return EulerAncestralDiscreteScheduler(detail::config_from_json<Config>(j, kClassName));
  }

  /// The config the scheduler was built from.
  const Config& config() const { return config_; }
  std::string class_name() const override { return kClassName; }
  DIFFUSE_COLD json to_json() const override { return detail::config_to_json(config_, kClassName); }

  void set_timesteps(std::int64_t n) override;

  bool step_draws_noise(double) const override { return true; }

 protected:
  SchedulerOutput<T> step_impl(const Tensor<T>& model_output, double t, const Tensor<T>& sample,
                               const Tensor<T>& noise) override;

 private:
  Config config_;
};

template <class T>
DIFFUSE_COLD EulerAncestralDiscreteScheduler<T>::EulerAncestralDiscreteScheduler(Config config)
    : config_(std::move(config)) {
  const std::string cls = kClassName;
  detail::check_one_of(cls, "prediction_type", config_.prediction_type, {"epsilon", "v_prediction"});
  detail::check_one_of(cls, "timestep_spacing", config_.timestep_spacing,
                       {"linspace", "leading", "trailing"});
  this->init_sigma_schedule(detail::make_betas(cls, config_.beta_schedule, config_.num_train_timesteps,
                                               config_.beta_start, config_.beta_end, config_.trained_betas),
                            config_.timestep_spacing);
  this->use_all_training_timesteps();
}

template <class T>
DIFFUSE_COLD void EulerAncestralDiscreteScheduler<T>::set_timesteps(std::int64_t n) {
  this->check_num_steps(n);
  this->num_inference_steps_ = n;
  std::vector<double> ts = this->discrete_timesteps(config_.num_train_timesteps, n, config_.steps_offset);
  std::vector<double> sig = this->interp_sigmas(ts);
  this->sigmas_.assign(sig.begin(), sig.end());
  this->sigmas_.push_back(0.0f);
  this->timesteps_ = ts;
  this->step_index_ = -1;
}

template <class T>
auto EulerAncestralDiscreteScheduler<T>::step_impl(const Tensor<T>& model_output, double t,
                                                   const Tensor<T>& sample, const Tensor<T>& noise)
    -> SchedulerOutput<T> {
  this->check_step_shapes(model_output, sample);
  this->begin_step(t);
  const float sigma = this->sigmas_[this->step_index_];
  const float sigma_to = this->sigmas_[this->step_index_ + 1];
  const float sigma_up =
      std::sqrt(sigma_to * sigma_to * (sigma * sigma - sigma_to * sigma_to) / (sigma * sigma));
  const float sigma_down = std::sqrt(sigma_to * sigma_to - sigma_up * sigma_up);
  const double dt = sigma_down - sigma;
  const double v_a = -sigma / std::sqrt(sigma * sigma + 1.0f), v_b = sigma * sigma + 1.0f;

  const std::int64_t n = sample.numel();
  const T *s = sample.data(), *m = model_output.data(), *z = noise.data();
  Tensor<T> x0 = Tensor<T>::empty(sample.shape()), prev = Tensor<T>::empty(sample.shape());
  for (std::int64_t i = 0; i < n; ++i) {
    const double p = config_.prediction_type == "epsilon" ? s[i] - static_cast<double>(sigma) * m[i]
                                                          : m[i] * v_a + s[i] / v_b;
    x0.data()[i] = static_cast<T>(p);
    const double derivative = (s[i] - static_cast<double>(x0.data()[i])) / sigma;
    prev.data()[i] = static_cast<T>(s[i] + derivative * dt + static_cast<double>(z[i]) * sigma_up);
  }
  ++this->step_index_;
  return {prev, x0};
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_EULER_ANCESTRAL_TEMPLATES(X, T) X(class EulerAncestralDiscreteScheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_EULER_ANCESTRAL_TEMPLATES)

}  // namespace diffuse::schedulers
