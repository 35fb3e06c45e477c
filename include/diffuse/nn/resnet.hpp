/// @file
/// diffusers' ResnetBlock2D: norm1 -> act -> [up/down] -> conv1 -> (+ time embedding) -> norm2
/// [-> scale/shift by the time embedding] -> act -> dropout -> conv2, plus the (1x1 conv_shortcut'ed)
/// input, divided by output_scale_factor. time_embedding_norm "default" adds time_emb_proj(act(temb))
/// per channel before norm2; "scale_shift" projects to 2C and applies x * (1 + scale) + shift after it.
#pragma once
#include <optional>

#include "diffuse/autograd/channel_ops.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/nn/activation.hpp"
#include "diffuse/nn/group_norm.hpp"
#include "diffuse/nn/linear.hpp"
#include "diffuse/nn/resample.hpp"

namespace diffuse::nn {

/// Options of ResnetBlock2D, named as diffusers' ResnetBlock2D arguments.
struct ResnetBlock2DOptions {
  /// Input channels (required).
  std::int64_t in_channels = 0;
  std::int64_t out_channels = 0;     ///< 0: same as in_channels
  std::int64_t temb_channels = 512;  ///< 0: no time embedding input
  /// Groups of norm1, and of norm2 unless groups_out is set.
  std::int64_t groups = 32;
  std::int64_t groups_out = 0;  ///< 0: same as groups
  /// Epsilon of both GroupNorms.
  double eps = 1e-6;
  /// Dropout probability before conv2, in training mode.
  double dropout = 0.0;
  /// Activation name (see activation_from_name).
  std::string non_linearity = "swish";
  std::string time_embedding_norm = "default";  ///< "default" or "scale_shift"
  /// The sum of the shortcut and the residual is divided by this; must be non-zero.
  double output_scale_factor = 1.0;
  bool up = false;    ///< nearest 2x upsampling of both paths after the first activation
  bool down = false;  ///< 2x2 average pooling of both paths after the first activation
  std::optional<bool> use_in_shortcut = std::nullopt;  ///< default: when in_channels != out_channels
  /// Whether conv_shortcut has a bias.
  bool conv_shortcut_bias = true;
};

/// diffusers' ResnetBlock2D (see the file comment); parameter names as in diffusers.
template <class T = float>
class ResnetBlock2D : public Module<T> {
 public:
  /// Draws the initial weights from `gen`. diffuse::Error for a channel count that is not positive, an
  /// unknown time_embedding_norm or activation, up and down together, or output_scale_factor 0.
  explicit ResnetBlock2D(const ResnetBlock2DOptions& o, Generator& gen = default_generator());

  /// x [N, in_channels, H, W], temb [N, temb_channels] (undefined when the block has no time input).
  Tensor<T> operator()(const Tensor<T>& x, const Tensor<T>& temb = {}) const;

  /// Input channels.
  std::int64_t in_channels() const { return in_channels_; }
  /// Output channels.
  std::int64_t out_channels() const { return out_channels_; }

  /// The normalisations before conv1 and conv2.
  std::shared_ptr<GroupNorm<T>> norm1, norm2;
  /// The two 3x3 convolutions, and the 1x1 convolution of the input (null when the input is added as it is).
  std::shared_ptr<Conv2d<T>> conv1, conv2, conv_shortcut;
  /// Projection of the time embedding; null when temb_channels is 0.
  std::shared_ptr<Linear<T>> time_emb_proj;
  /// Resampling of both paths when `up` is set (no parameters; not registered); null otherwise.
  std::shared_ptr<Upsample2D<T>> upsample;
  /// Resampling of both paths when `down` is set (no parameters; not registered); null otherwise.
  std::shared_ptr<Downsample2D<T>> downsample;

 private:
  Activation act_;
  double dropout_, output_scale_factor_;
  std::int64_t in_channels_ = 0, out_channels_ = 0;
  bool scale_shift_ = false;
};

template <class T>
DIFFUSE_COLD ResnetBlock2D<T>::ResnetBlock2D(const ResnetBlock2DOptions& o, Generator& gen)
    : act_(activation_from_name(o.non_linearity)),
      dropout_(o.dropout),
      output_scale_factor_(o.output_scale_factor) {
  in_channels_ = o.in_channels;
  out_channels_ = o.out_channels ? o.out_channels : o.in_channels;
  if (in_channels_ < 1 || out_channels_ < 1)
    throw Error("ResnetBlock2D: channel counts must be positive, got " + std::to_string(in_channels_) +
                " -> " + std::to_string(out_channels_));
  if (o.time_embedding_norm == "scale_shift")
    scale_shift_ = true;
  else if (o.time_embedding_norm != "default")
    throw Error("ResnetBlock2D: unsupported time_embedding_norm '" + o.time_embedding_norm +
                "' (accepted: default, scale_shift)");
  if (o.up && o.down) throw Error("ResnetBlock2D: up and down cannot both be set");
  if (!(o.output_scale_factor != 0)) throw Error("ResnetBlock2D: output_scale_factor must be non-zero");
  const std::int64_t groups_out = o.groups_out ? o.groups_out : o.groups;
  norm1 = this->register_module("norm1", std::make_shared<GroupNorm<T>>(o.groups, in_channels_, o.eps));
  conv1 = this->register_module(
      "conv1", std::make_shared<Conv2d<T>>(in_channels_, out_channels_, 3, Conv2dOptions{.padding = 1}, gen));
  if (o.temb_channels > 0)
    time_emb_proj = this->register_module(
        "time_emb_proj", std::make_shared<Linear<T>>(
                             o.temb_channels, scale_shift_ ? 2 * out_channels_ : out_channels_, true, gen));
  norm2 = this->register_module("norm2", std::make_shared<GroupNorm<T>>(groups_out, out_channels_, o.eps));
  conv2 = this->register_module("conv2", std::make_shared<Conv2d<T>>(out_channels_, out_channels_, 3,
                                                                     Conv2dOptions{.padding = 1}, gen));
  if (o.up) upsample = std::make_shared<Upsample2D<T>>(in_channels_, false);
  if (o.down) downsample = std::make_shared<Downsample2D<T>>(in_channels_, false);
  if (o.use_in_shortcut.value_or(in_channels_ != out_channels_))
    conv_shortcut = this->register_module(
        "conv_shortcut", std::make_shared<Conv2d<T>>(in_channels_, out_channels_, 1,
                                                     Conv2dOptions{.bias = o.conv_shortcut_bias}, gen));
}

template <class T>
auto ResnetBlock2D<T>::operator()(const Tensor<T>& x, const Tensor<T>& temb) const -> Tensor<T> {
  if (x.dim() != 4 || x.size(1) != in_channels_)
    throw Error("ResnetBlock2D: expected input [N, " + std::to_string(in_channels_) + ", H, W], got " +
                to_string(x.shape()));
  Tensor<T> input = x;
  Tensor<T> h = apply_activation(act_, (*norm1)(x));
  if (upsample) {
    input = (*upsample)(input);
    h = (*upsample)(h);
  } else if (downsample) {
    input = (*downsample)(input);
    h = (*downsample)(h);
  }
  h = (*conv1)(h);
  Tensor<T> t;
  if (time_emb_proj) {
    if (!temb.defined()) throw Error("ResnetBlock2D: this block needs a time embedding, none was given");
    if (temb.dim() != 2 || temb.size(0) != x.size(0))
      throw Error("ResnetBlock2D: time embedding of shape " + to_string(temb.shape()) + " for a batch of " +
                  std::to_string(x.size(0)));
    t = (*time_emb_proj)(apply_activation(act_, temb));
  }
  if (t.defined() && !scale_shift_) h = add_per_channel(h, t);
  h = (*norm2)(h);
  if (t.defined() && scale_shift_) h = diffuse::scale_shift(h, t);
  h = apply_activation(act_, h);
  if (dropout_ > 0) h = functional::dropout(h, dropout_, this->is_training(), this->generator());
  h = (*conv2)(h);
  if (conv_shortcut) input = (*conv_shortcut)(input);
  Tensor<T> out = input + h;
  if (output_scale_factor_ == 1.0) return out;
  const T f = static_cast<T>(output_scale_factor_);
  return div_scalar(out, f);
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_NN_RESNET_TEMPLATES(X, T) X(class ResnetBlock2D<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_NN_RESNET_TEMPLATES)

}  // namespace diffuse::nn
