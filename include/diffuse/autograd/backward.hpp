// Reverse-mode differentiation: Tensor::backward(). Walks the recorded graph once in
// reverse topological order, sums gradients where a tensor is used more than once, adds
// them into the leaves' grad(), then frees the graph.
#pragma once
#include <unordered_set>
#include <vector>

#include "diffuse/autograd/function.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse {

namespace detail {

template <class T>
void accumulate_into(std::shared_ptr<TensorImpl<T>>& slot, Tensor<T>&& g, const Shape& expected, const std::string& op) {
  if (g.shape() != expected)
    throw Error("internal error: backward of " + op + " produced a gradient of shape " + to_string(g.shape()) +
                " for an input of shape " + to_string(expected));
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
  if (root.is_leaf()) {
    accumulate_into(root.impl()->grad, grad_output.clone(), root.shape(), "backward");
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

  root.grad_fn()->grad_accum = grad_output.clone().impl();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node<T>* node = *it;
    if (!node->backward)
      throw Error("backward(): the graph through '" + node->name +
                  "' was already freed by an earlier backward(); run the forward pass again");
    if (!node->grad_accum) continue;
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

}  // namespace diffuse
