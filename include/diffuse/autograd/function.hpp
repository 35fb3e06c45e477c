// How an operation records itself in the graph: record(out, inputs, name, backward).
#pragma once
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/autograd/grad_mode.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse::detail {

template <class T>
bool any_requires_grad(std::initializer_list<const Tensor<T>*> inputs) {
  if (!is_grad_enabled()) return false;
  for (auto* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

// Attaches a backward function to `out` when grad mode is on and an input requires grad.
// `backward(grad_out)` returns one gradient per input, in order (undefined where none flows).
template <class T, class F>
Tensor<T> record(Tensor<T> out, std::initializer_list<const Tensor<T>*> inputs, const char* name, F&& backward) {
  if (!any_requires_grad<T>(inputs)) return out;
  auto node = std::make_shared<Node<T>>();
  node->name = name;
  for (auto* t : inputs) node->inputs.push_back(t->defined() && t->requires_grad() ? t->impl() : nullptr);
  node->backward = std::forward<F>(backward);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
  return out;
}

// Same, for a variable number of inputs (concat).
template <class T, class F>
Tensor<T> record(Tensor<T> out, const std::vector<Tensor<T>>& inputs, const char* name, F&& backward) {
  bool any = false;
  if (is_grad_enabled())
    for (auto& t : inputs) any = any || t.requires_grad();
  if (!any) return out;
  auto node = std::make_shared<Node<T>>();
  node->name = name;
  for (auto& t : inputs) node->inputs.push_back(t.requires_grad() ? t.impl() : nullptr);
  node->backward = std::forward<F>(backward);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
  return out;
}

}  // namespace diffuse::detail
