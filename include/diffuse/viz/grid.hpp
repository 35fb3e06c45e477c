/// @file
/// Image grids: make_grid and save_image with torchvision.utils semantics, for looking at a
/// batch of samples: make_grid(images [N,C,H,W], {.nrow = 8}) tiles them nrow per row with
/// `padding` pixels of `pad_value` around every image.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <utility>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/image.hpp"

namespace diffuse::viz {

/// Options of make_grid and save_image (torchvision's keyword arguments of the same names).
struct GridOptions {
  /// Images per row.
  std::int64_t nrow = 8;  // images per row
  /// Pixels of pad_value between and around the images.
  std::int64_t padding = 2;  // pixels between (and around) images
  /// Maps [lo, hi] to [0, 1] (clamping outside). Unlike torchvision, setting it alone is enough
  /// (normalize is implied): {.value_range = {{-1, 1}}} is what a user asking for it means.
  std::optional<std::pair<double, double>> value_range = std::nullopt;
  /// Scale the values to [0, 1] before tiling.
  bool normalize = false;  // map [min, max] of the whole batch (or value_range) to [0, 1]
  /// The value of the padding pixels.
  double pad_value = 0;
};

namespace detail {
/// Applies GridOptions' normalisation to a copy of `t` (or returns `t` untouched).
template <class T>
Tensor<T> normalize_for_grid(const Tensor<T>& t, const GridOptions& o) {
  if (!o.normalize && !o.value_range) return t;
  double lo, hi;
  if (o.value_range) {
    lo = o.value_range->first, hi = o.value_range->second;
  } else {
    lo = t.numel() ? static_cast<double>(*std::min_element(t.begin(), t.end())) : 0.0;
    hi = t.numel() ? static_cast<double>(*std::max_element(t.begin(), t.end())) : 1.0;
  }
  const double scale = 1.0 / std::max(hi - lo, 1e-5);
  Tensor<T> out = Tensor<T>::empty(t.shape());
  const T* s = t.data();
  T* d = out.data();
  for (std::int64_t i = 0; i < t.numel(); ++i)
    d[i] = static_cast<T>((std::clamp(static_cast<double>(s[i]), lo, hi) - lo) * scale);
  return out;
}
}  // namespace detail

/// Tiles a batch [N,C,H,W] (or one image [C,H,W] / [H,W]) into one image [C', H', W'] exactly
/// as torchvision.utils.make_grid: single-channel images become 3-channel, images are laid
/// out nrow per row, and a single image is returned without padding.
/// Throws diffuse::Error for an undefined or empty batch, another number of dimensions,
/// nrow < 1 or a negative padding.
template <class T>
Tensor<T> make_grid(const Tensor<T>& images, const GridOptions& opts = {}) {
  if (!images.defined()) throw Error("make_grid: the images tensor is undefined");
  if (opts.nrow < 1) throw Error("make_grid: nrow must be at least 1, got " + std::to_string(opts.nrow));
  if (opts.padding < 0)
    throw Error("make_grid: padding must be non-negative, got " + std::to_string(opts.padding));
  const Shape& s = images.shape();
  Shape nchw;
  if (s.size() == 2)
    nchw = {1, 1, s[0], s[1]};
  else if (s.size() == 3)
    nchw = {1, s[0], s[1], s[2]};
  else if (s.size() == 4)
    nchw = s;
  else
    throw Error("make_grid: expected images [N,C,H,W], [C,H,W] or [H,W], got shape " + to_string(s));
  const std::int64_t n = nchw[0], c_in = nchw[1], h = nchw[2], w = nchw[3];
  if (n < 1) throw Error("make_grid: the batch is empty (shape " + to_string(s) + ")");

  const Tensor<T> src = detail::normalize_for_grid(images, opts);
  const std::int64_t c = c_in == 1 ? 3 : c_in;  // gray -> RGB, like torchvision
  const std::int64_t xmaps = std::min(opts.nrow, n), ymaps = (n + xmaps - 1) / xmaps;
  const std::int64_t cell_h = h + opts.padding, cell_w = w + opts.padding;
  const std::int64_t p = n == 1 ? 0 : opts.padding;  // a single image is returned unpadded
  const std::int64_t gh = n == 1 ? h : cell_h * ymaps + p, gw = n == 1 ? w : cell_w * xmaps + p;

  Tensor<T> grid = Tensor<T>::full({c, gh, gw}, static_cast<T>(opts.pad_value));
  T* g = grid.data();
  const T* in = src.data();
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t y0 = (k / xmaps) * cell_h + p, x0 = (k % xmaps) * cell_w + p;
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const T* plane = in + (k * c_in + (c_in == 1 ? 0 : ch)) * h * w;
      for (std::int64_t y = 0; y < h; ++y)
        std::copy(plane + y * w, plane + (y + 1) * w, g + (ch * gh + y0 + y) * gw + x0);
    }
  }
  return grid;
}

/// Saves a batch [N,C,H,W] as a grid (like torchvision.utils.save_image), or a single image
/// [C,H,W] / [H,W] / [1,C,H,W] as it is (grayscale stays grayscale). Format from the extension
/// (.png, .jpg, .jpeg). Values are clamped to [0,1] after the optional normalisation. Atomic.
template <class T>
void save_image(const Tensor<T>& images, const std::filesystem::path& path, const GridOptions& opts = {}) {
  if (!images.defined()) throw Error("save_image('" + path.string() + "'): the tensor is undefined");
  if (images.dim() == 4 && images.size(0) > 1)
    io::write_image(path, make_grid(images, opts));
  else
    io::write_image(path, detail::normalize_for_grid(images, opts));
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_VIZ_GRID_TEMPLATES(X, T)                                      \
  X(Tensor<T> make_grid<T>(const Tensor<T>& images, const GridOptions& opts)) \
  X(void save_image<T>(const Tensor<T>& images, const std::filesystem::path& path, const GridOptions& opts))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_VIZ_GRID_TEMPLATES)

}  // namespace diffuse::viz
