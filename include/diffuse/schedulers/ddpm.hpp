/// @file
/// DDPMScheduler: ancestral sampling of Ho et al. (2020), "Denoising Diffusion Probabilistic
/// Models", with diffusers 0.21's config keys and arithmetic (step coefficients in float32 from
/// the float32 schedule, as diffusers computes them).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/schedulers/scheduler.hpp"

namespace diffuse::schedulers {

/// DDPM sampling (see the file comment). Every step but the one at t = 0 draws noise.
template <class T = float>
class DDPMScheduler : public Scheduler<T> {
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
    /// Betas given explicitly, one per training timestep.
    std::vector<double> trained_betas = {};  // overrides beta_schedule when non-empty
    /// The variance of the noise each step adds; learned and learned_range take it from a model
    /// that outputs twice the sample's channels (the second half).
    /// fixed_small, fixed_small_log, fixed_large, fixed_large_log, learned, learned_range
    std::string variance_type = "fixed_small";
    /// Clip the predicted clean sample to [-clip_sample_range, clip_sample_range].
    bool clip_sample = true;
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
    /// Added to every inference timestep with "leading" spacing (Stable Diffusion uses 1).
    std::int64_t steps_offset = 0;

    template <class C, class V>
    static void visit(C& c, V&& v) {
      v("num_train_timesteps", c.num_train_timesteps);
      v("beta_start", c.beta_start);
      v("beta_end", c.beta_end);
      v("beta_schedule", c.beta_schedule);
      v("trained_betas", c.trained_betas);
      v("variance_type", c.variance_type);
      v("clip_sample", c.clip_sample);
      v("prediction_type", c.prediction_type);
      v("thresholding", c.thresholding);
      v("dynamic_thresholding_ratio", c.dynamic_thresholding_ratio);
      v("clip_sample_range", c.clip_sample_range);
      v("sample_max_value", c.sample_max_value);
      v("timestep_spacing", c.timestep_spacing);
      v("steps_offset", c.steps_offset);
    }
  };
  /// diffusers' class name, the "_class_name" of the config.
  static constexpr const char* kClassName = "DDPMScheduler";

  /// Builds the training schedule. Throws diffuse::Error for an unknown option value, a
  /// num_train_timesteps out of range or a beta outside (0, 1).
  explicit DDPMScheduler(Config config = {});
  /// From a diffusers config (any scheduler's: keys DDPM does not know are ignored).
  /// Throws diffuse::Error for a value of the wrong type or an invalid one.
  DIFFUSE_COLD static DDPMScheduler from_config(const json& j) {
    return DDPMScheduler(detail::config_from_json<Config>(j, kClassName));
  }

  /// The config the scheduler was built from.
  const Config& config() const { return config_; }
  std::string class_name() const override { return kClassName; }
  DIFFUSE_COLD json to_json() const override { return detail::config_to_json(config_, kClassName); }

  DIFFUSE_COLD void set_timesteps(std::int64_t n) override {
    this->check_num_steps(n);
    this->num_inference_steps_ = n;
    this->timesteps_ = detail::spaced_timesteps(kClassName, config_.timestep_spacing,
                                                config_.num_train_timesteps, n, config_.steps_offset);
  }

  bool step_draws_noise(double t) const override { return t > 0; }

 protected:
  SchedulerOutput<T> step_impl(const Tensor<T>& model_output_in, double t_in, const Tensor<T>& sample,
                               const Tensor<T>& noise) override;

 private:
  std::int64_t previous_timestep(std::int64_t t) const {
    const std::int64_t n =
        this->num_inference_steps_ > 0 ? this->num_inference_steps_ : config_.num_train_timesteps;
    return t - config_.num_train_timesteps / n;
  }

  // Splits (B, 2C, ...) into its first and second C channels.
  static std::pair<Tensor<T>, Tensor<T>> split_channels(const Tensor<T>& x, std::int64_t c);

  Config config_;
};

template <class T>
DIFFUSE_COLD DDPMScheduler<T>::DDPMScheduler(Config config) : config_(std::move(config)) {
  const std::string cls = kClassName;
  detail::check_one_of(
      cls, "variance_type", config_.variance_type,
      {"fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"});
  detail::check_one_of(cls, "prediction_type", config_.prediction_type,
                       {"epsilon", "sample", "v_prediction"});
  detail::check_one_of(cls, "timestep_spacing", config_.timestep_spacing,
                       {"linspace", "leading", "trailing"});
  this->init_schedule(detail::make_betas(cls, config_.beta_schedule, config_.num_train_timesteps,
                                         config_.beta_start, config_.beta_end, config_.trained_betas));
  for (std::int64_t t = config_.num_train_timesteps - 1; t >= 0; --t)
    this->timesteps_.push_back(static_cast<double>(t));
}

template <class T>
auto DDPMScheduler<T>::step_impl(const Tensor<T>& model_output_in, double t_in, const Tensor<T>& sample,
                                 const Tensor<T>& noise) -> SchedulerOutput<T> {
  const std::int64_t t = this->train_index("step", t_in);
  const std::int64_t prev_t = previous_timestep(t);
  const bool learned = config_.variance_type == "learned" || config_.variance_type == "learned_range";

  // A model that also predicts its variance outputs twice the sample's channels.
  Tensor<T> model_output = model_output_in, predicted_variance;
  if (learned && sample.dim() >= 2 && model_output_in.dim() == sample.dim() &&
      model_output_in.size(1) == 2 * sample.size(1)) {
    std::tie(model_output, predicted_variance) = split_channels(model_output_in, sample.size(1));
  }
  this->check_step_shapes(model_output, sample);

  // Scalars in float32, as diffusers computes them from its float32 alphas_cumprod.
  const float apt = this->alphas_cumprod_[t];
  const float apt_prev = prev_t >= 0 ? this->alphas_cumprod_[prev_t] : 1.0f;
  const float bpt = 1.0f - apt, bpt_prev = 1.0f - apt_prev;
  const float cur_alpha = apt / apt_prev, cur_beta = 1.0f - cur_alpha;

  Tensor<T> x0 = Tensor<T>::empty(sample.shape());
  const std::int64_t n = sample.numel();
  const T *s = sample.data(), *m = model_output.data();
  T* p = x0.data();
  const double sa = std::sqrt(apt), sb = std::sqrt(bpt);
  for (std::int64_t i = 0; i < n; ++i) {
    if (config_.prediction_type == "epsilon")
      p[i] = static_cast<T>((s[i] - sb * m[i]) / sa);
    else if (config_.prediction_type == "sample")
      p[i] = m[i];
    else
      p[i] = static_cast<T>(sa * s[i] - sb * m[i]);
  }
  if (config_.thresholding)
    x0 = detail::threshold_sample(x0, config_.dynamic_thresholding_ratio, config_.sample_max_value);
  else if (config_.clip_sample)
    x0 = Base::clamp(x0, -config_.clip_sample_range, config_.clip_sample_range);

  const float x0_coeff = std::sqrt(apt_prev) * cur_beta / bpt;
  const float sample_coeff = std::sqrt(cur_alpha) * bpt_prev / bpt;
  Tensor<T> prev = Base::axpby(x0_coeff, x0, sample_coeff, sample);

  if (t > 0) {
    // variance of q(x_{t-1} | x_t, x_0) and its variants
    float var = std::max(bpt_prev / bpt * cur_beta, 1e-20f);
    const std::string& vt = config_.variance_type;
    T* q = prev.data();
    const T* z = noise.data();
    for (std::int64_t i = 0; i < n; ++i) {
      double stddev;
      if (vt == "fixed_small")
        stddev = std::sqrt(var);
      else if (vt == "fixed_small_log")
        stddev = std::exp(0.5f * std::log(var));  // diffusers: exp(0.5 log var)
      else if (vt == "fixed_large")
        stddev = std::sqrt(cur_beta);
      // diffusers' step takes (log beta) ** 0.5 here, which is NaN; the meant value is sqrt(beta).
      else if (vt == "fixed_large_log")
        stddev = std::exp(0.5 * std::log(cur_beta));
      else if (vt == "learned")
        stddev = predicted_variance.defined() ? std::sqrt(static_cast<double>(predicted_variance.data()[i]))
                                              : std::sqrt(var);
      else {  // learned_range: interpolate log variance between posterior and beta
        const double frac = predicted_variance.defined() ? (predicted_variance.data()[i] + 1.0) / 2.0 : 0.0;
        const double logv = frac * std::log(cur_beta) + (1 - frac) * std::log(var);
        stddev = std::exp(0.5 * logv);
      }
      q[i] = static_cast<T>(q[i] + stddev * z[i]);
    }
  }
  return {prev, x0};
}

template <class T>
auto DDPMScheduler<T>::split_channels(const Tensor<T>& x, std::int64_t c) -> std::pair<Tensor<T>, Tensor<T>> {
  Shape half = x.shape();
  half[1] = c;
  Tensor<T> a = Tensor<T>::empty(half), b = Tensor<T>::empty(half);
  if (x.numel() == 0) return {a, b};
  const std::int64_t batch = x.size(0), inner = x.numel() / (batch * 2 * c);
  for (std::int64_t i = 0; i < batch; ++i)
    for (std::int64_t k = 0; k < c * inner; ++k) {
      a.data()[i * c * inner + k] = x.data()[i * 2 * c * inner + k];
      b.data()[i * c * inner + k] = x.data()[i * 2 * c * inner + c * inner + k];
    }
  return {a, b};
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_DDPM_TEMPLATES(X, T) X(class DDPMScheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_DDPM_TEMPLATES)

}  // namespace diffuse::schedulers
