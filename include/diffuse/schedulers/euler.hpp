/// @file
/// EulerDiscreteScheduler: the Euler sampler of Karras et al. (2022), Algorithm 2 (with optional
/// "churn"), on diffusers 0.21's discrete sigma schedule; use_karras_sigmas and the
/// interpolation_type of diffusers included.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/schedulers/sigma_scheduler.hpp"

namespace diffuse::schedulers {

/// Euler sampling (see the file comment); deterministic unless step_options.s_churn > 0.
template <class T = float>
class EulerDiscreteScheduler : public SigmaScheduler<T> {
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
    /// What the model predicts: the noise (epsilon), the clean sample (sample; original_sample is
    /// read the same) or v (v_prediction, section 2.4 of the Imagen Video paper).
    std::string prediction_type = "epsilon";  // epsilon, sample, v_prediction
    /// How the inference sigmas are found: linear interpolates the training sigmas at each
    /// timestep; log_linear spaces them evenly in log sigma.
    std::string interpolation_type = "linear";  // linear, log_linear
    /// Use the noise levels of Karras et al. (2022), evenly spaced in sigma^(1/7), for the
    /// inference steps.
    bool use_karras_sigmas = false;
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
      v("interpolation_type", c.interpolation_type);
      v("use_karras_sigmas", c.use_karras_sigmas);
      v("timestep_spacing", c.timestep_spacing);
      v("steps_offset", c.steps_offset);
    }
  };
  /// The keyword arguments of diffusers' EulerDiscreteScheduler.step ("churn", Karras et al.).
  struct StepOptions {
    /// How much noise to add back before each step; 0 keeps the steps deterministic.
    double s_churn = 0.0;
    /// Churn applies only to steps whose sigma is at least s_tmin ...
    double s_tmin = 0.0;
    /// ... and at most s_tmax.
    double s_tmax = std::numeric_limits<double>::infinity();
    /// Scale of the noise that churn adds.
    double s_noise = 1.0;
  };
  /// diffusers' class name, the "_class_name" of the config.
  static constexpr const char* kClassName = "EulerDiscreteScheduler";

  /// Builds the training schedule. Throws diffuse::Error for an unknown option value, a
  /// num_train_timesteps out of range or a beta outside (0, 1).
  /// `options` are the step() keyword arguments.
  explicit EulerDiscreteScheduler(Config config = {}, StepOptions options = {});
  /// From a diffusers config (any scheduler's: keys this one does not know are ignored).
  /// Throws diffuse::Error for a value of the wrong type or an invalid one.
  DIFFUSE_COLD static EulerDiscreteScheduler from_config(const json& j) {
    return EulerDiscreteScheduler(detail::config_from_json<Config>(j, kClassName));
  }

  /// The config the scheduler was built from.
  const Config& config() const { return config_; }
  std::string class_name() const override { return kClassName; }
  DIFFUSE_COLD json to_json() const override { return detail::config_to_json(config_, kClassName); }
  /// Sets step_options from numbers named s_churn, s_tmin, s_tmax and s_noise; any other key or
  /// type throws diffuse::Error.
  void set_step_kwargs(const json& kwargs) override;

  void set_timesteps(std::int64_t n) override;

  bool step_draws_noise(double t) const override { return gamma_at(t) > 0; }

  /// The step() keyword arguments in use; set them here or with set_step_kwargs.
  StepOptions step_options;

 protected:
  SchedulerOutput<T> step_impl(const Tensor<T>& model_output, double t, const Tensor<T>& sample_in,
                               const Tensor<T>& noise) override;

 private:
  double gamma_at(double t) const;

  Config config_;
};

template <class T>
DIFFUSE_COLD EulerDiscreteScheduler<T>::EulerDiscreteScheduler(Config config, StepOptions options)
    : step_options(options), config_(std::move(config)) {
  const std::string cls = kClassName;
  detail::check_one_of(cls, "prediction_type", config_.prediction_type,
                       {"epsilon", "sample", "original_sample", "v_prediction"});
  detail::check_one_of(cls, "interpolation_type", config_.interpolation_type, {"linear", "log_linear"});
  detail::check_one_of(cls, "timestep_spacing", config_.timestep_spacing,
                       {"linspace", "leading", "trailing"});
  this->init_sigma_schedule(detail::make_betas(cls, config_.beta_schedule, config_.num_train_timesteps,
                                               config_.beta_start, config_.beta_end, config_.trained_betas),
                            config_.timestep_spacing);
  this->use_all_training_timesteps();
}

template <class T>
DIFFUSE_COLD void EulerDiscreteScheduler<T>::set_step_kwargs(const json& kwargs) {
  for (const auto& [key, value] : kwargs.items()) {
    if (!value.is_number())
      throw Error(std::string(kClassName) + ".step: argument '" + key + "' must be a number, got " +
                  value.dump());
    const double v = value.template get<double>();
    if (key == "s_churn")
      step_options.s_churn = v;
    else if (key == "s_tmin")
      step_options.s_tmin = v;
    else if (key == "s_tmax")
      step_options.s_tmax = v;
    else if (key == "s_noise")
      step_options.s_noise = v;
    else
      throw Error(std::string(kClassName) + ".step: unknown argument '" + key +
                  "'; accepted: s_churn, s_tmin, s_tmax, s_noise");
  }
}

template <class T>
DIFFUSE_COLD void EulerDiscreteScheduler<T>::set_timesteps(std::int64_t n) {
  this->check_num_steps(n);
  this->num_inference_steps_ = n;
  std::vector<double> ts = this->discrete_timesteps(config_.num_train_timesteps, n, config_.steps_offset);
  std::vector<double> sig;
  if (config_.interpolation_type == "linear") {
    sig = this->interp_sigmas(ts);
  } else {  // log_linear, exactly as diffusers 0.21 writes it (ascending float32 values)
    const float lo = std::log(this->train_sigmas_.back()), hi = std::log(this->train_sigmas_.front());
    for (float v : detail::torch_linspace_f32(lo, hi, n + 1)) sig.push_back(std::exp(v));
  }
  if (config_.use_karras_sigmas) this->to_karras(sig, ts, n);
  this->sigmas_.assign(sig.begin(), sig.end());
  this->sigmas_.push_back(0.0f);
  this->timesteps_ = ts;
  this->step_index_ = -1;
}

template <class T>
auto EulerDiscreteScheduler<T>::step_impl(const Tensor<T>& model_output, double t, const Tensor<T>& sample_in,
                                          const Tensor<T>& noise) -> SchedulerOutput<T> {
  this->check_step_shapes(model_output, sample_in);
  this->begin_step(t);
  const float sigma = this->sigmas_[this->step_index_];
  const double gamma = gamma_at(t);
  const float sigma_hat = static_cast<float>(sigma * static_cast<float>(gamma + 1));
  Tensor<T> sample = sample_in;
  if (gamma > 0) {
    const double c = std::sqrt(sigma_hat * sigma_hat - sigma * sigma) * step_options.s_noise;
    sample = Scheduler<T>::axpby(1.0, sample_in, c, noise);
  }
  const std::int64_t n = sample.numel();
  const T *s = sample.data(), *m = model_output.data();
  Tensor<T> x0 = Tensor<T>::empty(sample.shape());
  const std::string& pt = config_.prediction_type;
  const double v_a = -sigma / std::sqrt(sigma * sigma + 1.0f), v_b = sigma * sigma + 1.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    if (pt == "epsilon")
      x0.data()[i] = static_cast<T>(s[i] - static_cast<double>(sigma_hat) * m[i]);
    else if (pt == "v_prediction")
      x0.data()[i] = static_cast<T>(m[i] * v_a + s[i] / v_b);
    else
      x0.data()[i] = m[i];
  }
  const double dt = this->sigmas_[this->step_index_ + 1] - sigma_hat;
  Tensor<T> prev = Tensor<T>::empty(sample.shape());
  for (std::int64_t i = 0; i < n; ++i) {
    const double derivative = (s[i] - static_cast<double>(x0.data()[i])) / sigma_hat;
    prev.data()[i] = static_cast<T>(s[i] + derivative * dt);
  }
  ++this->step_index_;
  return {prev, x0};
}

template <class T>
double EulerDiscreteScheduler<T>::gamma_at(double t) const {
  if (step_options.s_churn <= 0) return 0.0;
  std::int64_t idx = this->step_index_;
  if (idx < 0) {
    idx = this->find_timestep(t);
    if (idx < 0) return 0.0;
  }
  const float sigma = this->sigmas_[idx];
  if (!(step_options.s_tmin <= sigma && sigma <= step_options.s_tmax)) return 0.0;
  return std::min(step_options.s_churn / static_cast<double>(this->sigmas_.size() - 1), std::sqrt(2.0) - 1);
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_EULER_TEMPLATES(X, T) X(class EulerDiscreteScheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_EULER_TEMPLATES)

}  // namespace diffuse::schedulers
