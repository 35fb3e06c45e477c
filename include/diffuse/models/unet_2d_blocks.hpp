/// @file
/// The blocks UNet2DModel is made of, as diffusers builds them (same submodule names):
///   DownBlock2D      "resnets.i" (+ "attentions.i" for AttnDownBlock2D), then "downsamplers.0"
///                    (Downsample2D conv, or a ResnetBlock2D with down=True for downsample_type "resnet");
///   UNetMidBlock2D   "resnets.0", then ("attentions.i", "resnets.i+1") pairs;
///   UpBlock2D        "resnets.i" (+ "attentions.i" for AttnUpBlock2D) each taking a skip connection
///                    concatenated on the channels, then "upsamplers.0" (Upsample2D conv or
///                    ResnetBlock2D up).
/// DownBlock2D / UpBlock2D serve both the plain and the attention variants (options.attention).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "diffuse/autograd/shape_ops.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/nn/attention.hpp"
#include "diffuse/nn/resample.hpp"
#include "diffuse/nn/resnet.hpp"

namespace diffuse::models {

/// What every block shares (names follow diffusers' get_down_block/get_up_block arguments).
struct UNetBlockOptions {
  /// Number of resnets (and attentions) in the block.
  std::int64_t num_layers = 1;
  /// Down blocks: channels into the block. Up blocks: channels of the last skip connection.
  std::int64_t in_channels = 0;
  /// Channels out of every resnet.
  std::int64_t out_channels = 0;
  std::int64_t prev_output_channel = 0;  ///< up blocks: channels coming from the block below
  /// Size of the time embedding.
  std::int64_t temb_channels = 0;
  /// Dropout probability of the resnets.
  double dropout = 0.0;
  /// GroupNorm epsilon of the resnets and attentions.
  double resnet_eps = 1e-6;
  /// Activation name of the resnets.
  std::string resnet_act_fn = "swish";
  /// GroupNorm groups of the resnets and attentions.
  std::int64_t resnet_groups = 32;
  /// "default" or "scale_shift" (ResnetBlock2DOptions::time_embedding_norm).
  std::string resnet_time_scale_shift = "default";
  /// Output divisor of the resnets and attentions.
  double output_scale_factor = 1.0;
  bool attention = false;               ///< AttnDownBlock2D / AttnUpBlock2D
  std::int64_t attention_head_dim = 1;  ///< channels per head
  bool add_downsample = false;          ///< down blocks
  /// Padding of the Downsample2D convolution.
  std::int64_t downsample_padding = 1;
  std::string downsample_type = "conv";  ///< "conv" or "resnet" (attention blocks only, as in diffusers)
  bool add_upsample = false;             ///< up blocks
  std::string upsample_type = "conv";    ///< "conv" or "resnet" (attention blocks only)
};

}  // namespace diffuse::models

namespace diffuse::detail {
inline nn::ResnetBlock2DOptions unet_resnet_options(const models::UNetBlockOptions& o, std::int64_t in,
                                                    std::int64_t out) {
  return {.in_channels = in,
          .out_channels = out,
          .temb_channels = o.temb_channels,
          .groups = o.resnet_groups,
          .eps = o.resnet_eps,
          .dropout = o.dropout,
          .non_linearity = o.resnet_act_fn,
          .time_embedding_norm = o.resnet_time_scale_shift,
          .output_scale_factor = o.output_scale_factor};
}

inline nn::AttentionOptions unet_attention_options(std::int64_t channels, std::int64_t head_dim,
                                                   std::optional<std::int64_t> groups, double eps,
                                                   double rescale, const char* block) {
  if (head_dim < 1 || head_dim > channels)
    throw Error(std::string(block) + ": attention_head_dim " + std::to_string(head_dim) + " does not fit " +
                std::to_string(channels) + " channels (need 1 <= attention_head_dim <= channels)");
  return {.query_dim = channels,
          .heads = channels / head_dim,
          .dim_head = head_dim,
          .norm_num_groups = groups,
          .eps = eps,
          .rescale_output_factor = rescale,
          .residual_connection = true,
          .upcast_softmax = true};
}

inline void check_unet_resample_type(const std::string& type, const char* key) {
  if (type != "conv" && type != "resnet")
    throw Error(std::string("unsupported ") + key + " '" + type + "' (accepted: conv, resnet)");
}
}  // namespace diffuse::detail

namespace diffuse::models {

/// diffusers' DownBlock2D, or AttnDownBlock2D when options.attention is set (see the file comment).
template <class T = float>
class DownBlock2D : public nn::Module<T> {
 public:
  /// Draws the initial weights from `gen`. diffuse::Error when num_layers is not positive, downsample_type
  /// is unknown, or attention_head_dim does not fit out_channels.
  explicit DownBlock2D(const UNetBlockOptions& o, Generator& gen = default_generator());

  /// Runs the block; appends every output diffusers keeps for the skip connections to `res_samples`.
  Tensor<T> operator()(const Tensor<T>& x, const Tensor<T>& temb, std::vector<Tensor<T>>& res_samples) const;

  /// "resnets.i".
  std::shared_ptr<nn::ModuleList<nn::ResnetBlock2D<T>>> resnets;
  std::shared_ptr<nn::ModuleList<nn::Attention<T>>> attentions;  ///< null without attention
  /// "downsamplers.0" when it is a Downsample2D; null otherwise.
  std::shared_ptr<nn::ModuleList<nn::Downsample2D<T>>> conv_downsamplers;
  /// "downsamplers.0" when it is a ResnetBlock2D (downsample_type "resnet"); null otherwise.
  std::shared_ptr<nn::ModuleList<nn::ResnetBlock2D<T>>> resnet_downsamplers;
};

template <class T>
DIFFUSE_COLD DownBlock2D<T>::DownBlock2D(const UNetBlockOptions& o, Generator& gen) {
  const char* name = o.attention ? "AttnDownBlock2D" : "DownBlock2D";
  if (o.num_layers < 1) throw Error(std::string(name) + ": num_layers must be positive");
  if (o.attention)
    attentions = this->register_module("attentions", std::make_shared<nn::ModuleList<nn::Attention<T>>>());
  resnets = this->register_module("resnets", std::make_shared<nn::ModuleList<nn::ResnetBlock2D<T>>>());
  for (std::int64_t i = 0; i < o.num_layers; ++i) {
    resnets->push_back(std::make_shared<nn::ResnetBlock2D<T>>(
        diffuse::detail::unet_resnet_options(o, i == 0 ? o.in_channels : o.out_channels, o.out_channels),
        gen));
    if (o.attention)
      attentions->push_back(std::make_shared<nn::Attention<T>>(
          diffuse::detail::unet_attention_options(o.out_channels, o.attention_head_dim, o.resnet_groups,
                                                  o.resnet_eps, o.output_scale_factor, name),
          gen));
  }
  if (o.add_downsample) {
    // DownBlock2D always downsamples with a convolution; AttnDownBlock2D follows downsample_type.
    const std::string type = o.attention ? o.downsample_type : "conv";
    diffuse::detail::check_unet_resample_type(type, "downsample_type");
    if (type == "conv") {
      conv_downsamplers =
          this->register_module("downsamplers", std::make_shared<nn::ModuleList<nn::Downsample2D<T>>>());
      conv_downsamplers->push_back(std::make_shared<nn::Downsample2D<T>>(o.out_channels, true, o.out_channels,
                                                                         o.downsample_padding, gen));
    } else {
      resnet_downsamplers =
          this->register_module("downsamplers", std::make_shared<nn::ModuleList<nn::ResnetBlock2D<T>>>());
      auto ro = diffuse::detail::unet_resnet_options(o, o.out_channels, o.out_channels);
      ro.down = true;
      resnet_downsamplers->push_back(std::make_shared<nn::ResnetBlock2D<T>>(ro, gen));
    }
  }
}

template <class T>
auto DownBlock2D<T>::operator()(const Tensor<T>& x, const Tensor<T>& temb,
                                std::vector<Tensor<T>>& res_samples) const -> Tensor<T> {
  Tensor<T> h = x;
  for (std::size_t i = 0; i < resnets->size(); ++i) {
    h = (*resnets)[i](h, temb);
    if (attentions) h = (*attentions)[i](h);
    res_samples.push_back(h);
  }
  if (conv_downsamplers) {
    h = (*conv_downsamplers)[0](h);
    res_samples.push_back(h);
  } else if (resnet_downsamplers) {
    h = (*resnet_downsamplers)[0](h, temb);
    res_samples.push_back(h);
  }
  return h;
}

/// Options of UNetMidBlock2D (diffusers' UNetMidBlock2D arguments).
struct UNetMidBlockOptions {
  /// Channels in and out.
  std::int64_t in_channels = 0;
  /// Size of the time embedding.
  std::int64_t temb_channels = 0;
  /// Dropout probability of the resnets.
  double dropout = 0.0;
  /// (attention, resnet) pairs after the first resnet.
  std::int64_t num_layers = 1;
  /// GroupNorm epsilon of the resnets and attentions.
  double resnet_eps = 1e-6;
  /// "default" or "scale_shift".
  std::string resnet_time_scale_shift = "default";
  /// Activation name of the resnets.
  std::string resnet_act_fn = "swish";
  /// GroupNorm groups of the resnets.
  std::int64_t resnet_groups = 32;
  std::optional<std::int64_t> attn_groups =
      std::nullopt;  // default: resnet_groups with "default" time scale shift, else none
  /// Whether the block has attentions.
  bool add_attention = true;
  /// Channels per attention head.
  std::int64_t attention_head_dim = 1;
  /// Output divisor of the resnets and attentions.
  double output_scale_factor = 1.0;
};

/// diffusers' UNetMidBlock2D: a resnet, then (attention, resnet) pairs, all at in_channels.
template <class T = float>
class UNetMidBlock2D : public nn::Module<T> {
 public:
  /// Draws the initial weights from `gen`. diffuse::Error when attention_head_dim does not fit in_channels.
  explicit UNetMidBlock2D(const UNetMidBlockOptions& o, Generator& gen = default_generator());

  /// x [N, in_channels, H, W] and temb [N, temb_channels] -> same shape as x.
  Tensor<T> operator()(const Tensor<T>& x, const Tensor<T>& temb) const;

  std::shared_ptr<nn::ModuleList<nn::Attention<T>>> attentions;  ///< null without attention
  /// "resnets.i".
  std::shared_ptr<nn::ModuleList<nn::ResnetBlock2D<T>>> resnets;
};

template <class T>
DIFFUSE_COLD UNetMidBlock2D<T>::UNetMidBlock2D(const UNetMidBlockOptions& o, Generator& gen) {
  UNetBlockOptions b{.in_channels = o.in_channels,
                     .out_channels = o.in_channels,
                     .temb_channels = o.temb_channels,
                     .dropout = o.dropout,
                     .resnet_eps = o.resnet_eps,
                     .resnet_act_fn = o.resnet_act_fn,
                     .resnet_groups = o.resnet_groups,
                     .resnet_time_scale_shift = o.resnet_time_scale_shift,
                     .output_scale_factor = o.output_scale_factor};
  std::optional<std::int64_t> attn_groups = o.attn_groups;
  if (!attn_groups && o.resnet_time_scale_shift == "default") attn_groups = o.resnet_groups;
  if (o.add_attention)
    attentions = this->register_module("attentions", std::make_shared<nn::ModuleList<nn::Attention<T>>>());
  resnets = this->register_module("resnets", std::make_shared<nn::ModuleList<nn::ResnetBlock2D<T>>>());
  resnets->push_back(std::make_shared<nn::ResnetBlock2D<T>>(
      diffuse::detail::unet_resnet_options(b, o.in_channels, o.in_channels), gen));
  for (std::int64_t i = 0; i < o.num_layers; ++i) {
    if (o.add_attention)
      attentions->push_back(std::make_shared<nn::Attention<T>>(
          diffuse::detail::unet_attention_options(o.in_channels, o.attention_head_dim, attn_groups,
                                                  o.resnet_eps, o.output_scale_factor, "UNetMidBlock2D"),
          gen));
    resnets->push_back(std::make_shared<nn::ResnetBlock2D<T>>(
        diffuse::detail::unet_resnet_options(b, o.in_channels, o.in_channels), gen));
  }
}

template <class T>
auto UNetMidBlock2D<T>::operator()(const Tensor<T>& x, const Tensor<T>& temb) const -> Tensor<T> {
  Tensor<T> h = (*resnets)[0](x, temb);
  for (std::size_t i = 1; i < resnets->size(); ++i) {
    if (attentions) h = (*attentions)[i - 1](h);
    h = (*resnets)[i](h, temb);
  }
  return h;
}

/// diffusers' UpBlock2D, or AttnUpBlock2D when options.attention is set (see the file comment).
template <class T = float>
class UpBlock2D : public nn::Module<T> {
 public:
  /// Draws the initial weights from `gen`. diffuse::Error when num_layers is not positive, upsample_type
  /// is unknown, or attention_head_dim does not fit out_channels.
  explicit UpBlock2D(const UNetBlockOptions& o, Generator& gen = default_generator());

  /// How many skip connections the block consumes.
  std::size_t num_skips() const { return resnets->size(); }

  /// Consumes num_skips() tensors from the back of `res_samples`.
  Tensor<T> operator()(const Tensor<T>& x, std::vector<Tensor<T>>& res_samples, const Tensor<T>& temb) const;

  std::shared_ptr<nn::ModuleList<nn::Attention<T>>> attentions;  ///< null without attention
  /// "resnets.i".
  std::shared_ptr<nn::ModuleList<nn::ResnetBlock2D<T>>> resnets;
  /// "upsamplers.0" when it is an Upsample2D; null otherwise.
  std::shared_ptr<nn::ModuleList<nn::Upsample2D<T>>> conv_upsamplers;
  /// "upsamplers.0" when it is a ResnetBlock2D (upsample_type "resnet"); null otherwise.
  std::shared_ptr<nn::ModuleList<nn::ResnetBlock2D<T>>> resnet_upsamplers;
};

template <class T>
DIFFUSE_COLD UpBlock2D<T>::UpBlock2D(const UNetBlockOptions& o, Generator& gen) {
  const char* name = o.attention ? "AttnUpBlock2D" : "UpBlock2D";
  if (o.num_layers < 1) throw Error(std::string(name) + ": num_layers must be positive");
  if (o.attention)
    attentions = this->register_module("attentions", std::make_shared<nn::ModuleList<nn::Attention<T>>>());
  resnets = this->register_module("resnets", std::make_shared<nn::ModuleList<nn::ResnetBlock2D<T>>>());
  for (std::int64_t i = 0; i < o.num_layers; ++i) {
    const std::int64_t skip = i == o.num_layers - 1 ? o.in_channels : o.out_channels;
    const std::int64_t in = i == 0 ? o.prev_output_channel : o.out_channels;
    resnets->push_back(std::make_shared<nn::ResnetBlock2D<T>>(
        diffuse::detail::unet_resnet_options(o, in + skip, o.out_channels), gen));
    if (o.attention)
      attentions->push_back(std::make_shared<nn::Attention<T>>(
          diffuse::detail::unet_attention_options(o.out_channels, o.attention_head_dim, o.resnet_groups,
                                                  o.resnet_eps, o.output_scale_factor, name),
          gen));
  }
  if (o.add_upsample) {
    const std::string type = o.attention ? o.upsample_type : "conv";
    diffuse::detail::check_unet_resample_type(type, "upsample_type");
    if (type == "conv") {
      conv_upsamplers =
          this->register_module("upsamplers", std::make_shared<nn::ModuleList<nn::Upsample2D<T>>>());
      conv_upsamplers->push_back(
          std::make_shared<nn::Upsample2D<T>>(o.out_channels, true, o.out_channels, gen));
    } else {
      resnet_upsamplers =
          this->register_module("upsamplers", std::make_shared<nn::ModuleList<nn::ResnetBlock2D<T>>>());
      auto ro = diffuse::detail::unet_resnet_options(o, o.out_channels, o.out_channels);
      ro.up = true;
      resnet_upsamplers->push_back(std::make_shared<nn::ResnetBlock2D<T>>(ro, gen));
    }
  }
}

template <class T>
auto UpBlock2D<T>::operator()(const Tensor<T>& x, std::vector<Tensor<T>>& res_samples,
                              const Tensor<T>& temb) const -> Tensor<T> {
  if (res_samples.size() < resnets->size())
    throw Error("UpBlock2D: needs " + std::to_string(resnets->size()) + " skip connections, " +
                std::to_string(res_samples.size()) + " left");
  Tensor<T> h = x;
  for (std::size_t i = 0; i < resnets->size(); ++i) {
    Tensor<T> skip = res_samples.back();
    res_samples.pop_back();
    if (skip.dim() != 4 || skip.size(0) != h.size(0) || skip.size(2) != h.size(2) ||
        skip.size(3) != h.size(3))
      throw Error("UpBlock2D: skip connection of shape " + to_string(skip.shape()) + " does not match " +
                  to_string(h.shape()) + " (input sizes must be divisible by 2^(number of blocks - 1))");
    h = (*resnets)[i](concat<T>({h, skip}, 1), temb);
    if (attentions) h = (*attentions)[i](h);
  }
  if (conv_upsamplers)
    h = (*conv_upsamplers)[0](h);
  else if (resnet_upsamplers)
    h = (*resnet_upsamplers)[0](h, temb);
  return h;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_MODELS_UNET_2D_BLOCKS_TEMPLATES(X, T) \
  X(class DownBlock2D<T>)                             \
  X(class UNetMidBlock2D<T>)                          \
  X(class UpBlock2D<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_MODELS_UNET_2D_BLOCKS_TEMPLATES)

}  // namespace diffuse::models
