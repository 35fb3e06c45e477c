// Optimizer: the base of SGD, Adam and friends. Holds the parameters, the learning rate
// (changed by LR schedules through set_lr) and zero_grad().
#pragma once
#include <vector>

#include "diffuse/core/tensor.hpp"

namespace diffuse::optim {

template <class T = float>
class Optimizer {
 public:
  Optimizer(std::vector<Tensor<T>> params, double lr) : params_(std::move(params)), lr_(lr) {
    if (!(lr >= 0)) throw Error("optimizer: learning rate must be non-negative, got " + std::to_string(lr));
    for (auto& p : params_)
      if (!p.defined() || !p.requires_grad())
        throw Error("optimizer: every parameter must be a tensor with requires_grad");
  }
  virtual ~Optimizer() = default;

  // Applies one update from the parameters' current gradients (parameters without one are skipped).
  virtual void step() = 0;

  // Clears the gradients (set to none, PyTorch's default).
  void zero_grad() {
    for (auto& p : params_) p.zero_grad();
  }
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  const std::vector<Tensor<T>>& params() const { return params_; }

 protected:
  std::vector<Tensor<T>> params_;
  double lr_;
};

}  // namespace diffuse::optim
