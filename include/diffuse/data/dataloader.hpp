/// @file
/// DataLoader: iterates over a dataset in (optionally shuffled) batches, like
/// torch.utils.data.DataLoader, assembling the next batch on a worker thread while the caller
/// trains on the current one.
///   data::DataLoader loader(dataset, {.batch_size = 128, .shuffle = true}, gen);
///   for (auto& batch : loader) { batch.images /*[B,C,H,W]*/; batch.labels /*[B]*/; }
/// Each range-for (each begin()) starts a new epoch. When shuffling, begin() draws one 64-bit
/// epoch seed from the Generator; the epoch's order (a permutation) and every random transform
/// of its samples derive from that seed alone, so batches are the same whatever the prefetch
/// depth or thread count. The loader keeps references to the dataset and the generator: both
/// must outlive it.
///
/// Prefetch: with options.prefetch = k > 0 (default 1), up to k batches ahead are assembled on
/// worker threads. An exception thrown while assembling a batch (a bad file, a transform error)
/// is rethrown in the caller's loop, as a diffuse::Error (FileError stays FileError) naming the
/// batch and epoch, when that batch is reached. Leaving a loop early waits for the batches in
/// flight, so nothing outlives the loop.
///
/// Resuming mid-epoch (for checkpoints):
///   LoaderState s = loader.state();   // {epoch, batch, seed, started}: plain values to save
///   ...                               // later, in a new process, with the same dataset/options:
///   loader.set_state(s);              // the next begin() continues epoch s.epoch at batch s.batch
///                                     // with the same order and the same random transforms
/// state().batch counts the batches of the current epoch already handed out (inside the loop
/// body of batch b it is b + 1). After set_state, only the next begin() resumes; a begin() after
/// that starts a new epoch, as without set_state. Restore the Generator's state too: the next
/// epoch's seed is drawn from it. set_state with batch == size() (an epoch that had ended) makes
/// the next begin() start epoch s.epoch + 1.
///
/// The Dataset concept (ImageDataset, TensorDataset, FashionMNIST, TransformedDataset model it):
///   std::int64_t size() const;                       number of samples
///   Shape sample_shape() const;                      shape of one sample, e.g. [1,28,28]
///   template <class T> void get_into(std::int64_t i, T* dst) const;
///                                                    writes sample i (numel(sample_shape()) values)
///   std::int64_t label(std::int64_t i) const;        class id of sample i (0 if unlabelled)
/// Optionally get_into(i, dst, Generator& g): then the loader passes a generator seeded from the
/// epoch seed and the sample index, for random transforms.
/// get_into is called from several threads at once, so it must only read the dataset.
#pragma once
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/parallel.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/data/background_task.hpp"
#include "diffuse/data/distributed_sampler.hpp"

namespace diffuse::data {

/// What a DataLoader reads: size(), sample_shape(), label(i) and get_into(i, dst) (see the top of
/// this file).
template <class D, class T = float>
concept Dataset = requires(const D& d, std::int64_t i, T* dst) {
  { d.size() } -> std::convertible_to<std::int64_t>;
  { d.sample_shape() } -> std::convertible_to<Shape>;
  { d.label(i) } -> std::convertible_to<std::int64_t>;
  d.get_into(i, dst);
};

/// A dataset whose samples take random draws (random crops, flips).
template <class D, class T = float>
concept RandomDataset = Dataset<D, T> && requires(const D& d, std::int64_t i, T* dst, Generator& g) {
  d.get_into(i, dst, g);
};

/// DataLoader options: batch_size, shuffle and drop_last as in torch.utils.data.DataLoader.
struct LoaderOptions {
  std::int64_t batch_size = 1;
  bool shuffle = false;    ///< a new random order every epoch (needs a Generator)
  bool drop_last = false;  ///< skip the last batch if it is smaller than batch_size
  int prefetch = 1;        ///< batches assembled ahead on worker threads (0: in the caller's thread)
  /// Data-parallel runs: the number of ranks sharing each epoch, and this one. Every rank draws
  /// the same epoch order (give each the same Generator seed) and reads its DistributedSampler
  /// share of it (data/distributed_sampler.hpp): batch k of N ranks with batch_size B holds the
  /// samples of batch k of one loader with batch_size N x B.
  int num_replicas = 1;
  int rank = 0;  ///< from 0 to num_replicas - 1
};

/// Where a loader is in its sequence of epochs; plain values, to store in a checkpoint.
struct LoaderState {
  std::int64_t epoch = 0;  ///< the current epoch (0-based)
  std::int64_t batch = 0;  ///< batches of it already handed out
  std::uint64_t seed = 0;  ///< its epoch seed (order and random transforms)
  bool started = false;    ///< false: no epoch has begun; the next begin() begins epoch 0
  bool operator==(const LoaderState&) const = default;
};

/// One batch: the samples stacked, their labels and their indices in the dataset.
template <class T = float>
struct Batch {
  Tensor<T> images;                     ///< [B, sample_shape...], e.g. [B,C,H,W]
  Tensor<T> labels;                     ///< [B], the class ids as values of T
  std::vector<std::int64_t> label_ids;  ///< the class ids
  std::vector<std::int64_t> indices;    ///< which samples of the dataset
  /// Number of samples (the last batch of an epoch may hold fewer than batch_size).
  std::int64_t size() const { return static_cast<std::int64_t>(label_ids.size()); }
};

namespace detail {
/// SplitMix64: spreads (seed, index) into independent generator seeds.
std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t index);
}  // namespace detail

/// Batches of a Dataset, like torch.utils.data.DataLoader (see the top of this file). Keeps
/// references to the dataset and the generator.
template <class D, class T = float>
requires Dataset<D, T>
class DataLoader {
 public:
  /// `gen` draws each epoch's seed. Error if batch_size < 1 or prefetch < 0.
  DataLoader(const D& dataset, LoaderOptions options, Generator& gen)
      : dataset_(&dataset), options_(options), gen_(&gen) {
    validate();
  }
  /// Without a Generator: shuffle must be off (random transforms then draw from the epoch number).
  explicit DataLoader(const D& dataset, LoaderOptions options = {}) : dataset_(&dataset), options_(options) {
    validate();
    if (options_.shuffle)
      throw Error("DataLoader: shuffle = true needs a Generator: DataLoader(data, options, gen)");
  }
  /// A temporary dataset would dangle: keep the dataset in a variable.
  DataLoader(D&& dataset, LoaderOptions options, Generator& gen) = delete;
  DataLoader(D&& dataset, LoaderOptions options = {}) = delete;

  /// The dataset read.
  const D& dataset() const { return *dataset_; }
  /// The options given at construction.
  const LoaderOptions& options() const { return options_; }

  /// Number of batches per epoch (of this rank's share, with num_replicas > 1).
  std::int64_t size() const {
    const std::int64_t n = samples_per_epoch(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  /// Samples per epoch: the dataset's size, or this rank's share of it (padded as PyTorch's
  /// DistributedSampler pads, so every rank has as many).
  std::int64_t samples_per_epoch() const {
    const std::int64_t r = options_.num_replicas;
    return (dataset_->size() + r - 1) / r;
  }

  // ---- position (see the top of this file) ----
  /// The position to save in a checkpoint: epoch, batches handed out, epoch seed.
  LoaderState state() const { return state_; }
  /// Makes the next begin() resume at `s` (see the top of this file). Error if `s` is not a
  /// position within an epoch of size() batches.
  void set_state(const LoaderState& s) {
    if (s.epoch < 0 || s.batch < 0 || s.batch > size())
      throw Error("DataLoader::set_state: position epoch " + std::to_string(s.epoch) + ", batch " +
                  std::to_string(s.batch) + " is not within an epoch of " + std::to_string(size()) +
                  " batches");
    if (!s.started && (s.epoch != 0 || s.batch != 0))
      throw Error("DataLoader::set_state: a state with started = false must be at epoch 0, batch 0");
    state_ = s;
    resume_ = s.started;
    if (resume_) order_ = make_order(s.seed);
  }
  /// The current epoch (0-based): state().epoch.
  std::int64_t epoch() const { return state_.epoch; }
  /// Batches of the current epoch handed out: state().batch.
  std::int64_t batch_index() const { return state_.batch; }

  /// Assembles the batch of the given sample indices (bounds-checked), with random transforms
  /// seeded from `seed` and each sample's index.
  Batch<T> make_batch(const std::vector<std::int64_t>& indices, std::uint64_t seed = 0) const {
    return assemble(indices, seed, /*threads=*/true);
  }

  /// Input iterator over the batches of one epoch (move-only).
  class iterator {
   public:
    using value_type = Batch<T>;
    using difference_type = std::ptrdiff_t;
    using iterator_category = std::input_iterator_tag;

    iterator() = default;
    iterator(iterator&&) noexcept = default;
    iterator& operator=(iterator&&) noexcept = default;
    ~iterator() { drain(); }

    /// The current batch.
    Batch<T>& operator*() { return batch_; }
    Batch<T>* operator->() { return &batch_; }
    /// The next batch; an exception from assembling it is rethrown here (as Error or FileError).
    iterator& operator++() {
      ++index_;
      load();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !loader_ || index_ >= end_; }

   private:
    friend class DataLoader;
    // Makes batch index_ current (waiting for its worker) and keeps `prefetch` batches in flight.
    void load() {
      batch_ = {};
      if (index_ >= end_) return;
      try {
        const int ahead = std::max(loader_->options_.prefetch, 0);
        if (ahead == 0) {
          batch_ = loader_->batch_at(index_, order_, seed_, epoch_, /*threads=*/true);
        } else {
          while (next_ < end_ && next_ <= index_ + ahead) {
            // Worker threads assemble without OpenMP: the cores belong to the training step.
            pending_.emplace_back([l = loader_, o = order_, s = seed_, e = epoch_, b = next_] {
              return l->batch_at(b, o, s, e, /*threads=*/false);
            });
            ++next_;
          }
          detail::BackgroundTask<Batch<T>> task = std::move(pending_.front());
          pending_.pop_front();
          batch_ = task.get();
        }
      } catch (...) {
        drain();
        index_ = end_;  // the epoch cannot continue past a failed batch
        throw;
      }
      loader_->state_.batch = index_ + 1;
    }
    void drain() { pending_.clear(); }  // each task waits for its thread as it goes

    DataLoader* loader_ = nullptr;
    std::int64_t index_ = 0, end_ = 0, next_ = 0;
    std::shared_ptr<const std::vector<std::int64_t>> order_;
    std::uint64_t seed_ = 0;
    std::int64_t epoch_ = 0;
    std::deque<detail::BackgroundTask<Batch<T>>> pending_;
    Batch<T> batch_;
  };

  /// Starts a new epoch (new order when shuffling), or resumes the position given to set_state.
  iterator begin() {
    std::int64_t first = 0;
    if (resume_ && state_.batch < size()) {
      first = state_.batch;
    } else {
      state_.epoch = state_.started ? state_.epoch + 1 : 0;
      // The seed fixes the order and the random transforms; without a Generator, the epoch does.
      const bool random = options_.shuffle || RandomDataset<D, T>;
      state_.seed =
          random && gen_ ? draw_seed() : detail::mix_seed(0, static_cast<std::uint64_t>(state_.epoch));
      state_.started = true;
      order_ = make_order(state_.seed);
    }
    resume_ = false;
    state_.batch = first;
    iterator it;
    it.order_ = order_;
    it.seed_ = state_.seed;
    it.epoch_ = state_.epoch;
    it.loader_ = this;
    it.index_ = it.next_ = first;
    it.end_ = size();
    it.load();
    return it;
  }
  /// The end of the epoch.
  std::default_sentinel_t end() const { return {}; }

 private:
  void validate() const {
    if (options_.batch_size < 1)
      throw Error("DataLoader: batch_size must be at least 1, got " + std::to_string(options_.batch_size));
    if (options_.prefetch < 0)
      throw Error("DataLoader: prefetch must be 0 or more batches, got " + std::to_string(options_.prefetch));
    if (options_.num_replicas < 1)
      throw Error("DataLoader: num_replicas must be at least 1, got " +
                  std::to_string(options_.num_replicas));
    if (options_.rank < 0 || options_.rank >= options_.num_replicas)
      throw Error("DataLoader: rank " + std::to_string(options_.rank) + " is not in [0, " +
                  std::to_string(options_.num_replicas - 1) + "]");
  }
  std::uint64_t draw_seed() {
    const auto hi = gen_->randint_list(0, std::int64_t(1) << 32, 2);
    return (static_cast<std::uint64_t>(hi[0]) << 32) | static_cast<std::uint64_t>(hi[1]);
  }
  // The epoch's sample order (this rank's share of it): 0..n-1, or a permutation drawn from the
  // epoch seed.
  std::shared_ptr<const std::vector<std::int64_t>> make_order(std::uint64_t seed) const {
    const std::int64_t n = dataset_->size();
    std::vector<std::int64_t> order;
    if (options_.shuffle) {
      Generator g(seed);
      order = g.randperm(n);
    } else {
      order.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
    }
    if (options_.num_replicas > 1)
      order = shard_of(std::move(order), options_.num_replicas, options_.rank, samples_per_epoch());
    return std::make_shared<const std::vector<std::int64_t>>(std::move(order));
  }

  Batch<T> batch_at(std::int64_t b, const std::shared_ptr<const std::vector<std::int64_t>>& order,
                    std::uint64_t seed, std::int64_t epoch, bool threads) const {
    const std::int64_t n = static_cast<std::int64_t>(order->size());
    const std::int64_t lo = b * options_.batch_size, hi = std::min(n, lo + options_.batch_size);
    const std::string where =
        "DataLoader: batch " + std::to_string(b) + " of epoch " + std::to_string(epoch) + ": ";
    try {
      return assemble(std::vector<std::int64_t>(order->begin() + lo, order->begin() + hi), seed, threads);
    } catch (const FileError& e) {
      throw FileError(where + e.what());
    } catch (const Error& e) {
      throw Error(where + e.what());
    } catch (const std::exception& e) {
      throw Error(where + e.what());
    }
  }

  Batch<T> assemble(const std::vector<std::int64_t>& indices, std::uint64_t seed, bool threads) const {
    const Shape sample = dataset_->sample_shape();
    const std::int64_t per = numel_of(sample), b = static_cast<std::int64_t>(indices.size()),
                       n = dataset_->size();
    for (auto i : indices)
      if (i < 0 || i >= n)
        throw Error("DataLoader: sample index " + std::to_string(i) + " is out of range for a dataset of " +
                    std::to_string(n));
    Shape shape{b};
    shape.insert(shape.end(), sample.begin(), sample.end());
    Batch<T> batch{Tensor<T>::empty(shape), Tensor<T>::empty({b}), std::vector<std::int64_t>(b), indices};
    T* dst = batch.images.data();
    // Samples go straight into the batch buffer. Errors inside an OpenMP loop cannot leave
    // it, so each sample's first exception is kept and rethrown after the loop.
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(b));
    auto one = [&](std::int64_t k) {
      try {
        if constexpr (RandomDataset<D, T>) {
          Generator g(detail::mix_seed(seed, static_cast<std::uint64_t>(indices[k])));
          dataset_->get_into(indices[k], dst + k * per, g);
        } else {
          dataset_->get_into(indices[k], dst + k * per);
        }
        batch.label_ids[k] = dataset_->label(indices[k]);
        batch.labels.data()[k] = static_cast<T>(batch.label_ids[k]);
      } catch (...) {
        errors[k] = std::current_exception();
      }
    };
    if (threads && b * per >= diffuse::detail::kParallelGrain * 4)
      diffuse::detail::parallel_for_items(b, one);
    else
      for (std::int64_t k = 0; k < b; ++k) one(k);
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    return batch;
  }

  const D* dataset_;
  LoaderOptions options_;
  Generator* gen_ = nullptr;
  LoaderState state_;
  bool resume_ = false;
  std::shared_ptr<const std::vector<std::int64_t>> order_;  // this epoch's sample order
};

}  // namespace diffuse::data

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/data/dataloader-inl.hpp"
#endif
