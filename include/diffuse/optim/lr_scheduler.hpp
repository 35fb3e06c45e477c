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
#include <cstdint>
#include <functional>
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
const std::vector<std::string>& schedule_names();

/// The multiplier of schedule `name` as a function of the step. `lr_init` is the optimizer's
/// default lr (only "polynomial" uses it, as diffusers does with optimizer.defaults["lr"]).
std::function<double(std::int64_t)> schedule_lambda(const std::string& name, const ScheduleOptions& o,
                                                    double lr_init);

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

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/optim/lr_scheduler-inl.hpp"
#endif
