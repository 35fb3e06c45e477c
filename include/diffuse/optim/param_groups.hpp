/// @file
/// Parameter groups that exempt biases and normalisation weights from weight decay, the usual
/// recipe for AdamW (like building [{"params": decay, "weight_decay": wd},
/// {"params": no_decay, "weight_decay": 0.0}] by hand in PyTorch):
/// @code
///   optim::AdamW opt(optim::weight_decay_groups(unet, 0.01), {.lr = 1e-4});
/// @endcode
/// A parameter goes to "no_decay" when it has fewer than two dimensions (biases, GroupNorm and
/// LayerNorm weights) or when its owning module's name contains "norm". Frozen parameters
/// (requires_grad off) and repeated aliases of one tensor are left out.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/nn/module.hpp"
#include "diffuse/optim/optimizer.hpp"

namespace diffuse::optim {

/// True for the parameters that conventionally get no weight decay.
inline bool is_no_decay_parameter(const std::string& name, const Shape& shape) {
  if (shape.size() < 2) return true;
  const auto dot = name.rfind('.');
  const std::string owner = dot == std::string::npos ? "" : name.substr(0, dot);
  const auto last = owner.rfind('.');
  const std::string module = last == std::string::npos ? owner : owner.substr(last + 1);
  return module.find("norm") != std::string::npos;
}

/// Splits named parameters into {"decay" with `weight_decay`, "no_decay" with 0}.
template <class T>
DIFFUSE_COLD std::vector<ParamGroup<T>> weight_decay_groups(
    const std::vector<std::pair<std::string, Tensor<T>>>& named, double weight_decay) {
  if (!(weight_decay >= 0))
    throw Error("weight_decay_groups: weight_decay must be non-negative, got " +
                std::to_string(weight_decay));
  ParamGroup<T> decay{{}, std::nullopt, weight_decay, "decay"}, no_decay{{}, std::nullopt, 0.0, "no_decay"};
  std::set<const void*> seen;
  for (const auto& [name, p] : named) {
    if (!p.defined() || !p.requires_grad() || !seen.insert(p.impl().get()).second) continue;
    (is_no_decay_parameter(name, p.shape()) ? no_decay : decay).params.push_back(p);
  }
  return {decay, no_decay};
}

/// The same over module.named_parameters().
template <class T>
DIFFUSE_COLD std::vector<ParamGroup<T>> weight_decay_groups(const nn::Module<T>& module,
                                                            double weight_decay) {
  return weight_decay_groups(module.named_parameters(), weight_decay);
}

}  // namespace diffuse::optim
