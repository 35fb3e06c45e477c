// DataLoader: iterates over a dataset in (optionally shuffled) batches, like
// torch.utils.data.DataLoader.
//   data::DataLoader loader(dataset, {.batch_size = 128, .shuffle = true}, gen);
//   for (auto& batch : loader) { batch.images /*[B,C,H,W]*/; batch.labels /*[B]*/; }
// Each begin() starts a new epoch (drawing a new permutation from the Generator when
// shuffling). The loader keeps references to the dataset and the generator: both must outlive it.
//
// The Dataset concept (ImageDataset, TensorDataset and FashionMNIST model it):
//   std::int64_t size() const;                       number of samples
//   Shape sample_shape() const;                      shape of one sample, e.g. [1,28,28]
//   template <class T> void get_into(std::int64_t i, T* dst) const;
//                                                    writes sample i (numel(sample_shape()) values)
//   std::int64_t label(std::int64_t i) const;        class id of sample i (0 if unlabelled)
// get_into is called from several threads at once for large batches, so it must only read.
#pragma once
#include <concepts>
#include <cstdint>
#include <iterator>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/parallel.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse::data {

template <class D, class T = float>
concept Dataset = requires(const D& d, std::int64_t i, T* dst) {
  { d.size() } -> std::convertible_to<std::int64_t>;
  { d.sample_shape() } -> std::convertible_to<Shape>;
  { d.label(i) } -> std::convertible_to<std::int64_t>;
  d.get_into(i, dst);
};

struct LoaderOptions {
  std::int64_t batch_size = 1;
  bool shuffle = false;    // a new random order every epoch (needs a Generator)
  bool drop_last = false;  // skip the last batch if it is smaller than batch_size
};

template <class T = float>
struct Batch {
  Tensor<T> images;                     // [B, sample_shape...], e.g. [B,C,H,W]
  Tensor<T> labels;                     // [B], the class ids as values of T
  std::vector<std::int64_t> label_ids;  // the class ids
  std::vector<std::int64_t> indices;    // which samples of the dataset
  std::int64_t size() const { return static_cast<std::int64_t>(label_ids.size()); }
};

template <class D, class T = float>
requires Dataset<D, T>
class DataLoader {
 public:
  DataLoader(const D& dataset, LoaderOptions options, Generator& gen)
      : dataset_(&dataset), options_(options), gen_(&gen) {
    validate();
  }
  // Without a Generator: shuffle must be off.
  explicit DataLoader(const D& dataset, LoaderOptions options = {}) : dataset_(&dataset), options_(options) {
    validate();
    if (options_.shuffle)
      throw Error("DataLoader: shuffle = true needs a Generator: DataLoader(data, options, gen)");
  }
  // A temporary dataset would dangle: keep the dataset in a variable.
  DataLoader(D&& dataset, LoaderOptions options, Generator& gen) = delete;
  DataLoader(D&& dataset, LoaderOptions options = {}) = delete;

  const D& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return options_; }

  // Number of batches per epoch.
  std::int64_t size() const {
    const std::int64_t n = dataset_->size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }

  // Assembles the batch of the given sample indices (bounds-checked).
  Batch<T> make_batch(const std::vector<std::int64_t>& indices) const {
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
    // Samples straight into the batch buffer; threads only when the batch is big enough to pay.
    auto one = [&](std::int64_t k) {
      dataset_->get_into(indices[k], dst + k * per);
      batch.label_ids[k] = dataset_->label(indices[k]);
      batch.labels.data()[k] = static_cast<T>(batch.label_ids[k]);
    };
    if (b * per >= diffuse::detail::kParallelGrain * 4)
      diffuse::detail::parallel_for_items(b, one);
    else
      for (std::int64_t k = 0; k < b; ++k) one(k);
    return batch;
  }

  // Input iterator over the batches of one epoch.
  class iterator {
   public:
    using value_type = Batch<T>;
    using difference_type = std::ptrdiff_t;
    using iterator_category = std::input_iterator_tag;

    iterator() = default;
    Batch<T>& operator*() {
      if (!loaded_) {
        batch_ = loader_->batch_at(index_);
        loaded_ = true;
      }
      return batch_;
    }
    Batch<T>* operator->() { return &**this; }
    iterator& operator++() {
      ++index_;
      loaded_ = false;
      batch_ = {};
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !loader_ || index_ >= loader_->size(); }

   private:
    friend class DataLoader;
    explicit iterator(const DataLoader* loader) : loader_(loader) {}
    const DataLoader* loader_ = nullptr;
    std::int64_t index_ = 0;
    bool loaded_ = false;
    Batch<T> batch_;
  };

  // Starts a new epoch: a new permutation when shuffling.
  iterator begin() {
    const std::int64_t n = dataset_->size();
    if (options_.shuffle) {
      order_ = gen_->randperm(n);
    } else if (static_cast<std::int64_t>(order_.size()) != n) {
      order_.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) order_[i] = i;
    }
    return iterator(this);
  }
  std::default_sentinel_t end() const { return {}; }

 private:
  void validate() const {
    if (options_.batch_size < 1)
      throw Error("DataLoader: batch_size must be at least 1, got " + std::to_string(options_.batch_size));
  }
  Batch<T> batch_at(std::int64_t b) const {
    const std::int64_t n = static_cast<std::int64_t>(order_.size());
    const std::int64_t lo = b * options_.batch_size, hi = std::min(n, lo + options_.batch_size);
    return make_batch(std::vector<std::int64_t>(order_.begin() + lo, order_.begin() + hi));
  }

  const D* dataset_;
  LoaderOptions options_;
  Generator* gen_ = nullptr;
  std::vector<std::int64_t> order_;  // this epoch's sample order
};

}  // namespace diffuse::data
