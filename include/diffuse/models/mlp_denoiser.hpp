/// @file
/// MLPDenoiser: a small model for 2-D (or any low-dimensional) toy distributions. It sees the
/// noisy point and sinusoidal features of the timestep, and predicts the noise (or whatever the
/// scheduler's prediction_type asks for). Made for checking schedulers and samplers in seconds.
#pragma once
#include <cmath>
#include <vector>

#include "diffuse/autograd/elementwise.hpp"
#include "diffuse/autograd/shape_ops.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/nn/linear.hpp"

namespace diffuse::models {

/// Sizes of an MLPDenoiser.
struct MLPDenoiserConfig {
  std::int64_t dim = 2;                ///< size of a data point
  std::int64_t hidden = 64;            ///< width of the hidden layers
  std::int64_t num_hidden_layers = 3;  ///< Linear + SiLU blocks before the output layer
  std::int64_t num_frequencies = 8;    ///< sin/cos pairs of the timestep features
  double num_train_timesteps = 1000;   ///< timesteps are divided by this before the features
};

/// Small MLP denoiser for toy data (see the file comment); parameters "layers.i.weight" / "layers.i.bias".
template <class T = float>
class MLPDenoiser : public nn::Module<T> {
 public:
  /// Draws the initial weights from `gen`. diffuse::Error when a size is not positive.
  explicit MLPDenoiser(MLPDenoiserConfig config = {}, Generator& gen = default_generator());

  /// x [N, dim]; one timestep per point.
  Tensor<T> operator()(const Tensor<T>& x, const std::vector<double>& timesteps) const;
  /// The same with integer timesteps (what randint gives in training).
  Tensor<T> operator()(const Tensor<T>& x, const std::vector<std::int64_t>& timesteps) const {
    return (*this)(x, std::vector<double>(timesteps.begin(), timesteps.end()));
  }
  /// The same timestep for every point (sampling).
  Tensor<T> operator()(const Tensor<T>& x, double t) const {
    return (*this)(x, std::vector<double>(static_cast<std::size_t>(x.dim() == 2 ? x.size(0) : 0), t));
  }

  /// The config the model was built with.
  const MLPDenoiserConfig& config() const { return config_; }

 private:
  MLPDenoiserConfig config_;
  std::shared_ptr<nn::ModuleList<nn::Linear<T>>> layers_;
};

template <class T>
DIFFUSE_COLD MLPDenoiser<T>::MLPDenoiser(MLPDenoiserConfig config, Generator& gen) : config_(config) {
  if (config.dim < 1 || config.hidden < 1 || config.num_hidden_layers < 1 || config.num_frequencies < 0 ||
      !(config.num_train_timesteps > 0))
    throw Error(
        "MLPDenoiser: dim, hidden, num_hidden_layers and num_train_timesteps must be positive, "
        "num_frequencies non-negative");
  layers_ = this->register_module("layers", std::make_shared<nn::ModuleList<nn::Linear<T>>>());
  std::int64_t in = config.dim + 2 * config.num_frequencies;
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i, in = config.hidden)
    layers_->push_back(std::make_shared<nn::Linear<T>>(in, config.hidden, true, gen));
  layers_->push_back(std::make_shared<nn::Linear<T>>(config.hidden, config.dim, true, gen));
}

template <class T>
auto MLPDenoiser<T>::operator()(const Tensor<T>& x, const std::vector<double>& timesteps) const -> Tensor<T> {
  const std::int64_t n = x.dim() == 2 ? x.size(0) : -1, d = config_.dim, f = config_.num_frequencies;
  if (x.dim() != 2 || x.size(1) != d)
    throw Error("MLPDenoiser: expected points [N, " + std::to_string(d) + "], got " + to_string(x.shape()));
  if (static_cast<std::int64_t>(timesteps.size()) != n)
    throw Error("MLPDenoiser: " + std::to_string(timesteps.size()) + " timesteps for " + std::to_string(n) +
                " points");
  // Input features [x, sin(2^k s), cos(2^k s)], s = 1.5 t / num_train_timesteps. They carry no
  // gradient with respect to t, so they are assembled directly and joined to x by concat.
  Tensor<T> features = Tensor<T>::empty({n, 2 * f});
  for (std::int64_t i = 0; i < n; ++i) {
    const double s = 1.5 * timesteps[i] / config_.num_train_timesteps;
    for (std::int64_t k = 0; k < f; ++k) {
      features.data()[i * 2 * f + 2 * k] = static_cast<T>(std::sin(s * std::ldexp(1.0, static_cast<int>(k))));
      features.data()[i * 2 * f + 2 * k + 1] =
          static_cast<T>(std::cos(s * std::ldexp(1.0, static_cast<int>(k))));
    }
  }
  Tensor<T> h = concat(std::vector<Tensor<T>>{x, features}, 1);
  for (std::size_t i = 0; i + 1 < layers_->size(); ++i) h = silu((*layers_)[i](h));
  return (*layers_)[layers_->size() - 1](h);
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_MODELS_MLP_DENOISER_TEMPLATES(X, T) X(class MLPDenoiser<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_MODELS_MLP_DENOISER_TEMPLATES)

}  // namespace diffuse::models
