/// @file
/// ProgressBar: a one-line terminal progress bar for long loops, like tqdm:
///   epoch 3/30 [=========>          ] 212/469  45% | loss 0.0312 | 8.31 it/s | 00:25<00:30
/// It redraws at most every `min_interval` seconds and stays quiet when its stream is not a
/// terminal (a log file or a pipe), unless forced on. format_progress() is the pure formatter.
///   training::ProgressBar bar(loader.size(), {.desc = "epoch 1/30"});
///   for (auto& batch : loader) { ...; bar.update(1, loss.item()); }
///   bar.close();
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include "diffuse/core/precompiled.hpp"

namespace diffuse::training {

/// What one line shows.
struct ProgressInfo {
  /// The text before the bar.
  std::string desc = {};  // e.g. "epoch 3/30"
  /// Steps done, and the total.
  std::int64_t step = 0, total = 0;  ///< total 0: unknown (no bar, no ETA)
  /// The latest loss, if any.
  std::optional<double> loss = {};
  /// Time taken so far.
  double elapsed = 0;  // seconds since the start
};

/// "mm:ss", or "h:mm:ss" from an hour on; "--:--" for an unknown time.
std::string format_duration(double seconds);

/// The progress line (no carriage return or newline). `bar_width` characters of bar.
std::string format_progress(const ProgressInfo& p, int bar_width = 30);

/// Options of a ProgressBar.
struct ProgressOptions {
  /// The text before the bar, e.g. "epoch 3/30".
  std::string desc = {};
  /// Where the bar is drawn.
  std::FILE* stream = stderr;
  /// Whether to draw the bar.
  std::optional<bool> enabled = {};  // default: on exactly when `stream` is a terminal
  /// The shortest time between two redraws.
  double min_interval = 0.1;  // seconds between redraws
  /// Characters of the bar.
  int bar_width = 30;
};

/// A tqdm-like progress bar (see the file comment); the destructor closes it.
class ProgressBar {
 public:
  /// A bar for `total` steps (0 or less: unknown, no bar and no ETA).
  explicit ProgressBar(std::int64_t total, ProgressOptions options = {});
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar() { close(); }

  /// Advances by n steps, with the latest loss if given.
  void update(std::int64_t n = 1, std::optional<double> loss = std::nullopt);
  /// Replaces the text before the bar.
  void set_description(std::string desc) { o_.desc = std::move(desc); }
  /// Starts counting again (a new epoch), keeping the description unless one is given.
  void reset(std::int64_t total, std::optional<std::string> desc = std::nullopt);
  /// Draws the final state and ends the line.
  void close();

  /// Whether the bar draws anything.
  bool enabled() const { return enabled_; }
  /// Steps counted so far.
  std::int64_t step() const { return step_; }
  /// What the line shows now.
  ProgressInfo info() const { return {o_.desc, step_, total_, loss_, seconds()}; }

 private:
  using Clock = std::chrono::steady_clock;
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  void draw(double now);

  ProgressOptions o_;
  std::int64_t total_ = 0, step_ = 0;
  std::optional<double> loss_;
  Clock::time_point start_;
  double last_draw_ = -1e9;
  bool enabled_ = false, drawn_ = false, closed_ = false;
};

}  // namespace diffuse::training

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/training/progress-inl.hpp"
#endif
