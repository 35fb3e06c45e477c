// DDIMScheduler: the (generalised) denoising diffusion implicit models sampler of Song et al.
// (2021), deterministic for eta = 0, with diffusers 0.21's config keys and float32 step
// coefficients. Includes rescale_betas_zero_snr and set_alpha_to_one.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/schedulers/scheduler.hpp"

namespace diffuse::schedulers {

template <class T = float>
class DDIMScheduler : public Scheduler<T> {
  using Base = Scheduler<T>;

 public:
  struct Config {
    std::int64_t num_train_timesteps = 1000;
    double beta_start = 0.0001;
    double beta_end = 0.02;
    std::string beta_schedule = "linear";  // linear, scaled_linear, squaredcos_cap_v2, sigmoid
    std::vector<double> trained_betas = {};
    bool clip_sample = true;
    bool set_alpha_to_one = true;  // the "previous" alphas_cumprod of the last step: 1 or alphas_cumprod[0]
    std::int64_t steps_offset = 0;
    std::string prediction_type = "epsilon";  // epsilon, sample, v_prediction
    bool thresholding = false;
    double dynamic_thresholding_ratio = 0.995;
    double clip_sample_range = 1.0;
    double sample_max_value = 1.0;
    std::string timestep_spacing = "leading";  // linspace, leading, trailing
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
  // The keyword arguments of diffusers' DDIMScheduler.step.
  struct StepOptions {
    double eta = 0.0;  // 0: deterministic DDIM; 1: DDPM-like
    bool use_clipped_model_output = false;
  };
  static constexpr const char* kClassName = "DDIMScheduler";

  explicit DDIMScheduler(Config config = {}, StepOptions options = {})
      : step_options(options), config_(std::move(config)) {
    const std::string cls = kClassName;
    detail::check_one_of(cls, "prediction_type", config_.prediction_type,
                         {"epsilon", "sample", "v_prediction"});
    detail::check_one_of(cls, "timestep_spacing", config_.timestep_spacing,
                         {"linspace", "leading", "trailing"});
    auto betas = detail::make_betas(cls, config_.beta_schedule, config_.num_train_timesteps,
                                    config_.beta_start, config_.beta_end, config_.trained_betas);
    if (config_.rescale_betas_zero_snr) betas = detail::rescale_zero_terminal_snr(betas);
    this->init_schedule(std::move(betas));
    final_alpha_cumprod_ = config_.set_alpha_to_one ? 1.0f : this->alphas_cumprod_[0];
    for (std::int64_t t = config_.num_train_timesteps - 1; t >= 0; --t)
      this->timesteps_.push_back(static_cast<double>(t));
  }
  static DDIMScheduler from_config(const json& j) {
    return DDIMScheduler(detail::config_from_json<Config>(j, kClassName));
  }

  const Config& config() const { return config_; }
  std::string class_name() const override { return kClassName; }
  json to_json() const override { return detail::config_to_json(config_, kClassName); }
  void set_step_kwargs(const json& kwargs) override {
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

  void set_timesteps(std::int64_t n) override {
    this->check_num_steps(n);
    this->num_inference_steps_ = n;
    this->timesteps_ = detail::spaced_timesteps(kClassName, config_.timestep_spacing,
                                                config_.num_train_timesteps, n, config_.steps_offset);
  }

  bool step_draws_noise(double) const override { return step_options.eta > 0; }

  StepOptions step_options;

 protected:
  SchedulerOutput<T> step_impl(const Tensor<T>& model_output, double t_in, const Tensor<T>& sample,
                               const Tensor<T>& noise) override {
    if (this->num_inference_steps_ == 0)
      throw Error(std::string(kClassName) + ".step: call set_timesteps(num_inference_steps) first");
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

 private:
  Config config_;
  float final_alpha_cumprod_ = 1.0f;
};

}  // namespace diffuse::schedulers
