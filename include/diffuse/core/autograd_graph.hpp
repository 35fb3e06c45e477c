/// @file
/// The parts of Tensor<T> that record and run the autograd graph: how an operation records
/// itself (detail::record), the views (reshape, unsqueeze/squeeze, select and slice along the
/// first axis, each differentiable) and reverse-mode differentiation (Tensor::backward(): one walk
/// of the recorded graph in reverse topological order, gradients summed where a tensor is used
/// more than once and added into the leaves' grad(), then the graph freed).
/// core/tensor.hpp includes this file at its end, so every Tensor member is defined wherever
/// Tensor is; it may also be included first.
#pragma once
#include <initializer_list>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "diffuse/core/grad_mode.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"

// ---- recording an operation: record(out, inputs, name, backward) ----

namespace diffuse::detail {

template <class T>
bool any_requires_grad(std::initializer_list<const Tensor<T>*> inputs) {
  if (!is_grad_enabled()) return false;
  for (auto* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

/// The node of `out` for an operation on `inputs` (those that require grad; nullptr for the
/// others), or nullptr when grad mode is off or no input requires grad. The part of record()
/// that does not depend on the backward function, so it is compiled once, not once per operation.
template <class T>
Node<T>* attach_node(const Tensor<T>& out, std::initializer_list<const Tensor<T>*> inputs, const char* name) {
  if (!any_requires_grad<T>(inputs)) return nullptr;
  auto node = std::make_shared<Node<T>>();
  node->name = name;
  for (auto* t : inputs) node->inputs.push_back(t->defined() && t->requires_grad() ? t->impl() : nullptr);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = node;
  return node.get();
}

/// Same, for a variable number of inputs (concat).
template <class T>
Node<T>* attach_node(const Tensor<T>& out, const std::vector<Tensor<T>>& inputs, const char* name) {
  bool any = false;
  if (is_grad_enabled())
    for (auto& t : inputs) any = any || t.requires_grad();
  if (!any) return nullptr;
  auto node = std::make_shared<Node<T>>();
  node->name = name;
  for (auto& t : inputs) node->inputs.push_back(t.requires_grad() ? t.impl() : nullptr);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = node;
  return node.get();
}

/// Attaches a backward function to `out` when grad mode is on and an input requires grad.
/// `backward(grad_out)` returns one gradient per input, in order (undefined where none flows).
template <class T, class F>
Tensor<T> record(Tensor<T> out, std::initializer_list<const Tensor<T>*> inputs, const char* name,
                 F&& backward) {
  if (Node<T>* node = attach_node(out, inputs, name)) node->backward = std::forward<F>(backward);
  return out;
}

/// Same, for a variable number of inputs (concat).
template <class T, class F>
Tensor<T> record(Tensor<T> out, const std::vector<Tensor<T>>& inputs, const char* name, F&& backward) {
  if (Node<T>* node = attach_node(out, inputs, name)) node->backward = std::forward<F>(backward);
  return out;
}

}  // namespace diffuse::detail

// ---- views ----

namespace diffuse {

namespace detail {
template <class T>
Tensor<T> make_view(const Tensor<T>& base, const Shape& shape, std::int64_t extra_offset) {
  auto impl = std::make_shared<TensorImpl<T>>();
  impl->storage = base.impl()->storage;
  impl->offset = base.impl()->offset + extra_offset;
  impl->shape = shape;
  return Tensor<T>::from_impl(impl);
}
}  // namespace detail

template <class T>
Tensor<T> Tensor<T>::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  std::int64_t known = 1, infer = -1;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw Error("reshape: only one extent may be -1 in " + to_string(new_shape));
      infer = static_cast<std::int64_t>(i);
    } else if (s[i] < 0) {
      throw Error("reshape: invalid extent in " + to_string(new_shape));
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel() % known != 0)
      throw Error("reshape: cannot reshape tensor of shape " + to_string(shape()) + " into " +
                  to_string(new_shape));
    s[infer] = numel() / known;
  }
  if (numel_of(s) != numel())
    throw Error("reshape: cannot reshape tensor of shape " + to_string(shape()) + " (" +
                std::to_string(numel()) + " elements) into " + to_string(new_shape));
  Shape old = shape();
  return detail::record(detail::make_view(*this, s, 0), {this}, "reshape",
                        [old](const Tensor<T>& g) { return std::vector<Tensor<T>>{g.reshape(old)}; });
}

template <class T>
Tensor<T> Tensor<T>::unsqueeze(std::int64_t axis) const {
  Shape s = shape();
  std::int64_t a = normalize_axis(axis, dim() + 1);
  s.insert(s.begin() + a, 1);
  return reshape(s);
}

template <class T>
Tensor<T> Tensor<T>::squeeze(std::int64_t axis) const {
  Shape s = shape();
  std::int64_t a = normalize_axis(axis, dim());
  if (s[a] != 1)
    throw Error("squeeze: axis " + std::to_string(axis) + " of shape " + to_string(s) + " is not 1");
  s.erase(s.begin() + a);
  return reshape(s);
}

template <class T>
Tensor<T> Tensor<T>::slice(std::int64_t begin, std::int64_t end) const {
  if (dim() == 0) throw Error("slice: a scalar has no first axis");
  const std::int64_t n = shape()[0];
  if (begin < 0) begin += n;
  if (end < 0) end += n;
  if (begin < 0 || end > n || begin > end)
    throw Error("slice [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") is out of range for shape " + to_string(shape()));
  Shape s = shape();
  s[0] = end - begin;
  const std::int64_t row = n ? numel() / n : 0;
  Shape full = shape();
  return detail::record(detail::make_view(*this, s, begin * row), {this}, "slice",
                        [full, begin, row](const Tensor<T>& g) {
                          Tensor<T> out = Tensor<T>::zeros(full);
                          std::copy(g.begin(), g.end(), out.data() + begin * row);
                          return std::vector<Tensor<T>>{out};
                        });
}

template <class T>
Tensor<T> Tensor<T>::select(std::int64_t i) const {
  if (dim() == 0) throw Error("select: a scalar has no first axis");
  const std::int64_t n = shape()[0];
  if (i < -n || i >= n)
    throw Error("index " + std::to_string(i) + " is out of range for the first axis of shape " +
                to_string(shape()));
  if (i < 0) i += n;
  Shape s(shape().begin() + 1, shape().end());
  return slice(i, i + 1).reshape(s);
}

}  // namespace diffuse

// ---- backward() ----

namespace diffuse {

namespace detail {

template <class T>
void accumulate_into(std::shared_ptr<TensorImpl<T>>& slot, Tensor<T>&& g, const Shape& expected,
                     const std::string& op) {
  if (g.shape() != expected)
    throw Error("internal error: backward of " + op + " produced a gradient of shape " +
                to_string(g.shape()) + " for an input of shape " + to_string(expected));
  if (!slot) {
    // Take the tensor over when nothing else refers to it or to its memory (the common case: a
    // fresh gradient); otherwise own a copy, since the op may return a tensor it shares.
    const bool sole_owner = g.impl().use_count() == 1 && g.impl()->storage.use_count() == 1 && g.is_leaf();
    slot = sole_owner ? g.impl() : g.clone().impl();
    return;
  }
  T* d = slot->data();
  const T* s = g.data();
  parallel_for(g.numel(), [&](std::int64_t i) { d[i] += s[i]; });
}

template <class T>
void run_backward(const Tensor<T>& root, const Tensor<T>& grad_output) {
  if (!root.requires_grad())
    throw Error("backward(): the tensor does not require grad (no parameter with requires_grad led to it)");
  NoGradGuard no_grad;
  auto run_hooks = [](const TensorImpl<T>& leaf) {
    for (const auto& hook : leaf.post_accumulate_grad_hooks) hook();
  };
  if (root.is_leaf()) {
    accumulate_into(root.impl()->grad, grad_output.clone(), root.shape(), "backward");
    run_hooks(*root.impl());
    return;
  }
  // Topological order by iterative depth-first search over nodes.
  std::vector<Node<T>*> order;
  std::unordered_set<Node<T>*> seen;
  std::vector<std::pair<Node<T>*, std::size_t>> stack{{root.grad_fn().get(), 0}};
  seen.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      auto& in = node->inputs[next++];
      if (in && in->grad_fn && seen.insert(in->grad_fn.get()).second) stack.push_back({in->grad_fn.get(), 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  // Keep every node alive until the walk is over, then release the graph.
  std::vector<std::shared_ptr<Node<T>>> keep_alive;
  keep_alive.reserve(order.size());
  for (auto* n : order)
    for (auto& in : n->inputs)
      if (in && in->grad_fn) keep_alive.push_back(in->grad_fn);

  // A leaf with hooks is complete after the last node (in the walk's order) that feeds it.
  std::unordered_map<Node<T>*, std::vector<TensorImpl<T>*>> completes;
  {
    std::unordered_set<TensorImpl<T>*> hooked;
    for (auto* n : order)  // order runs from the leaves' side to the root: the first seen is the last to run
      for (auto& in : n->inputs)
        if (in && !in->grad_fn && !in->post_accumulate_grad_hooks.empty() && hooked.insert(in.get()).second)
          completes[n].push_back(in.get());
  }

  root.grad_fn()->grad_accum = grad_output.clone().impl();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node<T>* node = *it;
    if (!node->backward)
      throw Error("backward(): the graph through '" + node->name +
                  "' was already freed by an earlier backward(); run the forward pass again");
    auto complete_leaves = [&] {
      if (auto done = completes.find(node); done != completes.end())
        for (auto* leaf : done->second)
          if (leaf->grad) run_hooks(*leaf);
    };
    if (!node->grad_accum) {
      complete_leaves();
      continue;
    }
    auto grads = node->backward(Tensor<T>::from_impl(node->grad_accum));
    if (grads.size() != node->inputs.size())
      throw Error("internal error: backward of " + node->name + " returned the wrong number of gradients");
    for (std::size_t k = 0; k < grads.size(); ++k) {
      auto& in = node->inputs[k];
      if (!in || !grads[k].defined()) continue;
      if (in->grad_fn)
        accumulate_into(in->grad_fn->grad_accum, std::move(grads[k]), in->shape, node->name);
      else
        accumulate_into(in->grad, std::move(grads[k]), in->shape, node->name);
    }
    // Free what this node saved for backward: the graph is used once.
    node->grad_accum.reset();
    node->backward = nullptr;
    complete_leaves();
  }
}

}  // namespace detail

template <class T>
void Tensor<T>::backward() const {
  if (numel() != 1)
    throw Error("backward(): output of shape " + to_string(shape()) +
                " is not a scalar; reduce it (sum, mean) or pass an output gradient");
  detail::run_backward(*this, Tensor<T>::ones(shape()));
}

template <class T>
void Tensor<T>::backward(const Tensor<T>& grad_output) const {
  if (grad_output.shape() != shape())
    throw Error("backward(): output gradient of shape " + to_string(grad_output.shape()) +
                " does not match the output's shape " + to_string(shape()));
  detail::run_backward(*this, grad_output);
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_CORE_TENSOR_TEMPLATES(X, T) X(class Tensor<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_CORE_TENSOR_TEMPLATES)

}  // namespace diffuse
