/// @file
/// diffusers' Downsample2D and Upsample2D. Downsample2D halves H and W with a stride-2 3x3 convolution
/// ("conv.weight"/"conv.bias"; padding = downsample_padding, and padding 0 first pads one zero row and
/// column at the bottom/right like diffusers) or, without a convolution, a 2x2 average pool.
/// Upsample2D doubles H and W by nearest-neighbour repetition, then (optionally) a 3x3 convolution.
#pragma once
#include "diffuse/core/precompiled.hpp"
#include "diffuse/nn/conv2d.hpp"

namespace diffuse::nn {

namespace functional {
/// Zero-pads one row at the bottom and one column at the right (F.pad(x, (0, 1, 0, 1))).
template <class T>
Tensor<T> pad_bottom_right(const Tensor<T>& x) {
  check_image_batch(x, "pad_bottom_right");
  const std::int64_t P = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  Tensor<T> y = Tensor<T>::empty({x.size(0), x.size(1), H + 1, W + 1});
  const T* px = x.data();
  T* py = y.data();
  diffuse::detail::parallel_for_items(P, [&](std::int64_t p) {
    for (std::int64_t i = 0; i < H; ++i) {
      std::copy(px + (p * H + i) * W, px + (p * H + i + 1) * W, py + (p * (H + 1) + i) * (W + 1));
      py[(p * (H + 1) + i) * (W + 1) + W] = T(0);
    }
    std::fill(py + (p * (H + 1) + H) * (W + 1), py + (p + 1) * (H + 1) * (W + 1), T(0));
  });
  return diffuse::detail::record(y, {&x}, "pad_bottom_right", [s = x.shape(), P, H, W](const Tensor<T>& g) {
    Tensor<T> gx = Tensor<T>::empty(s);
    const T* pg = g.data();
    T* pgx = gx.data();
    diffuse::detail::parallel_for_items(P, [&](std::int64_t p) {
      for (std::int64_t i = 0; i < H; ++i)
        std::copy(pg + (p * (H + 1) + i) * (W + 1), pg + (p * (H + 1) + i) * (W + 1) + W,
                  pgx + (p * H + i) * W);
    });
    return std::vector<Tensor<T>>{gx};
  });
}
}  // namespace functional

/// diffusers' Downsample2D: halves H and W (see the file comment).
template <class T = float>
class Downsample2D : public Module<T> {
 public:
  /// out_channels 0 means `channels`. Without a convolution the channel count cannot change.
  Downsample2D(std::int64_t channels, bool use_conv = false, std::int64_t out_channels = 0,
               std::int64_t padding = 1, Generator& gen = default_generator());

  /// x [N, channels, H, W] -> [N, out_channels, H', W'] with H and W halved.
  Tensor<T> operator()(const Tensor<T>& x) const;

  /// The 3x3 stride-2 convolution ("conv"); null without use_conv.
  std::shared_ptr<Conv2d<T>> conv;

 private:
  std::int64_t channels_, out_channels_;
  bool use_conv_;
  std::int64_t padding_;
};

template <class T>
DIFFUSE_COLD Downsample2D<T>::Downsample2D(std::int64_t channels, bool use_conv, std::int64_t out_channels,
                                           std::int64_t padding, Generator& gen)
    : channels_(channels),
      out_channels_(out_channels ? out_channels : channels),
      use_conv_(use_conv),
      padding_(padding) {
  // diffusers uses 0 or 1. From 3 on, a 3x3 convolution has outputs that see only padding, and
  // the padding grows the image: downsample_padding 8885 in a config made an 8x8 input 8,894
  // pixels wide after the "downsampling" (found by fuzz_unet_config, 13 s per forward).
  if (padding < 0 || padding > 2)
    throw Error("Downsample2D: padding must be 0, 1 or 2, got " + std::to_string(padding));
  if (use_conv)
    conv = this->register_module(
        "conv", std::make_shared<Conv2d<T>>(channels, out_channels_, 3,
                                            Conv2dOptions{.stride = 2, .padding = padding}, gen));
  else if (out_channels_ != channels)
    throw Error("Downsample2D: average pooling keeps the channel count, but " + std::to_string(channels) +
                " -> " + std::to_string(out_channels_) + " was asked");
}

template <class T>
auto Downsample2D<T>::operator()(const Tensor<T>& x) const -> Tensor<T> {
  if (x.dim() != 4 || x.size(1) != channels_)
    throw Error("Downsample2D: expected input [N, " + std::to_string(channels_) + ", H, W], got " +
                to_string(x.shape()));
  if (!use_conv_) return functional::avg_pool2x(x);
  if (padding_ == 0) return (*conv)(functional::pad_bottom_right(x));
  return (*conv)(x);
}

/// diffusers' Upsample2D: doubles H and W by nearest-neighbour repetition, then an optional 3x3 convolution.
template <class T = float>
class Upsample2D : public Module<T> {
 public:
  /// out_channels 0 means `channels`. Without a convolution the channel count cannot change
  /// (diffuse::Error).
  Upsample2D(std::int64_t channels, bool use_conv = false, std::int64_t out_channels = 0,
             Generator& gen = default_generator());

  /// x [N, channels, H, W] -> [N, out_channels, 2H, 2W].
  Tensor<T> operator()(const Tensor<T>& x) const;

  /// The 3x3 convolution ("conv"); null without use_conv.
  std::shared_ptr<Conv2d<T>> conv;

 private:
  std::int64_t channels_;
  bool use_conv_;
};

template <class T>
DIFFUSE_COLD Upsample2D<T>::Upsample2D(std::int64_t channels, bool use_conv, std::int64_t out_channels,
                                       Generator& gen)
    : channels_(channels), use_conv_(use_conv) {
  const std::int64_t out = out_channels ? out_channels : channels;
  if (use_conv)
    conv = this->register_module(
        "conv", std::make_shared<Conv2d<T>>(channels, out, 3, Conv2dOptions{.padding = 1}, gen));
  else if (out != channels)
    throw Error("Upsample2D: without a convolution the channel count cannot change (" +
                std::to_string(channels) + " -> " + std::to_string(out) + ")");
}

template <class T>
auto Upsample2D<T>::operator()(const Tensor<T>& x) const -> Tensor<T> {
  if (x.dim() != 4 || x.size(1) != channels_)
    throw Error("Upsample2D: expected input [N, " + std::to_string(channels_) + ", H, W], got " +
                to_string(x.shape()));
  Tensor<T> y = functional::upsample_nearest2x(x);
  return use_conv_ ? (*conv)(y) : y;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_NN_RESAMPLE_TEMPLATES(X, T) \
  X(class Downsample2D<T>)                  \
  X(class Upsample2D<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_NN_RESAMPLE_TEMPLATES)

}  // namespace diffuse::nn
