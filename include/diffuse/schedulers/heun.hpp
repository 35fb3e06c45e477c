/// @file
/// HeunDiscreteScheduler: Heun's second-order method (Karras et al. 2022, Algorithm 1) on
/// diffusers 0.21's discrete sigma schedule. Each output step takes two model evaluations, so
/// timesteps() lists every timestep but the first twice; step through them in order.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/schedulers/sigma_scheduler.hpp"

namespace diffuse::schedulers {

/// Heun sampling (see the file comment); deterministic, two model evaluations per step.
template <class T = float>
class HeunDiscreteScheduler : public SigmaScheduler<T> {
  using Base = Scheduler<T>;

 public:
  /// The diffusers config: the keys of scheduler_config.json, with diffusers' defaults.
  struct Config {
    /// Number of diffusion steps the model was trained with: the length of the schedule.
    std::int64_t num_train_timesteps = 1000;
    /// Beta (the variance of the noise added) at the first training timestep.
    double beta_start = 0.00085;
    /// Beta at the last training timestep.
    double beta_end = 0.012;
    /// How the betas go from beta_start to beta_end (squaredcos_cap_v2 and exp ignore both).
    std::string beta_schedule = "linear";  // linear, scaled_linear, squaredcos_cap_v2, sigmoid, exp
    /// Betas given explicitly, one per training timestep; when non-empty they replace beta_schedule.
    std::vector<double> trained_betas = {};
    /// What the model predicts: the noise (epsilon), the clean sample (sample) or v (v_prediction,
    /// section 2.4 of the Imagen Video paper).
    std::string prediction_type = "epsilon";  // epsilon, sample, v_prediction
    /// Use the noise levels of Karras et al. (2022), evenly spaced in sigma^(1/7), for the
    /// inference steps.
    bool use_karras_sigmas = false;
    /// Clip the predicted clean sample to [-clip_sample_range, clip_sample_range].
    bool clip_sample = false;
    /// The bound of clip_sample.
    double clip_sample_range = 1.0;
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
      v("use_karras_sigmas", c.use_karras_sigmas);
      v("clip_sample", c.clip_sample);
      v("clip_sample_range", c.clip_sample_range);
      v("timestep_spacing", c.timestep_spacing);
      v("steps_offset", c.steps_offset);
    }
  };
  /// diffusers' class name, the "_class_name" of the config.
  static constexpr const char* kClassName = "HeunDiscreteScheduler";

  /// Builds the training schedule. Throws diffuse::Error for an unknown option value, a
  /// num_train_timesteps out of range or a beta outside (0, 1).
  explicit HeunDiscreteScheduler(Config config = {});
  /// From a diffusers config (any scheduler's: keys this one does not know are ignored).
  /// Throws diffuse::Error for a value of the wrong type or an invalid one.
  DIFFUSE_COLD static HeunDiscreteScheduler from_config(const json& j) {
    return HeunDiscreteScheduler(detail::config_from_json<Config>(j, kClassName));
  }

  /// The config the scheduler was built from.
  const Config& config() const { return config_; }
  std::string class_name() const override { return kClassName; }
  DIFFUSE_COLD json to_json() const override { return detail::config_to_json(config_, kClassName); }
  int order() const override { return 2; }

  /// Chooses n noise levels: 2n - 1 timesteps, every one but the first twice. Clears the
  /// state of a half-done Heun step.
  void set_timesteps(std::int64_t n) override;

  /// True when the next step is the first (Euler) half of a Heun step.
  bool state_in_first_order() const { return !prev_derivative_.defined(); }

 protected:
  SchedulerOutput<T> step_impl(const Tensor<T>& model_output, double t, const Tensor<T>& sample,
                               const Tensor<T>&) override;

 private:
  Config config_;
  Tensor<T> prev_derivative_, first_sample_;
  float dt_ = 0;
};

template <class T>
DIFFUSE_COLD HeunDiscreteScheduler<T>::HeunDiscreteScheduler(Config config) : config_(std::move(config)) {
  const std::string cls = kClassName;
  detail::check_one_of(cls, "prediction_type", config_.prediction_type,
                       {"epsilon", "sample", "v_prediction"});
  detail::check_one_of(cls, "timestep_spacing", config_.timestep_spacing,
                       {"linspace", "leading", "trailing"});
  this->init_sigma_schedule(detail::make_betas(cls, config_.beta_schedule, config_.num_train_timesteps,
                                               config_.beta_start, config_.beta_end, config_.trained_betas,
                                               /*allow_exp=*/true),
                            config_.timestep_spacing);
  set_timesteps(config_.num_train_timesteps);
  this->num_inference_steps_ = 0;
}

template <class T>
DIFFUSE_COLD void HeunDiscreteScheduler<T>::set_timesteps(std::int64_t n) {
  this->check_num_steps(n);
  this->num_inference_steps_ = n;
  std::vector<double> ts = this->discrete_timesteps(config_.num_train_timesteps, n, config_.steps_offset);
  std::vector<double> sig = this->interp_sigmas(ts);
  if (config_.use_karras_sigmas) this->to_karras(sig, ts, n);
  sig.push_back(0.0);
  // sigmas: s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0; timesteps: t0, t1, t1, ..., t_{n-1}, t_{n-1}
  this->sigmas_.assign(1, static_cast<float>(sig[0]));
  for (std::size_t i = 1; i + 1 < sig.size(); ++i)
    this->sigmas_.insert(this->sigmas_.end(), 2, static_cast<float>(sig[i]));
  this->sigmas_.push_back(static_cast<float>(sig.back()));
  this->timesteps_.assign(1, ts[0]);
  for (std::size_t i = 1; i < ts.size(); ++i) this->timesteps_.insert(this->timesteps_.end(), 2, ts[i]);
  prev_derivative_ = Tensor<T>();
  first_sample_ = Tensor<T>();
  dt_ = 0;
  this->step_index_ = -1;
}

template <class T>
auto HeunDiscreteScheduler<T>::step_impl(const Tensor<T>& model_output, double t, const Tensor<T>& sample,
                                         const Tensor<T>&) -> SchedulerOutput<T> {
  this->check_step_shapes(model_output, sample);
  this->begin_step(t);
  const bool first = state_in_first_order();
  const std::int64_t k = this->step_index_;
  const float sigma = first ? this->sigmas_[k] : this->sigmas_[k - 1];
  const float sigma_next = first ? this->sigmas_[k + 1] : this->sigmas_[k];
  const float sigma_hat = sigma;  // gamma = 0
  const float sigma_input = first ? sigma_hat : sigma_next;

  const std::int64_t n = sample.numel();
  const T *s = sample.data(), *m = model_output.data();
  Tensor<T> x0 = Tensor<T>::empty(sample.shape());
  const double v_a = -sigma_input / std::sqrt(sigma_input * sigma_input + 1.0f);
  const double v_b = sigma_input * sigma_input + 1.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    if (config_.prediction_type == "epsilon")
      x0.data()[i] = static_cast<T>(s[i] - static_cast<double>(sigma_input) * m[i]);
    else if (config_.prediction_type == "v_prediction")
      x0.data()[i] = static_cast<T>(m[i] * v_a + s[i] / v_b);
    else
      x0.data()[i] = m[i];
  }
  if (config_.clip_sample) x0 = Base::clamp(x0, -config_.clip_sample_range, config_.clip_sample_range);

  Tensor<T> prev = Tensor<T>::empty(sample.shape());
  if (first) {
    Tensor<T> derivative = Tensor<T>::empty(sample.shape());
    for (std::int64_t i = 0; i < n; ++i)
      derivative.data()[i] = static_cast<T>((s[i] - static_cast<double>(x0.data()[i])) / sigma_hat);
    dt_ = sigma_next - sigma_hat;
    for (std::int64_t i = 0; i < n; ++i)
      prev.data()[i] = static_cast<T>(s[i] + static_cast<double>(derivative.data()[i]) * dt_);
    prev_derivative_ = derivative;
    first_sample_ = sample;
  } else {
    // average the slopes at both ends and redo the step from the first half's sample
    for (std::int64_t i = 0; i < n; ++i) {
      const double d2 = (s[i] - static_cast<double>(x0.data()[i])) / sigma_next;
      const double d = (static_cast<double>(prev_derivative_.data()[i]) + d2) / 2;
      prev.data()[i] = static_cast<T>(first_sample_.data()[i] + d * dt_);
    }
    prev_derivative_ = Tensor<T>();
    first_sample_ = Tensor<T>();
  }
  ++this->step_index_;
  return {prev, x0};
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_HEUN_TEMPLATES(X, T) X(class HeunDiscreteScheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_HEUN_TEMPLATES)

}  // namespace diffuse::schedulers
