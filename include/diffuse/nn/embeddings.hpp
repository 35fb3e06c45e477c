/// @file
/// Embeddings of timesteps and class labels, as diffusers composes them:
///   timestep_embedding / Timesteps  sinusoidal positional embedding (get_timestep_embedding) with
///                                   flip_sin_to_cos and downscale_freq_shift, computed in T step by
///                                   step like diffusers (float matches its float32, double its float64);
///   GaussianFourierProjection       sin/cos of log(t) times a fixed random frequency vector;
///   Embedding                       a lookup table (torch.nn.Embedding) for class labels.
#pragma once
#include <cmath>
#include <numbers>

#include "diffuse/core/generator.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/nn/module.hpp"

namespace diffuse::nn {

/// timesteps [N] -> [N, dim]: [sin(t f_i), cos(t f_i)] (or cos first when flip_sin_to_cos) with
/// f_i = exp(-log(max_period) * i / (dim/2 - downscale_freq_shift)); zero-padded when dim is odd.
/// Not differentiable (timesteps are data).
template <class T>
Tensor<T> timestep_embedding(const Tensor<T>& timesteps, std::int64_t dim, bool flip_sin_to_cos = false,
                             double downscale_freq_shift = 1, double scale = 1, double max_period = 10000) {
  if (timesteps.dim() != 1)
    throw Error("timestep_embedding: timesteps must be 1-D [N], got shape " + to_string(timesteps.shape()));
  const std::int64_t half = dim / 2;
  if (dim < 1)
    throw Error("timestep_embedding: embedding dimension must be positive, got " + std::to_string(dim));
  if (half > 0 && static_cast<double>(half) == downscale_freq_shift)
    throw Error("timestep_embedding: dim/2 = " + std::to_string(half) +
                " equals the frequency shift (division by zero)");
  // The same operations in the same order (and precision) as diffusers.
  std::vector<T> freq(static_cast<std::size_t>(half));
  const T neg_log_period = static_cast<T>(-std::log(max_period));
  const T denom = static_cast<T>(static_cast<double>(half) - downscale_freq_shift);
  for (std::int64_t i = 0; i < half; ++i) freq[i] = std::exp(neg_log_period * static_cast<T>(i) / denom);
  const std::int64_t N = timesteps.size(0);
  Tensor<T> out = Tensor<T>::zeros({N, dim});
  const T s = static_cast<T>(scale);
  for (std::int64_t n = 0; n < N; ++n) {
    const T t = timesteps.data()[n];
    T* row = out.data() + n * dim;
    T* sin_part = row + (flip_sin_to_cos ? half : 0);
    T* cos_part = row + (flip_sin_to_cos ? 0 : half);
    for (std::int64_t i = 0; i < half; ++i) {
      const T arg = s * (t * freq[i]);
      sin_part[i] = std::sin(arg);
      cos_part[i] = std::cos(arg);
    }
  }
  return out;
}

/// diffusers' Timesteps module (no parameters).
template <class T = float>
class Timesteps : public Module<T> {
 public:
  /// num_channels is the embedding size; the other arguments are timestep_embedding's.
  Timesteps(std::int64_t num_channels, bool flip_sin_to_cos, double downscale_freq_shift)
      : num_channels_(num_channels), flip_(flip_sin_to_cos), shift_(downscale_freq_shift) {}
  /// timesteps [N] -> [N, num_channels] (timestep_embedding).
  Tensor<T> operator()(const Tensor<T>& timesteps) const {
    return timestep_embedding(timesteps, num_channels_, flip_, shift_);
  }
  /// The embedding size.
  std::int64_t num_channels() const { return num_channels_; }

 private:
  std::int64_t num_channels_;
  bool flip_;
  double shift_;
};

/// diffusers' GaussianFourierProjection: x [N] -> [N, 2*embedding_size] =
/// [sin(2 pi log(x) w), cos(...)] (cos first with flip_sin_to_cos). "weight" is random and frozen
/// (requires_grad false). diffusers registers the same tensor under a second name, "W"; so does this
/// module, so checkpoints carry both keys exactly as diffusers writes them.
template <class T = float>
class GaussianFourierProjection : public Module<T> {
 public:
  /// Draws weight = scale * N(0, 1) [embedding_size] from `gen`. With `log`, the input's log is
  /// projected (diffusers' default). diffuse::Error when embedding_size is not positive.
  GaussianFourierProjection(std::int64_t embedding_size = 256, double scale = 1.0, bool log = true,
                            bool flip_sin_to_cos = false, Generator& gen = default_generator());

  /// x [N] -> [N, 2 * embedding_size]; diffuse::Error for a value that is not positive when `log` is set.
  Tensor<T> operator()(const Tensor<T>& x) const;

  /// The frozen random frequencies [embedding_size], also registered as "W".
  Tensor<T> weight;

 private:
  bool log_, flip_;
};

template <class T>
DIFFUSE_COLD GaussianFourierProjection<T>::GaussianFourierProjection(std::int64_t embedding_size,
                                                                     double scale, bool log,
                                                                     bool flip_sin_to_cos, Generator& gen)
    : log_(log), flip_(flip_sin_to_cos) {
  if (embedding_size < 1)
    throw Error("GaussianFourierProjection: embedding size must be positive, got " +
                std::to_string(embedding_size));
  Tensor<T> w = gen.randn<T>({embedding_size});
  for (T& v : w) v = static_cast<T>(v * scale);
  weight = this->register_parameter("weight", w);
  this->register_parameter("W", weight);
  weight.requires_grad_(false);
}

template <class T>
auto GaussianFourierProjection<T>::operator()(const Tensor<T>& x) const -> Tensor<T> {
  if (x.dim() != 1)
    throw Error("GaussianFourierProjection: input must be 1-D [N], got " + to_string(x.shape()));
  const std::int64_t N = x.size(0), E = weight.numel();
  Tensor<T> out = Tensor<T>::empty({N, 2 * E});
  const T pi = static_cast<T>(std::numbers::pi);
  for (std::int64_t n = 0; n < N; ++n) {
    const T v = x.data()[n];
    if (log_ && !(v > 0))
      throw Error("GaussianFourierProjection: log of a non-positive timestep (" + std::to_string(double(v)) +
                  ")");
    const T t = log_ ? std::log(v) : v;
    T* row = out.data() + n * 2 * E;
    T* sin_part = row + (flip_ ? E : 0);
    T* cos_part = row + (flip_ ? 0 : E);
    for (std::int64_t i = 0; i < E; ++i) {
      const T arg = ((t * weight.data()[i]) * T(2)) * pi;  // x * w * 2 * pi, in that order
      sin_part[i] = std::sin(arg);
      cos_part[i] = std::cos(arg);
    }
  }
  return out;
}

/// Lookup table (torch.nn.Embedding): "weight" [num_embeddings, embedding_dim], initialised N(0, 1).
/// Indices are given as values of T (whole numbers); the gradient is scattered back into the rows.
template <class T = float>
class Embedding : public Module<T> {
 public:
  /// Draws the table from `gen`. diffuse::Error when a size is not positive.
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, Generator& gen = default_generator()) {
    if (num_embeddings < 1 || embedding_dim < 1)
      throw Error("Embedding: sizes must be positive, got " + std::to_string(num_embeddings) + " x " +
                  std::to_string(embedding_dim));
    weight = this->register_parameter("weight", gen.randn<T>({num_embeddings, embedding_dim}));
  }

  /// indices [N] -> [N, embedding_dim]. diffuse::Error for an index that is not a whole number in
  /// [0, num_embeddings).
  Tensor<T> operator()(const Tensor<T>& indices) const;

  /// The table [num_embeddings, embedding_dim].
  Tensor<T> weight;
};

template <class T>
auto Embedding<T>::operator()(const Tensor<T>& indices) const -> Tensor<T> {
  if (indices.dim() != 1)
    throw Error("Embedding: indices must be 1-D [N], got shape " + to_string(indices.shape()));
  const std::int64_t N = indices.size(0), rows = weight.size(0), D = weight.size(1);
  std::vector<std::int64_t> idx(static_cast<std::size_t>(N));
  for (std::int64_t n = 0; n < N; ++n) {
    const T v = indices.data()[n];
    if (!(v >= 0 && v < static_cast<T>(rows)) || std::floor(v) != v)
      throw Error("Embedding: index " + std::to_string(double(v)) + " at position " + std::to_string(n) +
                  " is not a whole number in [0, " + std::to_string(rows) + ")");
    idx[n] = static_cast<std::int64_t>(v);
  }
  Tensor<T> out = Tensor<T>::empty({N, D});
  for (std::int64_t n = 0; n < N; ++n)
    std::copy(weight.data() + idx[n] * D, weight.data() + (idx[n] + 1) * D, out.data() + n * D);
  return diffuse::detail::record(out, {&weight}, "embedding", [idx, rows, D](const Tensor<T>& g) {
    Tensor<T> gw = Tensor<T>::zeros({rows, D});
    for (std::size_t n = 0; n < idx.size(); ++n)
      for (std::int64_t d = 0; d < D; ++d) gw.data()[idx[n] * D + d] += g.data()[n * D + d];
    return std::vector<Tensor<T>>{gw};
  });
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_NN_EMBEDDINGS_TEMPLATES(X, T) \
  X(class Timesteps<T>)                       \
  X(class GaussianFourierProjection<T>)       \
  X(class Embedding<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_NN_EMBEDDINGS_TEMPLATES)

}  // namespace diffuse::nn
