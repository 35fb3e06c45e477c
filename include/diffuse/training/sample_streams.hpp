/// @file
/// SampleStreams: the random draws of one training sample (its noise, its timestep, and a uniform
/// number for decisions such as dropping its class label) come from a generator of its own, keyed by (seed,
/// optimizer step, micro-batch, the sample's position in the global batch). So they do not depend on how the
/// global batch is split among the ranks of a data-parallel run, nor on the batch size of each rank: N
/// processes with batches of B draw what one process with a batch of N x B draws (docs/distributed.md).
///   training::SampleStreams streams(seed);
///   auto where = data::global_batch_positions(batch.size(), world_size, rank);  // 0, 1, ... alone
///   auto draws = streams.draw<float>(batch.images.shape(), 1000, step, micro, where);
///   Tensor<float> noisy = scheduler.add_noise(batch.images, draws.noise, draws.timesteps);
/// The streams hold no state: a resumed run draws the same values at the same step.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/data/dataloader.hpp"

namespace diffuse::training {

/// What SampleStreams::draw gives a batch of B samples.
template <class T>
struct SampleDraws {
  Tensor<T> noise;                      ///< [B, ...] standard normal
  std::vector<std::int64_t> timesteps;  ///< B, uniform in [0, num_train_timesteps)
  std::vector<double> uniforms;         ///< B, uniform in [0, 1): e.g. drop the label when < p
};

/// Per-sample random streams (see the top of this file).
class SampleStreams {
 public:
  /// Streams of the run with this seed.
  explicit SampleStreams(std::uint64_t seed) : seed_(seed) {}

  /// The generator of the sample at `position` in the global batch of micro-batch `micro` of
  /// optimizer step `step`: the same for the same key, independent for different keys.
  Generator generator(std::int64_t step, std::int64_t micro, std::int64_t position) const {
    using data::detail::mix_seed;
    return Generator(mix_seed(mix_seed(mix_seed(mix_seed(seed_, kDomain), static_cast<std::uint64_t>(step)),
                                       static_cast<std::uint64_t>(micro)),
                              static_cast<std::uint64_t>(position)));
  }

  /// Standard normal noise of `batch_shape` ([B, ...]), B timesteps uniform in
  /// [0, num_train_timesteps) and B uniform numbers in [0, 1), sample i drawing from
  /// generator(step, micro, positions[i]): first its noise, then its timestep, then its uniform.
  /// Throws diffuse::Error when positions does not hold B entries, batch_shape has no batch
  /// dimension, or num_train_timesteps < 1.
  template <class T>
  SampleDraws<T> draw(const Shape& batch_shape, std::int64_t num_train_timesteps, std::int64_t step,
                      std::int64_t micro, const std::vector<std::int64_t>& positions) const {
    if (batch_shape.empty())
      throw Error("SampleStreams: the batch shape needs a batch dimension, got " + to_string(batch_shape));
    const std::int64_t batch = batch_shape[0];
    if (static_cast<std::int64_t>(positions.size()) != batch)
      throw Error("SampleStreams: " + std::to_string(positions.size()) + " positions for a batch of " +
                  std::to_string(batch));
    if (num_train_timesteps < 1)
      throw Error("SampleStreams: num_train_timesteps must be at least 1, got " +
                  std::to_string(num_train_timesteps));
    const Shape sample_shape(batch_shape.begin() + 1, batch_shape.end());
    SampleDraws<T> out{Tensor<T>::empty(batch_shape), std::vector<std::int64_t>(positions.size()),
                       std::vector<double>(positions.size())};
    const std::int64_t per_sample = numel_of(sample_shape);
    for (std::int64_t i = 0; i < batch; ++i) {
      Generator g = generator(step, micro, positions[static_cast<std::size_t>(i)]);
      const Tensor<T> n = g.randn<T>(sample_shape);
      std::copy(n.data(), n.data() + per_sample, out.noise.data() + i * per_sample);
      out.timesteps[static_cast<std::size_t>(i)] = g.randint_list(0, num_train_timesteps, 1)[0];
      out.uniforms[static_cast<std::size_t>(i)] = g.rand<double>({1}).data()[0];
    }
    return out;
  }

  /// The run's seed.
  std::uint64_t seed() const { return seed_; }

 private:
  static constexpr std::uint64_t kDomain =
      0x53545245414d53ull;  // "STREAMS": apart from the run seed's other uses
  std::uint64_t seed_;
};

}  // namespace diffuse::training
