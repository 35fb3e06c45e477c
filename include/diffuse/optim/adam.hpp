/// @file
/// Adam with torch.optim.Adam's update rule: bias-corrected first and second moments,
/// weight_decay as L2 added to the gradient. AdamW (adamw.hpp) shares this implementation and
/// differs only in decoupling the weight decay. Each parameter counts its own steps (PyTorch's
/// state["step"]). Takes a parameter list or parameter groups with their own lr / weight_decay (see
/// optimizer.hpp and param_groups.hpp).
#pragma once
#include <cmath>

#include "diffuse/core/parallel.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/optim/optimizer.hpp"

namespace diffuse::optim {

/// Options of Adam (torch.optim.Adam's lr, betas, eps and weight_decay).
struct AdamOptions {
  /// Learning rate.
  double lr = 1e-3;
  /// Decay of the first moment (betas[0]).
  double beta1 = 0.9;
  /// Decay of the second moment (betas[1]).
  double beta2 = 0.999;
  /// Added to the denominator.
  double eps = 1e-8;
  /// L2 penalty, added to the gradient.
  double weight_decay = 0;
};

/// AdamW's options (adamw.hpp); declared here because the implementation is shared.
struct AdamWOptions {
  /// Learning rate.
  double lr = 1e-3;
  /// Decay of the first moment (betas[0]).
  double beta1 = 0.9;
  /// Decay of the second moment (betas[1]).
  double beta2 = 0.999;
  /// Added to the denominator.
  double eps = 1e-8;
  /// Decoupled weight decay: param *= 1 - lr * weight_decay before each update.
  double weight_decay = 1e-2;
};

}  // namespace diffuse::optim

namespace diffuse::detail {

/// The shared implementation of optim::Adam and optim::AdamW: `decoupled` selects AdamW's weight decay.
template <class T>
class AdamBase : public optim::Optimizer<T> {
 public:
  AdamBase(const char* type, bool decoupled, std::vector<optim::ParamGroup<T>> groups, optim::AdamWOptions o)
      : optim::Optimizer<T>(type, std::move(groups), o.lr, o.weight_decay), decoupled_(decoupled), o_(o) {
    check(o_);
  }

  void step() override;

  /// The moments of parameter `index` (numbered across groups); undefined before its first step.
  Tensor<T> exp_avg(std::size_t index) const { return buffer(index, "exp_avg"); }
  Tensor<T> exp_avg_sq(std::size_t index) const { return buffer(index, "exp_avg_sq"); }
  /// Steps taken by the first parameter (all parameters, when every one gets a gradient each step).
  std::int64_t step_count() const { return this->state_.empty() ? 0 : this->state_.front().step; }

 protected:
  std::vector<std::string> buffer_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  std::string missing_buffer(const typename optim::Optimizer<T>::ParamState& s,
                             const nlohmann::json&) const override {
    if (s.step == 0) return "";
    for (const char* b : {"exp_avg", "exp_avg_sq"})
      if (!s.buffers.count(b)) return b;
    return "";
  }
  nlohmann::json options_json() const override;
  void options_from_json(const nlohmann::json& j, bool apply) override {
    optim::AdamWOptions o{j.at("lr").get<double>(), j.at("beta1").get<double>(), j.at("beta2").get<double>(),
                          j.at("eps").get<double>(), j.at("weight_decay").get<double>()};
    check(o);
    if (apply) o_ = o;
  }
  const optim::AdamWOptions& raw_options() const { return o_; }

 private:
  void check(const optim::AdamWOptions& o) const {
    if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1))
      throw Error(this->type_ + ": betas must be in [0, 1), got (" + std::to_string(o.beta1) + ", " +
                  std::to_string(o.beta2) + ")");
    if (!(o.eps >= 0)) throw Error(this->type_ + ": eps must be non-negative, got " + std::to_string(o.eps));
  }
  Tensor<T> buffer(std::size_t index, const char* name) const;

  bool decoupled_;
  optim::AdamWOptions o_;
};

template <class T>
void AdamBase<T>::step() {
  const T b1 = static_cast<T>(o_.beta1), b2 = static_cast<T>(o_.beta2), eps = static_cast<T>(o_.eps);
  const T one_minus_b1 = static_cast<T>(1 - o_.beta1), one_minus_b2 = static_cast<T>(1 - o_.beta2);
  this->for_each_param_with_grad([&](const auto& group, Tensor<T>& p, const Tensor<T>& grad, auto& state) {
    if (state.step == 0) {
      state.buffers["exp_avg"] = Tensor<T>::zeros(p.shape());
      state.buffers["exp_avg_sq"] = Tensor<T>::zeros(p.shape());
    }
    const double step = static_cast<double>(++state.step);
    const double bc1 = 1 - std::pow(o_.beta1, step), bc2 = 1 - std::pow(o_.beta2, step);
    const T step_size = static_cast<T>(group.lr / bc1), bc2_sqrt = static_cast<T>(std::sqrt(bc2));
    const T wd = static_cast<T>(group.weight_decay),
            decay_factor = static_cast<T>(1 - group.lr * group.weight_decay);
    const bool decoupled = decoupled_, l2 = !decoupled_ && group.weight_decay != 0;
    T* w = p.data();
    const T* g = grad.data();
    T* m = state.buffers["exp_avg"].data();
    T* v = state.buffers["exp_avg_sq"].data();
    diffuse::detail::parallel_for(p.numel(), [&](std::int64_t i) {
      T gi = g[i];
      if (decoupled) w[i] *= decay_factor;
      if (l2) gi += wd * w[i];
      m[i] = m[i] * b1 + gi * one_minus_b1;
      v[i] = v[i] * b2 + one_minus_b2 * gi * gi;
      w[i] -= step_size * (m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps));
    });
  });
}

template <class T>
auto AdamBase<T>::options_json() const -> nlohmann::json {
  return {{"lr", o_.lr},
          {"beta1", o_.beta1},
          {"beta2", o_.beta2},
          {"eps", o_.eps},
          {"weight_decay", o_.weight_decay}};
}

template <class T>
auto AdamBase<T>::buffer(std::size_t index, const char* name) const -> Tensor<T> {
  if (index >= this->state_.size())
    throw Error(this->type_ + ": parameter index " + std::to_string(index) + " out of range (" +
                std::to_string(this->state_.size()) + " parameters)");
  auto it = this->state_[index].buffers.find(name);
  return it == this->state_[index].buffers.end() ? Tensor<T>() : it->second;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_OPTIM_ADAM_BASE_TEMPLATES(X, T) X(class AdamBase<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_OPTIM_ADAM_BASE_TEMPLATES)

}  // namespace diffuse::detail

namespace diffuse::optim {

/// torch.optim.Adam (see the file comment).
template <class T = float>
class Adam : public diffuse::detail::AdamBase<T> {
 public:
  /// One group holding `params`. diffuse::Error for betas outside [0, 1), a negative eps, lr or weight_decay.
  Adam(std::vector<Tensor<T>> params, AdamOptions o = {}) : Adam(single_group(std::move(params)), o) {}
  /// Parameter groups with their own lr / weight_decay (see param_groups.hpp).
  Adam(std::vector<ParamGroup<T>> groups, AdamOptions o = {})
      : diffuse::detail::AdamBase<T>("Adam", false, std::move(groups),
                                     {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay}) {}
  /// The current options (load_state_dict replaces them with the saved ones).
  AdamOptions options() const {
    const auto& o = this->raw_options();
    return {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay};
  }
};

template <class T>
Adam(std::vector<Tensor<T>>, AdamOptions) -> Adam<T>;
template <class T>
Adam(std::vector<ParamGroup<T>>, AdamOptions) -> Adam<T>;

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_OPTIM_ADAM_TEMPLATES(X, T) X(class Adam<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_OPTIM_ADAM_TEMPLATES)

}  // namespace diffuse::optim
