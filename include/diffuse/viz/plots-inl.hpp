/// @file
/// The definitions of plots.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/viz/plots.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/viz/svg_plot.hpp"

namespace diffuse::viz {

DIFFUSE_COLD DIFFUSE_INLINE std::vector<double> ema(const std::vector<double>& values, double smoothing) {
  if (!(smoothing >= 0.0 && smoothing < 1.0))
    throw Error("ema: smoothing must be in [0, 1), got " + std::to_string(smoothing));
  std::vector<double> out(values.size());
  double acc = 0, weight = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) {
      acc = smoothing * acc + (1 - smoothing) * values[i];
      weight = smoothing * weight + (1 - smoothing);
    }
    out[i] = weight > 0 ? acc / weight : std::nan("");
  }
  return out;
}

DIFFUSE_COLD DIFFUSE_INLINE SvgPlot loss_plot(const std::vector<double>& losses, const LossPlotOptions& o) {
  SvgPlot plot({.title = o.title,
                .xlabel = o.xlabel,
                .ylabel = o.ylabel + (o.log_y ? " (log scale)" : ""),
                .log_y = o.log_y});
  plot.add_line(losses, {.label = "raw", .color = "#1f77b4", .width = 1.0, .opacity = 0.35});
  if (o.smoothing > 0)
    plot.add_line(
        ema(losses, o.smoothing),
        {.label = "EMA " + detail::tick_label(o.smoothing, 0.01), .color = "#1f77b4", .width = 2.2});
  return plot;
}

}  // namespace diffuse::viz
