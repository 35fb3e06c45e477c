/// @file
/// The definitions of transforms.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/data/transforms.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <stb_image_resize.h>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/image.hpp"

namespace diffuse::data {

namespace detail {

/// The (C, H, W) of an image tensor, or an Error naming the transform.
DIFFUSE_INLINE std::array<std::int64_t, 3> chw(const Tensor<float>& img, const char* what) {
  if (!img.defined()) throw Error(std::string(what) + ": the image tensor is undefined");
  if (img.dim() != 3)
    throw Error(std::string(what) + ": expected an image [C,H,W], got shape " + to_string(img.shape()));
  return {img.size(0), img.size(1), img.size(2)};
}

DIFFUSE_INLINE void check_size(std::int64_t h, std::int64_t w, const char* what) {
  if (h < 1 || w < 1 || h > (1 << 15) || w > (1 << 15))
    throw Error(std::string(what) + ": size " + std::to_string(h) + "x" + std::to_string(w) +
                " must be within 1..32768 pixels");
}

/// Copies the window [top, top+h) x [left, left+w) of img; pixels outside img are `fill`.
DIFFUSE_INLINE Tensor<float> crop(const Tensor<float>& img, std::int64_t top, std::int64_t left,
                                  std::int64_t h, std::int64_t w, float fill = 0.0f) {
  const std::int64_t c = img.size(0), ih = img.size(1), iw = img.size(2);
  Tensor<float> out = Tensor<float>::empty({c, h, w});
  const float* s = img.data();
  float* d = out.data();
  for (std::int64_t k = 0; k < c; ++k)
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x) {
        const std::int64_t sy = top + y, sx = left + x;
        d[(k * h + y) * w + x] = sy >= 0 && sy < ih && sx >= 0 && sx < iw ? s[(k * ih + sy) * iw + sx] : fill;
      }
  return out;
}

}  // namespace detail

DIFFUSE_INLINE Resize::Resize(std::int64_t size, Interpolation mode) : size_(size), mode_(mode) {
  detail::check_size(size, size, "Resize");
}

DIFFUSE_INLINE Resize::Resize(std::int64_t height, std::int64_t width, Interpolation mode)
    : height_(height), width_(width), mode_(mode) {
  detail::check_size(height, width, "Resize");
}

DIFFUSE_INLINE std::pair<std::int64_t, std::int64_t> Resize::output_size(std::int64_t h,
                                                                         std::int64_t w) const {
  if (size_ == 0) return {height_, width_};
  if (h <= w) return {size_, std::max<std::int64_t>(1, size_ * w / h)};
  return {std::max<std::int64_t>(1, size_ * h / w), size_};
}

DIFFUSE_INLINE Tensor<float> Resize::operator()(const Tensor<float>& img) const {
  const auto [c, h, w] = detail::chw(img, "Resize");
  if (h < 1 || w < 1) throw Error("Resize: cannot resize an empty image of shape " + to_string(img.shape()));
  const auto [oh, ow] = output_size(h, w);
  // A thin image keeps its aspect ratio: 1 x 100,000 pixels to a shorter side of 64 would be
  // 64 x 6,400,000, refused before allocating it.
  if (ow > (1 << 15) || oh > (1 << 15))
    throw Error("Resize: the " + std::to_string(h) + "x" + std::to_string(w) + " image would become " +
                std::to_string(oh) + "x" + std::to_string(ow) + ", more than 32768 pixels on a side");
  if (oh == h && ow == w) return img.clone();
  // stb works on interleaved pixels: CHW -> HWC, one call for all channels, HWC -> CHW.
  const std::int64_t plane = h * w, oplane = oh * ow;
  std::vector<float> in(static_cast<std::size_t>(c * plane)), res(static_cast<std::size_t>(c * oplane));
  const float* s = img.data();
  for (std::int64_t k = 0; k < c; ++k)
    for (std::int64_t p = 0; p < plane; ++p) in[p * c + k] = s[k * plane + p];
  const stbir_filter filter =
      mode_ == Interpolation::bicubic ? STBIR_FILTER_CATMULLROM : STBIR_FILTER_TRIANGLE;
  if (!stbir_resize_float_generic(in.data(), static_cast<int>(w), static_cast<int>(h), 0, res.data(),
                                  static_cast<int>(ow), static_cast<int>(oh), 0, static_cast<int>(c),
                                  STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, filter,
                                  STBIR_COLORSPACE_LINEAR, nullptr))
    throw Error("Resize: stb_image_resize failed for " + to_string(img.shape()) + " -> " +
                std::to_string(oh) + "x" + std::to_string(ow));
  Tensor<float> out = Tensor<float>::empty({c, oh, ow});
  float* d = out.data();
  for (std::int64_t k = 0; k < c; ++k)
    for (std::int64_t p = 0; p < oplane; ++p) d[k * oplane + p] = res[p * c + k];
  return out;
}

DIFFUSE_INLINE CenterCrop::CenterCrop(std::int64_t height, std::int64_t width) : h_(height), w_(width) {
  detail::check_size(height, width, "CenterCrop");
}

DIFFUSE_INLINE Tensor<float> CenterCrop::operator()(const Tensor<float>& img) const {
  const auto [c, h, w] = detail::chw(img, "CenterCrop");
  // torchvision: int(round((H - h) / 2)), Python's round halves to even.
  const auto top = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(h - h_) / 2.0));
  const auto left = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(w - w_) / 2.0));
  return detail::crop(img, top, left, h_, w_);
}

DIFFUSE_INLINE RandomCrop::RandomCrop(std::int64_t height, std::int64_t width, std::int64_t padding)
    : h_(height), w_(width), pad_(padding) {
  detail::check_size(height, width, "RandomCrop");
  // Bounded like a size: (h + 2 padding)^2 positions must not overflow when one is drawn.
  if (padding < 0 || padding > (1 << 15))
    throw Error("RandomCrop: padding must be within 0..32768, got " + std::to_string(padding));
}

DIFFUSE_INLINE Tensor<float> RandomCrop::operator()(const Tensor<float>& img, Generator& gen) const {
  const auto [c, h, w] = detail::chw(img, "RandomCrop");
  const std::int64_t ph = h + 2 * pad_, pw = w + 2 * pad_;
  if (ph < h_ || pw < w_)
    throw Error("RandomCrop: the image is " + std::to_string(h) + "x" + std::to_string(w) +
                (pad_ ? " (padded by " + std::to_string(pad_) + ")" : std::string()) +
                ", smaller than the crop " + std::to_string(h_) + "x" + std::to_string(w_) +
                "; Resize it first");
  const auto pos = gen.randint_list(0, (ph - h_ + 1) * (pw - w_ + 1), 1)[0];
  const std::int64_t top = pos / (pw - w_ + 1), left = pos % (pw - w_ + 1);
  return detail::crop(img, top - pad_, left - pad_, h_, w_);
}

DIFFUSE_INLINE RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {
  if (!(p >= 0.0 && p <= 1.0))
    throw Error("RandomHorizontalFlip: p must be in [0, 1], got " + std::to_string(p));
}

DIFFUSE_INLINE Tensor<float> RandomHorizontalFlip::operator()(const Tensor<float>& img,
                                                              Generator& gen) const {
  const auto [c, h, w] = detail::chw(img, "RandomHorizontalFlip");
  const double u = gen.rand<double>({1}).item();  // drawn always, so the draws do not depend on p
  if (!(u < p_)) return img;
  Tensor<float> out = Tensor<float>::empty(img.shape());
  const float* s = img.data();
  float* d = out.data();
  for (std::int64_t r = 0; r < c * h; ++r)
    for (std::int64_t x = 0; x < w; ++x) d[r * w + x] = s[r * w + (w - 1 - x)];
  return out;
}

DIFFUSE_INLINE Tensor<float> ToTensor::operator()(const io::ImageU8& img) const {
  if (img.width < 1 || img.height < 1 || img.channels < 1 || img.channels > 4 ||
      img.pixels.size() != static_cast<std::size_t>(img.width) * img.height * img.channels)
    throw Error("ToTensor: malformed 8-bit image (" + std::to_string(img.width) + "x" +
                std::to_string(img.height) + ", " + std::to_string(img.channels) + " channels, " +
                std::to_string(img.pixels.size()) + " bytes)");
  const std::int64_t c = img.channels, plane = static_cast<std::int64_t>(img.width) * img.height;
  Tensor<float> t = Tensor<float>::empty({c, img.height, img.width});
  for (std::int64_t p = 0; p < plane; ++p)
    for (std::int64_t k = 0; k < c; ++k) t.data()[k * plane + p] = img.pixels[p * c + k] / 255.0f;
  return t;
}

DIFFUSE_INLINE Tensor<float> ToTensor::operator()(const Tensor<float>& img) const {
  if (img.defined() && img.dim() == 2) return img.reshape({1, img.size(0), img.size(1)});
  const auto [c, h, w] = detail::chw(img, "ToTensor");
  if (c < 1 || c > 4)
    throw Error("ToTensor: an image has 1..4 channels, got shape " + to_string(img.shape()));
  return img;
}

DIFFUSE_INLINE Normalize::Normalize(std::vector<double> mean, std::vector<double> std)
    : mean_(std::move(mean)), std_(std::move(std)) {
  if (mean_.empty() || mean_.size() != std_.size())
    throw Error(
        "Normalize: mean and std need the same number of values (one per channel, or one for all), got " +
        std::to_string(mean_.size()) + " and " + std::to_string(std_.size()));
  for (double s : std_)
    if (!(s != 0.0) || !std::isfinite(s))
      throw Error("Normalize: std must be finite and non-zero, got " + std::to_string(s));
}

DIFFUSE_INLINE Tensor<float> Normalize::operator()(const Tensor<float>& img) const {
  const auto [c, h, w] = detail::chw(img, "Normalize");
  if (mean_.size() != 1 && static_cast<std::int64_t>(mean_.size()) != c)
    throw Error("Normalize: " + std::to_string(mean_.size()) + " means for an image with " +
                std::to_string(c) + " channels (shape " + to_string(img.shape()) + ")");
  Tensor<float> out = Tensor<float>::empty(img.shape());
  for (std::int64_t k = 0; k < c; ++k) {
    const std::size_t j = mean_.size() == 1 ? 0 : static_cast<std::size_t>(k);
    const float m = static_cast<float>(mean_[j]), inv = static_cast<float>(1.0 / std_[j]);
    const float* s = img.data() + k * h * w;
    float* d = out.data() + k * h * w;
    for (std::int64_t p = 0; p < h * w; ++p) d[p] = (s[p] - m) * inv;
  }
  return out;
}

DIFFUSE_INLINE Compose::Compose(std::initializer_list<Transform> transforms) : transforms_(transforms) {
  check();
}

DIFFUSE_INLINE Compose::Compose(std::vector<Transform> transforms) : transforms_(std::move(transforms)) {
  check();
}

DIFFUSE_INLINE Tensor<float> Compose::operator()(const Tensor<float>& img, Generator& gen) const {
  Tensor<float> x = img;
  for (const auto& t : transforms_) x = t(x, gen);
  return x;
}

DIFFUSE_INLINE Tensor<float> Compose::operator()(const Tensor<float>& img) const {
  Generator gen(0);
  return (*this)(img, gen);
}

DIFFUSE_INLINE void Compose::check() const {
  for (const auto& t : transforms_)
    if (!t) throw Error("Compose: an empty transform was given");
}

}  // namespace diffuse::data
