/// @file
/// Figure: stacks images (or grids of batches) vertically with a small gap and saves the result
/// as one PNG, e.g. an "input row" above a "corrupted row" in the examples.
///   viz::Figure fig;
///   fig.add(x).add(noisy);          // batches [N,C,H,W] are gridded with make_grid
///   fig.save("corruption.png");
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/image.hpp"
#include "diffuse/viz/grid.hpp"

namespace diffuse::viz {

/// Images stacked top to bottom, saved as one picture (see the file comment).
class Figure {
 public:
  /// `gap` pixels of `background` (0 black .. 1 white) between panels.
  /// Throws diffuse::Error for a negative gap.
  explicit Figure(std::int64_t gap = 4, double background = 1.0);

  /// Adds a panel below the previous ones: a batch [N,C,H,W] is gridded with `opts`; an image
  /// [C,H,W] or [H,W] is used as it is (after opts' normalisation). 1 or 3 channels.
  /// Throws diffuse::Error for another number of channels.
  template <class T>
  Figure& add(const Tensor<T>& images, const GridOptions& opts = {}) {
    Tensor<T> img = images.defined() && images.dim() == 4 ? make_grid(images, opts)
                                                          : detail::normalize_for_grid(images, opts);
    const auto [c, h, w] = io::detail::image_dims(img, "Figure::add");
    if (c != 1 && c != 3) throw Error("Figure::add: panels need 1 or 3 channels, got " + std::to_string(c));
    Tensor<float> p = Tensor<float>::empty({c, h, w});
    std::copy(img.begin(), img.end(), p.begin());
    panels_.push_back(p);
    return *this;
  }

  /// The number of panels.
  std::size_t size() const { return panels_.size(); }

  /// The composed image [C,H,W]: panels left-aligned, RGB if any panel is RGB.
  Tensor<float> image() const;

  /// Saves the figure (PNG or JPEG by extension). Atomic.
  void save(const std::filesystem::path& path) const;

 private:
  std::int64_t gap_;
  double background_;
  std::vector<Tensor<float>> panels_;
};

}  // namespace diffuse::viz

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/viz/figure-inl.hpp"
#endif
