/// @file
/// The definitions of scatter.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/viz/scatter.hpp"

#include <cstdint>
#include <filesystem>
#include <string>

#include "diffuse/core/error.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/image.hpp"

namespace diffuse::viz {

DIFFUSE_COLD DIFFUSE_INLINE ScatterPlot::ScatterPlot(const ScatterOptions& opts) : o_(opts) {
  if (o_.width < 8 || o_.height < 8 || o_.width > 8192 || o_.height > 8192)
    throw Error("ScatterPlot: size " + std::to_string(o_.width) + "x" + std::to_string(o_.height) +
                " must be within 8..8192 pixels");
  if (!(o_.xmax > o_.xmin) || !(o_.ymax > o_.ymin)) throw Error("ScatterPlot: empty data range");
  image_ = Tensor<float>::ones({3, o_.height, o_.width});
  const Color axis{0.85f, 0.85f, 0.85f}, frame{0.3f, 0.3f, 0.3f};
  const double x0 = px(0), y0 = py(0);
  for (std::int64_t i = 0; i < o_.width; ++i) {
    if (y0 >= 0 && y0 < o_.height) set(i, static_cast<std::int64_t>(y0), axis);
    set(i, 0, frame);
    set(i, o_.height - 1, frame);
  }
  for (std::int64_t j = 0; j < o_.height; ++j) {
    if (x0 >= 0 && x0 < o_.width) set(static_cast<std::int64_t>(x0), j, axis);
    set(0, j, frame);
    set(o_.width - 1, j, frame);
  }
}

DIFFUSE_COLD DIFFUSE_INLINE void ScatterPlot::save(const std::filesystem::path& path) const {
  io::write_png(path, image_);
}

}  // namespace diffuse::viz
