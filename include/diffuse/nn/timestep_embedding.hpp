/// @file
/// TimestepEmbedding (diffusers): the MLP that turns a timestep embedding into the vector every
/// ResnetBlock2D is conditioned on: linear_1 -> activation -> linear_2.
#pragma once
#include "diffuse/core/precompiled.hpp"
#include "diffuse/nn/activation.hpp"
#include "diffuse/nn/linear.hpp"

namespace diffuse::nn {

/// diffusers' TimestepEmbedding: linear_1 -> act_fn -> linear_2.
template <class T = float>
class TimestepEmbedding : public Module<T> {
 public:
  /// Draws the initial weights from `gen`. diffuse::Error for an unknown act_fn.
  TimestepEmbedding(std::int64_t in_channels, std::int64_t time_embed_dim, const std::string& act_fn = "silu",
                    Generator& gen = default_generator())
      : act_(activation_from_name(act_fn)) {
    linear_1 = this->register_module("linear_1",
                                     std::make_shared<Linear<T>>(in_channels, time_embed_dim, true, gen));
    linear_2 = this->register_module("linear_2",
                                     std::make_shared<Linear<T>>(time_embed_dim, time_embed_dim, true, gen));
  }

  /// x [N, in_channels] -> [N, time_embed_dim]
  Tensor<T> operator()(const Tensor<T>& x) const {
    return (*linear_2)(apply_activation(act_, (*linear_1)(x)));
  }

  /// in_channels -> time_embed_dim, and time_embed_dim -> time_embed_dim.
  std::shared_ptr<Linear<T>> linear_1, linear_2;

 private:
  Activation act_;
};

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_NN_TIMESTEP_EMBEDDING_TEMPLATES(X, T) X(class TimestepEmbedding<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_NN_TIMESTEP_EMBEDDING_TEMPLATES)

}  // namespace diffuse::nn
