// Adam with torch.optim.Adam's update rule (bias-corrected moments; weight_decay as L2 added
// to the gradient). AdamW (decoupled weight decay) shares the state and differs in one line.
#pragma once
#include <cmath>

#include "diffuse/core/parallel.hpp"
#include "diffuse/optim/optimizer.hpp"

namespace diffuse::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
};

template <class T = float>
class Adam : public Optimizer<T> {
 public:
  Adam(std::vector<Tensor<T>> params, AdamOptions options = {}) : Optimizer<T>(std::move(params), options.lr), options_(options) {
    if (options.beta1 < 0 || options.beta1 >= 1 || options.beta2 < 0 || options.beta2 >= 1)
      throw Error("Adam: betas must be in [0, 1), got (" + std::to_string(options.beta1) + ", " +
                  std::to_string(options.beta2) + ")");
    if (options.eps < 0) throw Error("Adam: eps must be non-negative");
    for (auto& p : this->params_) {
      exp_avg_.push_back(Tensor<T>::zeros(p.shape()));
      exp_avg_sq_.push_back(Tensor<T>::zeros(p.shape()));
    }
  }

  void step() override {
    ++step_count_;
    const double bc1 = 1 - std::pow(options_.beta1, static_cast<double>(step_count_));
    const double bc2 = 1 - std::pow(options_.beta2, static_cast<double>(step_count_));
    const T step_size = static_cast<T>(this->lr_ / bc1), bc2_sqrt = static_cast<T>(std::sqrt(bc2));
    const T b1 = static_cast<T>(options_.beta1), b2 = static_cast<T>(options_.beta2), eps = static_cast<T>(options_.eps);
    const T wd = static_cast<T>(options_.weight_decay), decoupled_decay = static_cast<T>(this->lr_ * options_.weight_decay);
    const bool decoupled = decoupled_weight_decay();
    for (std::size_t k = 0; k < this->params_.size(); ++k) {
      Tensor<T> p = this->params_[k];
      Tensor<T> grad = p.grad();
      if (!grad.defined()) continue;
      T* w = p.data();
      const T* g = grad.data();
      T* m = exp_avg_[k].data();
      T* v = exp_avg_sq_[k].data();
      detail::parallel_for(p.numel(), [&](std::int64_t i) {
        T gi = g[i];
        if (decoupled) w[i] -= decoupled_decay * w[i];
        else gi += wd * w[i];
        m[i] = b1 * m[i] + (T(1) - b1) * gi;
        v[i] = b2 * v[i] + (T(1) - b2) * gi * gi;
        w[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps);
      });
    }
  }

  const AdamOptions& options() const { return options_; }
  std::int64_t step_count() const { return step_count_; }
  // Optimizer state, for checkpoints.
  std::vector<Tensor<T>>& exp_avg() { return exp_avg_; }
  std::vector<Tensor<T>>& exp_avg_sq() { return exp_avg_sq_; }
  void set_step_count(std::int64_t s) { step_count_ = s; }

 protected:
  virtual bool decoupled_weight_decay() const { return false; }

 private:
  AdamOptions options_;
  std::int64_t step_count_ = 0;
  std::vector<Tensor<T>> exp_avg_, exp_avg_sq_;
};

template <class T>
Adam(std::vector<Tensor<T>>, AdamOptions) -> Adam<T>;

}  // namespace diffuse::optim
