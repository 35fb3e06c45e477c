/// @file
/// ScatterPlot: draws 2-D point sets (tensors of shape [N, 2]) as coloured dots on a white
/// canvas with a frame and axes through the origin, and saves it as a PNG; used to look at the
/// samples of 2-D toy diffusion models.
///   viz::ScatterPlot plot({.xmin = -2, .xmax = 2, .ymin = -2, .ymax = 2});
///   plot.add(data, {0.7, 0.7, 0.7}).add(samples, {0.12, 0.47, 0.71});
///   plot.save("samples.png");
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse::viz {

/// Options of a ScatterPlot.
struct ScatterOptions {
  /// Image width in pixels (8 to 8192).
  std::int64_t width = 400;
  /// Image height in pixels (8 to 8192).
  std::int64_t height = 400;
  /// The data range shown; points outside it are not drawn.
  double xmin = -3, xmax = 3, ymin = -3, ymax = 3;  ///< the visible data range
};

/// 2-D point sets drawn as dots on one picture (see the file comment).
class ScatterPlot {
 public:
  /// A dot colour.
  using Color = std::array<float, 3>;  // RGB in [0, 1]

  /// An empty plot: frame and axes. Throws diffuse::Error for a size outside 8..8192 pixels
  /// or an empty data range.
  explicit ScatterPlot(const ScatterOptions& opts = {});

  /// Adds the points of `points` ([N, 2]: x, y) as dots of `radius` pixels; points outside the
  /// range are skipped, as are NaNs.
  /// Throws diffuse::Error unless `points` has shape [N, 2].
  template <class T>
  ScatterPlot& add(const Tensor<T>& points, const Color& color = {0.12f, 0.47f, 0.71f}, double radius = 1.6) {
    if (points.dim() != 2 || points.size(1) != 2)
      throw Error("ScatterPlot::add: points must have shape [N, 2], got " + to_string(points.shape()));
    const auto r = static_cast<std::int64_t>(std::ceil(radius));
    for (std::int64_t n = 0; n < points.size(0); ++n) {
      const double cx = px(points.data()[2 * n]), cy = py(points.data()[2 * n + 1]);
      if (!std::isfinite(cx) || !std::isfinite(cy)) continue;
      for (std::int64_t dy = -r; dy <= r; ++dy)
        for (std::int64_t dx = -r; dx <= r; ++dx) {
          if (dx * dx + dy * dy > radius * radius) continue;
          const auto x = static_cast<std::int64_t>(std::lround(cx)) + dx,
                     y = static_cast<std::int64_t>(std::lround(cy)) + dy;
          if (x > 0 && x < o_.width - 1 && y > 0 && y < o_.height - 1) set(x, y, color);
        }
    }
    return *this;
  }

  /// The picture as an image tensor [3, H, W] with values in [0, 1].
  const Tensor<float>& image() const { return image_; }
  /// Saves the picture as a PNG (atomically).
  void save(const std::filesystem::path& path) const;

 private:
  double px(double x) const {
    return (x - o_.xmin) / (o_.xmax - o_.xmin) * static_cast<double>(o_.width - 1);
  }
  double py(double y) const {
    return (o_.ymax - y) / (o_.ymax - o_.ymin) * static_cast<double>(o_.height - 1);
  }
  void set(std::int64_t x, std::int64_t y, const Color& c) {
    const std::int64_t plane = o_.height * o_.width;
    for (int k = 0; k < 3; ++k) image_.data()[k * plane + y * o_.width + x] = c[k];
  }

  ScatterOptions o_;
  Tensor<float> image_;
};

}  // namespace diffuse::viz

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/viz/scatter-inl.hpp"
#endif
