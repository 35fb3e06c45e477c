/// @file
/// EMAModel: an exponential moving average of model parameters with the semantics of
/// diffusers.training_utils.EMAModel (decay, min_decay, update_after_step, use_ema_warmup,
/// inv_gamma, power). The usual loop:
/// @code
///   optim::EMAModel<float> ema(unet, {.decay = 0.9999, .use_ema_warmup = true, .power = 0.75});
///   ... opt.step(); ema.step(unet);
///   ema.store(unet); ema.copy_to(unet); /* sample or save with the averaged weights */ ema.restore(unet);
/// @endcode
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/parallel.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/nn/module.hpp"

namespace diffuse::optim {

/// Options of EMAModel (diffusers' EMAModel arguments).
struct EMAOptions {
  double decay = 0.9999;               ///< the largest decay used
  double min_decay = 0.0;              ///< the smallest decay used (after update_after_step)
  std::int64_t update_after_step = 0;  ///< decay is 0 (shadow = parameters) until this many steps
  bool use_ema_warmup =
      false;  // decay = 1 - (1 + step / inv_gamma)^-power instead of (1 + step) / (10 + step)
  /// Step scale of the warmup curve (use_ema_warmup).
  double inv_gamma = 1.0;
  /// Exponent of the warmup curve (use_ema_warmup).
  double power = 2.0 / 3.0;
};

/// Exponential moving average of parameters (diffusers.training_utils.EMAModel); see the file comment.
template <class T = float>
class EMAModel {
 public:
  /// Averages `parameters` (shadow copies are made now), named "0", "1", ... in checkpoints.
  EMAModel(const std::vector<Tensor<T>>& parameters, EMAOptions options = {}) : options_(options) {
    check(options_);
    for (std::size_t i = 0; i < parameters.size(); ++i) add(std::to_string(i), parameters[i]);
  }
  /// Averages every parameter of `model` (frozen ones too, as diffusers does with
  /// model.parameters()), named as in model.named_parameters(); an alias of a tensor counts once.
  EMAModel(const nn::Module<T>& model, EMAOptions options = {}) : options_(options) {
    check(options_);
    std::set<const void*> seen;
    for (auto& [name, p] : model.named_parameters())
      if (seen.insert(p.impl().get()).second) add(name, p);
  }

  /// diffusers' EMAModel.get_decay: 0 until update_after_step, then the warmup curve clamped to
  /// [min_decay, decay].
  double get_decay(std::int64_t optimization_step) const;

  /// One update: shadow -= (1 - decay) * (shadow - param) for trainable parameters; frozen ones
  /// (requires_grad off) are copied.
  void step(const std::vector<Tensor<T>>& parameters);
  /// The same over the parameters of `model` (the module the average was made from).
  void step(const nn::Module<T>& model) { step(module_params(model)); }

  /// Writes the averaged values into the parameters.
  void copy_to(const std::vector<Tensor<T>>& parameters) const {
    check_matches("copy_to", parameters);
    for (std::size_t k = 0; k < shadow_.size(); ++k) Tensor<T>(parameters[k]).copy_(shadow_[k]);
  }
  /// The same into the parameters of `model`.
  void copy_to(const nn::Module<T>& model) const { copy_to(module_params(model)); }

  /// Keeps a copy of the parameters' current values for restore() (e.g. around evaluation with
  /// the EMA weights).
  void store(const std::vector<Tensor<T>>& parameters) {
    check_matches("store", parameters);
    stored_.clear();
    for (auto& p : parameters) stored_.push_back(p.clone());
  }
  /// The same for the parameters of `model`.
  void store(const nn::Module<T>& model) { store(module_params(model)); }
  /// Puts the values saved by store() back and forgets them; diffuse::Error when nothing was stored.
  void restore(const std::vector<Tensor<T>>& parameters);
  /// The same for the parameters of `model`.
  void restore(const nn::Module<T>& model) { restore(module_params(model)); }

  /// The averaged values, in construction order.
  const std::vector<Tensor<T>>& shadow_params() const { return shadow_; }
  /// The names of the averaged parameters, as in checkpoints.
  const std::vector<std::string>& names() const { return names_; }
  /// The number of step() calls (restored by load_state).
  std::int64_t optimization_step() const { return optimization_step_; }
  /// The decay the last step() used.
  double cur_decay_value() const { return cur_decay_value_; }
  /// The options (load_state replaces them with the saved ones).
  const EMAOptions& options() const { return options_; }

  /// The shadow parameters by name (copies), and the rest as JSON (diffusers' state_dict keys).
  std::map<std::string, Tensor<T>> shadow_state() const {
    std::map<std::string, Tensor<T>> out;
    for (std::size_t k = 0; k < shadow_.size(); ++k) out.emplace(names_[k], shadow_[k].clone());
    return out;
  }
  /// The options and the step counters as JSON, under diffusers' state_dict keys.
  nlohmann::json state_json() const;
  /// Restores shadow_state() + state_json(): names and shapes must match; checked before anything changes.
  void load_state(const std::map<std::string, Tensor<T>>& shadow, const nlohmann::json& j);

 private:
  static void check(const EMAOptions& o);
  void add(const std::string& name, const Tensor<T>& p) {
    if (!p.defined()) throw Error("EMAModel: parameter '" + name + "' is an undefined tensor");
    names_.push_back(name);
    shadow_.push_back(p.detach().clone());
  }
  static std::vector<Tensor<T>> module_params(const nn::Module<T>& model);
  void check_matches(const char* what, const std::vector<Tensor<T>>& parameters) const;

  EMAOptions options_;
  std::vector<std::string> names_;
  std::vector<Tensor<T>> shadow_, stored_;
  std::int64_t optimization_step_ = 0;
  double cur_decay_value_ = 0.0;
};

template <class T>
double EMAModel<T>::get_decay(std::int64_t optimization_step) const {
  const std::int64_t step = std::max<std::int64_t>(0, optimization_step - options_.update_after_step - 1);
  if (step <= 0) return 0.0;
  const double s = static_cast<double>(step);
  double d = options_.use_ema_warmup ? 1.0 - std::pow(1.0 + s / options_.inv_gamma, -options_.power)
                                     : (1.0 + s) / (10.0 + s);
  d = std::min(d, options_.decay);
  return std::max(d, options_.min_decay);
}

template <class T>
void EMAModel<T>::step(const std::vector<Tensor<T>>& parameters) {
  check_matches("step", parameters);
  ++optimization_step_;
  cur_decay_value_ = get_decay(optimization_step_);
  const T one_minus_decay = static_cast<T>(1.0 - cur_decay_value_);
  for (std::size_t k = 0; k < shadow_.size(); ++k) {
    T* s = shadow_[k].data();
    const T* p = parameters[k].data();
    if (parameters[k].requires_grad())
      diffuse::detail::parallel_for(shadow_[k].numel(),
                                    [&](std::int64_t i) { s[i] -= one_minus_decay * (s[i] - p[i]); });
    else
      shadow_[k].copy_(parameters[k]);
  }
}

template <class T>
void EMAModel<T>::restore(const std::vector<Tensor<T>>& parameters) {
  if (stored_.empty() && !shadow_.empty())
    throw Error("EMAModel::restore: no weights were stored; call store() first");
  check_matches("restore", parameters);
  for (std::size_t k = 0; k < stored_.size(); ++k) Tensor<T>(parameters[k]).copy_(stored_[k]);
  stored_.clear();
}

template <class T>
DIFFUSE_COLD auto EMAModel<T>::state_json() const -> nlohmann::json {
  return {{"decay", options_.decay},
          {"min_decay", options_.min_decay},
          {"optimization_step", optimization_step_},
          {"update_after_step", options_.update_after_step},
          {"use_ema_warmup", options_.use_ema_warmup},
          {"inv_gamma", options_.inv_gamma},
          {"power", options_.power},
          {"cur_decay_value", cur_decay_value_}};
}

template <class T>
DIFFUSE_COLD void EMAModel<T>::load_state(const std::map<std::string, Tensor<T>>& shadow,
                                          const nlohmann::json& j) {
  const std::string where = "EMAModel::load_state: ";
  std::string problems;
  for (std::size_t k = 0; k < names_.size(); ++k) {
    auto it = shadow.find(names_[k]);
    if (it == shadow.end())
      problems += (problems.empty() ? "" : "; ") + ("missing shadow parameter '" + names_[k] + "'");
    else if (it->second.shape() != shadow_[k].shape())
      problems += (problems.empty() ? "" : "; ") +
                  ("shadow parameter '" + names_[k] + "' has shape " + to_string(it->second.shape()) +
                   ", expected " + to_string(shadow_[k].shape()));
  }
  for (auto& [name, t] : shadow)
    if (std::find(names_.begin(), names_.end(), name) == names_.end())
      problems += (problems.empty() ? "" : "; ") + ("unexpected shadow parameter '" + name + "'");
  if (!problems.empty()) throw Error(where + problems);
  EMAOptions o;
  std::int64_t step = 0;
  double cur = 0;
  try {
    o = {j.at("decay").get<double>(),
         j.at("min_decay").get<double>(),
         io::json_integer<std::int64_t>(j.at("update_after_step"), where + "update_after_step"),
         j.at("use_ema_warmup").get<bool>(),
         j.at("inv_gamma").get<double>(),
         j.at("power").get<double>()};
    step = io::json_integer<std::int64_t>(j.at("optimization_step"), where + "optimization_step");
    cur = j.value("cur_decay_value", 0.0);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + "malformed state: " + e.what());
  }
  if (step < 0) throw Error(where + "optimization_step must be non-negative, got " + std::to_string(step));
  check(o);
  options_ = o;
  optimization_step_ = step;
  cur_decay_value_ = cur;
  for (std::size_t k = 0; k < names_.size(); ++k) shadow_[k].copy_(shadow.at(names_[k]));
}

template <class T>
void EMAModel<T>::check(const EMAOptions& o) {
  if (!(o.decay >= 0 && o.decay <= 1) || !(o.min_decay >= 0 && o.min_decay <= 1))
    throw Error("EMAModel: decay and min_decay must be in [0, 1], got decay " + std::to_string(o.decay) +
                ", min_decay " + std::to_string(o.min_decay));
  if (o.update_after_step < 0)
    throw Error("EMAModel: update_after_step must be non-negative, got " +
                std::to_string(o.update_after_step));
  if (!(o.inv_gamma > 0))
    throw Error("EMAModel: inv_gamma must be positive, got " + std::to_string(o.inv_gamma));
}

template <class T>
auto EMAModel<T>::module_params(const nn::Module<T>& model) -> std::vector<Tensor<T>> {
  std::vector<Tensor<T>> out;
  std::set<const void*> seen;
  for (auto& [name, p] : model.named_parameters())
    if (seen.insert(p.impl().get()).second) out.push_back(p);
  return out;
}

template <class T>
void EMAModel<T>::check_matches(const char* what, const std::vector<Tensor<T>>& parameters) const {
  if (parameters.size() != shadow_.size())
    throw Error(std::string("EMAModel::") + what + ": " + std::to_string(parameters.size()) +
                " parameters given, the average holds " + std::to_string(shadow_.size()));
  for (std::size_t k = 0; k < shadow_.size(); ++k)
    if (!parameters[k].defined() || parameters[k].shape() != shadow_[k].shape())
      throw Error(std::string("EMAModel::") + what + ": parameter '" + names_[k] + "' has shape " +
                  (parameters[k].defined() ? to_string(parameters[k].shape()) : std::string("undefined")) +
                  ", the average has " + to_string(shadow_[k].shape()));
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_OPTIM_EMA_TEMPLATES(X, T) X(class EMAModel<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_OPTIM_EMA_TEMPLATES)

}  // namespace diffuse::optim
