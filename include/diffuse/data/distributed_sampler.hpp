/// @file
/// DistributedSampler: the share of a dataset one rank of a data-parallel run reads each epoch,
/// with torch.utils.data.distributed.DistributedSampler's semantics. Every rank draws the same
/// permutation (from seed + epoch) and takes every num_replicas-th index starting at its rank;
/// without drop_last the permutation is padded with its own first indices up to a multiple of
/// num_replicas, so every rank gets the same number of samples.
///   data::DistributedSampler sampler(dataset.size(), {.num_replicas = 2, .rank = r, .seed = 0});
///   sampler.set_epoch(epoch);                       // a new order each epoch, the same on all ranks
///   for (std::int64_t i : sampler.indices()) ...    // this rank's samples, in order
/// It needs no MPI: rank and num_replicas are plain numbers.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"

namespace diffuse::data {

/// Rank `rank`'s share of an epoch's `order` among `num_replicas` ranks, as PyTorch's
/// DistributedSampler takes it: every num_replicas-th index from position `rank`, after padding
/// the order with its own first indices (repeated as often as needed) up to `num_samples` x
/// num_replicas, or cutting it there.
inline std::vector<std::int64_t> shard_of(std::vector<std::int64_t> order, int num_replicas, int rank,
                                          std::int64_t num_samples) {
  const auto total = static_cast<std::size_t>(num_samples * num_replicas);
  const std::size_t n = order.size();
  for (std::size_t i = 0; order.size() < total && n > 0; ++i) order.push_back(order[i]);
  order.resize(total);
  std::vector<std::int64_t> mine;
  mine.reserve(static_cast<std::size_t>(num_samples));
  for (std::size_t i = static_cast<std::size_t>(rank); i < total; i += static_cast<std::size_t>(num_replicas))
    mine.push_back(order[i]);
  return mine;
}

/// Where the samples of one rank's batch sit in the global batch (the batch of all ranks together,
/// as one process with batch_size x num_replicas would read it): a DataLoader with num_replicas
/// deals the global batch out like cards, so sample i of rank r's batch is sample
/// r + num_replicas x i of the global one. Throws diffuse::Error for a negative batch, fewer than
/// one replica, or a rank outside [0, num_replicas).
inline std::vector<std::int64_t> global_batch_positions(std::int64_t batch_size, int num_replicas, int rank) {
  if (batch_size < 0)
    throw Error("global_batch_positions: negative batch size " + std::to_string(batch_size));
  if (num_replicas < 1 || rank < 0 || rank >= num_replicas)
    throw Error("global_batch_positions: rank " + std::to_string(rank) + " is not in [0, " +
                std::to_string(num_replicas) + ")");
  std::vector<std::int64_t> positions(static_cast<std::size_t>(batch_size));
  for (std::int64_t i = 0; i < batch_size; ++i)
    positions[static_cast<std::size_t>(i)] = rank + num_replicas * i;
  return positions;
}

/// Options of a DistributedSampler (as PyTorch's arguments).
struct DistributedSamplerOptions {
  /// The number of ranks (processes) sharing the dataset.
  int num_replicas = 1;
  /// This rank, from 0 to num_replicas - 1.
  int rank = 0;
  /// A new random order each epoch (false: 0, 1, 2, ... every epoch).
  bool shuffle = true;
  /// The seed shared by all ranks; epoch e draws its order from seed + e.
  std::uint64_t seed = 0;
  /// Drop the tail that does not divide evenly (false: pad with the first indices again).
  bool drop_last = false;
};

/// This rank's indices of each epoch (see the top of this file).
class DistributedSampler {
 public:
  /// A sampler over `dataset_size` samples. Throws diffuse::Error for a negative size, fewer than
  /// one replica, or a rank outside [0, num_replicas).
  DistributedSampler(std::int64_t dataset_size, DistributedSamplerOptions options = {})
      : size_(dataset_size), options_(options) {
    if (dataset_size < 0)
      throw Error("DistributedSampler: negative dataset size " + std::to_string(dataset_size));
    if (options.num_replicas < 1)
      throw Error("DistributedSampler: num_replicas must be at least 1, got " +
                  std::to_string(options.num_replicas));
    if (options.rank < 0 || options.rank >= options.num_replicas)
      throw Error("DistributedSampler: invalid rank " + std::to_string(options.rank) +
                  ", rank should be in the interval [0, " + std::to_string(options.num_replicas - 1) + "]");
    const std::int64_t n = options.num_replicas;
    // As PyTorch: with drop_last the tail is dropped only when it does not divide evenly.
    if (options.drop_last && size_ % n != 0)
      num_samples_ = size_ < n ? 0 : (size_ - n + n - 1) / n;  // ceil((size - n) / n)
    else
      num_samples_ = (size_ + n - 1) / n;
  }

  /// Sets the epoch: the order of the next indices() (all ranks must set the same).
  void set_epoch(std::int64_t epoch) { epoch_ = epoch; }
  /// The current epoch.
  std::int64_t epoch() const { return epoch_; }
  /// How many indices each rank gets per epoch (len(sampler) in PyTorch).
  std::int64_t size() const { return num_samples_; }
  /// All ranks' indices per epoch: size() x num_replicas.
  std::int64_t total_size() const { return num_samples_ * options_.num_replicas; }

  /// This rank's indices of the current epoch, in order.
  std::vector<std::int64_t> indices() const {
    std::vector<std::int64_t> order;
    if (options_.shuffle) {
      Generator g(options_.seed + static_cast<std::uint64_t>(epoch_));
      order = g.randperm(size_);
    } else {
      order.resize(static_cast<std::size_t>(size_));
      for (std::int64_t i = 0; i < size_; ++i) order[static_cast<std::size_t>(i)] = i;
    }
    return shard_of(std::move(order), options_.num_replicas, options_.rank, num_samples_);
  }

 private:
  std::int64_t size_;
  DistributedSamplerOptions options_;
  std::int64_t num_samples_ = 0;
  std::int64_t epoch_ = 0;
};

}  // namespace diffuse::data
