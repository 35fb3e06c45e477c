/// @file
/// 2-D convolution layer (torch.nn.Conv2d): parameters "weight" [out, in, k, k] and "bias" [out].
#pragma once
#include "diffuse/core/precompiled.hpp"
#include "diffuse/nn/functional.hpp"
#include "diffuse/nn/init.hpp"
#include "diffuse/nn/module.hpp"

namespace diffuse::nn {

/// Options of Conv2d (torch.nn.Conv2d's stride, padding and bias).
struct Conv2dOptions {
  /// Step between kernel positions, on both axes.
  std::int64_t stride = 1;
  /// Zeros added on every side.
  std::int64_t padding = 0;
  /// Whether the layer has a bias.
  bool bias = true;
};

/// 2-D convolution with a square kernel (torch.nn.Conv2d).
template <class T = float>
class Conv2d : public Module<T> {
 public:
  /// Initialises weight and bias as PyTorch does, drawing from `gen`. diffuse::Error when a size is not
  /// positive.
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
         Conv2dOptions options = {}, Generator& gen = default_generator());
  /// x [N, in_channels, H, W] -> [N, out_channels, H', W'].
  Tensor<T> operator()(const Tensor<T>& x) const {
    return functional::conv2d(x, weight, bias, options_.stride, options_.padding);
  }

  /// weight [out, in, k, k]; bias [out], undefined without bias.
  Tensor<T> weight, bias;

 private:
  Conv2dOptions options_;
};

template <class T>
DIFFUSE_COLD Conv2d<T>::Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
                               Conv2dOptions options, Generator& gen)
    : options_(options) {
  if (in_channels < 1 || out_channels < 1 || kernel_size < 1)
    throw Error("Conv2d: channels and kernel size must be positive, got " + std::to_string(in_channels) +
                " -> " + std::to_string(out_channels) + ", kernel " + std::to_string(kernel_size));
  const std::int64_t fan_in = in_channels * kernel_size * kernel_size;
  weight = this->register_parameter(
      "weight", init::default_uniform<T>({out_channels, in_channels, kernel_size, kernel_size}, fan_in, gen));
  if (options.bias)
    bias = this->register_parameter("bias", init::default_uniform<T>({out_channels}, fan_in, gen));
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_NN_CONV2D_TEMPLATES(X, T) X(class Conv2d<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_NN_CONV2D_TEMPLATES)

}  // namespace diffuse::nn
