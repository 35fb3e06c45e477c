/// @file
/// PNDMScheduler: pseudo numerical methods for diffusion models (Liu et al. 2022): a few
/// Runge-Kutta (PRK) steps to warm up, then linear multistep (PLMS) steps; skip_prk_steps uses
/// PLMS only. diffusers 0.21 semantics, float32 step coefficients. Stateful: call
/// set_timesteps before each sampling run and step through timesteps() in order.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/schedulers/scheduler.hpp"

namespace diffuse::schedulers {

/// PNDM sampling (see the file comment); deterministic.
template <class T = float>
class PNDMScheduler : public Scheduler<T> {
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
    /// Skip the Runge-Kutta warm-up and take PLMS steps only (as Stable Diffusion's configs do).
    bool skip_prk_steps = false;
    /// Whether the last step goes to alphas_cumprod 1 (a clean sample) rather than to
    /// alphas_cumprod[0].
    bool set_alpha_to_one = false;
    /// What the model predicts: the noise (epsilon) or v (v_prediction, section 2.4 of the Imagen
    /// Video paper).
    std::string prediction_type = "epsilon";  // epsilon, v_prediction
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
      v("skip_prk_steps", c.skip_prk_steps);
      v("set_alpha_to_one", c.set_alpha_to_one);
      v("prediction_type", c.prediction_type);
      v("timestep_spacing", c.timestep_spacing);
      v("steps_offset", c.steps_offset);
    }
  };
  /// diffusers' class name, the "_class_name" of the config.
  static constexpr const char* kClassName = "PNDMScheduler";

  /// Builds the training schedule. Throws diffuse::Error for an unknown option value, a
  /// num_train_timesteps out of range or a beta outside (0, 1).
  explicit PNDMScheduler(Config config = {});
  /// From a diffusers config (any scheduler's: keys this one does not know are ignored).
  /// Throws diffuse::Error for a value of the wrong type or an invalid one.
  DIFFUSE_COLD static PNDMScheduler from_config(const json& j) {
    return PNDMScheduler(detail::config_from_json<Config>(j, kClassName));
  }

  /// The config the scheduler was built from.
  const Config& config() const { return config_; }
  std::string class_name() const override { return kClassName; }
  DIFFUSE_COLD json to_json() const override { return detail::config_to_json(config_, kClassName); }

  /// Chooses the timesteps of n steps and clears the multistep state. Without skip_prk_steps
  /// the 12 PRK model evaluations come first, and n below 4 throws diffuse::Error.
  void set_timesteps(std::int64_t n) override;

 protected:
  SchedulerOutput<T> step_impl(const Tensor<T>& model_output, double t, const Tensor<T>& sample,
                               const Tensor<T>&) override {
    this->check_step_shapes(model_output, sample);
    if (counter_ < static_cast<std::int64_t>(prk_timesteps_.size()) && !config_.skip_prk_steps)
      return {step_prk(model_output, this->train_index("step", t), sample), Tensor<T>()};
    return {step_plms(model_output, this->train_index("step", t), sample), Tensor<T>()};
  }

 private:
  std::int64_t ratio() const { return config_.num_train_timesteps / this->num_inference_steps_; }

  Tensor<T> step_prk(const Tensor<T>& model_output, std::int64_t t, const Tensor<T>& sample);

  Tensor<T> step_plms(const Tensor<T>& model_output, std::int64_t t, const Tensor<T>& sample_in);

  void accumulate(double w, const Tensor<T>& x) {
    cur_model_output_ =
        cur_model_output_.defined() ? Base::axpby(1.0, cur_model_output_, w, x) : Base::scale(w, x);
  }

  // Formula (9) of the PNDM paper, with float32 coefficients like diffusers.
  Tensor<T> prev_sample(const Tensor<T>& sample, std::int64_t t, std::int64_t prev_t,
                        const Tensor<T>& model_output) const;

  Config config_;
  float final_alpha_cumprod_ = 1.0f;
  std::vector<double> prk_timesteps_;
  std::vector<Tensor<T>> ets_;
  std::int64_t counter_ = 0;
  Tensor<T> cur_model_output_, cur_sample_;
};

template <class T>
DIFFUSE_COLD PNDMScheduler<T>::PNDMScheduler(Config config) : config_(std::move(config)) {
  const std::string cls = kClassName;
  detail::check_one_of(cls, "prediction_type", config_.prediction_type, {"epsilon", "v_prediction"});
  detail::check_one_of(cls, "timestep_spacing", config_.timestep_spacing,
                       {"linspace", "leading", "trailing"});
  this->init_schedule(detail::make_betas(cls, config_.beta_schedule, config_.num_train_timesteps,
                                         config_.beta_start, config_.beta_end, config_.trained_betas));
  final_alpha_cumprod_ = config_.set_alpha_to_one ? 1.0f : this->alphas_cumprod_[0];
}

template <class T>
DIFFUSE_COLD void PNDMScheduler<T>::set_timesteps(std::int64_t n) {
  this->check_num_steps(n);
  this->num_inference_steps_ = n;
  const std::int64_t N = config_.num_train_timesteps;
  // ascending base timesteps
  std::vector<double> base =
      detail::spaced_timesteps(kClassName, config_.timestep_spacing, N, n, config_.steps_offset);
  std::reverse(base.begin(), base.end());
  prk_timesteps_.clear();
  std::vector<double> plms;
  if (config_.skip_prk_steps) {
    // base[:-1], base[-2], base[-1], reversed: the first PLMS step is repeated
    plms.assign(base.begin(), base.end() - 1);
    if (base.size() >= 2) plms.push_back(base[base.size() - 2]);
    plms.push_back(base.back());
    std::reverse(plms.begin(), plms.end());
  } else {
    if (n < 4)
      throw Error("PNDMScheduler: PRK steps need num_inference_steps >= 4, got " + std::to_string(n));
    const double half = static_cast<double>(N / n / 2);
    std::vector<double> prk;  // the last 4 base timesteps, each followed by its midpoint
    for (std::size_t i = base.size() - 4; i < base.size(); ++i) {
      prk.push_back(base[i]);
      prk.push_back(base[i] + half);
    }
    prk.pop_back();
    std::vector<double> twice;
    for (double v : prk) twice.insert(twice.end(), {v, v});
    prk_timesteps_.assign(twice.begin() + 1, twice.end() - 1);
    std::reverse(prk_timesteps_.begin(), prk_timesteps_.end());
    plms.assign(base.begin(), base.end() - 3);
    std::reverse(plms.begin(), plms.end());
  }
  this->timesteps_ = prk_timesteps_;
  this->timesteps_.insert(this->timesteps_.end(), plms.begin(), plms.end());
  ets_.clear();
  counter_ = 0;
  cur_model_output_ = Tensor<T>();
  cur_sample_ = Tensor<T>();
}

template <class T>
auto PNDMScheduler<T>::step_prk(const Tensor<T>& model_output, std::int64_t t, const Tensor<T>& sample)
    -> Tensor<T> {
  const std::int64_t diff_to_prev = counter_ % 2 ? 0 : ratio() / 2;
  const std::int64_t prev_t = t - diff_to_prev;
  const auto timestep = static_cast<std::int64_t>(prk_timesteps_[counter_ / 4 * 4]);
  Tensor<T> mo = model_output;
  if (counter_ % 4 == 0) {
    accumulate(1.0 / 6, model_output);
    ets_.push_back(model_output);
    cur_sample_ = sample;
  } else if (counter_ % 4 == 1 || counter_ % 4 == 2) {
    accumulate(1.0 / 3, model_output);
  } else {
    mo = Base::axpby(1.0, cur_model_output_, 1.0 / 6, model_output);
    cur_model_output_ = Tensor<T>();
  }
  const Tensor<T>& cur = cur_sample_.defined() ? cur_sample_ : sample;
  Tensor<T> prev = prev_sample(cur, timestep, prev_t, mo);
  ++counter_;
  return prev;
}

template <class T>
auto PNDMScheduler<T>::step_plms(const Tensor<T>& model_output, std::int64_t t, const Tensor<T>& sample_in)
    -> Tensor<T> {
  if (!config_.skip_prk_steps && ets_.size() < 3)
    throw Error("PNDMScheduler: PLMS steps can only run after the 12 PRK steps of set_timesteps' schedule");
  std::int64_t timestep = t, prev_t = t - ratio();
  if (counter_ != 1) {
    if (ets_.size() > 3) ets_.erase(ets_.begin(), ets_.end() - 3);
    ets_.push_back(model_output);
  } else {
    prev_t = t;
    timestep = t + ratio();
  }
  Tensor<T> mo, sample = sample_in;
  const auto& e = ets_;
  const std::size_t k = e.size();
  if (k == 1 && counter_ == 0) {
    mo = model_output;
    cur_sample_ = sample_in;
  } else if (k == 1 && counter_ == 1) {
    mo = Base::axpby(0.5, model_output, 0.5, e[0]);
    sample = cur_sample_;
    cur_sample_ = Tensor<T>();
  } else if (k == 2) {
    mo = Base::axpby(1.5, e[1], -0.5, e[0]);
  } else if (k == 3) {
    mo = Tensor<T>::empty(model_output.shape());
    for (std::int64_t i = 0; i < mo.numel(); ++i)
      mo.data()[i] =
          static_cast<T>((23.0 * e[2].data()[i] - 16.0 * e[1].data()[i] + 5.0 * e[0].data()[i]) / 12);
  } else {
    mo = Tensor<T>::empty(model_output.shape());
    for (std::int64_t i = 0; i < mo.numel(); ++i)
      mo.data()[i] = static_cast<T>(1.0 / 24 *
                                    (55.0 * e[k - 1].data()[i] - 59.0 * e[k - 2].data()[i] +
                                     37.0 * e[k - 3].data()[i] - 9.0 * e[k - 4].data()[i]));
  }
  Tensor<T> prev = prev_sample(sample, timestep, prev_t, mo);
  ++counter_;
  return prev;
}

template <class T>
auto PNDMScheduler<T>::prev_sample(const Tensor<T>& sample, std::int64_t t, std::int64_t prev_t,
                                   const Tensor<T>& model_output) const -> Tensor<T> {
  if (t < 0 || t >= config_.num_train_timesteps)
    throw Error("PNDMScheduler.step: timestep " + std::to_string(t) + " is out of range");
  const float apt = this->alphas_cumprod_[t];
  const float apt_prev = prev_t >= 0 ? this->alphas_cumprod_[prev_t] : final_alpha_cumprod_;
  const float bpt = 1.0f - apt, bpt_prev = 1.0f - apt_prev;
  Tensor<T> mo = model_output;
  if (config_.prediction_type == "v_prediction")
    mo = Base::axpby(std::sqrt(apt), model_output, std::sqrt(bpt), sample);
  const float sample_coeff = std::sqrt(apt_prev / apt);
  const float denom = apt * std::sqrt(bpt_prev) + std::sqrt(apt * bpt * apt_prev);
  const double diff = apt_prev - apt;
  Tensor<T> out = Tensor<T>::empty(sample.shape());
  for (std::int64_t i = 0; i < out.numel(); ++i)
    out.data()[i] =
        static_cast<T>(static_cast<double>(sample_coeff) * sample.data()[i] - diff * mo.data()[i] / denom);
  return out;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_PNDM_TEMPLATES(X, T) X(class PNDMScheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_PNDM_TEMPLATES)

}  // namespace diffuse::schedulers
