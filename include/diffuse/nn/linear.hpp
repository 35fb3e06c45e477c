/// @file
/// Linear layer: y = x W^T + b (torch.nn.Linear), parameters "weight" [out, in] and "bias" [out].
#pragma once
#include "diffuse/autograd/linalg.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/nn/init.hpp"
#include "diffuse/nn/module.hpp"

namespace diffuse::nn {

/// Fully connected layer (torch.nn.Linear).
template <class T = float>
class Linear : public Module<T> {
 public:
  /// Initialises weight and bias as PyTorch does, drawing from `gen`. diffuse::Error when a size is not
  /// positive.
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true,
         Generator& gen = default_generator())
      : in_features_(in_features), out_features_(out_features) {
    if (in_features < 1 || out_features < 1)
      throw Error("Linear: features must be positive, got " + std::to_string(in_features) + " -> " +
                  std::to_string(out_features));
    weight = this->register_parameter(
        "weight", init::default_uniform<T>({out_features, in_features}, in_features, gen));
    if (bias)
      this->bias =
          this->register_parameter("bias", init::default_uniform<T>({out_features}, in_features, gen));
  }
  /// x [..., in_features] -> [..., out_features].
  Tensor<T> operator()(const Tensor<T>& x) const { return linear(x, weight, bias); }
  /// Input size.
  std::int64_t in_features() const { return in_features_; }
  /// Output size.
  std::int64_t out_features() const { return out_features_; }

  /// weight [out_features, in_features]; bias [out_features], undefined without bias.
  Tensor<T> weight, bias;

 private:
  std::int64_t in_features_, out_features_;
};

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_NN_LINEAR_TEMPLATES(X, T) X(class Linear<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_NN_LINEAR_TEMPLATES)

}  // namespace diffuse::nn
