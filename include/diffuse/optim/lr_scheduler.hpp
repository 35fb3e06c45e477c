/// @file
/// Learning-rate schedules by diffusers' get_scheduler names, with the formulas of
/// diffusers.optimization / transformers: "constant", "constant_with_warmup", "linear",
/// "cosine", "cosine_with_restarts", "polynomial". Like PyTorch's LambdaLR, a schedule sets
/// every group's lr to initial_lr * multiplier(step), so per-group ratios are kept; it applies
/// multiplier(0) on construction and advances by one with each step() (call it after
/// optimizer.step()):
/// @code
///   auto lr_scheduler = optim::get_scheduler("cosine", opt, {.num_warmup_steps = 500,
///                                                            .num_training_steps = 10000});
///   ... opt.step(); lr_scheduler.step();
/// @endcode
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/optim/optimizer.hpp"

namespace diffuse::optim {

/// What get_scheduler needs besides the name (diffusers' get_scheduler arguments).
struct ScheduleOptions {
  std::optional<std::int64_t> num_warmup_steps{};  ///< all but "constant" need it
  std::optional<std::int64_t>
      num_training_steps{};  ///< "linear", "cosine", "cosine_with_restarts", "polynomial"
  /// Cosine waves: unset means diffusers' defaults, 0.5 for "cosine" (half a wave down to 0)
  /// and 1 for "cosine_with_restarts" (number of hard restarts).
  std::optional<double> num_cycles{};
  double power = 1.0;    ///< "polynomial"
  double lr_end = 1e-7;  ///< "polynomial": the final lr
};

/// The accepted schedule names.
inline const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> names = {
      "constant", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant_with_warmup"};
  return names;
}

/// The multiplier of schedule `name` as a function of the step. `lr_init` is the optimizer's
/// default lr (only "polynomial" uses it, as diffusers does with optimizer.defaults["lr"]).
inline std::function<double(std::int64_t)> schedule_lambda(const std::string& name, const ScheduleOptions& o,
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

/// PyTorch's LambdaLR: lr of group g = initial_lr of group g * lambda(last_epoch). The groups hold
/// the only copies of the learning rates (lr, and initial_lr to scale from); the schedule holds the
/// step alone, so an optimizer and its schedule restore in either order.
template <class T = float>
class LRScheduler {
 public:
  /// The multiplier as a function of the step.
  using Lambda = std::function<double(std::int64_t)>;

  /// Applies lambda(0) at once (like LambdaLR with last_epoch = -1). `name` identifies the
  /// schedule in checkpoints.
  LRScheduler(Optimizer<T>& optimizer, Lambda lambda, std::string name = "lambda")
      : optimizer_(&optimizer), lambda_(std::move(lambda)), name_(std::move(name)) {
    if (!lambda_) throw Error("LRScheduler: empty lambda");
    step();
  }

  /// Advances one step and sets the groups' learning rates.
  void step() {
    ++last_epoch_;
    apply();
  }

  /// The step the current learning rates belong to (0 right after construction).
  std::int64_t last_epoch() const { return last_epoch_; }
  /// The multiplier at `step`.
  double multiplier(std::int64_t step) const { return lambda_(step); }
  /// The groups' learning rates, one per group (get_last_lr()).
  std::vector<double> get_last_lr() const {
    std::vector<double> out;
    for (const auto& g : optimizer_->param_groups()) out.push_back(g.lr);
    return out;
  }
  /// The groups' initial learning rates, which the multiplier scales.
  std::vector<double> base_lrs() const {
    std::vector<double> out;
    for (const auto& g : optimizer_->param_groups()) out.push_back(g.initial_lr);
    return out;
  }
  /// The schedule's name, as given to get_scheduler.
  const std::string& name() const { return name_; }

  /// The state for checkpoints: name and last_epoch (the rates live in the optimizer's state).
  nlohmann::json state_dict() const { return {{"name", name_}, {"last_epoch", last_epoch_}}; }
  /// Restores a state_dict() of a schedule with the same name and sets the groups' learning rates
  /// for that step. (A "base_lrs" entry, written by earlier versions, is ignored: the optimizer's
  /// state holds the same values as each group's initial_lr.)
  void load_state_dict(const nlohmann::json& s);

 private:
  void apply() {
    const double m = lambda_(last_epoch_);
    for (auto& g : optimizer_->param_groups()) g.lr = g.initial_lr * m;
  }

  Optimizer<T>* optimizer_;
  Lambda lambda_;
  std::string name_;
  std::int64_t last_epoch_ = -1;
};

template <class T>
void LRScheduler<T>::load_state_dict(const nlohmann::json& s) {
  try {
    const std::string name = s.at("name").get<std::string>();
    if (name != name_)
      throw Error("the state is of schedule '" + name + "', this schedule is '" + name_ + "'");
    const auto epoch = io::json_integer<std::int64_t>(s.at("last_epoch"), "last_epoch");
    if (epoch < 0) throw Error("last_epoch must be non-negative, got " + std::to_string(epoch));
    last_epoch_ = epoch;
    apply();
  } catch (const nlohmann::json::exception& e) {
    throw Error("LRScheduler::load_state_dict: malformed state: " + std::string(e.what()));
  } catch (const Error& e) {
    throw Error("LRScheduler::load_state_dict: " + std::string(e.what()));
  }
}

/// diffusers.optimization.get_scheduler: the schedule `name` over `optimizer`. Unknown names
/// and missing step counts throw diffuse::Error. The optimizer must outlive the schedule.
template <class T>
LRScheduler<T> get_scheduler(const std::string& name, Optimizer<T>& optimizer,
                             const ScheduleOptions& options = {}) {
  return LRScheduler<T>(optimizer, schedule_lambda(name, options, optimizer.default_lr()), name);
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_OPTIM_LR_SCHEDULER_TEMPLATES(X, T) X(class LRScheduler<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_OPTIM_LR_SCHEDULER_TEMPLATES)

}  // namespace diffuse::optim
