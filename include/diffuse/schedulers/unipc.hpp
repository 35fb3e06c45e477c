/// @file
/// UniPCMultistepScheduler: the unified predictor-corrector solver of Zhao et al. (2023) with
/// diffusers 0.21's config keys and float32 coefficients (B(h) variants bh1 and bh2, data or
/// noise prediction). Stateful like DPM-Solver: set_timesteps before each sampling run, then
/// step through timesteps() in order. (diffusers' solver_p, an alternative predictor, is not
/// supported: it must be null.)
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/schedulers/scheduler.hpp"

namespace diffuse::schedulers {

/// UniPC multistep sampling (see the file comment); deterministic.
template <class T = float>
class UniPCMultistepScheduler : public Scheduler<T> {
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
    /// Order of the predictor and corrector (at least 1); diffusers recommends 2 for guided
    /// sampling, 3 for unconditional sampling.
    int solver_order = 2;
    /// What the model predicts: the noise (epsilon), the clean sample (sample) or v (v_prediction,
    /// section 2.4 of the Imagen Video paper).
    std::string prediction_type = "epsilon";  // epsilon, sample, v_prediction
    /// Apply dynamic thresholding (Imagen) to the predicted clean sample (with predict_x0 only);
    /// not for latent-space models.
    bool thresholding = false;
    /// With thresholding: the quantile of |x0| (per batch element) to clip at.
    double dynamic_thresholding_ratio = 0.995;
    /// With thresholding: the largest threshold used.
    double sample_max_value = 1.0;
    /// Run the updates on the data prediction x0 (true) or on the noise prediction.
    bool predict_x0 = true;
    /// The B(h) of the updates; diffusers recommends bh1 for unconditional sampling with fewer
    /// than 10 steps, bh2 otherwise.
    std::string solver_type = "bh2";  // bh1, bh2 (midpoint, heun, logrho are read as bh2)
    /// Lower the order in the last steps to at most the number of steps left.
    bool lower_order_final = true;
    /// Indices of the steps whose corrector is skipped; diffusers suggests the first few steps at
    /// large guidance scales.
    std::vector<std::int64_t> disable_corrector = {};  // step indices whose corrector is skipped
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
      v("solver_order", c.solver_order);
      v("prediction_type", c.prediction_type);
      v("thresholding", c.thresholding);
      v("dynamic_thresholding_ratio", c.dynamic_thresholding_ratio);
      v("sample_max_value", c.sample_max_value);
      v("predict_x0", c.predict_x0);
      v("solver_type", c.solver_type);
      v("lower_order_final", c.lower_order_final);
      v("disable_corrector", c.disable_corrector);
      v("use_karras_sigmas", c.use_karras_sigmas);
      v("timestep_spacing", c.timestep_spacing);
      v("steps_offset", c.steps_offset);
    }
  };
  /// diffusers' class name, the "_class_name" of the config.
  static constexpr const char* kClassName = "UniPCMultistepScheduler";

  /// Builds the training schedule. Throws diffuse::Error for an unknown option value, a
  /// num_train_timesteps out of range or a beta outside (0, 1). Also throws for a
  /// solver_order below 1.
  explicit UniPCMultistepScheduler(Config config = {});
  /// From a diffusers config (any scheduler's: keys this one does not know are ignored).
  /// Throws diffuse::Error for a value of the wrong type or an invalid one. A solver_p other than null
  /// throws too.
  DIFFUSE_COLD static UniPCMultistepScheduler from_config(const json& j) {
    if (j.is_object() && j.contains("solver_p") && !j["solver_p"].is_null())
      throw Error(std::string(kClassName) +
                  ": config key 'solver_p' must be null (an alternative predictor is not supported)");
    return UniPCMultistepScheduler(detail::config_from_json<Config>(j, kClassName));
  }

  /// The config in use (solver types midpoint, heun and logrho already read as bh2).
  const Config& config() const { return config_; }
  std::string class_name() const override { return kClassName; }
  /// The config with "solver_p": null, as diffusers writes it.
  DIFFUSE_COLD json to_json() const override {
    json j = detail::config_to_json(config_, kClassName);
    j["solver_p"] = nullptr;
    return j;
  }

  /// Chooses at most n timesteps: repeated ones are dropped, so num_inference_steps() can be
  /// smaller than n. Clears the remembered model outputs.
  void set_timesteps(std::int64_t n) override;

 protected:
  SchedulerOutput<T> step_impl(const Tensor<T>& model_output, double t_in, const Tensor<T>& sample_in,
                               const Tensor<T>&) override;

 private:
  Tensor<T> convert_model_output(const Tensor<T>& mo, std::int64_t t, const Tensor<T>& sample) const;

  // The coefficients shared by predictor and corrector: r_k, the differences D1_k = (m_k - m0) / r_k,
  // h_phi_1, B(h) and the right-hand side b of the order conditions.
  struct Coeffs {
    float h_phi_1 = 0, B_h = 0;
    std::vector<float> rks, b;
    std::vector<Tensor<T>> D1s;
  };
  Coeffs coefficients(std::int64_t s0, std::int64_t t, int order) const;

  // Solves R x = b with R[i][j] = rks[j]^i (the first n rows and columns), in double.
  static std::vector<double> solve(const std::vector<float>& rks, const std::vector<float>& b, std::size_t n);

  // x_t_ = sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0 (data prediction) or its noise
  // prediction counterpart; returns x_t_ - coeff * (sum_k rho_k D1_k + extra_rho * extra).
  Tensor<T> update(std::int64_t s0, std::int64_t t, const Tensor<T>& x, const Coeffs& c,
                   const std::vector<double>& rhos, std::size_t n_rhos, double extra_rho,
                   const Tensor<T>& extra) const;

  Tensor<T> predictor(std::int64_t prev_t, const Tensor<T>& x, int order) const;

  Tensor<T> corrector(const Tensor<T>& model_t, std::int64_t t, const Tensor<T>& last_sample,
                      const Tensor<T>&, int order) const;

  Config config_;
  std::vector<float> alpha_t_, sigma_t_, lambda_t_;
  std::vector<Tensor<T>> model_outputs_;
  std::vector<std::int64_t> timestep_list_;
  int lower_order_nums_ = 0, this_order_ = 1;
  Tensor<T> last_sample_;
};

template <class T>
DIFFUSE_COLD UniPCMultistepScheduler<T>::UniPCMultistepScheduler(Config config) : config_(std::move(config)) {
  const std::string cls = kClassName;
  if (config_.solver_type == "midpoint" || config_.solver_type == "heun" || config_.solver_type == "logrho")
    config_.solver_type = "bh2";
  detail::check_one_of(cls, "solver_type", config_.solver_type, {"bh1", "bh2", "midpoint", "heun", "logrho"});
  detail::check_one_of(cls, "prediction_type", config_.prediction_type,
                       {"epsilon", "sample", "v_prediction"});
  detail::check_one_of(cls, "timestep_spacing", config_.timestep_spacing,
                       {"linspace", "leading", "trailing"});
  if (config_.solver_order < 1)
    throw Error(cls + ": solver_order must be at least 1, got " + std::to_string(config_.solver_order));
  this->init_schedule(detail::make_betas(cls, config_.beta_schedule, config_.num_train_timesteps,
                                         config_.beta_start, config_.beta_end, config_.trained_betas));
  for (float ac : this->alphas_cumprod_) {
    alpha_t_.push_back(std::sqrt(ac));
    sigma_t_.push_back(std::sqrt(1.0f - ac));
    lambda_t_.push_back(std::log(alpha_t_.back()) - std::log(sigma_t_.back()));
  }
}

template <class T>
DIFFUSE_COLD void UniPCMultistepScheduler<T>::set_timesteps(std::int64_t n) {
  this->check_num_steps(n);
  const std::int64_t N = config_.num_train_timesteps;
  std::vector<double> karras;
  this->timesteps_ = detail::multistep_timesteps(kClassName, config_.timestep_spacing, N, N, n,
                                                 config_.steps_offset, config_.use_karras_sigmas,
                                                 detail::train_sigmas(this->alphas_cumprod_), &karras);
  this->sigmas_ = config_.use_karras_sigmas ? std::vector<float>(karras.begin(), karras.end())
                                            : detail::train_sigmas(this->alphas_cumprod_);
  this->num_inference_steps_ = static_cast<std::int64_t>(this->timesteps_.size());
  model_outputs_.assign(config_.solver_order, Tensor<T>());
  timestep_list_.assign(config_.solver_order, -1);
  lower_order_nums_ = 0;
  this_order_ = 1;
  last_sample_ = Tensor<T>();
}

template <class T>
auto UniPCMultistepScheduler<T>::step_impl(const Tensor<T>& model_output, double t_in,
                                           const Tensor<T>& sample_in, const Tensor<T>&)
    -> SchedulerOutput<T> {
  this->check_step_shapes(model_output, sample_in);
  const std::int64_t t = this->train_index("step", t_in);
  const auto len = static_cast<std::int64_t>(this->timesteps_.size());
  std::int64_t idx = this->find_timestep(t_in);
  if (idx < 0) idx = len - 1;
  const auto& dc = config_.disable_corrector;
  const bool use_corrector =
      idx > 0 && std::find(dc.begin(), dc.end(), idx - 1) == dc.end() && last_sample_.defined();

  Tensor<T> converted = convert_model_output(model_output, t, sample_in);
  Tensor<T> sample = sample_in;
  if (use_corrector) sample = corrector(converted, t, last_sample_, sample_in, this_order_);

  const std::int64_t prev_t = idx == len - 1 ? 0 : static_cast<std::int64_t>(this->timesteps_[idx + 1]);
  for (int i = 0; i + 1 < config_.solver_order; ++i) {
    model_outputs_[i] = model_outputs_[i + 1];
    timestep_list_[i] = timestep_list_[i + 1];
  }
  model_outputs_.back() = converted;
  timestep_list_.back() = t;

  const std::int64_t order = config_.lower_order_final
                                 ? std::min<std::int64_t>(config_.solver_order, len - idx)
                                 : config_.solver_order;
  this_order_ = static_cast<int>(std::min<std::int64_t>(order, lower_order_nums_ + 1));
  last_sample_ = sample;
  Tensor<T> prev = predictor(prev_t, sample, this_order_);
  if (lower_order_nums_ < config_.solver_order) ++lower_order_nums_;
  return {prev, Tensor<T>()};
}

template <class T>
auto UniPCMultistepScheduler<T>::convert_model_output(const Tensor<T>& mo, std::int64_t t,
                                                      const Tensor<T>& sample) const -> Tensor<T> {
  const double a = alpha_t_[t], s = sigma_t_[t];
  const std::string& pt = config_.prediction_type;
  Tensor<T> out = Tensor<T>::empty(sample.shape());
  for (std::int64_t i = 0; i < out.numel(); ++i) {
    const double x = sample.data()[i], m = mo.data()[i];
    double v;
    if (config_.predict_x0)
      v = pt == "epsilon" ? (x - s * m) / a : pt == "sample" ? m : a * x - s * m;
    else
      v = pt == "epsilon" ? m : pt == "sample" ? (x - a * m) / s : a * m + s * x;
    out.data()[i] = static_cast<T>(v);
  }
  if (config_.predict_x0 && config_.thresholding)
    out = detail::threshold_sample(out, config_.dynamic_thresholding_ratio, config_.sample_max_value);
  return out;
}

template <class T>
auto UniPCMultistepScheduler<T>::coefficients(std::int64_t s0, std::int64_t t, int order) const -> Coeffs {
  Coeffs c;
  const float h = lambda_t_[t] - lambda_t_[s0];
  const Tensor<T>& m0 = model_outputs_.back();
  const std::size_t k = model_outputs_.size();
  for (int i = 1; i < order; ++i) {
    const std::int64_t si = timestep_list_[k - 1 - i];
    const Tensor<T>& mi = model_outputs_[k - 1 - i];
    const float rk = (lambda_t_[si] - lambda_t_[s0]) / h;
    c.rks.push_back(rk);
    Tensor<T> d = Tensor<T>::empty(m0.shape());
    for (std::int64_t j = 0; j < d.numel(); ++j)
      d.data()[j] = static_cast<T>((static_cast<double>(mi.data()[j]) - m0.data()[j]) / rk);
    c.D1s.push_back(d);
  }
  c.rks.push_back(1.0f);
  const float hh = config_.predict_x0 ? -h : h;
  c.h_phi_1 = std::expm1(hh);
  float h_phi_k = c.h_phi_1 / hh - 1.0f;
  double factorial = 1;
  c.B_h = config_.solver_type == "bh1" ? hh : std::expm1(hh);
  for (int i = 1; i <= order; ++i) {
    c.b.push_back(h_phi_k * static_cast<float>(factorial) / c.B_h);
    factorial *= i + 1;
    h_phi_k = h_phi_k / hh - static_cast<float>(1.0 / factorial);
  }
  return c;
}

template <class T>
auto UniPCMultistepScheduler<T>::solve(const std::vector<float>& rks, const std::vector<float>& b,
                                       std::size_t n) -> std::vector<double> {
  std::vector<std::vector<double>> A(n, std::vector<double>(n + 1));
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) A[i][j] = std::pow(static_cast<float>(rks[j]), static_cast<float>(i));
    A[i][n] = b[i];
  }
  for (std::size_t col = 0; col < n; ++col) {
    std::size_t piv = col;
    for (std::size_t r = col + 1; r < n; ++r)
      if (std::abs(A[r][col]) > std::abs(A[piv][col])) piv = r;
    std::swap(A[col], A[piv]);
    if (A[col][col] == 0)
      throw Error("UniPCMultistepScheduler: singular order conditions (repeated timesteps?)");
    for (std::size_t r = col + 1; r < n; ++r) {
      const double f = A[r][col] / A[col][col];
      for (std::size_t j = col; j <= n; ++j) A[r][j] -= f * A[col][j];
    }
  }
  std::vector<double> x(n);
  for (std::size_t i = n; i-- > 0;) {
    double s = A[i][n];
    for (std::size_t j = i + 1; j < n; ++j) s -= A[i][j] * x[j];
    x[i] = s / A[i][i];
  }
  std::vector<double> out;
  for (double v : x) out.push_back(static_cast<float>(v));  // float32 like torch.linalg.solve on float32
  return out;
}

template <class T>
auto UniPCMultistepScheduler<T>::update(std::int64_t s0, std::int64_t t, const Tensor<T>& x, const Coeffs& c,
                                        const std::vector<double>& rhos, std::size_t n_rhos, double extra_rho,
                                        const Tensor<T>& extra) const -> Tensor<T> {
  const float at = alpha_t_[t], as = alpha_t_[s0], st = sigma_t_[t], ss = sigma_t_[s0];
  const Tensor<T>& m0 = model_outputs_.back();
  float cx, cm, cres;
  if (config_.predict_x0) {
    cx = st / ss;
    cm = at * c.h_phi_1;
    cres = at * c.B_h;
  } else {
    cx = at / as;
    cm = st * c.h_phi_1;
    cres = st * c.B_h;
  }
  Tensor<T> out = Tensor<T>::empty(x.shape());
  for (std::int64_t i = 0; i < out.numel(); ++i) {
    double res = 0;
    for (std::size_t k = 0; k < n_rhos; ++k) res += rhos[k] * c.D1s[k].data()[i];
    if (extra.defined()) res += extra_rho * (static_cast<double>(extra.data()[i]) - m0.data()[i]);
    const double base = static_cast<double>(cx) * x.data()[i] - static_cast<double>(cm) * m0.data()[i];
    out.data()[i] = static_cast<T>(base - static_cast<double>(cres) * res);
  }
  return out;
}

template <class T>
auto UniPCMultistepScheduler<T>::predictor(std::int64_t prev_t, const Tensor<T>& x, int order) const
    -> Tensor<T> {
  const std::int64_t s0 = timestep_list_.back();
  const Coeffs c = coefficients(s0, prev_t, order);
  std::vector<double> rhos;
  if (order == 2)
    rhos = {0.5};
  else if (order > 2)
    rhos = solve(c.rks, c.b, static_cast<std::size_t>(order - 1));
  return update(s0, prev_t, x, c, rhos, c.D1s.size(), 0.0, Tensor<T>());
}

template <class T>
auto UniPCMultistepScheduler<T>::corrector(const Tensor<T>& model_t, std::int64_t t,
                                           const Tensor<T>& last_sample, const Tensor<T>&, int order) const
    -> Tensor<T> {
  const std::int64_t s0 = timestep_list_.back();
  const Coeffs c = coefficients(s0, t, order);
  std::vector<double> rhos =
      order == 1 ? std::vector<double>{0.5} : solve(c.rks, c.b, static_cast<std::size_t>(order));
  return update(s0, t, last_sample, c, rhos, c.D1s.size(), rhos.back(), model_t);
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_UNIPC_TEMPLATES(X, T) X(class UniPCMultistepScheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_UNIPC_TEMPLATES)

}  // namespace diffuse::schedulers
