/// @file
/// The course's plots as SVG (through viz::SvgPlot): training-loss curves (raw and smoothed by an
/// exponential moving average, linear or log y axis) and noise schedules (sqrt(alphas_cumprod),
/// the signal's share, and sqrt(1 - alphas_cumprod), the noise's, per training timestep).
///   viz::loss_plot(losses, {.log_y = true}).save("loss.svg");
///   viz::schedule_plot({{"linear", &linear}, {"squaredcos_cap_v2", &cosine}}).save("schedules.svg");
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/schedulers/scheduler.hpp"
#include "diffuse/viz/svg_plot.hpp"

namespace diffuse::viz {

/// Exponential moving average with bias correction (TensorBoard's smoothing): s_i =
/// (sum_k w^(i-k) (1-w) v_k) / (1 - w^(i+1)), so the curve starts at the first value.
/// Non-finite values are skipped (their entry repeats the last average, NaN before any).
/// Throws diffuse::Error unless 0 <= smoothing < 1.
std::vector<double> ema(const std::vector<double>& values, double smoothing);

/// Options of loss_plot.
struct LossPlotOptions {
  /// How smooth the second curve is, as in TensorBoard.
  double smoothing = 0.98;  // EMA weight of the smoothed curve (0: no smoothed curve)
  /// Logarithmic y axis.
  bool log_y = false;
  /// The title above the plot.
  std::string title = "Training loss";
  /// The label of the x axis.
  std::string xlabel = "step";
  /// The label of the y axis (" (log scale)" is added with log_y).
  std::string ylabel = "loss";
};

/// The raw losses (thin, faint) and their EMA (solid), against the step index.
SvgPlot loss_plot(const std::vector<double>& losses, const LossPlotOptions& o = {});

/// sqrt(alphas_cumprod) (solid) and sqrt(1 - alphas_cumprod) (dashed) of each named scheduler,
/// one colour per scheduler.
/// Throws diffuse::Error for an empty list or a null scheduler.
template <class T>
SvgPlot schedule_plot(const std::vector<std::pair<std::string, const schedulers::Scheduler<T>*>>& schedules,
                      std::string title = "Noise schedules") {
  if (schedules.empty()) throw Error("schedule_plot: no schedulers given");
  SvgPlot plot({.title = std::move(title), .xlabel = "timestep t", .ylabel = "coefficient"});
  static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};
  for (std::size_t k = 0; k < schedules.size(); ++k) {
    const auto& [name, s] = schedules[k];
    if (!s) throw Error("schedule_plot: scheduler '" + name + "' is null");
    const Tensor<T> ac = s->alphas_cumprod();
    std::vector<double> signal(static_cast<std::size_t>(ac.numel())), noise(signal.size());
    for (std::size_t i = 0; i < signal.size(); ++i) {
      signal[i] = std::sqrt(static_cast<double>(ac.data()[i]));
      noise[i] = std::sqrt(1.0 - static_cast<double>(ac.data()[i]));
    }
    const std::string prefix = schedules.size() > 1 ? name + ": " : "";
    plot.add_line(signal, {.label = prefix + "sqrt(alphas_cumprod)", .color = colors[k % 6]});
    plot.add_line(noise,
                  {.label = prefix + "sqrt(1 - alphas_cumprod)", .color = colors[k % 6], .dashed = true});
  }
  return plot;
}

/// One scheduler's schedule, titled with its name.
template <class T>
SvgPlot schedule_plot(const schedulers::Scheduler<T>& scheduler, const std::string& name) {
  return schedule_plot<T>({{name, &scheduler}}, "Noise schedule: " + name);
}

}  // namespace diffuse::viz

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/viz/plots-inl.hpp"
#endif
