/// @file
/// AdamW with torch.optim.AdamW's update rule: Adam's moments with decoupled weight decay
/// (param *= 1 - lr * weight_decay before the update; default weight_decay 0.01 as in PyTorch).
/// Usually paired with parameter groups that exempt biases and norms from the decay:
/// @code
///   optim::AdamW opt(optim::weight_decay_groups(model, 0.01), {.lr = 1e-4});
/// @endcode
#pragma once
#include "diffuse/core/precompiled.hpp"
#include "diffuse/optim/adam.hpp"

namespace diffuse::optim {

/// torch.optim.AdamW (see the file comment); options in AdamWOptions (adam.hpp).
template <class T = float>
class AdamW : public diffuse::detail::AdamBase<T> {
 public:
  /// One group holding `params`. diffuse::Error for betas outside [0, 1), a negative eps, lr or weight_decay.
  AdamW(std::vector<Tensor<T>> params, AdamWOptions o = {}) : AdamW(single_group(std::move(params)), o) {}
  /// Parameter groups with their own lr / weight_decay (see param_groups.hpp).
  AdamW(std::vector<ParamGroup<T>> groups, AdamWOptions o = {})
      : diffuse::detail::AdamBase<T>("AdamW", true, std::move(groups), o) {}
  /// The current options (load_state_dict replaces them with the saved ones).
  const AdamWOptions& options() const { return this->raw_options(); }
};

template <class T>
AdamW(std::vector<Tensor<T>>, AdamWOptions) -> AdamW<T>;
template <class T>
AdamW(std::vector<ParamGroup<T>>, AdamWOptions) -> AdamW<T>;

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_OPTIM_ADAMW_TEMPLATES(X, T) X(class AdamW<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_OPTIM_ADAMW_TEMPLATES)

}  // namespace diffuse::optim
