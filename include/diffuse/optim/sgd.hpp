/// @file
/// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, with
/// torch.optim.SGD's update rule. Takes a parameter list or parameter groups (see optimizer.hpp).
#pragma once
#include "diffuse/core/parallel.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/optim/optimizer.hpp"

namespace diffuse::optim {

/// Options of SGD (torch.optim.SGD's arguments).
struct SGDOptions {
  /// Learning rate.
  double lr = 1e-3;
  /// Momentum factor; 0 is plain SGD.
  double momentum = 0;
  /// Dampening of the momentum.
  double dampening = 0;
  /// L2 penalty, added to the gradient.
  double weight_decay = 0;
  /// Nesterov momentum; needs momentum > 0 and dampening 0.
  bool nesterov = false;
};

/// torch.optim.SGD (see the file comment).
template <class T = float>
class SGD : public Optimizer<T> {
 public:
  /// One group holding `params`. diffuse::Error for a negative lr, momentum or weight_decay, or Nesterov
  /// without momentum or with dampening.
  SGD(std::vector<Tensor<T>> params, SGDOptions options = {})
      : SGD(single_group(std::move(params)), options) {}
  /// Parameter groups with their own lr / weight_decay (see param_groups.hpp).
  SGD(std::vector<ParamGroup<T>> groups, SGDOptions options = {})
      : Optimizer<T>("SGD", std::move(groups), options.lr, options.weight_decay), options_(options) {
    check(options_);
  }

  void step() override;

  /// The current options (load_state_dict replaces them with the saved ones).
  const SGDOptions& options() const { return options_; }

 protected:
  std::vector<std::string> buffer_names() const override { return {"momentum_buffer"}; }
  std::string missing_buffer(const typename Optimizer<T>::ParamState& s,
                             const nlohmann::json& o) const override {
    return s.step > 0 && o.at("momentum").get<double>() != 0 && !s.buffers.count("momentum_buffer")
               ? "momentum_buffer"
               : "";
  }
  nlohmann::json options_json() const override;
  void options_from_json(const nlohmann::json& j, bool apply) override {
    SGDOptions o{j.at("lr").get<double>(), j.at("momentum").get<double>(), j.at("dampening").get<double>(),
                 j.at("weight_decay").get<double>(), j.at("nesterov").get<bool>()};
    check(o);
    if (apply) options_ = o;
  }

 private:
  static void check(const SGDOptions& o) {
    if (!(o.momentum >= 0))
      throw Error("SGD: momentum must be non-negative, got " + std::to_string(o.momentum));
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
      throw Error("SGD: Nesterov momentum needs momentum > 0 and dampening = 0");
  }
  SGDOptions options_;
};

template <class T>
void SGD<T>::step() {
  const T mu = static_cast<T>(options_.momentum), one_minus_damp = static_cast<T>(1 - options_.dampening);
  const bool nesterov = options_.nesterov;
  this->for_each_param_with_grad([&](const auto& group, Tensor<T>& p, const Tensor<T>& grad, auto& state) {
    const T lr = static_cast<T>(group.lr), wd = static_cast<T>(group.weight_decay);
    T* w = p.data();
    const T* g = grad.data();
    const bool first = !state.buffers.count("momentum_buffer");
    T* buf = nullptr;
    if (mu != 0) {
      if (first) state.buffers["momentum_buffer"] = Tensor<T>::empty(p.shape());
      buf = state.buffers["momentum_buffer"].data();
    }
    ++state.step;
    diffuse::detail::parallel_for(p.numel(), [&](std::int64_t i) {
      T d = wd != 0 ? g[i] + wd * w[i] : g[i];
      if (buf) {
        buf[i] = first ? d : mu * buf[i] + one_minus_damp * d;
        d = nesterov ? d + mu * buf[i] : buf[i];
      }
      w[i] -= lr * d;
    });
  });
}

template <class T>
auto SGD<T>::options_json() const -> nlohmann::json {
  return {{"lr", options_.lr},
          {"momentum", options_.momentum},
          {"dampening", options_.dampening},
          {"weight_decay", options_.weight_decay},
          {"nesterov", options_.nesterov}};
}

template <class T>
SGD(std::vector<Tensor<T>>, SGDOptions) -> SGD<T>;
template <class T>
SGD(std::vector<ParamGroup<T>>, SGDOptions) -> SGD<T>;

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_OPTIM_SGD_TEMPLATES(X, T) X(class SGD<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_OPTIM_SGD_TEMPLATES)

}  // namespace diffuse::optim
