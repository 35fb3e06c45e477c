/// @file
/// ProgressBar: a one-line terminal progress bar for long loops, like tqdm:
///   epoch 3/30 [=========>          ] 212/469  45% | loss 0.0312 | 8.31 it/s | 00:25<00:30
/// It redraws at most every `min_interval` seconds and stays quiet when its stream is not a
/// terminal (a log file or a pipe), unless forced on. format_progress() is the pure formatter.
///   training::ProgressBar bar(loader.size(), {.desc = "epoch 1/30"});
///   for (auto& batch : loader) { ...; bar.update(1, loss.item()); }
///   bar.close();
#pragma once
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

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
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<std::int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return buf;
}

/// The progress line (no carriage return or newline). `bar_width` characters of bar.
inline std::string format_progress(const ProgressInfo& p, int bar_width = 30) {
  std::string line = p.desc.empty() ? "" : p.desc + " ";
  const double rate = p.elapsed > 0 ? static_cast<double>(p.step) / p.elapsed : 0.0;
  char buf[96];
  if (p.total > 0) {
    const double frac = std::clamp(static_cast<double>(p.step) / static_cast<double>(p.total), 0.0, 1.0);
    const int filled = static_cast<int>(frac * bar_width);
    std::string bar(static_cast<std::size_t>(bar_width), ' ');
    for (int i = 0; i < filled; ++i) bar[i] = '=';
    if (filled < bar_width && p.step > 0) bar[filled] = '>';
    std::snprintf(buf, sizeof buf, "] %lld/%lld %3d%%", static_cast<long long>(p.step),
                  static_cast<long long>(p.total), static_cast<int>(frac * 100));
    line += "[" + bar + buf;
  } else {
    std::snprintf(buf, sizeof buf, "%lld it", static_cast<long long>(p.step));
    line += buf;
  }
  if (p.loss) {
    std::snprintf(buf, sizeof buf, " | loss %.4g", *p.loss);
    line += buf;
  }
  if (rate >= 1.0 || rate == 0.0)
    std::snprintf(buf, sizeof buf, " | %.2f it/s", rate);
  else
    std::snprintf(buf, sizeof buf, " | %.2f s/it", 1.0 / rate);
  line += buf;
  const double eta = p.total > 0 && rate > 0 ? static_cast<double>(p.total - p.step) / rate : -1.0;
  line += " | " + format_duration(p.elapsed) + "<" + (p.total > 0 ? format_duration(eta) : "?");
  return line;
}

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
  explicit ProgressBar(std::int64_t total, ProgressOptions options = {})
      : o_(std::move(options)), total_(total < 0 ? 0 : total), start_(Clock::now()) {
    enabled_ = o_.enabled ? *o_.enabled : (o_.stream && isatty(fileno(o_.stream)));
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar() { close(); }

  /// Advances by n steps, with the latest loss if given.
  void update(std::int64_t n = 1, std::optional<double> loss = std::nullopt) {
    step_ += n;
    if (loss) loss_ = loss;
    const double now = seconds();
    if (now - last_draw_ >= o_.min_interval || (total_ > 0 && step_ >= total_)) draw(now);
  }
  /// Replaces the text before the bar.
  void set_description(std::string desc) { o_.desc = std::move(desc); }
  /// Starts counting again (a new epoch), keeping the description unless one is given.
  void reset(std::int64_t total, std::optional<std::string> desc = std::nullopt) {
    if (drawn_ && enabled_) std::fputc('\n', o_.stream);
    total_ = total < 0 ? 0 : total, step_ = 0, loss_.reset(), drawn_ = false, closed_ = false;
    if (desc) o_.desc = std::move(*desc);
    start_ = Clock::now(), last_draw_ = -1e9;
  }
  /// Draws the final state and ends the line.
  void close() {
    if (closed_) return;
    closed_ = true;
    if (!enabled_) return;
    draw(seconds());
    std::fputc('\n', o_.stream);
    std::fflush(o_.stream);
  }

  /// Whether the bar draws anything.
  bool enabled() const { return enabled_; }
  /// Steps counted so far.
  std::int64_t step() const { return step_; }
  /// What the line shows now.
  ProgressInfo info() const { return {o_.desc, step_, total_, loss_, seconds()}; }

 private:
  using Clock = std::chrono::steady_clock;
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  void draw(double now) {
    last_draw_ = now;
    if (!enabled_) return;
    const std::string line = format_progress({o_.desc, step_, total_, loss_, now}, o_.bar_width);
    std::fprintf(o_.stream, "\r%s\033[K", line.c_str());  // rewrite the line, clear its rest
    std::fflush(o_.stream);
    drawn_ = true;
  }

  ProgressOptions o_;
  std::int64_t total_ = 0, step_ = 0;
  std::optional<double> loss_;
  Clock::time_point start_;
  double last_draw_ = -1e9;
  bool enabled_ = false, drawn_ = false, closed_ = false;
};

}  // namespace diffuse::training
