// AdamW with torch.optim.AdamW's update rule: Adam's moments with decoupled weight decay
// (param *= 1 - lr * weight_decay before the update; default weight_decay 0.01 as in PyTorch).
// Usually paired with parameter groups that exempt biases and norms from the decay:
//   optim::AdamW opt(optim::weight_decay_groups(model, 0.01), {.lr = 1e-4});
#pragma once
#include "diffuse/optim/adam.hpp"

namespace diffuse::optim {

template <class T = float>
class AdamW : public diffuse::detail::AdamBase<T> {
 public:
  AdamW(std::vector<Tensor<T>> params, AdamWOptions o = {}) : AdamW(single_group(std::move(params)), o) {}
  AdamW(std::vector<ParamGroup<T>> groups, AdamWOptions o = {})
      : diffuse::detail::AdamBase<T>("AdamW", true, std::move(groups), o) {}
  const AdamWOptions& options() const { return this->raw_options(); }
};

template <class T>
AdamW(std::vector<Tensor<T>>, AdamWOptions) -> AdamW<T>;
template <class T>
AdamW(std::vector<ParamGroup<T>>, AdamWOptions) -> AdamW<T>;

}  // namespace diffuse::optim
