/// @file
/// Group normalisation layer (torch.nn.GroupNorm): "weight" (ones) and "bias" (zeros) per channel.
#pragma once
#include "diffuse/core/precompiled.hpp"
#include "diffuse/nn/functional.hpp"
#include "diffuse/nn/module.hpp"

namespace diffuse::nn {

/// Group normalisation layer (torch.nn.GroupNorm).
template <class T = float>
class GroupNorm : public Module<T> {
 public:
  /// Without `affine` the layer has no weight and bias. diffuse::Error when num_channels is not a
  /// multiple of num_groups.
  GroupNorm(std::int64_t num_groups, std::int64_t num_channels, double eps = 1e-5, bool affine = true);
  /// x [N, num_channels, ...] -> same shape.
  Tensor<T> operator()(const Tensor<T>& x) const {
    return functional::group_norm(x, num_groups_, weight, bias, eps_);
  }

  /// Per-channel scale and shift [num_channels]; undefined without affine.
  Tensor<T> weight, bias;

 private:
  std::int64_t num_groups_;
  T eps_;
};

template <class T>
DIFFUSE_COLD GroupNorm<T>::GroupNorm(std::int64_t num_groups, std::int64_t num_channels, double eps,
                                     bool affine)
    : num_groups_(num_groups), eps_(static_cast<T>(eps)) {
  if (num_groups < 1 || num_channels % num_groups != 0)
    throw Error("GroupNorm: " + std::to_string(num_channels) + " channels cannot be split into " +
                std::to_string(num_groups) + " groups");
  if (affine) {
    weight = this->register_parameter("weight", Tensor<T>::ones({num_channels}));
    bias = this->register_parameter("bias", Tensor<T>::zeros({num_channels}));
  }
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_NN_GROUP_NORM_TEMPLATES(X, T) X(class GroupNorm<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_NN_GROUP_NORM_TEMPLATES)

}  // namespace diffuse::nn
