/// @file
/// diffusers' Attention as UNet2DModel uses it (self-attention over the pixels of a feature map):
/// optional group_norm, to_q / to_k / to_v projections, heads of dim_head channels, to_out.0,
/// optional residual connection and division by rescale_output_factor. Parameter names match
/// diffusers ("to_q.weight", "to_out.0.bias", ...).
/// The pixels stay channel-first: q, k and v come from one 1x1 convolution with the three weights
/// stacked, attention runs on [B, heads*dim_head, H*W] directly (kernels/attention_channels_first.hpp)
/// and to_out is another 1x1 convolution, so no transposes are needed.
#pragma once
#include <cmath>
#include <optional>

#include "diffuse/autograd/shape_ops.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/attention_channels_first.hpp"
#include "diffuse/nn/group_norm.hpp"
#include "diffuse/nn/linear.hpp"

namespace diffuse::nn {

namespace functional {
/// Self-attention of qkv [B, 3*heads*D, L] (q | k | v rows) -> [B, heads*D, L].
/// float_softmax: the softmax in float whatever T is (diffusers' upcast_softmax; matters for double only).
template <class T>
Tensor<T> multihead_attention_channels_first(const Tensor<T>& qkv, std::int64_t heads, T scale,
                                             bool float_softmax = false) {
  if (qkv.dim() != 3 || heads < 1 || qkv.size(1) % (3 * heads) != 0)
    throw Error("multihead_attention_channels_first: input of shape " + to_string(qkv.shape()) +
                " is not [B, 3 * heads * D, L] for " + std::to_string(heads) + " heads");
  const std::int64_t B = qkv.size(0), C = qkv.size(1) / 3, D = C / heads, L = qkv.size(2);
  Tensor<T> out = Tensor<T>::empty({B, C, L});
  auto stats = std::make_shared<std::vector<T>>(static_cast<std::size_t>(2 * B * heads * L));
  kernels::mha_channels_first_forward<T>(B, heads, D, L, scale, qkv.data(), out.data(), stats->data(),
                                         float_softmax);
  return diffuse::detail::record(out, {&qkv}, "multihead_attention",
                                 [qkv, stats, B, heads, D, L, scale, float_softmax](const Tensor<T>& g) {
                                   Tensor<T> gqkv = Tensor<T>::empty(qkv.shape());
                                   kernels::mha_channels_first_backward<T>(B, heads, D, L, scale, qkv.data(),
                                                                           stats->data(), g.data(),
                                                                           gqkv.data(), float_softmax);
                                   return std::vector<Tensor<T>>{gqkv};
                                 });
}
}  // namespace functional

/// Options of Attention, named as diffusers' Attention arguments.
struct AttentionOptions {
  /// Channels of the input and the output (required).
  std::int64_t query_dim = 0;
  /// Number of attention heads.
  std::int64_t heads = 8;
  /// Channels per head: the projections have heads * dim_head outputs.
  std::int64_t dim_head = 64;
  std::optional<std::int64_t> norm_num_groups = std::nullopt;  ///< group_norm before the projections when set
  /// Epsilon of group_norm.
  double eps = 1e-5;
  /// The output (after the residual connection) is divided by this; must be non-zero.
  double rescale_output_factor = 1.0;
  /// Adds the input to the output.
  bool residual_connection = false;
  bool bias = true;      ///< of to_q, to_k, to_v
  bool out_bias = true;  ///< of to_out.0
  /// diffusers' upcast_softmax: the attention softmax runs in float32 whatever the model's dtype. For
  /// a float model this changes nothing; a double model then matches diffusers run in float64.
  bool upcast_softmax = false;
};

/// diffusers' Attention as UNet2DModel uses it: self-attention over the pixels of a feature map.
template <class T = float>
class Attention : public Module<T> {
 public:
  /// Draws the initial weights from `gen`. diffuse::Error when query_dim, heads or dim_head is not
  /// positive, or rescale_output_factor is 0.
  explicit Attention(const AttentionOptions& o, Generator& gen = default_generator());

  /// x [B, query_dim, H, W] -> same shape.
  Tensor<T> operator()(const Tensor<T>& x) const;

  /// Normalisation of the input; null unless norm_num_groups is set.
  std::shared_ptr<GroupNorm<T>> group_norm;
  /// Query, key and value projections (query_dim -> heads * dim_head).
  std::shared_ptr<Linear<T>> to_q, to_k, to_v;
  /// to_out[0] is the output projection (diffusers' "to_out.0"; its dropout has no parameters and is left
  /// out).
  std::shared_ptr<ModuleList<Linear<T>>> to_out;

 private:
  std::int64_t query_dim_, heads_, dim_head_;
  bool residual_, upcast_softmax_;
  double rescale_;
};

template <class T>
DIFFUSE_COLD Attention<T>::Attention(const AttentionOptions& o, Generator& gen)
    : query_dim_(o.query_dim),
      heads_(o.heads),
      dim_head_(o.dim_head),
      residual_(o.residual_connection),
      upcast_softmax_(o.upcast_softmax),
      rescale_(o.rescale_output_factor) {
  if (o.query_dim < 1 || o.heads < 1 || o.dim_head < 1)
    throw Error("Attention: query_dim, heads and dim_head must be positive, got " +
                std::to_string(o.query_dim) + ", " + std::to_string(o.heads) + ", " +
                std::to_string(o.dim_head));
  if (!(o.rescale_output_factor != 0)) throw Error("Attention: rescale_output_factor must be non-zero");
  const std::int64_t inner = o.heads * o.dim_head;
  if (o.norm_num_groups)
    group_norm = this->register_module(
        "group_norm", std::make_shared<GroupNorm<T>>(*o.norm_num_groups, o.query_dim, o.eps));
  to_q = this->register_module("to_q", std::make_shared<Linear<T>>(o.query_dim, inner, o.bias, gen));
  to_k = this->register_module("to_k", std::make_shared<Linear<T>>(o.query_dim, inner, o.bias, gen));
  to_v = this->register_module("to_v", std::make_shared<Linear<T>>(o.query_dim, inner, o.bias, gen));
  to_out = this->register_module("to_out", std::make_shared<ModuleList<Linear<T>>>());
  to_out->push_back(std::make_shared<Linear<T>>(inner, o.query_dim, o.out_bias, gen));
}

template <class T>
auto Attention<T>::operator()(const Tensor<T>& x) const -> Tensor<T> {
  if (x.dim() != 4 || x.size(1) != query_dim_)
    throw Error("Attention: expected input [B, " + std::to_string(query_dim_) + ", H, W], got " +
                to_string(x.shape()));
  const std::int64_t B = x.size(0), H = x.size(2), W = x.size(3), inner = heads_ * dim_head_;
  Tensor<T> h = group_norm ? (*group_norm)(x) : x;
  // q, k, v in one 1x1 convolution: weight [3*inner, C, 1, 1], bias [3*inner]
  Tensor<T> w =
      concat<T>({to_q->weight, to_k->weight, to_v->weight}, 0).reshape({3 * inner, query_dim_, 1, 1});
  Tensor<T> b;
  if (to_q->bias.defined()) b = concat<T>({to_q->bias, to_k->bias, to_v->bias}, 0);
  Tensor<T> qkv = functional::conv2d(h, w, b).reshape({B, 3 * inner, H * W});
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(dim_head_)));
  Tensor<T> a = functional::multihead_attention_channels_first(qkv, heads_, scale, upcast_softmax_)
                    .reshape({B, inner, H, W});
  const Linear<T>& out_proj = (*to_out)[0];
  Tensor<T> y = functional::conv2d(a, out_proj.weight.reshape({query_dim_, inner, 1, 1}), out_proj.bias);
  if (residual_) y = y + x;
  if (rescale_ == 1.0) return y;
  const T f = static_cast<T>(rescale_);
  return div_scalar(y, f);
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_NN_ATTENTION_TEMPLATES(X, T) X(class Attention<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_NN_ATTENTION_TEMPLATES)

}  // namespace diffuse::nn
