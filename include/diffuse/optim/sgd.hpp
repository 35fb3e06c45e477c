// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, with
// torch.optim.SGD's update rule.
#pragma once
#include "diffuse/core/parallel.hpp"
#include "diffuse/optim/optimizer.hpp"

namespace diffuse::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

template <class T = float>
class SGD : public Optimizer<T> {
 public:
  SGD(std::vector<Tensor<T>> params, SGDOptions options = {})
      : Optimizer<T>(std::move(params), options.lr), options_(options), momentum_buffers_(this->params_.size()) {
    if (options.nesterov && (options.momentum <= 0 || options.dampening != 0))
      throw Error("SGD: Nesterov momentum needs momentum > 0 and dampening = 0");
  }

  void step() override {
    const T lr = static_cast<T>(this->lr_), mu = static_cast<T>(options_.momentum),
            damp = static_cast<T>(options_.dampening), wd = static_cast<T>(options_.weight_decay);
    for (std::size_t k = 0; k < this->params_.size(); ++k) {
      Tensor<T> p = this->params_[k];
      Tensor<T> grad = p.grad();
      if (!grad.defined()) continue;
      T* w = p.data();
      const T* g = grad.data();
      const bool first = !momentum_buffers_[k].defined();
      if (mu != 0 && first) momentum_buffers_[k] = Tensor<T>::empty(p.shape());
      T* buf = mu != 0 ? momentum_buffers_[k].data() : nullptr;
      const bool nesterov = options_.nesterov;
      detail::parallel_for(p.numel(), [&](std::int64_t i) {
        T d = g[i] + wd * w[i];
        if (buf) {
          buf[i] = first ? d : mu * buf[i] + (T(1) - damp) * d;
          d = nesterov ? d + mu * buf[i] : buf[i];
        }
        w[i] -= lr * d;
      });
    }
  }

  const SGDOptions& options() const { return options_; }
  std::vector<Tensor<T>>& momentum_buffers() { return momentum_buffers_; }

 private:
  SGDOptions options_;
  std::vector<Tensor<T>> momentum_buffers_;
};

template <class T>
SGD(std::vector<Tensor<T>>, SGDOptions) -> SGD<T>;

}  // namespace diffuse::optim
