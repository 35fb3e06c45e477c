/// @file
/// Scheduler<T>: the interface every noise scheduler implements (diffusers' SchedulerMixin), so
/// pipelines and training loops can take "any scheduler". It also holds what all schedulers
/// share: the float32 schedule (betas, alphas_cumprod), the inference timesteps, add_noise and
/// get_velocity, and the plumbing that turns a Generator into the noise a stochastic step needs.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/schedulers/betas.hpp"
#include "diffuse/schedulers/config.hpp"

namespace diffuse::schedulers {

/// What step() returns: the sample at the previous timestep and, where the scheduler computes
/// one, its prediction of the clean sample (undefined otherwise).
template <class T>
struct SchedulerOutput {
  /// The sample at the previous (less noisy) timestep.
  Tensor<T> prev_sample;
  /// The predicted clean sample x0 (undefined when the scheduler does not compute one).
  Tensor<T> pred_original_sample;
};

/// The base class of every noise scheduler (see the file comment). T is float or double.
template <class T = float>
class Scheduler {
  static_assert(std::is_floating_point_v<T>, "Scheduler<T> works on float or double tensors");

 public:
  virtual ~Scheduler() = default;

  /// diffusers' class name, e.g. "DDPMScheduler".
  virtual std::string class_name() const = 0;
  /// The config in scheduler_config.json form (with "_class_name").
  virtual json to_json() const = 0;
  /// Stochastic-step options (e.g. DDIM's eta), as the keyword arguments of diffusers' step().
  /// Unknown keys throw.
  virtual void set_step_kwargs(const json& kwargs) {
    if (kwargs.is_object() && !kwargs.empty())
      throw Error(class_name() + ".step takes no extra arguments, got " + kwargs.dump());
  }

  /// Chooses the n timesteps of sampling; resets any multistep state. Throws diffuse::Error
  /// unless 1 <= n <= num_train_timesteps.
  virtual void set_timesteps(std::int64_t num_inference_steps) = 0;
  /// The timesteps of sampling, in the order step() expects them (diffusers' scheduler.timesteps).
  const std::vector<double>& timesteps() const { return timesteps_; }
  /// The number of sampling steps set by set_timesteps (0 before it is called).
  std::int64_t num_inference_steps() const { return num_inference_steps_; }
  /// The length of the training schedule.
  std::int64_t num_train_timesteps() const { return static_cast<std::int64_t>(alphas_cumprod_.size()); }
  /// Model evaluations per output step (2 for Heun, whose timesteps repeat).
  virtual int order() const { return 1; }

  /// The standard deviation of the initial noise.
  virtual double init_noise_sigma() const { return 1.0; }
  /// Scales the model's input at timestep t (identity except for sigma-based schedulers).
  virtual Tensor<T> scale_model_input(const Tensor<T>& sample, double /*t*/) { return sample; }

  /// One sampling step from timestep t. `noise` is the standard normal noise a stochastic step
  /// uses (same shape as sample); it may be undefined for deterministic steps.
  /// Throws diffuse::Error for undefined or mismatched tensors, before set_timesteps, and
  /// for a stochastic step without noise.
  SchedulerOutput<T> step(const Tensor<T>& model_output, double t, const Tensor<T>& sample,
                          const Tensor<T>& noise = Tensor<T>());
  /// One sampling step drawing its noise (if any) from `gen`.
  SchedulerOutput<T> step(const Tensor<T>& model_output, double t, const Tensor<T>& sample, Generator& gen) {
    Tensor<T> noise;
    if (!timesteps_.empty() && step_draws_noise(t)) noise = gen.randn<T>(sample.shape());
    return step(model_output, t, sample, noise);
  }
  /// Whether the step at timestep t uses noise.
  virtual bool step_draws_noise(double /*t*/) const { return false; }

  /// Forward process q(x_t | x_0): one timestep per batch element (the first axis).
  /// Throws diffuse::Error unless x0 and noise have the same shape and there is one timestep per
  /// batch element, each an integer in [0, num_train_timesteps).
  virtual Tensor<T> add_noise(const Tensor<T>& x0, const Tensor<T>& noise,
                              const std::vector<double>& t) const;
  /// add_noise with the timesteps as a tensor [B].
  Tensor<T> add_noise(const Tensor<T>& x0, const Tensor<T>& noise, const Tensor<T>& t) const {
    return add_noise(x0, noise, to_list(t));
  }
  /// add_noise with integer timesteps.
  Tensor<T> add_noise(const Tensor<T>& x0, const Tensor<T>& noise, const std::vector<std::int64_t>& t) const {
    return add_noise(x0, noise, std::vector<double>(t.begin(), t.end()));
  }

  /// The v-prediction target sqrt(alphas_cumprod) * noise - sqrt(1 - alphas_cumprod) * x0.
  Tensor<T> get_velocity(const Tensor<T>& x0, const Tensor<T>& noise, const std::vector<double>& t) const;
  /// get_velocity with the timesteps as a tensor [B].
  Tensor<T> get_velocity(const Tensor<T>& x0, const Tensor<T>& noise, const Tensor<T>& t) const {
    return get_velocity(x0, noise, to_list(t));
  }
  /// get_velocity with integer timesteps.
  Tensor<T> get_velocity(const Tensor<T>& x0, const Tensor<T>& noise,
                         const std::vector<std::int64_t>& t) const {
    return get_velocity(x0, noise, std::vector<double>(t.begin(), t.end()));
  }

  /// The betas of the training schedule (float32 values, as diffusers keeps them).
  Tensor<T> betas() const { return to_tensor(betas_); }
  /// The cumulative product of 1 - betas, one value per training timestep.
  Tensor<T> alphas_cumprod() const { return to_tensor(alphas_cumprod_); }
  /// Noise levels: for sigma-based and multistep schedulers diffusers' scheduler.sigmas; for the
  /// others sqrt((1 - alphas_cumprod) / alphas_cumprod) per training timestep.
  Tensor<T> sigmas() const { return to_tensor(sigmas_); }

 protected:
  virtual SchedulerOutput<T> step_impl(const Tensor<T>& model_output, double t, const Tensor<T>& sample,
                                       const Tensor<T>& noise) = 0;

  /// Sets betas_ and alphas_cumprod_ (and sigmas_ to the training sigmas).
  DIFFUSE_COLD void init_schedule(std::vector<float> betas) {
    betas_ = std::move(betas);
    alphas_cumprod_ = detail::cumprod_f32(detail::alphas_from_betas(betas_));
    sigmas_ = detail::train_sigmas(alphas_cumprod_);
  }

  /// The integer training timestep t, checked to lie in [0, num_train_timesteps).
  std::int64_t train_index(const char* what, double t) const;
  /// The position of t in timesteps_ (the first match), or -1.
  std::int64_t find_timestep(double t) const {
    for (std::size_t i = 0; i < timesteps_.size(); ++i)
      if (timesteps_[i] == t) return static_cast<std::int64_t>(i);
    return -1;
  }
  void check_step_shapes(const Tensor<T>& model_output, const Tensor<T>& sample) const {
    if (model_output.shape() != sample.shape())
      throw Error(class_name() + ".step: model_output of shape " + to_string(model_output.shape()) +
                  " does not match the sample's shape " + to_string(sample.shape()));
  }
  void check_num_steps(std::int64_t n) const {
    if (n < 1 || n > num_train_timesteps())
      throw Error(class_name() + ".set_timesteps: num_inference_steps must be in [1, " +
                  std::to_string(num_train_timesteps()) + "], got " + std::to_string(n));
  }

  /// out = a * x + b * y, elementwise (a, b: scalars).
  static Tensor<T> axpby(double a, const Tensor<T>& x, double b, const Tensor<T>& y);
  static Tensor<T> scale(double a, const Tensor<T>& x);
  static Tensor<T> clamp(const Tensor<T>& x, double lo, double hi) {
    Tensor<T> out = Tensor<T>::empty(x.shape());
    for (std::int64_t i = 0; i < x.numel(); ++i)
      out.data()[i] = static_cast<T>(std::min(std::max(static_cast<double>(x.data()[i]), lo), hi));
    return out;
  }

  std::vector<float> betas_, alphas_cumprod_, sigmas_;
  std::vector<double> timesteps_;
  std::int64_t num_inference_steps_ = 0;

 private:
  static Tensor<T> to_tensor(const std::vector<float>& v) {
    return Tensor<T>::from_vector(std::vector<T>(v.begin(), v.end()));
  }
  static std::vector<double> to_list(const Tensor<T>& t) {
    std::vector<double> v;
    for (std::int64_t i = 0; i < t.numel(); ++i) v.push_back(static_cast<double>(t.data()[i]));
    return v;
  }
  void check_pairs(const char* what, const Tensor<T>& x0, const Tensor<T>& noise,
                   const std::vector<double>& t) const;

 protected:
  /// out[b, ...] = a[b] * x[b, ...] + c[b] * y[b, ...]
  static Tensor<T> combine(const Tensor<T>& x, const std::vector<double>& a, const Tensor<T>& y,
                           const std::vector<double>& c);
};

template <class T>
auto Scheduler<T>::step(const Tensor<T>& model_output, double t, const Tensor<T>& sample,
                        const Tensor<T>& noise) -> SchedulerOutput<T> {
  if (!model_output.defined() || !sample.defined()) throw Error(class_name() + ".step: undefined tensor");
  if (noise.defined() && noise.shape() != sample.shape())
    throw Error(class_name() + ".step: noise of shape " + to_string(noise.shape()) +
                " for a sample of shape " + to_string(sample.shape()));
  if (timesteps_.empty())
    throw Error(class_name() + ".step: call set_timesteps(num_inference_steps) before step()");
  if (!noise.defined() && step_draws_noise(t))
    throw Error(class_name() + ".step at timestep " + std::to_string(t) +
                " is stochastic: pass a Generator or explicit noise");
  return step_impl(model_output, t, sample, noise);
}

template <class T>
auto Scheduler<T>::add_noise(const Tensor<T>& x0, const Tensor<T>& noise, const std::vector<double>& t) const
    -> Tensor<T> {
  check_pairs("add_noise", x0, noise, t);
  std::vector<double> a, b;
  for (double ti : t) {
    const double ac = alphas_cumprod_[train_index("add_noise", ti)];
    a.push_back(std::sqrt(ac));
    b.push_back(std::sqrt(1 - ac));
  }
  return combine(x0, a, noise, b);
}

template <class T>
auto Scheduler<T>::get_velocity(const Tensor<T>& x0, const Tensor<T>& noise,
                                const std::vector<double>& t) const -> Tensor<T> {
  check_pairs("get_velocity", x0, noise, t);
  std::vector<double> a, b;
  for (double ti : t) {
    const double ac = alphas_cumprod_[train_index("get_velocity", ti)];
    a.push_back(-std::sqrt(1 - ac));
    b.push_back(std::sqrt(ac));
  }
  return combine(x0, a, noise, b);
}

template <class T>
std::int64_t Scheduler<T>::train_index(const char* what, double t) const {
  const double r = std::nearbyint(t);
  if (!(r >= 0 && r < static_cast<double>(num_train_timesteps())) || std::abs(r - t) > 1e-6)
    throw Error(class_name() + "." + what + ": timestep " + std::to_string(t) + " is not an integer in [0, " +
                std::to_string(num_train_timesteps()) + ")");
  return static_cast<std::int64_t>(r);
}

template <class T>
auto Scheduler<T>::axpby(double a, const Tensor<T>& x, double b, const Tensor<T>& y) -> Tensor<T> {
  Tensor<T> out = Tensor<T>::empty(x.shape());
  const T *px = x.data(), *py = y.data();
  T* po = out.data();
  const std::int64_t n = x.numel();
  for (std::int64_t i = 0; i < n; ++i) po[i] = static_cast<T>(a * px[i] + b * py[i]);
  return out;
}

template <class T>
auto Scheduler<T>::scale(double a, const Tensor<T>& x) -> Tensor<T> {
  Tensor<T> out = Tensor<T>::empty(x.shape());
  const T* px = x.data();
  T* po = out.data();
  for (std::int64_t i = 0; i < x.numel(); ++i) po[i] = static_cast<T>(a * px[i]);
  return out;
}

template <class T>
void Scheduler<T>::check_pairs(const char* what, const Tensor<T>& x0, const Tensor<T>& noise,
                               const std::vector<double>& t) const {
  if (x0.shape() != noise.shape())
    throw Error(class_name() + "." + what + ": sample of shape " + to_string(x0.shape()) +
                " and noise of shape " + to_string(noise.shape()) + " differ");
  if (x0.dim() < 1 || static_cast<std::int64_t>(t.size()) != x0.size(0))
    throw Error(class_name() + "." + what + ": " + std::to_string(t.size()) +
                " timesteps for a batch of shape " + to_string(x0.shape()) + " (one per batch element)");
}

template <class T>
auto Scheduler<T>::combine(const Tensor<T>& x, const std::vector<double>& a, const Tensor<T>& y,
                           const std::vector<double>& c) -> Tensor<T> {
  Tensor<T> out = Tensor<T>::empty(x.shape());
  const std::int64_t b = x.size(0), per = x.numel() / std::max<std::int64_t>(b, 1);
  for (std::int64_t i = 0; i < b; ++i)
    for (std::int64_t k = 0; k < per; ++k) {
      const std::int64_t j = i * per + k;
      out.data()[j] = static_cast<T>(a[i] * x.data()[j] + c[i] * y.data()[j]);
    }
  return out;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_SCHEDULER_TEMPLATES(X, T) X(class Scheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_SCHEDULER_TEMPLATES)

}  // namespace diffuse::schedulers
