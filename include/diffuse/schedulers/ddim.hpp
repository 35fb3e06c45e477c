/// @file
/// DDIMScheduler: the (generalised) denoising diffusion implicit models sampler of Song et al.
/// (2021), deterministic for eta = 0, with diffusers 0.21's config keys and float32 step
/// coefficients. Includes rescale_betas_zero_snr and set_alpha_to_one.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/schedulers/scheduler.hpp"

namespace diffuse::schedulers {

/// DDIM sampling (see the file comment): deterministic for eta = 0, else every step draws
/// noise.
template <class T = float>
class DDIMScheduler : public Scheduler<T> {
  using Base = Scheduler<T>;

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
    /// Clip the predicted clean sample to [-clip_sample_range, clip_sample_range].
    bool clip_sample = true;
    /// Whether the last step goes to alphas_cumprod 1 (a clean sample) rather than to
    /// alphas_cumprod[0].
    bool set_alpha_to_one = true;  // the "previous" alphas_cumprod of the last step: 1 or alphas_cumprod[0]
    /// Added to every inference timestep with "leading" spacing (Stable Diffusion uses 1).
    std::int64_t steps_offset = 0;
    /// What the model predicts: the noise (epsilon), the clean sample (sample) or v (v_prediction,
    /// section 2.4 of the Imagen Video paper).
    std::string prediction_type = "epsilon";  // epsilon, sample, v_prediction
    /// Apply dynamic thresholding (Imagen) to the predicted clean sample instead of clip_sample; not
    /// for latent-space models.
    bool thresholding = false;
    /// With thresholding: the quantile of |x0| (per batch element) to clip at.
    double dynamic_thresholding_ratio = 0.995;
    /// The bound of clip_sample.
    double clip_sample_range = 1.0;
    /// With thresholding: the largest threshold used.
    double sample_max_value = 1.0;
    /// How the inference timesteps spread over the training ones (Table 2 of Lin et al. 2023,
    /// "Common Diffusion Noise Schedules and Sample Steps are Flawed").
    std::string timestep_spacing = "leading";  // linspace, leading, trailing
    /// Rescale the betas to zero terminal SNR (Lin et al. 2023) so that the model can make very
    /// bright and very dark images; train with v_prediction then (at SNR 0 an epsilon model's x0
    /// is undefined).
    bool rescale_betas_zero_snr = false;

    template <class C, class V>
    static void visit(C& c, V&& v) {
      v("num_train_timesteps", c.num_train_timesteps);
      v("beta_start", c.beta_start);
      v("beta_end", c.beta_end);
      v("beta_schedule", c.beta_schedule);
      v("trained_betas", c.trained_betas);
      v("clip_sample", c.clip_sample);
      v("set_alpha_to_one", c.set_alpha_to_one);
      v("steps_offset", c.steps_offset);
      v("prediction_type", c.prediction_type);
      v("thresholding", c.thresholding);
      v("dynamic_thresholding_ratio", c.dynamic_thresholding_ratio);
      v("clip_sample_range", c.clip_sample_range);
      v("sample_max_value", c.sample_max_value);
      v("timestep_spacing", c.timestep_spacing);
      v("rescale_betas_zero_snr", c.rescale_betas_zero_snr);
    }
  };
  /// The keyword arguments of diffusers' DDIMScheduler.step.
  struct StepOptions {
    /// The weight of the noise each step adds (eta of the DDIM paper).
    double eta = 0.0;  // 0: deterministic DDIM; 1: DDPM-like
    /// Recompute the predicted noise from the clipped x0 (as diffusers does with this option).
    bool use_clipped_model_output = false;
  };
  /// diffusers' class name, the "_class_name" of the config.
  static constexpr const char* kClassName = "DDIMScheduler";

  /// Builds the training schedule. Throws diffuse::Error for an unknown option value, a
  /// num_train_timesteps out of range or a beta outside (0, 1).
  /// `options` are the step() keyword arguments.
  explicit DDIMScheduler(Config config = {}, StepOptions options = {});
  /// From a diffusers config (any scheduler's: keys this one does not know are ignored).
  /// Throws diffuse::Error for a value of the wrong type or an invalid one.
  DIFFUSE_COLD static DDIMScheduler from_config(const json& j) {
    return DDIMScheduler(detail::config_from_json<Config>(j, kClassName));
  }

  /// The config the scheduler was built from.
  const Config& config() const { return config_; }
  std::string class_name() const override { return kClassName; }
  DIFFUSE_COLD json to_json() const override { return detail::config_to_json(config_, kClassName); }
  /// Sets step_options from {"eta": number, "use_clipped_model_output": bool}; any other key
  /// or type throws diffuse::Error.
  void set_step_kwargs(const json& kwargs) override;

  DIFFUSE_COLD void set_timesteps(std::int64_t n) override {
    this->check_num_steps(n);
    this->num_inference_steps_ = n;
    this->timesteps_ = detail::spaced_timesteps(kClassName, config_.timestep_spacing,
                                                config_.num_train_timesteps, n, config_.steps_offset);
  }

  bool step_draws_noise(double) const override { return step_options.eta > 0; }

  /// The step() keyword arguments in use; set them here or with set_step_kwargs.
  StepOptions step_options;

 protected:
  SchedulerOutput<T> step_impl(const Tensor<T>& model_output, double t_in, const Tensor<T>& sample,
                               const Tensor<T>& noise) override;

 private:
  Config config_;
  float final_alpha_cumprod_ = 1.0f;
};

template <class T>
DIFFUSE_COLD DDIMScheduler<T>::DDIMScheduler(Config config, StepOptions options)
    : step_options(options), config_(std::move(config)) {
  const std::string cls = kClassName;
  detail::check_one_of(cls, "prediction_type", config_.prediction_type,
                       {"epsilon", "sample", "v_prediction"});
  detail::check_one_of(cls, "timestep_spacing", config_.timestep_spacing,
                       {"linspace", "leading", "trailing"});
  auto betas = detail::make_betas(cls, config_.beta_schedule, config_.num_train_timesteps, config_.beta_start,
                                  config_.beta_end, config_.trained_betas);
  if (config_.rescale_betas_zero_snr) betas = detail::rescale_zero_terminal_snr(betas);
  this->init_schedule(std::move(betas));
  final_alpha_cumprod_ = config_.set_alpha_to_one ? 1.0f : this->alphas_cumprod_[0];
  for (std::int64_t t = config_.num_train_timesteps - 1; t >= 0; --t)
    this->timesteps_.push_back(static_cast<double>(t));
}

template <class T>
DIFFUSE_COLD void DDIMScheduler<T>::set_step_kwargs(const json& kwargs) {
  for (const auto& [key, value] : kwargs.items()) {
    if (key == "eta" && value.is_number())
      step_options.eta = value.template get<double>();
    else if (key == "use_clipped_model_output" && value.is_boolean())
      step_options.use_clipped_model_output = value.template get<bool>();
    else
      throw Error(std::string(kClassName) + ".step: unknown or mistyped argument '" + key +
                  "' = " + value.dump() + "; accepted: eta (number), use_clipped_model_output (bool)");
  }
}

template <class T>
auto DDIMScheduler<T>::step_impl(const Tensor<T>& model_output, double t_in, const Tensor<T>& sample,
                                 const Tensor<T>& noise) -> SchedulerOutput<T> {
  if (this->num_inference_steps_ == 0)
    throw Error(std::string(kClassName) + ".step: call set_timesteps(num_inference_steps) first");
  // eta^2 enters the step: a negative eta would act as a noiseless |eta| (diffusers takes it).
  if (!(step_options.eta >= 0))
    throw Error(std::string(kClassName) + ".step: eta must be non-negative, got " +
                std::to_string(step_options.eta));
  this->check_step_shapes(model_output, sample);
  const std::int64_t t = this->train_index("step", t_in);
  const std::int64_t prev_t = t - config_.num_train_timesteps / this->num_inference_steps_;

  const float apt = this->alphas_cumprod_[t];
  const float apt_prev = prev_t >= 0 ? this->alphas_cumprod_[prev_t] : final_alpha_cumprod_;
  const float bpt = 1.0f - apt, bpt_prev = 1.0f - apt_prev;
  const double sa = std::sqrt(apt), sb = std::sqrt(bpt);

  const std::int64_t n = sample.numel();
  const T *s = sample.data(), *m = model_output.data();
  Tensor<T> x0 = Tensor<T>::empty(sample.shape()), eps = Tensor<T>::empty(sample.shape());
  for (std::int64_t i = 0; i < n; ++i) {
    if (config_.prediction_type == "epsilon") {
      x0.data()[i] = static_cast<T>((s[i] - sb * m[i]) / sa);
      eps.data()[i] = m[i];
    } else if (config_.prediction_type == "sample") {
      x0.data()[i] = m[i];
      eps.data()[i] = static_cast<T>((s[i] - sa * m[i]) / sb);
    } else {
      x0.data()[i] = static_cast<T>(sa * s[i] - sb * m[i]);
      eps.data()[i] = static_cast<T>(sa * m[i] + sb * s[i]);
    }
  }
  if (config_.thresholding)
    x0 = detail::threshold_sample(x0, config_.dynamic_thresholding_ratio, config_.sample_max_value);
  else if (config_.clip_sample)
    x0 = Base::clamp(x0, -config_.clip_sample_range, config_.clip_sample_range);

  const float variance = bpt_prev / bpt * (1.0f - apt / apt_prev);
  const float std_dev = static_cast<float>(step_options.eta) * std::sqrt(variance);
  if (step_options.use_clipped_model_output)
    for (std::int64_t i = 0; i < n; ++i) eps.data()[i] = static_cast<T>((s[i] - sa * x0.data()[i]) / sb);

  const double dir_coeff = std::sqrt(1.0f - apt_prev - std_dev * std_dev);
  Tensor<T> prev = Base::axpby(std::sqrt(apt_prev), x0, dir_coeff, eps);
  if (step_options.eta > 0)
    for (std::int64_t i = 0; i < n; ++i)
      prev.data()[i] = static_cast<T>(prev.data()[i] + static_cast<double>(std_dev) * noise.data()[i]);
  return {prev, x0};
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_DDIM_TEMPLATES(X, T) X(class DDIMScheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_DDIM_TEMPLATES)

}  // namespace diffuse::schedulers
