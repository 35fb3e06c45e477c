/// @file
/// ResumableLoader: iterates a DataLoader epoch by epoch and remembers where it is (epoch,
/// batches handed out, and the shuffle Generator's state when the epoch's order was drawn), so a
/// checkpoint taken in the middle of an epoch resumes with exactly the batches that were still
/// to come. It wraps the loader without changing it:
///   data::DataLoader loader(dataset, {.batch_size = 64, .shuffle = true}, gen);
///   training::ResumableLoader epochs(loader, gen);   // the Generator the loader shuffles with
///   while (epochs.epoch() < num_epochs)
///     for (auto& batch : epochs) { ... }             // the rest of the current epoch
/// Resuming replays the epoch's shuffle from the saved Generator state and skips the batches
/// already used (without loading them), then puts the Generator back.
#pragma once
#include <cstdint>
#include <iterator>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/precompiled.hpp"

namespace diffuse::training {

/// Where a training run is in its data.
struct LoaderPosition {
  /// Epochs completed.
  std::int64_t epoch = 0;  // epochs completed
  /// Batches of the current epoch handed out.
  std::int64_t batch = 0;  // batches of the current epoch handed out
  /// Batches per epoch of the loader.
  std::int64_t batches_per_epoch = 0;  // of the loader it was taken from (checked on resume)
  /// The shuffle Generator's state before the epoch's order was drawn.
  GeneratorState epoch_start;  // the shuffle Generator's state before the epoch's order was drawn
  bool operator==(const LoaderPosition&) const = default;

  /// The position as a checkpoint's trainer_state.json holds it.
  nlohmann::json to_json() const;
  /// Reads to_json()'s form back; throws diffuse::Error for a malformed or negative position.
  static LoaderPosition from_json(const nlohmann::json& j);
};

/// The non-template side of a ResumableLoader, what checkpoints save and restore.
class ResumablePosition {
 public:
  virtual ~ResumablePosition() = default;
  /// Where the run is in its data.
  const LoaderPosition& position() const { return pos_; }
  /// Epochs completed.
  std::int64_t epoch() const { return pos_.epoch; }
  /// Continues from `p` (taken from a loader with the same number of batches per epoch).
  virtual void set_position(const LoaderPosition& p) = 0;

 protected:
  LoaderPosition pos_;
};

/// Iterates a data loader epoch by epoch and can resume in the middle of one (see the file
/// comment). Loader needs size() (batches per epoch) and a begin() that draws the epoch's
/// order from the Generator.
template <class Loader>
class ResumableLoader : public ResumablePosition {
  using inner_iterator = decltype(std::declval<Loader&>().begin());
  using inner_sentinel = decltype(std::declval<Loader&>().end());

 public:
  /// `gen` is the Generator the loader shuffles with (any Generator when it does not shuffle).
  /// Both must outlive this object.
  ResumableLoader(Loader& loader, Generator& gen) : loader_(&loader), gen_(&gen) {
    pos_.batches_per_epoch = batches();
  }

  /// Throws diffuse::Error if `p` is of a loader with another number of batches per epoch or
  /// lies past the end of an epoch.
  void set_position(const LoaderPosition& p) override {
    const std::int64_t n = loader_->size();
    if (p.batches_per_epoch != n)
      throw Error("ResumableLoader: the saved position is of a loader with " +
                  std::to_string(p.batches_per_epoch) + " batches per epoch, this one has " +
                  std::to_string(n) + " (different dataset, batch_size or drop_last?)");
    if (p.batch > n)
      throw Error("ResumableLoader: the saved position is at batch " + std::to_string(p.batch) +
                  " of an epoch of " + std::to_string(n));
    pos_ = p;
    if (pos_.batch == n) pos_ = {pos_.epoch + 1, 0, n, {}};  // the epoch was finished
  }

  /// An input iterator over the rest of the epoch; dereferencing it counts the batch as handed out.
  class iterator {
   public:
    using value_type = std::remove_reference_t<decltype(*std::declval<inner_iterator&>())>;
    using difference_type = std::ptrdiff_t;
    using iterator_category = std::input_iterator_tag;

    iterator() = default;
    value_type& operator*() {
      owner_->pos_.batch = index_ + 1;
      return *inner_;
    }
    value_type* operator->() { return &**this; }
    iterator& operator++() {
      ++inner_;
      if (++index_ == owner_->pos_.batches_per_epoch) owner_->pos_ = {owner_->pos_.epoch + 1, 0, index_, {}};
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return inner_ == end_; }

   private:
    friend class ResumableLoader;
    iterator(ResumableLoader* owner, inner_iterator inner, inner_sentinel end, std::int64_t index)
        : owner_(owner), inner_(std::move(inner)), end_(std::move(end)), index_(index) {}
    ResumableLoader* owner_ = nullptr;
    inner_iterator inner_;
    inner_sentinel end_;
    std::int64_t index_ = 0;
  };

  /// The remaining batches of the current epoch (a whole new epoch when the last one finished).
  iterator begin() {
    pos_.batches_per_epoch = batches();
    if (pos_.batch >= pos_.batches_per_epoch) pos_ = {pos_.epoch + 1, 0, pos_.batches_per_epoch, {}};
    if (pos_.batch == 0) {
      pos_.epoch_start = gen_->state();
      return iterator(this, loader_->begin(), loader_->end(), 0);
    }
    // Replay this epoch's order, then continue after the batches already handed out.
    const GeneratorState now = gen_->state();
    gen_->set_state(pos_.epoch_start);
    inner_iterator it = loader_->begin();
    gen_->set_state(now);
    for (std::int64_t k = 0; k < pos_.batch; ++k) ++it;
    return iterator(this, std::move(it), loader_->end(), pos_.batch);
  }
  /// The end of the epoch.
  std::default_sentinel_t end() const { return {}; }

  /// The wrapped loader.
  Loader& loader() const { return *loader_; }

 private:
  std::int64_t batches() const {
    const std::int64_t n = loader_->size();
    if (n < 1)
      throw Error(
          "ResumableLoader: the loader yields no batches (empty dataset, or drop_last with fewer samples "
          "than batch_size)");
    return n;
  }

  Loader* loader_;
  Generator* gen_;
};

}  // namespace diffuse::training

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/training/resumable_loader-inl.hpp"
#endif
