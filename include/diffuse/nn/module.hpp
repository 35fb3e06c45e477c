/// @file
/// Module: the base of every layer and model. Holds named parameters and submodules so that
/// named_parameters() yields PyTorch/diffusers names ("down_blocks.1.attentions.0.to_q.weight"),
/// and provides train()/eval(), zero_grad() and state_dict()/load_state_dict(). A module tree shares
/// one Generator for what it draws while training (dropout): owned by the module, or the caller's.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/core/generator.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse::nn {

/// Base of every layer and model (torch.nn.Module). T is the parameter type, float or double.
template <class T = float>
class Module {
 public:
  /// The parameter type.
  using value_type = T;
  Module() = default;
  virtual ~Module() = default;
  /// Parameters are shared by copies; a module is used through its owner or a shared_ptr.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// Every parameter with its dotted name, in registration order (depth first).
  std::vector<std::pair<std::string, Tensor<T>>> named_parameters() const {
    std::vector<std::pair<std::string, Tensor<T>>> out;
    collect("", out);
    return out;
  }
  /// Every parameter once (a tensor registered under two names, like diffusers' "time_proj.W"
  /// alias, is listed once), frozen ones included: what an optimizer takes, as in PyTorch.
  std::vector<Tensor<T>> parameters() const;
  /// Number of parameter values (sum(p.numel() for p in module.parameters())).
  std::int64_t num_parameters() const {
    std::int64_t n = 0;
    for (auto& p : parameters()) n += p.numel();
    return n;
  }

  /// The parameters by name; the tensors share memory with the module (clone to keep a copy).
  std::map<std::string, Tensor<T>> state_dict() const {
    std::map<std::string, Tensor<T>> out;
    for (auto& [name, p] : named_parameters()) out.emplace(name, p.detach());
    return out;
  }

  /// Copies values into the parameters. With strict, missing and unexpected keys are errors
  /// (all of them named); shapes must always match.
  template <class U>
  DIFFUSE_COLD void load_state_dict(const std::map<std::string, Tensor<U>>& state, bool strict = true) {
    std::vector<std::string> missing, unexpected, wrong_shape;
    std::set<std::string> known;
    auto params = named_parameters();
    for (auto& [name, p] : params) {
      known.insert(name);
      auto it = state.find(name);
      if (it == state.end()) {
        missing.push_back(name);
      } else if (it->second.shape() != p.shape()) {
        wrong_shape.push_back(name + " (expected " + to_string(p.shape()) + ", got " +
                              to_string(it->second.shape()) + ")");
      }
    }
    for (auto& [name, t] : state)
      if (!known.count(name)) unexpected.push_back(name);
    std::string problems;
    auto list = [&](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      problems += std::string(problems.empty() ? "" : "; ") + what + ": ";
      for (std::size_t i = 0; i < names.size(); ++i) problems += (i ? ", " : "") + names[i];
    };
    list("shape mismatch", wrong_shape);
    if (strict) {
      list("missing keys", missing);
      list("unexpected keys", unexpected);
    }
    if (!problems.empty()) throw Error("load_state_dict: " + problems);
    for (auto& [name, p] : params) {
      auto it = state.find(name);
      if (it == state.end()) continue;
      if constexpr (std::is_same_v<T, U>) {
        Tensor<T>(p).copy_(it->second);
      } else {
        Tensor<T>(p).copy_(it->second.template to<T>());
      }
    }
  }

  /// Sets training mode (on) or evaluation mode (off) on this module and every submodule
  /// (torch.nn.Module.train). Only dropout behaves differently.
  void train(bool on = true) {
    training_ = on;
    for (auto& [name, child] : children_) child->train(on);
  }
  /// Evaluation mode: train(false) (torch.nn.Module.eval).
  void eval() { train(false); }
  /// Whether the module is in training mode (torch's module.training).
  bool is_training() const { return training_; }

  /// Clears every parameter's gradient (set to none, PyTorch's default).
  void zero_grad() {
    for (auto& p : parameters()) p.zero_grad();
  }

  /// The generator dropout draws from while training, shared by the whole tree. A module owns one
  /// (seed 0) until set_generator gives it another; seed it with generator().manual_seed(s), or
  /// save generator().state() with a checkpoint.
  Generator& generator() const { return *generator_; }
  /// Makes this module and its submodules draw from `gen`, which must outlive them (like the
  /// parameters an optimizer holds): the caller's training generator, say, so that one checkpointed
  /// generator decides every draw.
  void set_generator(Generator& gen) {
    share_generator(std::shared_ptr<Generator>(std::shared_ptr<Generator>{}, &gen));
  }

 protected:
  /// Registers a parameter (requires_grad is turned on) and returns it.
  Tensor<T> register_parameter(const std::string& name, Tensor<T> value) {
    value.requires_grad_(true);
    params_.emplace_back(name, value);
    return value;
  }
  /// Registers a submodule under `name` (its parameters are named "name.<...>"), makes it share this
  /// module's generator, and returns it.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    static_cast<Module<T>&>(*module).share_generator(generator_);
    children_.emplace_back(name, module);
    return module;
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor<T>>>& out) const {
    for (auto& [name, p] : params_) out.emplace_back(prefix + name, p);
    for (auto& [name, child] : children_) child->collect(prefix + name + ".", out);
  }

  void share_generator(const std::shared_ptr<Generator>& gen) {
    generator_ = gen;
    for (auto& [name, child] : children_) child->share_generator(gen);
  }

  std::vector<std::pair<std::string, Tensor<T>>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module<T>>>> children_;
  bool training_ = true;
  std::shared_ptr<Generator> generator_ = std::make_shared<Generator>(0);
};

template <class T>
auto Module<T>::parameters() const -> std::vector<Tensor<T>> {
  std::vector<Tensor<T>> out;
  std::set<const void*> seen;
  for (auto& [name, p] : named_parameters())
    if (seen.insert(p.impl()->storage.get()).second) out.push_back(p);
  return out;
}

/// An indexed list of submodules named "0", "1", ... (torch.nn.ModuleList).
template <class M>
class ModuleList : public Module<typename M::value_type> {
 public:
  /// Appends `m`, registered under its index, and returns it.
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    items_.push_back(m);
    return this->register_module(std::to_string(items_.size() - 1), m);
  }
  /// The i-th module; diffuse::Error when i is out of range.
  M& operator[](std::size_t i) const {
    if (i >= items_.size()) throw Error("ModuleList: index " + std::to_string(i) + " out of range");
    return *items_[i];
  }
  /// The number of modules.
  std::size_t size() const { return items_.size(); }
  /// Iteration over the modules (shared_ptr<M>), in index order.
  auto begin() const { return items_.begin(); }
  /// End of the iteration.
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_NN_MODULE_TEMPLATES(X, T) X(class Module<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_NN_MODULE_TEMPLATES)

}  // namespace diffuse::nn
