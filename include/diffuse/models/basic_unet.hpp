/// @file
/// BasicUNet from the course's "Diffusion Models from Scratch" notebook: three 5x5 convolutions
/// down (with 2x2 max-pooling between them), three up (nearest upsampling, skip connections
/// added), SiLU everywhere. 309,057 parameters with one input and one output channel.
/// Also corrupt(), the notebook's noising: x * (1 - amount) + uniform_noise * amount.
#pragma once
#include "diffuse/core/precompiled.hpp"
#include "diffuse/nn/conv2d.hpp"

namespace diffuse::models {

/// The notebook's BasicUNet (see the file comment); parameters "down_layers.i.*" and "up_layers.i.*".
template <class T = float>
class BasicUNet : public nn::Module<T> {
 public:
  /// Draws the initial weights from `gen`.
  explicit BasicUNet(std::int64_t in_channels = 1, std::int64_t out_channels = 1,
                     Generator& gen = default_generator());

  /// x [N, in_channels, H, W] with H and W divisible by 4.
  Tensor<T> operator()(const Tensor<T>& input) const;

 private:
  std::shared_ptr<nn::ModuleList<nn::Conv2d<T>>> down_layers_, up_layers_;
};

template <class T>
DIFFUSE_COLD BasicUNet<T>::BasicUNet(std::int64_t in_channels, std::int64_t out_channels, Generator& gen) {
  down_layers_ = this->register_module("down_layers", std::make_shared<nn::ModuleList<nn::Conv2d<T>>>());
  up_layers_ = this->register_module("up_layers", std::make_shared<nn::ModuleList<nn::Conv2d<T>>>());
  const nn::Conv2dOptions same{.padding = 2};
  for (auto [in, out] : {std::pair{in_channels, std::int64_t{32}}, {32, 64}, {64, 64}})
    down_layers_->push_back(std::make_shared<nn::Conv2d<T>>(in, out, 5, same, gen));
  for (auto [in, out] : {std::pair{std::int64_t{64}, std::int64_t{64}}, {64, 32}, {32, out_channels}})
    up_layers_->push_back(std::make_shared<nn::Conv2d<T>>(in, out, 5, same, gen));
}

template <class T>
auto BasicUNet<T>::operator()(const Tensor<T>& input) const -> Tensor<T> {
  if (input.dim() != 4 || input.size(2) % 4 != 0 || input.size(3) % 4 != 0)
    throw Error("BasicUNet: expected input [N, C, H, W] with H and W divisible by 4, got " +
                to_string(input.shape()));
  Tensor<T> x = input;
  std::vector<Tensor<T>> skips;
  for (std::size_t i = 0; i < down_layers_->size(); ++i) {
    x = silu((*down_layers_)[i](x));
    if (i < 2) {
      skips.push_back(x);
      x = nn::functional::max_pool2x(x);
    }
  }
  for (std::size_t i = 0; i < up_layers_->size(); ++i) {
    if (i > 0) {
      x = nn::functional::upsample_nearest2x(x) + skips.back();
      skips.pop_back();
    }
    x = silu((*up_layers_)[i](x));
  }
  return x;
}

/// The notebook's corruption: mixes each image with uniform noise by its own amount in [0, 1].
/// x [N, ...], amount [N].
template <class T>
Tensor<T> corrupt(const Tensor<T>& x, const Tensor<T>& amount, Generator& gen) {
  if (amount.dim() != 1 || x.dim() < 1 || amount.size(0) != x.size(0))
    throw Error("corrupt: amount of shape " + to_string(amount.shape()) + " needs one value per image of " +
                to_string(x.shape()));
  Tensor<T> noise = gen.rand<T>(x.shape());
  Shape per_image(static_cast<std::size_t>(x.dim()), 1);
  per_image[0] = x.size(0);
  Tensor<T> a = amount.reshape(per_image);
  return x * (T(1) - a) + noise * a;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_MODELS_BASIC_UNET_TEMPLATES(X, T) X(class BasicUNet<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_MODELS_BASIC_UNET_TEMPLATES)

}  // namespace diffuse::models
