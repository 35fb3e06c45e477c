/// @file
/// SvgPlot: line plots written as self-contained SVG files (no fonts or scripts to fetch), with
/// axes, "nice" ticks (1, 2, 5 x 10^k), tick labels, axis labels, a title and a legend; the y axis
/// may be logarithmic. Points that are not finite (or not positive on a log axis) break the line.
///   viz::SvgPlot plot({.title = "Training loss", .xlabel = "step", .ylabel = "loss", .log_y = true});
///   plot.add_line(losses, {.label = "loss"});             // x = 0, 1, 2, ...
///   plot.add_line(xs, ys, {.label = "EMA", .color = "#d62728"});
///   plot.save("loss.svg");
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"

namespace diffuse::viz {

/// Options of an SvgPlot.
struct PlotOptions {
  /// The title above the plot (none if empty).
  std::string title = {};
  /// The label of the x axis (none if empty).
  std::string xlabel = {};
  /// The label of the y axis (none if empty).
  std::string ylabel = {};
  /// Logarithmic y axis; points with y <= 0 are left out.
  bool log_y = false;
  /// The image size, from 200x150 to 8000x8000.
  int width = 720, height = 440;  ///< pixels
};

/// How add_line draws a line.
struct LineStyle {
  /// The legend entry.
  std::string label = {};  // legend entry (none if empty)
  /// The stroke colour.
  std::string color = {};  // CSS colour; empty: the next of matplotlib's tab10 colours
  /// The stroke width.
  double width = 1.8;  // stroke width in pixels
  /// Stroke opacity, from 0 (invisible) to 1.
  double opacity = 1.0;
  /// Draw the line dashed.
  bool dashed = false;
};

namespace detail {

/// Tick label text: as many decimals as the step needs, or %g for very large/small values.
std::string tick_label(double v, double step);

}  // namespace detail

/// Ticks covering [lo, hi] at a nice step, about `count` of them; the first and last tick
/// enclose the range (they become the axis limits).
/// Throws diffuse::Error for a range that is not finite.
std::vector<double> nice_ticks(double lo, double hi, int count = 6);

/// Ticks for a log axis over [lo, hi] (both > 0): powers of ten, plus 2 and 5 times them when
/// the range spans fewer than three decades.
std::vector<double> log_ticks(double lo, double hi);

/// A line plot saved as an SVG file (see the file comment).
class SvgPlot {
 public:
  /// An empty plot. Throws diffuse::Error for a size outside 200x150 .. 8000x8000.
  explicit SvgPlot(PlotOptions options = {});

  /// A line through (xs[i], ys[i]).
  /// Throws diffuse::Error if xs and ys differ in length.
  SvgPlot& add_line(std::vector<double> xs, std::vector<double> ys, LineStyle style = {});
  /// A line through (i, ys[i]).
  SvgPlot& add_line(const std::vector<double>& ys, LineStyle style = {});

  /// The number of lines.
  std::size_t size() const { return series_.size(); }

  /// The SVG document.
  std::string svg() const;

  /// Writes the SVG file atomically.
  void save(const std::filesystem::path& path) const;

 private:
  struct Series {
    std::vector<double> xs, ys;
    LineStyle style;
  };
  static constexpr std::size_t kBreak = std::numeric_limits<std::size_t>::max();
  static double inf() { return std::numeric_limits<double>::infinity(); }
  static std::string palette(std::size_t i);
  static std::string line(double x1, double y1, double x2, double y2);
  static std::string log_label(double v);
  bool plottable(double x, double y) const {
    return std::isfinite(x) && std::isfinite(y) && (!o_.log_y || y > 0);
  }

  // Indices of the points to draw, kBreak where the line breaks.
  template <class PX>
  std::vector<std::size_t> decimate(const Series& s, PX px) const {
    std::vector<std::size_t> keep;
    const bool thin = s.xs.size() > static_cast<std::size_t>(4 * o_.width);
    long column = std::numeric_limits<long>::min();
    std::size_t first = 0, lo = 0, hi = 0, last = 0;
    bool open = false;
    auto close = [&] {
      if (!open) return;
      std::vector<std::size_t> c{first, lo, hi, last};
      std::sort(c.begin(), c.end());
      c.erase(std::unique(c.begin(), c.end()), c.end());
      keep.insert(keep.end(), c.begin(), c.end());
      open = false;
    };
    for (std::size_t i = 0; i < s.xs.size(); ++i) {
      if (!plottable(s.xs[i], s.ys[i])) {
        close();
        if (!keep.empty() && keep.back() != kBreak) keep.push_back(kBreak);
        continue;
      }
      if (!thin) {
        keep.push_back(i);
        continue;
      }
      const long col = static_cast<long>(std::floor(px(s.xs[i])));
      if (!open || col != column) {
        close();
        column = col, first = lo = hi = last = i, open = true;
      } else {
        last = i;
        if (s.ys[i] < s.ys[lo]) lo = i;
        if (s.ys[i] > s.ys[hi]) hi = i;
      }
    }
    close();
    return keep;
  }

  PlotOptions o_;
  std::vector<Series> series_;
};

}  // namespace diffuse::viz

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/viz/svg_plot-inl.hpp"
#endif
