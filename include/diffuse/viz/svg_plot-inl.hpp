/// @file
/// The definitions of svg_plot.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/viz/svg_plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/io/atomic_file.hpp"

namespace diffuse::viz {

namespace detail {

/// Heckbert's "nice number": 1, 2, 5 or 10 times a power of ten near x.
DIFFUSE_COLD DIFFUSE_INLINE double nice_number(double x, bool round) {
  const double e = std::floor(std::log10(x)), f = x / std::pow(10.0, e);
  double nf;
  if (round)
    nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  else
    nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nf * std::pow(10.0, e);
}

DIFFUSE_COLD DIFFUSE_INLINE std::string tick_label(double v, double step) {
  char buf[64];
  if (std::abs(v) < step * 1e-9) v = 0.0;
  const double mag = std::max(std::abs(v), step);
  if (mag >= 1e6 || mag < 1e-4) {
    std::snprintf(buf, sizeof buf, "%g", v);
  } else {
    const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

DIFFUSE_COLD DIFFUSE_INLINE std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

/// Appends printf(format, ...) to out: one call per SVG element keeps its template readable.
DIFFUSE_COLD [[gnu::format(printf, 2, 3)]] DIFFUSE_INLINE void append_format(std::string& out,
                                                                             const char* format, ...) {
  std::va_list args, again;
  va_start(args, format);
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  if (n > 0) {
    const std::size_t old = out.size();
    out.resize(old + static_cast<std::size_t>(n) + 1);  // vsnprintf writes a terminating NUL
    std::vsnprintf(out.data() + old, static_cast<std::size_t>(n) + 1, format, again);
    out.resize(old + static_cast<std::size_t>(n));
  }
  va_end(again);
}

}  // namespace detail

DIFFUSE_COLD DIFFUSE_INLINE std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) throw Error("nice_ticks: range must be finite");
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {  // a flat line: a unit-wide range around it
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double step = detail::nice_number(detail::nice_number(hi - lo, false) / std::max(count - 1, 1), true);
  // k * step, computed as k / (1 / step) for steps below 1 so that 3 * 0.2 prints as 0.6.
  const double inv = step < 1 ? std::round(1 / step) : 0.0;
  auto tick = [&](double k) { return inv > 0 ? k / inv : k * step; };
  std::vector<double> ticks;
  for (double k = std::floor(lo / step + 1e-9);; k += 1) {
    const double t = tick(k);
    ticks.push_back(t == 0 ? 0.0 : t);  // no "-0"
    if (t >= hi - step * 1e-9) break;
  }
  return ticks;
}

DIFFUSE_COLD DIFFUSE_INLINE std::vector<double> log_ticks(double lo, double hi) {
  if (!(lo > 0) || !(hi > 0) || !std::isfinite(lo) || !std::isfinite(hi))
    throw Error("log_ticks: range must be positive and finite");
  if (hi < lo) std::swap(lo, hi);
  const int e0 = static_cast<int>(std::floor(std::log10(lo) + 1e-9)),
            e1 = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
  const int last = std::max(e1, e0 + 1);
  std::vector<double> ticks;
  const bool fine = last - e0 < 3;
  for (int e = e0; e <= last; ++e) {
    const double p = std::pow(10.0, e);
    ticks.push_back(p);
    if (fine && e < last) ticks.push_back(2 * p), ticks.push_back(5 * p);
  }
  // Trim the 2x/5x ticks beyond the first one that reaches hi.
  while (ticks.size() > 2 && ticks[ticks.size() - 2] >= hi) ticks.pop_back();
  while (ticks.size() > 2 && ticks[1] <= lo) ticks.erase(ticks.begin());
  return ticks;
}

DIFFUSE_COLD DIFFUSE_INLINE SvgPlot::SvgPlot(PlotOptions options) : o_(std::move(options)) {
  if (o_.width < 200 || o_.height < 150 || o_.width > 8000 || o_.height > 8000)
    throw Error("SvgPlot: size " + std::to_string(o_.width) + "x" + std::to_string(o_.height) +
                " must be within 200x150 .. 8000x8000");
}

DIFFUSE_COLD DIFFUSE_INLINE SvgPlot& SvgPlot::add_line(std::vector<double> xs, std::vector<double> ys,
                                                       LineStyle style) {
  if (xs.size() != ys.size())
    throw Error("SvgPlot::add_line('" + style.label + "'): " + std::to_string(xs.size()) + " x values but " +
                std::to_string(ys.size()) + " y values");
  if (style.color.empty()) style.color = palette(series_.size());
  series_.push_back({std::move(xs), std::move(ys), std::move(style)});
  return *this;
}

DIFFUSE_COLD DIFFUSE_INLINE SvgPlot& SvgPlot::add_line(const std::vector<double>& ys, LineStyle style) {
  std::vector<double> xs(ys.size());
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<double>(i);
  return add_line(std::move(xs), ys, std::move(style));
}

DIFFUSE_COLD DIFFUSE_INLINE std::string SvgPlot::svg() const {
  // Data ranges over the plottable points.
  double x0 = inf(), x1 = -inf(), y0 = inf(), y1 = -inf();
  for (const auto& s : series_)
    for (std::size_t i = 0; i < s.xs.size(); ++i)
      if (plottable(s.xs[i], s.ys[i])) {
        x0 = std::min(x0, s.xs[i]), x1 = std::max(x1, s.xs[i]);
        y0 = std::min(y0, s.ys[i]), y1 = std::max(y1, s.ys[i]);
      }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = o_.log_y ? 0.1 : 0, y1 = 1;  // nothing to plot: empty axes
  const std::vector<double> xt = nice_ticks(x0, x1), yt = o_.log_y ? log_ticks(y0, y1) : nice_ticks(y0, y1);
  const double xlo = xt.front(), xhi = xt.back(), ylo = yt.front(), yhi = yt.back();
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1, xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;

  // Plot area inside margins for title, labels and ticks.
  const double left = 78, right = o_.width - 20.0, top = o_.title.empty() ? 20.0 : 44.0,
               bottom = o_.height - (o_.xlabel.empty() ? 36.0 : 56.0);
  auto px = [&](double x) { return left + (x - xlo) / (xhi - xlo) * (right - left); };
  auto py = [&](double y) {
    const double f = o_.log_y ? (std::log10(y) - std::log10(ylo)) / (std::log10(yhi) - std::log10(ylo))
                              : (y - ylo) / (yhi - ylo);
    return bottom - f * (bottom - top);
  };

  // Each element is one printf-style template: "%.2f" is how every coordinate is written.
  std::string out;
  detail::append_format(
      out,
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<rect x=\"0\" y=\"0\" width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      o_.width, o_.height, o_.width, o_.height);
  if (!o_.title.empty())
    detail::append_format(out,
                          "<text class=\"title\" x=\"%.2f\" y=\"26\" text-anchor=\"middle\" font-size=\"15\" "
                          "font-weight=\"bold\">%s</text>\n",
                          (left + right) / 2, detail::xml_escape(o_.title).c_str());

  // Grid lines and tick labels.
  out += "<g class=\"grid\" stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
  for (double t : xt) out += line(px(t), top, px(t), bottom);
  for (double t : yt) out += line(left, py(t), right, py(t));
  out += "</g>\n<g class=\"ticks\" fill=\"#333\">\n";
  for (double t : xt)
    detail::append_format(out,
                          "<text class=\"xtick\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n",
                          px(t), bottom + 18, detail::tick_label(t, xstep).c_str());
  for (double t : yt)
    detail::append_format(out, "<text class=\"ytick\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n",
                          left - 8, py(t) + 4,
                          (o_.log_y ? log_label(t) : detail::tick_label(t, ystep)).c_str());
  out += "</g>\n";
  detail::append_format(
      out,
      "<rect class=\"frame\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
      "stroke=\"#333\" stroke-width=\"1\"/>\n",
      left, top, right - left, bottom - top);
  if (!o_.xlabel.empty())
    detail::append_format(out,
                          "<text class=\"xlabel\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" "
                          "font-size=\"13\">%s</text>\n",
                          (left + right) / 2, o_.height - 14.0, detail::xml_escape(o_.xlabel).c_str());
  if (!o_.ylabel.empty())
    detail::append_format(
        out,
        "<text class=\"ylabel\" x=\"18\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\" "
        "transform=\"rotate(-90 18 %.2f)\">%s</text>\n",
        (top + bottom) / 2, (top + bottom) / 2, detail::xml_escape(o_.ylabel).c_str());

  // The lines, clipped to the plot area; one polyline per unbroken run of points.
  detail::append_format(out,
                        "<defs><clipPath id=\"plot-area\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                        "height=\"%.2f\"/></clipPath></defs>\n"
                        "<g clip-path=\"url(#plot-area)\" fill=\"none\" stroke-linejoin=\"round\">\n",
                        left, top, right - left, bottom - top);
  for (const auto& s : series_) {
    std::string points;
    std::size_t count = 0;
    auto flush = [&] {
      if (count >= 1) {
        detail::append_format(out, "<polyline stroke=\"%s\" stroke-width=\"%.2f\"",
                              detail::xml_escape(s.style.color).c_str(), s.style.width);
        if (s.style.opacity < 1) detail::append_format(out, " stroke-opacity=\"%.2f\"", s.style.opacity);
        if (s.style.dashed) out += " stroke-dasharray=\"6 4\"";
        detail::append_format(out, " points=\"%s\"/>\n", points.c_str());
      }
      points.clear(), count = 0;
    };
    // Long series keep the first, lowest, highest and last point of each pixel column.
    const auto keep = decimate(s, px);
    for (std::size_t i : keep) {
      if (i == kBreak) {
        flush();
        continue;
      }
      detail::append_format(points, count ? " %.2f,%.2f" : "%.2f,%.2f", px(s.xs[i]), py(s.ys[i]));
      ++count;
    }
    flush();
  }
  out += "</g>\n";

  // Legend, top right.
  std::vector<const Series*> named;
  for (const auto& s : series_)
    if (!s.style.label.empty()) named.push_back(&s);
  if (!named.empty()) {
    std::size_t longest = 0;
    for (auto* s : named) longest = std::max(longest, s->style.label.size());
    const double w = 40 + 7.0 * static_cast<double>(longest),
                 h = 8 + 18.0 * static_cast<double>(named.size());
    // The corner whose box covers the fewest points (top right on ties).
    double lx = right - w - 10, ly = top + 10;
    std::size_t best = std::numeric_limits<std::size_t>::max();
    for (const auto& [cx, cy] :
         {std::pair{right - w - 10, top + 10}, std::pair{left + 10, top + 10},
          std::pair{right - w - 10, bottom - h - 10}, std::pair{left + 10, bottom - h - 10}}) {
      std::size_t covered = 0;
      for (const auto& s : series_)
        for (std::size_t i = 0; i < s.xs.size(); i += 1 + s.xs.size() / 2000)
          if (plottable(s.xs[i], s.ys[i])) {
            const double X = px(s.xs[i]), Y = py(s.ys[i]);
            covered += X >= cx - 4 && X <= cx + w + 4 && Y >= cy - 4 && Y <= cy + h + 4;
          }
      if (covered < best) best = covered, lx = cx, ly = cy;
    }
    detail::append_format(out,
                          "<g class=\"legend\">\n<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                          "fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\"/>\n",
                          lx, ly, w, h);
    for (std::size_t k = 0; k < named.size(); ++k) {
      const double y = ly + 14 + 18.0 * static_cast<double>(k);
      const auto& st = named[k]->style;
      detail::append_format(
          out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"%.2f\"",
          lx + 8, y, lx + 30, y, detail::xml_escape(st.color).c_str(), std::max(st.width, 2.0));
      if (st.opacity < 1) detail::append_format(out, " stroke-opacity=\"%.2f\"", std::max(st.opacity, 0.4));
      if (st.dashed) out += " stroke-dasharray=\"6 4\"";
      detail::append_format(out, "/>\n<text x=\"%.2f\" y=\"%.2f\">%s</text>\n", lx + 36, y + 4,
                            detail::xml_escape(st.label).c_str());
    }
    out += "</g>\n";
  }
  out += "</svg>\n";
  return out;
}

DIFFUSE_COLD DIFFUSE_INLINE void SvgPlot::save(const std::filesystem::path& path) const {
  io::write_file_atomic(path, svg());
}

DIFFUSE_COLD DIFFUSE_INLINE std::string SvgPlot::palette(std::size_t i) {
  static const char* tab10[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return tab10[i % 10];
}

DIFFUSE_COLD DIFFUSE_INLINE std::string SvgPlot::line(double x1, double y1, double x2, double y2) {
  std::string out;
  detail::append_format(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x1, y1, x2, y2);
  return out;
}

DIFFUSE_COLD DIFFUSE_INLINE std::string SvgPlot::log_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace diffuse::viz
