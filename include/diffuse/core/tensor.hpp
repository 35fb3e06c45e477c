// Tensor<T>: a contiguous, row-major, shared N-d array with optional autograd state.
// Copies of a Tensor share storage (like torch.Tensor); clone() copies the data.
// Views (reshape, select, slice along the first axis) share storage with their base.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iomanip>
#include <memory>
#include <new>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "diffuse/core/allocator.hpp"
#include "diffuse/core/error.hpp"
#include "diffuse/core/grad_mode.hpp"
#include "diffuse/core/parallel.hpp"
#include "diffuse/core/shape.hpp"

namespace diffuse {

template <class T>
class Tensor;

namespace detail {

// 64-byte aligned, uninitialised buffer shared by a tensor and its views (from the caching allocator).
template <class T>
struct Storage {
  explicit Storage(std::int64_t n) : size(n) {
    if (n < 0 || static_cast<std::uint64_t>(n) > (std::uint64_t(1) << 62) / sizeof(T))
      throw Error("cannot allocate a tensor of " + std::to_string(n) + " elements");
    bytes = static_cast<std::size_t>(std::max<std::int64_t>(n, 1)) * sizeof(T);
    ptr = static_cast<T*>(CachingAllocator::instance().allocate(bytes));  // sets bytes to the block size
    if (!ptr) throw std::bad_alloc();
  }
  ~Storage() { CachingAllocator::instance().deallocate(ptr, bytes); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  T* ptr = nullptr;
  std::int64_t size = 0;
  std::size_t bytes = 0;
};

template <class T>
struct Node;

template <class T>
struct TensorImpl {
  std::shared_ptr<Storage<T>> storage;
  std::int64_t offset = 0;
  Shape shape;
  // autograd state
  bool requires_grad = false;
  std::shared_ptr<TensorImpl<T>> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node<T>> grad_fn;     // the operation that produced a non-leaf

  T* data() const { return storage->ptr + offset; }
};

// One recorded operation: how to turn the gradient of its output into gradients of its inputs.
template <class T>
struct Node {
  std::string name;
  // Inputs that take a gradient (nullptr where an input does not require one).
  std::vector<std::shared_ptr<TensorImpl<T>>> inputs;
  // Returns one gradient per input (an undefined Tensor where none flows).
  std::function<std::vector<Tensor<T>>(const Tensor<T>&)> backward;
  // Gradient of the output, summed over its uses while backward() runs.
  std::shared_ptr<TensorImpl<T>> grad_accum;
};

}  // namespace detail

template <class T = float>
class Tensor {
  static_assert(std::is_floating_point_v<T>, "Tensor<T> holds float or double");

 public:
  using value_type = T;

  // An undefined tensor (no storage); defined() is false.
  Tensor() = default;

  // A tensor of the given shape, initialised to zero.
  explicit Tensor(const Shape& shape) : Tensor(empty(shape)) { fill_(T(0)); }

  // A tensor of the given shape holding `values` (row-major); the count must match.
  Tensor(const Shape& shape, const std::vector<T>& values) : Tensor(empty(shape)) {
    if (static_cast<std::int64_t>(values.size()) != numel())
      throw Error("Tensor: " + std::to_string(values.size()) + " values given for shape " + to_string(shape) +
                  " (" + std::to_string(numel()) + " elements)");
    std::copy(values.begin(), values.end(), data());
  }

  // ---- creation ----
  static Tensor empty(const Shape& shape) {
    Tensor t;
    t.impl_ = std::make_shared<detail::TensorImpl<T>>();
    t.impl_->shape = shape;
    t.impl_->storage = std::make_shared<detail::Storage<T>>(numel_of(shape));
    return t;
  }
  static Tensor zeros(const Shape& shape) { return full(shape, T(0)); }
  static Tensor ones(const Shape& shape) { return full(shape, T(1)); }
  static Tensor full(const Shape& shape, T value) {
    Tensor t = empty(shape);
    t.fill_(value);
    return t;
  }
  static Tensor scalar(T value) { return full({}, value); }
  static Tensor from_vector(const std::vector<T>& values) {
    return Tensor({static_cast<std::int64_t>(values.size())}, values);
  }
  // Values start, start + step, ... below stop (like torch.arange).
  static Tensor arange(T start, T stop, T step = T(1)) {
    if (step == T(0)) throw Error("arange: step must not be zero");
    const double count = std::ceil((static_cast<double>(stop) - start) / step);
    if (!std::isfinite(count) || count > 1e15)
      throw Error("arange: start, stop and step must be finite and give a reasonable count");
    auto n = static_cast<std::int64_t>(count);
    Tensor t = empty({std::max<std::int64_t>(n, 0)});
    for (std::int64_t i = 0; i < t.numel(); ++i)
      t.data()[i] = static_cast<T>(start + static_cast<double>(step) * i);
    return t;
  }
  // `steps` evenly spaced values from start to end, both included (like torch.linspace).
  static Tensor linspace(T start, T end, std::int64_t steps) {
    if (steps < 0) throw Error("linspace: steps must be non-negative, got " + std::to_string(steps));
    Tensor t = empty({steps});
    const double step = steps > 1 ? (static_cast<double>(end) - start) / (steps - 1) : 0.0;
    for (std::int64_t i = 0; i < steps; ++i) t.data()[i] = static_cast<T>(start + step * i);
    if (steps > 1) t.data()[steps - 1] = end;
    return t;
  }

  // ---- properties ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return checked().shape; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape().size()); }
  std::int64_t size(std::int64_t axis) const { return shape()[normalize_axis(axis, dim())]; }
  std::int64_t numel() const { return numel_of(shape()); }
  T* data() { return checked().data(); }
  const T* data() const { return checked().data(); }
  T* begin() { return data(); }
  T* end() { return data() + numel(); }
  const T* begin() const { return data(); }
  const T* end() const { return data() + numel(); }
  std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

  // The single value of a one-element tensor.
  T item() const {
    if (numel() != 1)
      throw Error("item(): tensor of shape " + to_string(shape()) + " has " + std::to_string(numel()) +
                  " elements, not one");
    return data()[0];
  }
  // Element access by full index, with bounds checks.
  T& at(const Shape& index) { return data()[flat_index(index)]; }
  T at(const Shape& index) const { return data()[flat_index(index)]; }

  // True when both tensors view the same memory.
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  bool shares_storage(const Tensor& other) const {
    return defined() && other.defined() && impl_->storage == other.impl_->storage;
  }

  // ---- in-place, outside autograd (initialisation, optimizer updates) ----
  Tensor& fill_(T value) {
    T* p = data();
    detail::parallel_for(numel(), [&](std::int64_t i) { p[i] = value; });
    return *this;
  }
  // Copies `src` (same number of elements) into this tensor's memory.
  Tensor& copy_(const Tensor& src) {
    if (src.numel() != numel())
      throw Error("copy_: source of shape " + to_string(src.shape()) + " does not fit shape " +
                  to_string(shape()));
    std::memmove(data(), src.data(), sizeof(T) * numel());
    return *this;
  }

  // A deep copy with no autograd history.
  Tensor clone() const {
    Tensor t = empty(shape());
    std::memcpy(t.data(), data(), sizeof(T) * numel());
    return t;
  }
  // Converts the element type (a copy, no autograd history).
  template <class U>
  Tensor<U> to() const {
    Tensor<U> t = Tensor<U>::empty(shape());
    const T* s = data();
    U* d = t.data();
    detail::parallel_for(numel(), [&](std::int64_t i) { d[i] = static_cast<U>(s[i]); });
    return t;
  }

  // ---- autograd ----
  bool requires_grad() const { return checked().requires_grad; }
  // Marks a leaf tensor as a parameter to differentiate (like requires_grad_()).
  Tensor& requires_grad_(bool on = true) {
    if (checked().grad_fn)
      throw Error("requires_grad_(): only leaf tensors can change requires_grad; use detach() first");
    impl_->requires_grad = on;
    return *this;
  }
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  // The accumulated gradient of a leaf (undefined before the first backward()).
  Tensor grad() const {
    Tensor g;
    g.impl_ = checked().grad;
    return g;
  }
  // Resets the accumulated gradient (set_to_none semantics, like PyTorch's default).
  void zero_grad() { checked().grad.reset(); }
  // Sets the gradient (used by gradient clipping and accumulation helpers).
  void set_grad(const Tensor& g) {
    if (g.defined() && g.shape() != shape())
      throw Error("set_grad: gradient of shape " + to_string(g.shape()) + " for tensor of shape " +
                  to_string(shape()));
    checked().grad = g.impl_;
  }
  // Same data, cut from the graph.
  Tensor detach() const {
    Tensor t;
    t.impl_ = std::make_shared<detail::TensorImpl<T>>();
    t.impl_->storage = checked().storage;
    t.impl_->offset = impl_->offset;
    t.impl_->shape = impl_->shape;
    return t;
  }
  const std::shared_ptr<detail::Node<T>>& grad_fn() const { return checked().grad_fn; }

  // Back-propagates from this scalar (or with an explicit output gradient). Defined in
  // core/autograd_graph.hpp.
  void backward() const;
  void backward(const Tensor& grad_output) const;

  // ---- views sharing storage (differentiable; defined in core/autograd_graph.hpp) ----
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const { return reshape(shape); }
  Tensor flatten() const { return reshape({numel()}); }
  Tensor unsqueeze(std::int64_t axis) const;
  Tensor squeeze(std::int64_t axis) const;
  // Element i along the first axis (shape without the first extent).
  Tensor select(std::int64_t i) const;
  Tensor operator[](std::int64_t i) const { return select(i); }
  // Rows [begin, end) along the first axis.
  Tensor slice(std::int64_t begin, std::int64_t end) const;

  // Low-level access for ops.
  const std::shared_ptr<detail::TensorImpl<T>>& impl() const { return impl_; }
  static Tensor from_impl(std::shared_ptr<detail::TensorImpl<T>> impl) {
    Tensor t;
    t.impl_ = std::move(impl);
    return t;
  }

 private:
  detail::TensorImpl<T>& checked() const {
    if (!impl_) throw Error("operation on an undefined tensor");
    return *impl_;
  }
  std::int64_t flat_index(const Shape& index) const {
    const Shape& s = shape();
    if (index.size() != s.size())
      throw Error("index " + to_string(index) + " has the wrong rank for shape " + to_string(s));
    std::int64_t flat = 0;
    for (std::size_t k = 0; k < s.size(); ++k) {
      if (index[k] < 0 || index[k] >= s[k])
        throw Error("index " + to_string(index) + " is out of bounds for shape " + to_string(s));
      flat = flat * s[k] + index[k];
    }
    return flat;
  }

  std::shared_ptr<detail::TensorImpl<T>> impl_;
};

// Prints shape and values (at most 6 per row; long axes are elided with "...").
template <class T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  const Shape& s = t.shape();
  const T* p = t.data();
  std::function<void(std::size_t, std::int64_t)> rec = [&](std::size_t axis, std::int64_t base) {
    if (axis == s.size()) {
      os << p[base];
      return;
    }
    std::int64_t stride = 1;
    for (std::size_t k = axis + 1; k < s.size(); ++k) stride *= s[k];
    const std::int64_t n = s[axis];
    os << '[';
    for (std::int64_t i = 0; i < n; ++i) {
      if (i) os << ", ";
      if (n > 6 && i == 3) {  // elide the middle of long axes
        os << "...";
        i = n - 4;
        continue;
      }
      rec(axis + 1, base + i * stride);
    }
    os << ']';
  };
  os << "Tensor(";
  rec(0, 0);
  return os << ", shape=" << to_string(s) << (t.requires_grad() ? ", requires_grad" : "") << ')';
}

}  // namespace diffuse

// The members that record and run the graph (reshape, slice, select, backward, ...).
#include "diffuse/core/autograd_graph.hpp"
