/// @file
/// The definitions of figure.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/viz/figure.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>

#include "diffuse/core/error.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/image.hpp"

namespace diffuse::viz {

DIFFUSE_COLD DIFFUSE_INLINE Figure::Figure(std::int64_t gap, double background)
    : gap_(gap), background_(background) {
  if (gap < 0) throw Error("Figure: gap must be non-negative, got " + std::to_string(gap));
}

DIFFUSE_COLD DIFFUSE_INLINE Tensor<float> Figure::image() const {
  if (panels_.empty()) throw Error("Figure::image: the figure has no panels");
  std::int64_t c = 1, h = gap_ * static_cast<std::int64_t>(panels_.size() - 1), w = 0;
  for (const auto& p : panels_) c = std::max(c, p.size(0)), h += p.size(1), w = std::max(w, p.size(2));
  Tensor<float> out = Tensor<float>::full({c, h, w}, static_cast<float>(background_));
  std::int64_t y0 = 0;
  for (const auto& p : panels_) {
    const std::int64_t pc = p.size(0), ph = p.size(1), pw = p.size(2);
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t y = 0; y < ph; ++y) {
        const float* src = p.data() + ((pc == 1 ? 0 : ch) * ph + y) * pw;
        std::copy(src, src + pw, out.data() + (ch * h + y0 + y) * w);
      }
    y0 += ph + gap_;
  }
  return out;
}

DIFFUSE_COLD DIFFUSE_INLINE void Figure::save(const std::filesystem::path& path) const {
  io::write_image(path, image());
}

}  // namespace diffuse::viz
