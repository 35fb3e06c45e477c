// The precompiled library (core/precompiled.hpp): the viz code that is not a template, each
// -inl.hpp of include/diffuse/viz/ compiled once.
#include "diffuse/viz/figure-inl.hpp"
#include "diffuse/viz/plots-inl.hpp"
#include "diffuse/viz/scatter-inl.hpp"
#include "diffuse/viz/svg_plot-inl.hpp"

// make_grid and save_image for float and double.
#include "diffuse/viz/grid.hpp"

namespace diffuse::viz {
DIFFUSE_INSTANTIATE_TEMPLATES(DIFFUSE_VIZ_GRID_TEMPLATES)
}  // namespace diffuse::viz
