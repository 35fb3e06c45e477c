/// @file
/// DPMSolverMultistepScheduler: DPM-Solver (Lu et al. 2022) and DPM-Solver++ multistep
/// solvers of order 1-3, including the SDE variants, with diffusers 0.21's config keys and
/// float32 solver coefficients. Stateful: it remembers the last model outputs, so call
/// set_timesteps before each sampling run and step through timesteps() in order.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/schedulers/scheduler.hpp"

namespace diffuse::schedulers {

/// DPM-Solver(++) multistep sampling (see the file comment). Only the sde- algorithm types
/// draw noise.
template <class T = float>
class DPMSolverMultistepScheduler : public Scheduler<T> {
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
    /// Order of the solver (the sde- types have no third-order step); diffusers recommends 2 for
    /// guided sampling, 3 for unconditional sampling.
    int solver_order = 2;  // 1, 2 or 3
    /// What the model predicts: the noise (epsilon), the clean sample (sample) or v (v_prediction,
    /// section 2.4 of the Imagen Video paper).
    std::string prediction_type = "epsilon";  // epsilon, sample, v_prediction
    /// Apply dynamic thresholding (Imagen) to the predicted clean sample; not for latent-space
    /// models.
    bool thresholding = false;
    /// With thresholding: the quantile of |x0| (per batch element) to clip at.
    double dynamic_thresholding_ratio = 0.995;
    /// With thresholding: the largest threshold used.
    double sample_max_value = 1.0;
    /// The solver: DPM-Solver++ (data prediction, recommended with solver_order 2 for guided
    /// sampling) or DPM-Solver (noise prediction); the sde- variants add noise at every step.
    /// dpmsolver++, dpmsolver, sde-dpmsolver++, sde-dpmsolver ("deis" is read as dpmsolver++)
    std::string algorithm_type = "dpmsolver++";
    /// The second-order update; it changes the samples slightly for few steps (diffusers recommends
    /// midpoint).
    std::string solver_type = "midpoint";  // midpoint, heun (logrho, bh1, bh2 are read as midpoint)
    /// Use lower orders for the last steps when there are fewer than 15 (steadier with few steps).
    bool lower_order_final = true;
    /// Use the noise levels of Karras et al. (2022), evenly spaced in sigma^(1/7), for the
    /// inference steps.
    bool use_karras_sigmas = false;
    /// Timesteps whose log-SNR lambda(t) is below this are not used (for numerical stability; it
    /// matters for squaredcos_cap_v2).
    double lambda_min_clipped = -std::numeric_limits<double>::infinity();
    /// learned / learned_range: the model also outputs a variance (ignored); other values, like
    /// DDPM's fixed_small in a converted config, change nothing (as in diffusers)
    std::optional<std::string> variance_type = std::nullopt;
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
      v("solver_order", c.solver_order);
      v("prediction_type", c.prediction_type);
      v("thresholding", c.thresholding);
      v("dynamic_thresholding_ratio", c.dynamic_thresholding_ratio);
      v("sample_max_value", c.sample_max_value);
      v("algorithm_type", c.algorithm_type);
      v("solver_type", c.solver_type);
      v("lower_order_final", c.lower_order_final);
      v("use_karras_sigmas", c.use_karras_sigmas);
      v("lambda_min_clipped", c.lambda_min_clipped);
      v("variance_type", c.variance_type);
      v("timestep_spacing", c.timestep_spacing);
      v("steps_offset", c.steps_offset);
    }
  };
  /// diffusers' class name, the "_class_name" of the config.
  static constexpr const char* kClassName = "DPMSolverMultistepScheduler";

  /// Builds the training schedule. Throws diffuse::Error for an unknown option value, a
  /// num_train_timesteps out of range or a beta outside (0, 1). Also throws for a
  /// solver_order other than 1, 2 or 3.
  explicit DPMSolverMultistepScheduler(Config config = {});
  /// From a diffusers config (any scheduler's: keys this one does not know are ignored).
  /// Throws diffuse::Error for a value of the wrong type or an invalid one.
  DIFFUSE_COLD static DPMSolverMultistepScheduler from_config(const json& j) {
    return DPMSolverMultistepScheduler(detail::config_from_json<Config>(j, kClassName));
  }

  /// The config in use (diffusers' aliases like "deis" already replaced).
  const Config& config() const { return config_; }
  std::string class_name() const override { return kClassName; }
  DIFFUSE_COLD json to_json() const override { return detail::config_to_json(config_, kClassName); }

  /// Chooses at most n timesteps: repeated ones are dropped, so num_inference_steps() can be
  /// smaller than n. Clears the remembered model outputs.
  void set_timesteps(std::int64_t n) override;

  bool step_draws_noise(double) const override { return config_.algorithm_type.rfind("sde-", 0) == 0; }

 protected:
  SchedulerOutput<T> step_impl(const Tensor<T>& model_output, double t_in, const Tensor<T>& sample,
                               const Tensor<T>& noise) override;

 private:
  bool plus_plus() const {
    return config_.algorithm_type == "dpmsolver++" || config_.algorithm_type == "sde-dpmsolver++";
  }

  // The data prediction x0 (DPM-Solver++) or the noise prediction (DPM-Solver) at timestep t.
  Tensor<T> convert_model_output(const Tensor<T>& model_output_in, std::int64_t t,
                                 const Tensor<T>& sample) const;

  // out = cs * sample + c0 * D0 + c1 * D1 + c2 * D2 + cn * noise (D1, D2, noise may be undefined)
  static Tensor<T> combine5(float cs, const Tensor<T>& sample, float c0, const Tensor<T>& d0, float c1,
                            const Tensor<T>& d1, float c2, const Tensor<T>& d2, float cn,
                            const Tensor<T>& noise);
  // (m0 - m1) * c, elementwise
  static Tensor<T> diff(const Tensor<T>& m0, const Tensor<T>& m1, float c);

  Tensor<T> first_order(const Tensor<T>& m, std::int64_t s0, std::int64_t t, const Tensor<T>& sample,
                        const Tensor<T>& noise) const;

  Tensor<T> second_order(std::int64_t s1, std::int64_t s0, std::int64_t t, const Tensor<T>& sample,
                         const Tensor<T>& noise) const;

  Tensor<T> third_order(std::int64_t s2, std::int64_t s1, std::int64_t s0, std::int64_t t,
                        const Tensor<T>& sample) const;

  static Tensor<T> first_channels(const Tensor<T>& x, std::int64_t c);

  Config config_;
  std::vector<float> alpha_t_, sigma_t_, lambda_t_;
  std::vector<Tensor<T>> model_outputs_;
  int lower_order_nums_ = 0;
};

template <class T>
DIFFUSE_COLD DPMSolverMultistepScheduler<T>::DPMSolverMultistepScheduler(Config config)
    : config_(std::move(config)) {
  const std::string cls = kClassName;
  // diffusers maps the names of other solvers onto its own
  if (config_.algorithm_type == "deis") config_.algorithm_type = "dpmsolver++";
  if (config_.solver_type == "logrho" || config_.solver_type == "bh1" || config_.solver_type == "bh2")
    config_.solver_type = "midpoint";
  detail::check_one_of(cls, "algorithm_type", config_.algorithm_type,
                       {"dpmsolver++", "dpmsolver", "sde-dpmsolver++", "sde-dpmsolver", "deis"});
  detail::check_one_of(cls, "solver_type", config_.solver_type, {"midpoint", "heun", "logrho", "bh1", "bh2"});
  detail::check_one_of(cls, "prediction_type", config_.prediction_type,
                       {"epsilon", "sample", "v_prediction"});
  detail::check_one_of(cls, "timestep_spacing", config_.timestep_spacing,
                       {"linspace", "leading", "trailing"});
  if (config_.solver_order < 1 || config_.solver_order > 3)
    throw Error(cls + ": solver_order must be 1, 2 or 3, got " + std::to_string(config_.solver_order));
  this->init_schedule(detail::make_betas(cls, config_.beta_schedule, config_.num_train_timesteps,
                                         config_.beta_start, config_.beta_end, config_.trained_betas));
  for (float ac : this->alphas_cumprod_) {
    alpha_t_.push_back(std::sqrt(ac));
    sigma_t_.push_back(std::sqrt(1.0f - ac));
    lambda_t_.push_back(std::log(alpha_t_.back()) - std::log(sigma_t_.back()));
  }
}

template <class T>
DIFFUSE_COLD void DPMSolverMultistepScheduler<T>::set_timesteps(std::int64_t n) {
  this->check_num_steps(n);
  const std::int64_t N = config_.num_train_timesteps;
  // lambda decreases with t; clip the timesteps whose lambda is below lambda_min_clipped
  std::int64_t clipped = 0;
  for (float l : lambda_t_)
    if (static_cast<double>(l) < config_.lambda_min_clipped) ++clipped;
  std::vector<double> karras;
  this->timesteps_ = detail::multistep_timesteps(kClassName, config_.timestep_spacing, N, N - clipped, n,
                                                 config_.steps_offset, config_.use_karras_sigmas,
                                                 detail::train_sigmas(this->alphas_cumprod_), &karras);
  this->sigmas_ = config_.use_karras_sigmas ? std::vector<float>(karras.begin(), karras.end())
                                            : detail::train_sigmas(this->alphas_cumprod_);
  this->num_inference_steps_ = static_cast<std::int64_t>(this->timesteps_.size());
  model_outputs_.assign(config_.solver_order, Tensor<T>());
  lower_order_nums_ = 0;
}

template <class T>
auto DPMSolverMultistepScheduler<T>::step_impl(const Tensor<T>& model_output, double t_in,
                                               const Tensor<T>& sample, const Tensor<T>& noise)
    -> SchedulerOutput<T> {
  const std::int64_t t = this->train_index("step", t_in);
  const auto len = static_cast<std::int64_t>(this->timesteps_.size());
  std::int64_t idx = this->find_timestep(t_in);
  if (idx < 0) idx = len - 1;
  const std::int64_t prev_t = idx == len - 1 ? 0 : static_cast<std::int64_t>(this->timesteps_[idx + 1]);
  const bool lof = config_.lower_order_final && len < 15;
  const bool lower_order_final = idx == len - 1 && lof;
  const bool lower_order_second = idx == len - 2 && lof;

  Tensor<T> converted = convert_model_output(model_output, t, sample);
  for (int i = 0; i + 1 < config_.solver_order; ++i) model_outputs_[i] = model_outputs_[i + 1];
  model_outputs_.back() = converted;

  // The multistep updates read the timesteps before idx: a step at an earlier index than the
  // history suggests (a second loop without set_timesteps) uses only what lies before it, where
  // diffusers would index timesteps[-1] (and a C++ vector would read out of bounds).
  const auto history = std::min<std::int64_t>(lower_order_nums_, idx);
  Tensor<T> prev;
  if (config_.solver_order == 1 || history < 1 || lower_order_final) {
    prev = first_order(converted, t, prev_t, sample, noise);
  } else if (config_.solver_order == 2 || history < 2 || lower_order_second) {
    prev = second_order(static_cast<std::int64_t>(this->timesteps_[idx - 1]), t, prev_t, sample, noise);
  } else {
    prev = third_order(static_cast<std::int64_t>(this->timesteps_[idx - 2]),
                       static_cast<std::int64_t>(this->timesteps_[idx - 1]), t, prev_t, sample);
  }
  if (lower_order_nums_ < config_.solver_order) ++lower_order_nums_;
  return {prev, Tensor<T>()};
}

template <class T>
auto DPMSolverMultistepScheduler<T>::convert_model_output(const Tensor<T>& model_output_in, std::int64_t t,
                                                          const Tensor<T>& sample) const -> Tensor<T> {
  Tensor<T> mo = model_output_in;
  if (config_.variance_type && config_.prediction_type == "epsilon" && mo.dim() >= 2 &&
      sample.dim() == mo.dim() && mo.size(1) == 2 * sample.size(1))
    mo = first_channels(mo, sample.size(1));
  this->check_step_shapes(mo, sample);
  const double a = alpha_t_[t], s = sigma_t_[t];
  const std::string& pt = config_.prediction_type;
  if (plus_plus()) {
    Tensor<T> x0 = pt == "sample" ? mo.clone() : Tensor<T>::empty(sample.shape());
    for (std::int64_t i = 0; i < x0.numel() && pt != "sample"; ++i) {
      const double x = sample.data()[i], m = mo.data()[i];
      x0.data()[i] = static_cast<T>(pt == "epsilon" ? (x - s * m) / a : a * x - s * m);
    }
    if (config_.thresholding)
      x0 = detail::threshold_sample(x0, config_.dynamic_thresholding_ratio, config_.sample_max_value);
    return x0;
  }
  Tensor<T> eps = pt == "epsilon" ? mo.clone() : Tensor<T>::empty(sample.shape());
  for (std::int64_t i = 0; i < eps.numel() && pt != "epsilon"; ++i) {
    const double x = sample.data()[i], m = mo.data()[i];
    eps.data()[i] = static_cast<T>(pt == "sample" ? (x - a * m) / s : a * m + s * x);
  }
  if (config_.thresholding) {
    Tensor<T> x0 = Tensor<T>::empty(sample.shape());
    for (std::int64_t i = 0; i < x0.numel(); ++i)
      x0.data()[i] = static_cast<T>((sample.data()[i] - s * eps.data()[i]) / a);
    x0 = detail::threshold_sample(x0, config_.dynamic_thresholding_ratio, config_.sample_max_value);
    for (std::int64_t i = 0; i < x0.numel(); ++i)
      eps.data()[i] = static_cast<T>((sample.data()[i] - a * x0.data()[i]) / s);
  }
  return eps;
}

template <class T>
auto DPMSolverMultistepScheduler<T>::combine5(float cs, const Tensor<T>& sample, float c0,
                                              const Tensor<T>& d0, float c1, const Tensor<T>& d1, float c2,
                                              const Tensor<T>& d2, float cn, const Tensor<T>& noise)
    -> Tensor<T> {
  Tensor<T> out = Tensor<T>::empty(sample.shape());
  for (std::int64_t i = 0; i < out.numel(); ++i) {
    double v = static_cast<double>(cs) * sample.data()[i] + static_cast<double>(c0) * d0.data()[i];
    if (d1.defined()) v += static_cast<double>(c1) * d1.data()[i];
    if (d2.defined()) v += static_cast<double>(c2) * d2.data()[i];
    if (noise.defined()) v += static_cast<double>(cn) * noise.data()[i];
    out.data()[i] = static_cast<T>(v);
  }
  return out;
}

template <class T>
auto DPMSolverMultistepScheduler<T>::diff(const Tensor<T>& m0, const Tensor<T>& m1, float c) -> Tensor<T> {
  Tensor<T> out = Tensor<T>::empty(m0.shape());
  for (std::int64_t i = 0; i < out.numel(); ++i)
    out.data()[i] =
        static_cast<T>(static_cast<double>(c) * (static_cast<double>(m0.data()[i]) - m1.data()[i]));
  return out;
}

template <class T>
auto DPMSolverMultistepScheduler<T>::first_order(const Tensor<T>& m, std::int64_t s0, std::int64_t t,
                                                 const Tensor<T>& sample, const Tensor<T>& noise) const
    -> Tensor<T> {
  const float h = lambda_t_[t] - lambda_t_[s0];
  const float at = alpha_t_[t], as = alpha_t_[s0], st = sigma_t_[t], ss = sigma_t_[s0];
  const std::string& alg = config_.algorithm_type;
  const Tensor<T> none;
  if (alg == "dpmsolver++")
    return combine5(st / ss, sample, -(at * (std::exp(-h) - 1.0f)), m, 0, none, 0, none, 0, none);
  if (alg == "dpmsolver")
    return combine5(at / as, sample, -(st * (std::exp(h) - 1.0f)), m, 0, none, 0, none, 0, none);
  if (alg == "sde-dpmsolver++")
    return combine5(st / ss * std::exp(-h), sample, at * (1 - std::exp(-2.0f * h)), m, 0, none, 0, none,
                    st * std::sqrt(1.0f - std::exp(-2 * h)), noise);
  return combine5(at / as, sample, -(2.0f * (st * (std::exp(h) - 1.0f))), m, 0, none, 0, none,
                  st * std::sqrt(std::exp(2 * h) - 1.0f), noise);
}

template <class T>
auto DPMSolverMultistepScheduler<T>::second_order(std::int64_t s1, std::int64_t s0, std::int64_t t,
                                                  const Tensor<T>& sample, const Tensor<T>& noise) const
    -> Tensor<T> {
  const Tensor<T>&m0 = model_outputs_.back(), &m1 = model_outputs_[model_outputs_.size() - 2];
  const float h = lambda_t_[t] - lambda_t_[s0], h0 = lambda_t_[s0] - lambda_t_[s1];
  const float r0 = h0 / h;
  const Tensor<T> D1 = diff(m0, m1, 1.0f / r0), none;
  const float at = alpha_t_[t], as = alpha_t_[s0], st = sigma_t_[t], ss = sigma_t_[s0];
  const bool mid = config_.solver_type == "midpoint";
  const std::string& alg = config_.algorithm_type;
  if (alg == "dpmsolver++") {
    const float c = at * (std::exp(-h) - 1.0f);
    return combine5(st / ss, sample, -c, m0, mid ? -(0.5f * c) : at * ((std::exp(-h) - 1.0f) / h + 1.0f), D1,
                    0, none, 0, none);
  }
  if (alg == "dpmsolver") {
    const float c = st * (std::exp(h) - 1.0f);
    return combine5(at / as, sample, -c, m0, mid ? -(0.5f * c) : -(st * ((std::exp(h) - 1.0f) / h - 1.0f)),
                    D1, 0, none, 0, none);
  }
  if (alg == "sde-dpmsolver++") {
    const float c = at * (1 - std::exp(-2.0f * h));
    return combine5(st / ss * std::exp(-h), sample, c, m0,
                    mid ? 0.5f * c : at * ((1.0f - std::exp(-2.0f * h)) / (-2.0f * h) + 1.0f), D1, 0, none,
                    st * std::sqrt(1.0f - std::exp(-2 * h)), noise);
  }
  const float c = st * (std::exp(h) - 1.0f);
  return combine5(at / as, sample, -(2.0f * c), m0,
                  mid ? -c : -(2.0f * (st * ((std::exp(h) - 1.0f) / h - 1.0f))), D1, 0, none,
                  st * std::sqrt(std::exp(2 * h) - 1.0f), noise);
}

template <class T>
auto DPMSolverMultistepScheduler<T>::third_order(std::int64_t s2, std::int64_t s1, std::int64_t s0,
                                                 std::int64_t t, const Tensor<T>& sample) const -> Tensor<T> {
  if (config_.algorithm_type.rfind("sde-", 0) == 0)
    throw Error(std::string(kClassName) + ": algorithm_type '" + config_.algorithm_type +
                "' has no third-order update (diffusers 0.21 neither); use solver_order <= 2");
  const std::size_t k = model_outputs_.size();
  const Tensor<T>&m0 = model_outputs_[k - 1], &m1 = model_outputs_[k - 2], &m2 = model_outputs_[k - 3];
  const float h = lambda_t_[t] - lambda_t_[s0], h0 = lambda_t_[s0] - lambda_t_[s1],
              h1 = lambda_t_[s1] - lambda_t_[s2];
  const float r0 = h0 / h, r1 = h1 / h;
  const Tensor<T> D1_0 = diff(m0, m1, 1.0f / r0), D1_1 = diff(m1, m2, 1.0f / r1);
  const float w = r0 / (r0 + r1), w2 = 1.0f / (r0 + r1);
  Tensor<T> D1 = Tensor<T>::empty(m0.shape()), D2 = Tensor<T>::empty(m0.shape());
  for (std::int64_t i = 0; i < D1.numel(); ++i) {
    const double a = D1_0.data()[i], b = D1_1.data()[i];
    D1.data()[i] = static_cast<T>(a + static_cast<double>(w) * (a - b));
    D2.data()[i] = static_cast<T>(static_cast<double>(w2) * (a - b));
  }
  const float at = alpha_t_[t], as = alpha_t_[s0], st = sigma_t_[t], ss = sigma_t_[s0];
  const Tensor<T> none;
  if (config_.algorithm_type == "dpmsolver++") {
    const float e = std::exp(-h) - 1.0f;
    return combine5(st / ss, sample, -(at * e), m0, at * (e / h + 1.0f), D1,
                    -(at * ((std::exp(-h) - 1.0f + h) / (h * h) - 0.5f)), D2, 0, none);
  }
  const float e = std::exp(h) - 1.0f;
  return combine5(at / as, sample, -(st * e), m0, -(st * (e / h - 1.0f)), D1,
                  -(st * ((std::exp(h) - 1.0f - h) / (h * h) - 0.5f)), D2, 0, none);
}

template <class T>
auto DPMSolverMultistepScheduler<T>::first_channels(const Tensor<T>& x, std::int64_t c) -> Tensor<T> {
  Shape s = x.shape();
  const std::int64_t total_c = s[1];
  s[1] = c;
  Tensor<T> out = Tensor<T>::empty(s);
  const std::int64_t b = x.size(0), inner = x.numel() / (b * total_c);
  for (std::int64_t i = 0; i < b; ++i)
    for (std::int64_t k = 0; k < c * inner; ++k)
      out.data()[i * c * inner + k] = x.data()[i * total_c * inner + k];
  return out;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_DPM_SOLVER_MULTISTEP_TEMPLATES(X, T) X(class DPMSolverMultistepScheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_DPM_SOLVER_MULTISTEP_TEMPLATES)

}  // namespace diffuse::schedulers
