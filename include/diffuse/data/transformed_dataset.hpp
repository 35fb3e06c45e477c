/// @file
/// TransformedDataset: a dataset whose samples pass through a transform (data/transforms.hpp)
/// each time they are read, like torchvision datasets with transform=...; the DataLoader hands
/// every sample a generator seeded from the epoch and the sample index, so random crops and
/// flips differ between epochs but are the same for the same seed.
///   auto train = data::with_transform(data::ImageFolder("flowers", {.channels = 3}),
///                                     data::Compose({data::Resize(32), data::RandomHorizontalFlip(),
///                                                    data::Normalize({0.5}, {0.5})}));
///   data::DataLoader loader(train, {.batch_size = 64, .shuffle = true}, gen);
/// Every transformed sample must have the same shape (that of sample 0, probed once at
/// construction); one that does not is an Error naming the sample.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/data/dataloader.hpp"
#include "diffuse/data/transforms.hpp"

namespace diffuse::data {

/// A dataset whose samples pass through a Transform as they are read (see the top of this file).
template <class D>
requires Dataset<D, float>
class TransformedDataset {
 public:
  /// Holds its own copy of `base` (move a large dataset in).
  /// Transforms sample 0 once to learn sample_shape(). Error for an empty transform.
  TransformedDataset(D base, Transform transform) : base_(std::move(base)), transform_(std::move(transform)) {
    if (!transform_) throw Error("TransformedDataset: the transform is empty");
    shape_ = base_.sample_shape();
    if (base_.size() > 0) {
      Generator probe(0);
      shape_ = apply(0, probe).shape();
    }
  }

  /// Number of samples of the base dataset.
  std::int64_t size() const { return base_.size(); }
  /// Shape of a transformed sample (that of sample 0).
  const Shape& sample_shape() const { return shape_; }
  /// The base dataset's label of sample i.
  std::int64_t label(std::int64_t i) const { return base_.label(i); }
  /// The untransformed dataset.
  const D& base() const { return base_; }

  /// Sample i, transformed with random draws from `gen`.
  /// Error if i is out of range or the result's shape is not sample_shape().
  Tensor<float> get(std::int64_t i, Generator& gen) const {
    Tensor<float> x = apply(i, gen);
    if (x.shape() != shape_)
      throw Error("TransformedDataset: sample " + std::to_string(i) + " transforms to shape " +
                  to_string(x.shape()) + " but sample 0 to " + to_string(shape_) +
                  "; add a Resize or crop so that every sample has the same size");
    return x;
  }
  /// Writes get(i, gen) to dst as T.
  template <class T>
  void get_into(std::int64_t i, T* dst, Generator& gen) const {
    const Tensor<float> x = get(i, gen);
    std::transform(x.begin(), x.end(), dst, [](float v) { return static_cast<T>(v); });
  }
  /// Without a generator: draws seeded by the sample index.
  template <class T>
  void get_into(std::int64_t i, T* dst) const {
    Generator gen(detail::mix_seed(0, static_cast<std::uint64_t>(i)));
    get_into(i, dst, gen);
  }

 private:
  Tensor<float> apply(std::int64_t i, Generator& gen) const {
    if (i < 0 || i >= size())
      throw Error("TransformedDataset: index " + std::to_string(i) + " is out of range for " +
                  std::to_string(size()) + " samples");
    Tensor<float> x = Tensor<float>::empty(base_.sample_shape());
    base_.get_into(i, x.data());
    return transform_(x, gen);
  }

  D base_;
  Transform transform_;
  Shape shape_;
};

/// `base` (copied or moved in) with `transform` applied to each sample as it is read.
template <class D>
TransformedDataset<std::decay_t<D>> with_transform(D&& base, Transform transform) {
  return TransformedDataset<std::decay_t<D>>(std::forward<D>(base), std::move(transform));
}

}  // namespace diffuse::data
