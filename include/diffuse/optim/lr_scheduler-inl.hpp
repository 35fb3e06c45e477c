/// @file
/// The definitions of lr_scheduler.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/optim/lr_scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"

namespace diffuse::optim {

DIFFUSE_COLD DIFFUSE_INLINE const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> names = {
      "constant", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant_with_warmup"};
  return names;
}

DIFFUSE_COLD DIFFUSE_INLINE std::function<double(std::int64_t)> schedule_lambda(const std::string& name,
                                                                                const ScheduleOptions& o,
                                                                                double lr_init) {
  bool known = false;
  for (auto& n : schedule_names()) known = known || n == name;
  if (!known) {
    std::string list;
    for (auto& n : schedule_names()) list += (list.empty() ? "" : ", ") + n;
    throw Error("get_scheduler: unknown schedule '" + name + "'; accepted: " + list);
  }
  if (name == "constant") return [](std::int64_t) { return 1.0; };
  if (!o.num_warmup_steps) throw Error("get_scheduler: '" + name + "' requires num_warmup_steps");
  const std::int64_t warmup = *o.num_warmup_steps;
  if (warmup < 0)
    throw Error("get_scheduler: num_warmup_steps must be non-negative, got " + std::to_string(warmup));
  auto warm = [warmup](std::int64_t step) {
    return static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, warmup));
  };
  if (name == "constant_with_warmup")
    return [=](std::int64_t step) { return step < warmup ? warm(step) : 1.0; };
  if (!o.num_training_steps) throw Error("get_scheduler: '" + name + "' requires num_training_steps");
  const std::int64_t total = *o.num_training_steps;
  if (total < 0)
    throw Error("get_scheduler: num_training_steps must be non-negative, got " + std::to_string(total));
  // Fraction of the post-warmup phase done.
  auto progress = [=](std::int64_t step) {
    return static_cast<double>(step - warmup) /
           static_cast<double>(std::max<std::int64_t>(1, total - warmup));
  };
  if (name == "linear")
    return [=](std::int64_t step) {
      if (step < warmup) return warm(step);
      return std::max(0.0, static_cast<double>(total - step) /
                               static_cast<double>(std::max<std::int64_t>(1, total - warmup)));
    };
  if (name == "cosine") {
    const double cycles = o.num_cycles.value_or(0.5);
    return [=](std::int64_t step) {
      if (step < warmup) return warm(step);
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * cycles * 2.0 * progress(step))));
    };
  }
  if (name == "cosine_with_restarts") {
    const double cycles = o.num_cycles.value_or(1.0);
    return [=](std::int64_t step) {
      if (step < warmup) return warm(step);
      const double p = progress(step);
      if (p >= 1.0) return 0.0;
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * std::fmod(cycles * p, 1.0))));
    };
  }
  // polynomial
  if (!(lr_init > o.lr_end))
    throw Error("get_scheduler: lr_end (" + std::to_string(o.lr_end) + ") must be smaller than initial lr (" +
                std::to_string(lr_init) + ")");
  if (total <= warmup)
    throw Error("get_scheduler: 'polynomial' needs num_training_steps (" + std::to_string(total) +
                ") > num_warmup_steps (" + std::to_string(warmup) + ")");
  const double lr_end = o.lr_end, power = o.power;
  return [=](std::int64_t step) {
    if (step < warmup) return warm(step);
    if (step > total) return lr_end / lr_init;
    const double lr_range = lr_init - lr_end;
    const double decay_steps = static_cast<double>(total - warmup);
    const double pct_remaining = 1.0 - static_cast<double>(step - warmup) / decay_steps;
    return (lr_range * std::pow(pct_remaining, power) + lr_end) / lr_init;
  };
}

}  // namespace diffuse::optim
