/// @file
/// The definitions of progress.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/training/progress.hpp"

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

DIFFUSE_INLINE std::string format_duration(double seconds) {
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

DIFFUSE_INLINE std::string format_progress(const ProgressInfo& p, int bar_width) {
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

DIFFUSE_INLINE ProgressBar::ProgressBar(std::int64_t total, ProgressOptions options)
    : o_(std::move(options)), total_(total < 0 ? 0 : total), start_(Clock::now()) {
  enabled_ = o_.enabled ? *o_.enabled : (o_.stream && isatty(fileno(o_.stream)));
}

DIFFUSE_INLINE void ProgressBar::update(std::int64_t n, std::optional<double> loss) {
  step_ += n;
  if (loss) loss_ = loss;
  const double now = seconds();
  if (now - last_draw_ >= o_.min_interval || (total_ > 0 && step_ >= total_)) draw(now);
}

DIFFUSE_INLINE void ProgressBar::reset(std::int64_t total, std::optional<std::string> desc) {
  if (drawn_ && enabled_) std::fputc('\n', o_.stream);
  total_ = total < 0 ? 0 : total, step_ = 0, loss_.reset(), drawn_ = false, closed_ = false;
  if (desc) o_.desc = std::move(*desc);
  start_ = Clock::now(), last_draw_ = -1e9;
}

DIFFUSE_INLINE void ProgressBar::close() {
  if (closed_) return;
  closed_ = true;
  if (!enabled_) return;
  draw(seconds());
  std::fputc('\n', o_.stream);
  std::fflush(o_.stream);
}

DIFFUSE_INLINE void ProgressBar::draw(double now) {
  last_draw_ = now;
  if (!enabled_) return;
  const std::string line = format_progress({o_.desc, step_, total_, loss_, now}, o_.bar_width);
  std::fprintf(o_.stream, "\r%s\033[K", line.c_str());  // rewrite the line, clear its rest
  std::fflush(o_.stream);
  drawn_ = true;
}

}  // namespace diffuse::training
