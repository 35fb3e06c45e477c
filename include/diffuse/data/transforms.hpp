/// @file
/// Image transforms as composable objects, like torchvision.transforms: Resize (bilinear or
/// bicubic, through stb_image_resize), CenterCrop, RandomCrop, RandomHorizontalFlip, ToTensor,
/// Normalize and Compose. Each maps one image [C,H,W] (float) to another; the random ones draw
/// from the Generator they are given, so a seed decides every crop and flip:
///   data::Compose preprocess({data::Resize(32), data::RandomHorizontalFlip(),
///                             data::Normalize({0.5}, {0.5})});       // [0,1] -> [-1,1]
///   Tensor<float> x = preprocess(image, gen);
/// Datasets hand transforms images already in [0,1] (ToTensor's convention); ToTensor converts
/// 8-bit pictures (io::ImageU8) or [H,W] arrays to that form. Any callable
/// Tensor<float>(const Tensor<float>&, Generator&) is a Transform too (a lambda, say).
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <utility>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/image.hpp"

namespace diffuse::data {

/// One image [C,H,W] in, one out; random transforms draw from the generator.
using Transform = std::function<Tensor<float>(const Tensor<float>&, Generator&)>;

/// Resize's filter: bilinear (triangle) or bicubic (Catmull-Rom), as torchvision's InterpolationMode.
enum class Interpolation { bilinear, bicubic };

/// Resize(size): the shorter side becomes `size`, the aspect ratio is kept (torchvision's
/// Resize(int)). Resize(height, width): exactly that size. Bilinear (triangle filter) or bicubic
/// (Catmull-Rom); shrinking averages over the covered pixels (antialiasing). Edges are clamped.
class Resize {
 public:
  /// The shorter side to `size`. Error unless 1 <= size <= 32768.
  explicit Resize(std::int64_t size, Interpolation mode = Interpolation::bilinear);
  /// Exactly height x width. Error unless both are within 1..32768.
  Resize(std::int64_t height, std::int64_t width, Interpolation mode = Interpolation::bilinear);

  /// The output (height, width) for an input of h x w.
  std::pair<std::int64_t, std::int64_t> output_size(std::int64_t h, std::int64_t w) const;

  /// The resized image; Error if `img` is not an image [C,H,W].
  Tensor<float> operator()(const Tensor<float>& img) const;
  /// As a Transform (draws nothing).
  Tensor<float> operator()(const Tensor<float>& img, Generator&) const { return (*this)(img); }

 private:
  std::int64_t size_ = 0, height_ = 0, width_ = 0;
  Interpolation mode_;
};

/// The central height x width window (padded with zeros where the image is smaller), as
/// torchvision's CenterCrop.
class CenterCrop {
 public:
  /// A size x size window.
  explicit CenterCrop(std::int64_t size) : CenterCrop(size, size) {}
  /// Error unless both sides are within 1..32768.
  CenterCrop(std::int64_t height, std::int64_t width);
  /// The window of `img`; Error if it is not an image [C,H,W].
  Tensor<float> operator()(const Tensor<float>& img) const;
  /// As a Transform (draws nothing).
  Tensor<float> operator()(const Tensor<float>& img, Generator&) const { return (*this)(img); }

 private:
  std::int64_t h_, w_;
};

/// A height x width window at a random position, after `padding` zero pixels on every side
/// (torchvision's RandomCrop(size, padding)). An image smaller than the window is an Error.
class RandomCrop {
 public:
  /// A size x size window.
  explicit RandomCrop(std::int64_t size, std::int64_t padding = 0) : RandomCrop(size, size, padding) {}
  /// Error for a side outside 1..32768 or a negative padding.
  RandomCrop(std::int64_t height, std::int64_t width, std::int64_t padding);
  /// The window at a position drawn from `gen` (one draw).
  Tensor<float> operator()(const Tensor<float>& img, Generator& gen) const;

 private:
  std::int64_t h_, w_, pad_;
};

/// Mirrors the image left-right with probability p.
class RandomHorizontalFlip {
 public:
  /// Error unless 0 <= p <= 1.
  explicit RandomHorizontalFlip(double p = 0.5);
  /// The image mirrored with probability p, else `img` itself; one draw from `gen` whatever p is.
  Tensor<float> operator()(const Tensor<float>& img, Generator& gen) const;

 private:
  double p_;
};

/// Converts to the tensor form every other transform takes: an 8-bit picture (io::ImageU8,
/// channels last) becomes [C,H,W] in [0,1]; an [H,W] tensor becomes [1,H,W]; a [C,H,W] tensor
/// with 1..4 channels passes through (datasets already deliver that form).
class ToTensor {
 public:
  /// An 8-bit picture as [C,H,W] in [0,1]; Error if its sizes and its bytes disagree.
  Tensor<float> operator()(const io::ImageU8& img) const;
  /// [H,W] as [1,H,W]; [C,H,W] with 1..4 channels unchanged; anything else is an Error.
  Tensor<float> operator()(const Tensor<float>& img) const;
  /// As a Transform (draws nothing).
  Tensor<float> operator()(const Tensor<float>& img, Generator&) const { return (*this)(img); }
};

/// (x - mean[c]) / std[c] per channel; one value applies to every channel.
/// Normalize({0.5}, {0.5}) maps [0,1] to [-1,1].
class Normalize {
 public:
  /// One mean and std per channel, or one of each for every channel. Error for no values, counts
  /// that differ, or a std that is zero or not finite.
  Normalize(std::vector<double> mean, std::vector<double> std);
  /// Error if the image has another channel count than the means (unless one mean was given).
  Tensor<float> operator()(const Tensor<float>& img) const;
  /// As a Transform (draws nothing).
  Tensor<float> operator()(const Tensor<float>& img, Generator&) const { return (*this)(img); }

 private:
  std::vector<double> mean_, std_;
};

/// Applies transforms in order.
class Compose {
 public:
  /// Error if a transform is empty.
  Compose(std::initializer_list<Transform> transforms);
  /// The same, from a vector.
  explicit Compose(std::vector<Transform> transforms);
  /// Each transform in turn, all drawing from `gen`.
  Tensor<float> operator()(const Tensor<float>& img, Generator& gen) const;
  /// For compositions without random transforms (draws from a generator seeded 0 otherwise).
  Tensor<float> operator()(const Tensor<float>& img) const;
  /// Number of transforms.
  std::size_t size() const { return transforms_.size(); }

 private:
  void check() const;
  std::vector<Transform> transforms_;
};

}  // namespace diffuse::data

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/data/transforms-inl.hpp"
#endif
