/// @file
/// SigmaScheduler<T>: what the k-diffusion style schedulers (Euler, Euler ancestral, Heun) share
/// in diffusers 0.21: the sample lives at noise level sigma (x = x0 + sigma * noise), the model
/// input is scaled by 1 / sqrt(sigma^2 + 1), timesteps are float32 (fractional for linspace
/// spacing), and a step index advances with every step.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/schedulers/scheduler.hpp"

namespace diffuse::schedulers {

/// The base of the sigma-based schedulers (see the file comment).
template <class T = float>
class SigmaScheduler : public Scheduler<T> {
 public:
  /// The largest sigma (sqrt(sigma^2 + 1) with "leading" spacing, as diffusers has it).
  double init_noise_sigma() const override {
    float mx = 0;
    for (float s : this->sigmas_) mx = std::max(mx, s);
    if (spacing_ == "linspace" || spacing_ == "trailing") return mx;
    return std::sqrt(mx * mx + 1.0f);
  }

  /// sample / sqrt(sigma^2 + 1) for the noise level of the current step (found from t on the first
  /// call: a t not in timesteps() throws diffuse::Error).
  Tensor<T> scale_model_input(const Tensor<T>& sample, double t) override;

  /// x0 + sigma(t) * noise, t being one of timesteps() per batch element.
  Tensor<T> add_noise(const Tensor<T>& x0, const Tensor<T>& noise,
                      const std::vector<double>& t) const override;
  using Scheduler<T>::add_noise;

  /// The index into sigmas() of the next step (-1 before the first).
  std::int64_t step_index() const { return step_index_; }

 protected:
  /// The float32 timesteps of a spacing, descending.
  std::vector<double> discrete_timesteps(std::int64_t n_train, std::int64_t n,
                                         std::int64_t steps_offset) const;

  /// sigma at each (fractional) timestep by linear interpolation of the training sigmas.
  std::vector<double> interp_sigmas(const std::vector<double>& ts) const {
    std::vector<double> s;
    for (double t : ts) s.push_back(detail::interp_index(t, train_sigmas_));
    return s;
  }

  /// Karras sigmas between the first and last of `sigmas`, and the matching fractional timesteps.
  void to_karras(std::vector<double>& sigmas, std::vector<double>& ts, std::int64_t n) const {
    sigmas = detail::karras_sigmas(sigmas.front(), sigmas.back(), n);
    ts.clear();
    for (double s : sigmas) ts.push_back(detail::sigma_to_t(s, log_sigmas_));
  }

  void init_sigma_schedule(std::vector<float> betas, const std::string& spacing);

  /// Before set_timesteps, Euler-type schedulers hold every training timestep (diffusers' constructors).
  void use_all_training_timesteps();

  void init_step_index(double t);
  void begin_step(double t) {
    if (step_index_ < 0) init_step_index(t);
    if (step_index_ + 1 >= static_cast<std::int64_t>(this->sigmas_.size()))
      throw Error(this->class_name() + ".step: more steps than timesteps(); call set_timesteps again");
  }

  std::string spacing_;
  std::vector<float> train_sigmas_, log_sigmas_;
  std::int64_t step_index_ = -1;
};

template <class T>
auto SigmaScheduler<T>::scale_model_input(const Tensor<T>& sample, double t) -> Tensor<T> {
  if (step_index_ < 0) init_step_index(t);
  const float sigma = this->sigmas_[step_index_];
  const double denom = std::sqrt(sigma * sigma + 1.0f);
  Tensor<T> out = Tensor<T>::empty(sample.shape());
  for (std::int64_t i = 0; i < out.numel(); ++i) out.data()[i] = static_cast<T>(sample.data()[i] / denom);
  return out;
}

template <class T>
auto SigmaScheduler<T>::add_noise(const Tensor<T>& x0, const Tensor<T>& noise,
                                  const std::vector<double>& t) const -> Tensor<T> {
  if (x0.shape() != noise.shape() || x0.dim() < 1 || static_cast<std::int64_t>(t.size()) != x0.size(0))
    throw Error(this->class_name() + ".add_noise: sample " + to_string(x0.shape()) + ", noise " +
                to_string(noise.shape()) + " and " + std::to_string(t.size()) +
                " timesteps do not fit together");
  std::vector<double> one(t.size(), 1.0), sig;
  for (double ti : t) {
    std::vector<std::int64_t> idx;
    for (std::size_t i = 0; i < this->timesteps_.size(); ++i)
      if (this->timesteps_[i] == ti) idx.push_back(static_cast<std::int64_t>(i));
    if (idx.empty())
      throw Error(this->class_name() + ".add_noise: timestep " + std::to_string(ti) +
                  " is not one of timesteps()");
    sig.push_back(this->sigmas_[idx.size() > 1 ? idx[1] : idx[0]]);
  }
  return Scheduler<T>::combine(x0, one, noise, sig);
}

template <class T>
auto SigmaScheduler<T>::discrete_timesteps(std::int64_t n_train, std::int64_t n,
                                           std::int64_t steps_offset) const -> std::vector<double> {
  std::vector<double> ts;
  if (spacing_ == "linspace") {
    for (double v : detail::np_linspace(0, static_cast<double>(n_train - 1), n))
      ts.push_back(static_cast<float>(v));
    std::reverse(ts.begin(), ts.end());
  } else if (spacing_ == "leading") {
    const std::int64_t ratio = n_train / n;
    for (std::int64_t i = n - 1; i >= 0; --i)
      ts.push_back(static_cast<float>(static_cast<float>(i * ratio) + static_cast<float>(steps_offset)));
  } else {
    for (double v : detail::np_arange(static_cast<double>(n_train), 0, -static_cast<double>(n_train) / n))
      ts.push_back(static_cast<float>(static_cast<float>(detail::round_half_even(v)) - 1.0f));
  }
  return ts;
}

template <class T>
DIFFUSE_COLD void SigmaScheduler<T>::init_sigma_schedule(std::vector<float> betas,
                                                         const std::string& spacing) {
  spacing_ = spacing;
  this->init_schedule(std::move(betas));
  train_sigmas_ = this->sigmas_;
  log_sigmas_.clear();
  for (float s : train_sigmas_) log_sigmas_.push_back(std::log(s));
}

template <class T>
DIFFUSE_COLD void SigmaScheduler<T>::use_all_training_timesteps() {
  this->sigmas_.assign(train_sigmas_.rbegin(), train_sigmas_.rend());
  this->sigmas_.push_back(0.0f);
  this->timesteps_.clear();
  for (std::int64_t t = static_cast<std::int64_t>(train_sigmas_.size()) - 1; t >= 0; --t)
    this->timesteps_.push_back(static_cast<double>(t));
}

template <class T>
void SigmaScheduler<T>::init_step_index(double t) {
  std::vector<std::int64_t> idx;
  for (std::size_t i = 0; i < this->timesteps_.size(); ++i)
    if (this->timesteps_[i] == t) idx.push_back(static_cast<std::int64_t>(i));
  if (idx.empty())
    throw Error(this->class_name() + ": timestep " + std::to_string(t) +
                " is not one of timesteps(); pass the scheduler's own timesteps in order");
  step_index_ = idx.size() > 1 ? idx[1] : idx[0];
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_SCHEDULERS_SIGMA_SCHEDULER_TEMPLATES(X, T) X(class SigmaScheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_SCHEDULERS_SIGMA_SCHEDULER_TEMPLATES)

}  // namespace diffuse::schedulers
