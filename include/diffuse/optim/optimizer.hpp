/// @file
/// Optimizer: the base of SGD, Adam and AdamW. Holds parameter groups (each with its own
/// learning rate and weight decay, like PyTorch's optimizer.param_groups), the per-parameter
/// state (step count and buffers such as Adam's moments), zero_grad(), and state_dict() /
/// load_state_dict() for checkpoints.
/// @code
///   optim::AdamW opt(model.parameters(), {.lr = 1e-4});                     // one group
///   optim::AdamW opt({{.params = decay}, {.params = no_decay, .weight_decay = 0.0}}, {.lr = 1e-4});
/// @endcode
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::optim {

/// One group of parameters; unset fields take the optimizer's options (PyTorch's
/// [{"params": ..., "weight_decay": 0}, ...]).
template <class T = float>
struct ParamGroup {
  /// The group's parameters.
  std::vector<Tensor<T>> params{};
  /// Learning rate; unset: the optimizer's.
  std::optional<double> lr{};
  /// Weight decay; unset: the optimizer's.
  std::optional<double> weight_decay{};
  std::string name{};  ///< a label for messages and checkpoints (optional)
};

/// Everything an optimizer needs to continue exactly where it stopped: the buffers by name
/// ("<parameter index>.<buffer>", e.g. "3.exp_avg"; parameters numbered across groups in order)
/// and the rest as JSON (type, options, per-group lr / initial_lr / weight_decay, step counts).
template <class T = float>
struct OptimizerState {
  /// The buffers by "<parameter index>.<buffer>".
  std::map<std::string, Tensor<T>> tensors;
  /// Everything else (type, options, groups, step counts).
  nlohmann::json meta;
};

/// Base of SGD, Adam and AdamW (torch.optim.Optimizer); see the file comment.
template <class T = float>
class Optimizer {
 public:
  /// A resolved group: what step() uses and LR schedules change.
  struct Group {
    /// The group's parameters.
    std::vector<Tensor<T>> params;
    /// The current learning rate.
    double lr = 0;
    double initial_lr = 0;  ///< the lr at construction: LR schedules multiply this (PyTorch's base_lrs)
    /// The group's weight decay.
    double weight_decay = 0;
    /// The group's name, or its index when none was given.
    std::string name;
  };

  /// `type` names the optimizer in messages and checkpoints; lr and weight_decay apply to groups that do
  /// not set their own. diffuse::Error for a negative rate or decay, a parameter that is undefined or not
  /// a leaf, or a parameter given twice.
  Optimizer(std::string type, std::vector<ParamGroup<T>> groups, double lr, double weight_decay);
  virtual ~Optimizer() = default;

  /// Applies one update from the parameters' current gradients (parameters without one are skipped).
  virtual void step() = 0;

  /// Clears the gradients (set to none, PyTorch's default).
  void zero_grad() {
    for (auto& g : groups_)
      for (auto& p : g.params) p.zero_grad();
  }

  /// The learning rate of the first group; set_lr sets every group's (and is what a schedule
  /// would overwrite on its next step).
  double lr() const { return groups_.empty() ? default_lr_ : groups_.front().lr; }
  /// Sets every group's learning rate; diffuse::Error when it is negative.
  void set_lr(double lr) {
    check_non_negative("learning rate", lr);
    for (auto& g : groups_) g.lr = lr;
  }
  /// The options' lr and weight_decay (PyTorch's optimizer.defaults).
  double default_lr() const { return default_lr_; }
  /// The options' weight_decay.
  double default_weight_decay() const { return default_weight_decay_; }
  /// The optimizer's name: "SGD", "Adam" or "AdamW".
  const std::string& type() const { return type_; }

  /// The groups (optimizer.param_groups); lr and weight_decay may be changed here.
  std::vector<Group>& param_groups() { return groups_; }
  /// The groups, read-only.
  const std::vector<Group>& param_groups() const { return groups_; }
  /// Every parameter, groups in order.
  std::vector<Tensor<T>> params() const {
    std::vector<Tensor<T>> out;
    for (auto& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
    return out;
  }
  /// How many updates parameter `index` (numbered across groups) has received.
  std::int64_t param_step(std::size_t index) const { return state_.at(index).step; }

  /// The complete state (copies of the buffers).
  OptimizerState<T> state_dict() const;

  /// Restores a state_dict() of an optimizer of the same type over the same parameter shapes.
  /// Everything is checked first; on error nothing changes. Saved options win (as in PyTorch).
  void load_state_dict(const OptimizerState<T>& s);

 protected:
  /// Per-parameter state, numbered like params().
  struct ParamState {
    /// Updates this parameter has received.
    std::int64_t step = 0;
    /// Buffers by name (see buffer_names()).
    std::map<std::string, Tensor<T>> buffers;
  };

  /// The names of the buffers a parameter's state may hold.
  virtual std::vector<std::string> buffer_names() const = 0;
  /// The name of a buffer that a state must hold under these (saved) options but does not ("" if complete).
  virtual std::string missing_buffer(const ParamState& s, const nlohmann::json& options) const = 0;
  /// The options beyond lr / weight_decay (betas, eps, momentum, ...), as JSON and back.
  virtual nlohmann::json options_json() const = 0;
  /// Checks options saved by options_json() (diffuse::Error when invalid) and takes them when `apply`.
  virtual void options_from_json(const nlohmann::json& j, bool apply) = 0;

  /// Calls f(group, param, grad, state) for every parameter that has a gradient.
  template <class F>
  void for_each_param_with_grad(F&& f) {
    std::size_t index = 0;
    for (auto& group : groups_)
      for (auto& p : group.params) {
        ParamState& st = state_[index++];
        Tensor<T> grad = p.grad();
        if (grad.defined()) f(static_cast<const Group&>(group), p, grad, st);
      }
  }

  /// diffuse::Error naming `what` unless v >= 0.
  void check_non_negative(const std::string& what, double v) const {
    if (!(v >= 0)) throw Error(type_ + ": " + what + " must be non-negative, got " + std::to_string(v));
  }

  std::string type_;
  double default_lr_, default_weight_decay_;
  std::vector<Group> groups_;
  std::vector<ParamState> state_;
};

template <class T>
DIFFUSE_COLD Optimizer<T>::Optimizer(std::string type, std::vector<ParamGroup<T>> groups, double lr,
                                     double weight_decay)
    : type_(std::move(type)), default_lr_(lr), default_weight_decay_(weight_decay) {
  check_non_negative("learning rate", lr);
  check_non_negative("weight_decay", weight_decay);
  std::set<const void*> seen;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    ParamGroup<T>& pg = groups[g];
    Group group{std::move(pg.params), pg.lr.value_or(lr), pg.lr.value_or(lr),
                pg.weight_decay.value_or(weight_decay), pg.name.empty() ? std::to_string(g) : pg.name};
    check_non_negative("learning rate of parameter group '" + group.name + "'", group.lr);
    check_non_negative("weight_decay of parameter group '" + group.name + "'", group.weight_decay);
    for (auto& p : group.params) {
      // Frozen parameters (requires_grad off) are accepted and never get a gradient, as in PyTorch.
      if (!p.defined() || !p.is_leaf())
        throw Error(
            type_ +
            ": parameters must be defined leaf tensors, not results of operations (parameter group '" +
            group.name + "')");
      if (!seen.insert(p.impl().get()).second)
        throw Error(type_ + ": a parameter appears more than once (parameter group '" + group.name +
                    "'); each parameter may be in one group only");
    }
    groups_.push_back(std::move(group));
  }
  state_.resize(seen.size());
}

template <class T>
DIFFUSE_COLD auto Optimizer<T>::state_dict() const -> OptimizerState<T> {
  OptimizerState<T> s;
  s.meta["type"] = type_;
  s.meta["options"] = options_json();
  nlohmann::json groups = nlohmann::json::array(), steps = nlohmann::json::array();
  for (auto& g : groups_)
    groups.push_back({{"name", g.name},
                      {"lr", g.lr},
                      {"initial_lr", g.initial_lr},
                      {"weight_decay", g.weight_decay},
                      {"num_params", g.params.size()}});
  for (std::size_t i = 0; i < state_.size(); ++i) {
    steps.push_back(state_[i].step);
    for (auto& [name, t] : state_[i].buffers) s.tensors.emplace(std::to_string(i) + "." + name, t.clone());
  }
  s.meta["param_groups"] = groups;
  s.meta["steps"] = steps;
  return s;
}

template <class T>
DIFFUSE_COLD void Optimizer<T>::load_state_dict(const OptimizerState<T>& s) {
  const std::string where = type_ + "::load_state_dict: ";
  using nlohmann::json;
  const json& m = s.meta;
  try {
    if (!m.is_object() || !m.contains("type")) throw Error("no optimizer type in the state");
    if (m.at("type").get<std::string>() != type_)
      throw Error("the state belongs to a " + m.at("type").get<std::string>() + " optimizer, not " + type_);
    const json& groups = m.at("param_groups");
    if (!groups.is_array() || groups.size() != groups_.size())
      throw Error("the state has " + std::to_string(groups.size()) + " parameter groups, the optimizer " +
                  std::to_string(groups_.size()));
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      const auto n = io::json_integer<std::size_t>(groups[g].at("num_params"), "num_params");
      if (n != groups_[g].params.size())
        throw Error("parameter group " + std::to_string(g) + " has " + std::to_string(n) +
                    " parameters in the state, " + std::to_string(groups_[g].params.size()) +
                    " in the optimizer");
    }
    const json& steps = m.at("steps");
    if (!steps.is_array() || steps.size() != state_.size())
      throw Error("the state has step counts for " + std::to_string(steps.size()) +
                  " parameters, the optimizer has " + std::to_string(state_.size()));
    for (auto& st : steps)
      if (io::json_integer<std::int64_t>(st, "a step count") < 0)
        throw Error("a step count is not a non-negative integer");
    const std::vector<Tensor<T>> flat = params();
    std::vector<ParamState> restored(state_.size());
    for (std::size_t i = 0; i < state_.size(); ++i) restored[i].step = steps[i].get<std::int64_t>();
    const std::vector<std::string> names = buffer_names();
    for (auto& [key, t] : s.tensors) {
      const auto dot = key.find('.');
      const std::string idx = key.substr(0, dot), buf = dot == std::string::npos ? "" : key.substr(dot + 1);
      std::size_t i = 0;
      try {
        std::size_t used = 0;
        i = std::stoul(idx, &used);
        if (used != idx.size()) throw std::invalid_argument(idx);
      } catch (const std::exception&) {
        throw Error("unexpected state tensor '" + key + "'");
      }
      if (i >= flat.size() || std::find(names.begin(), names.end(), buf) == names.end())
        throw Error("unexpected state tensor '" + key + "'");
      if (t.shape() != flat[i].shape())
        throw Error("state tensor '" + key + "' has shape " + to_string(t.shape()) + ", parameter " +
                    std::to_string(i) + " has shape " + to_string(flat[i].shape()));
      restored[i].buffers[buf] = t.clone();
    }
    const json& options = m.at("options");
    options_from_json(options, /*apply=*/false);  // validate first
    for (std::size_t i = 0; i < restored.size(); ++i)
      if (std::string missing = missing_buffer(restored[i], options); !missing.empty())
        throw Error("state tensor '" + std::to_string(i) + "." + missing + "' is missing");
    std::vector<Group> new_groups = groups_;
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      new_groups[g].lr = groups[g].at("lr").get<double>();
      new_groups[g].initial_lr = groups[g].at("initial_lr").get<double>();
      new_groups[g].weight_decay = groups[g].at("weight_decay").get<double>();
      check_non_negative("saved learning rate", new_groups[g].lr);
      check_non_negative("saved weight_decay", new_groups[g].weight_decay);
    }
    options_from_json(options, /*apply=*/true);
    groups_ = std::move(new_groups);
    state_ = std::move(restored);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + "malformed state: " + e.what());
  } catch (const Error& e) {
    throw Error(where + e.what());
  }
}

/// A single group holding `params` (what every optimizer's vector constructor builds).
template <class T>
std::vector<ParamGroup<T>> single_group(std::vector<Tensor<T>> params) {
  std::vector<ParamGroup<T>> g(1);
  g[0].params = std::move(params);
  return g;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_OPTIM_OPTIMIZER_TEMPLATES(X, T) X(class Optimizer<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_OPTIM_OPTIMIZER_TEMPLATES)

}  // namespace diffuse::optim
