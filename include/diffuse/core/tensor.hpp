/// @file
/// Tensor<T>: a contiguous, row-major, shared N-d array with optional autograd state.
/// Copies of a Tensor share storage (like torch.Tensor); clone() copies the data.
/// Views (reshape, select, slice along the first axis) share storage with their base.
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

/// 64-byte aligned, uninitialised buffer shared by a tensor and its views (from the caching allocator).
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
  // Called when backward() has finished accumulating into `grad` (distributed gradient averaging
  // starts on a parameter as soon as its gradient is complete).
  std::vector<std::function<void()>> post_accumulate_grad_hooks;

  T* data() const { return storage->ptr + offset; }
};

/// One recorded operation: how to turn the gradient of its output into gradients of its inputs.
template <class T>
struct Node {
  std::string name;
  /// Inputs that take a gradient (nullptr where an input does not require one).
  std::vector<std::shared_ptr<TensorImpl<T>>> inputs;
  /// Returns one gradient per input (an undefined Tensor where none flows).
  std::function<std::vector<Tensor<T>>(const Tensor<T>&)> backward;
  /// Gradient of the output, summed over its uses while backward() runs.
  std::shared_ptr<TensorImpl<T>> grad_accum;
};

}  // namespace detail

/// A float or double N-d array that can record autograd history (like torch.Tensor).
template <class T = float>
class Tensor {
  static_assert(std::is_floating_point_v<T>, "Tensor<T> holds float or double");

 public:
  /// The element type, float or double.
  using value_type = T;

  /// An undefined tensor (no storage); defined() is false.
  Tensor() = default;

  /// A tensor of the given shape, initialised to zero.
  explicit Tensor(const Shape& shape) : Tensor(empty(shape)) { fill_(T(0)); }

  /// A tensor of the given shape holding `values` (row-major); the count must match.
  /// Throws diffuse::Error when it does not.
  Tensor(const Shape& shape, const std::vector<T>& values) : Tensor(empty(shape)) {
    if (static_cast<std::int64_t>(values.size()) != numel())
      throw Error("Tensor: " + std::to_string(values.size()) + " values given for shape " + to_string(shape) +
                  " (" + std::to_string(numel()) + " elements)");
    std::copy(values.begin(), values.end(), data());
  }

  // ---- creation ----
  /// A tensor of the given shape with uninitialised values (like torch.empty).
  static Tensor empty(const Shape& shape) {
    Tensor t;
    t.impl_ = std::make_shared<detail::TensorImpl<T>>();
    t.impl_->shape = shape;
    t.impl_->storage = std::make_shared<detail::Storage<T>>(numel_of(shape));
    return t;
  }
  /// A tensor of zeros (like torch.zeros).
  static Tensor zeros(const Shape& shape) { return full(shape, T(0)); }
  /// A tensor of ones (like torch.ones).
  static Tensor ones(const Shape& shape) { return full(shape, T(1)); }
  /// Every element set to `value` (like torch.full).
  static Tensor full(const Shape& shape, T value) {
    Tensor t = empty(shape);
    t.fill_(value);
    return t;
  }
  /// A 0-d tensor holding `value` (like torch.tensor(value)).
  static Tensor scalar(T value) { return full({}, value); }
  /// A 1-d tensor holding `values` (like torch.tensor(list)).
  static Tensor from_vector(const std::vector<T>& values) {
    return Tensor({static_cast<std::int64_t>(values.size())}, values);
  }
  /// Values start, start + step, ... below stop (like torch.arange).
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
  /// `steps` evenly spaced values from start to end, both included (like torch.linspace).
  static Tensor linspace(T start, T end, std::int64_t steps) {
    if (steps < 0) throw Error("linspace: steps must be non-negative, got " + std::to_string(steps));
    Tensor t = empty({steps});
    const double step = steps > 1 ? (static_cast<double>(end) - start) / (steps - 1) : 0.0;
    for (std::int64_t i = 0; i < steps; ++i) t.data()[i] = static_cast<T>(start + step * i);
    if (steps > 1) t.data()[steps - 1] = end;
    return t;
  }

  // ---- properties ----
  /// False for a default-constructed Tensor; most members throw diffuse::Error on one.
  bool defined() const { return impl_ != nullptr; }
  /// The extents (like tensor.shape).
  const Shape& shape() const { return checked().shape; }
  /// Number of axes (like tensor.dim()).
  std::int64_t dim() const { return static_cast<std::int64_t>(shape().size()); }
  /// Extent of `axis`, negative counting from the end (like tensor.size(axis)); throws
  /// diffuse::Error when out of range.
  std::int64_t size(std::int64_t axis) const { return shape()[normalize_axis(axis, dim())]; }
  /// Number of elements (like tensor.numel()).
  std::int64_t numel() const { return numel_of(shape()); }
  /// The first element; the others follow it in row-major order.
  T* data() { return checked().data(); }
  /// Read-only data().
  const T* data() const { return checked().data(); }
  /// The elements in row-major order, for range-for and <algorithm>.
  T* begin() { return data(); }
  /// Past the last element.
  T* end() { return data() + numel(); }
  /// Read-only begin().
  const T* begin() const { return data(); }
  /// Read-only end().
  const T* end() const { return data() + numel(); }
  /// A copy of the elements in row-major order.
  std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

  /// The single value of a one-element tensor.
  /// Like tensor.item(); throws diffuse::Error for any other size.
  T item() const {
    if (numel() != 1)
      throw Error("item(): tensor of shape " + to_string(shape()) + " has " + std::to_string(numel()) +
                  " elements, not one");
    return data()[0];
  }
  /// Element access by full index, with bounds checks.
  /// Throws diffuse::Error on an index of the wrong rank or out of range.
  T& at(const Shape& index) { return data()[flat_index(index)]; }
  /// Read-only at().
  T at(const Shape& index) const { return data()[flat_index(index)]; }

  /// True when both are handles to the same tensor (copies of one Tensor), like Python's `a is b`.
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  /// True when both use the same storage: a tensor and its views, or copies of them.
  bool shares_storage(const Tensor& other) const {
    return defined() && other.defined() && impl_->storage == other.impl_->storage;
  }

  // ---- in-place, outside autograd (initialisation, optimizer updates) ----
  /// Sets every element to `value` (like tensor.fill_).
  Tensor& fill_(T value) {
    T* p = data();
    detail::parallel_for(numel(), [&](std::int64_t i) { p[i] = value; });
    return *this;
  }
  /// Copies `src` (same number of elements) into this tensor's memory.
  /// Throws diffuse::Error when the counts differ (no broadcasting, unlike tensor.copy_).
  Tensor& copy_(const Tensor& src) {
    if (src.numel() != numel())
      throw Error("copy_: source of shape " + to_string(src.shape()) + " does not fit shape " +
                  to_string(shape()));
    std::memmove(data(), src.data(), sizeof(T) * numel());
    return *this;
  }

  /// A deep copy with no autograd history.
  Tensor clone() const {
    Tensor t = empty(shape());
    std::memcpy(t.data(), data(), sizeof(T) * numel());
    return t;
  }
  /// Converts the element type (a copy, no autograd history).
  template <class U>
  Tensor<U> to() const {
    Tensor<U> t = Tensor<U>::empty(shape());
    const T* s = data();
    U* d = t.data();
    detail::parallel_for(numel(), [&](std::int64_t i) { d[i] = static_cast<U>(s[i]); });
    return t;
  }

  // ---- autograd ----
  /// Whether gradients are computed for this tensor (like tensor.requires_grad).
  bool requires_grad() const { return checked().requires_grad; }
  /// Marks a leaf tensor as a parameter to differentiate (like requires_grad_()).
  /// Throws diffuse::Error on a non-leaf.
  Tensor& requires_grad_(bool on = true) {
    if (checked().grad_fn)
      throw Error("requires_grad_(): only leaf tensors can change requires_grad; use detach() first");
    impl_->requires_grad = on;
    return *this;
  }
  /// True unless a recorded operation produced this tensor (like tensor.is_leaf).
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  /// The accumulated gradient of a leaf (undefined before the first backward()).
  Tensor grad() const {
    Tensor g;
    g.impl_ = checked().grad;
    return g;
  }
  /// Resets the accumulated gradient (set_to_none semantics, like PyTorch's default).
  void zero_grad() { checked().grad.reset(); }
  /// Sets the gradient (used by gradient clipping and accumulation helpers).
  void set_grad(const Tensor& g) {
    if (g.defined() && g.shape() != shape())
      throw Error("set_grad: gradient of shape " + to_string(g.shape()) + " for tensor of shape " +
                  to_string(shape()));
    checked().grad = g.impl_;
  }
  /// Calls `hook` each time a backward() has finished accumulating this leaf's gradient: after the
  /// last operation of the graph that feeds it, while backward() goes on with the rest (like
  /// torch's register_post_accumulate_grad_hook). Throws diffuse::Error on a non-leaf.
  void register_post_accumulate_grad_hook(std::function<void()> hook) {
    if (checked().grad_fn)
      throw Error("register_post_accumulate_grad_hook: only leaf tensors accumulate gradients");
    impl_->post_accumulate_grad_hooks.push_back(std::move(hook));
  }
  /// Removes every hook registered with register_post_accumulate_grad_hook.
  void clear_post_accumulate_grad_hooks() { checked().post_accumulate_grad_hooks.clear(); }
  /// Same data, cut from the graph.
  Tensor detach() const {
    Tensor t;
    t.impl_ = std::make_shared<detail::TensorImpl<T>>();
    t.impl_->storage = checked().storage;
    t.impl_->offset = impl_->offset;
    t.impl_->shape = impl_->shape;
    return t;
  }
  /// The recorded operation that produced this tensor; nullptr for a leaf (like tensor.grad_fn).
  const std::shared_ptr<detail::Node<T>>& grad_fn() const { return checked().grad_fn; }

  /// Back-propagates from this scalar (or with an explicit output gradient). Defined in
  /// core/autograd_graph.hpp.
  /// Throws diffuse::Error when the tensor does not require grad or, without an output gradient, is
  /// not a scalar. The graph is freed afterwards (no retain_graph): a second backward() through
  /// it throws.
  void backward() const;
  /// With an output gradient of this tensor's shape (like tensor.backward(gradient)).
  void backward(const Tensor& grad_output) const;

  // ---- views sharing storage (differentiable; defined in core/autograd_graph.hpp) ----
  /// A view of the same elements in a new shape; one extent may be -1 (like torch.reshape).
  /// Throws diffuse::Error when the element counts differ.
  Tensor reshape(const Shape& shape) const;
  /// Same as reshape() (like tensor.view).
  Tensor view(const Shape& shape) const { return reshape(shape); }
  /// A 1-d view of all elements (like torch.flatten).
  Tensor flatten() const { return reshape({numel()}); }
  /// A view with an axis of extent 1 inserted at `axis` (like torch.unsqueeze).
  Tensor unsqueeze(std::int64_t axis) const;
  /// A view without `axis`, which must have extent 1: throws diffuse::Error otherwise, where
  /// torch.squeeze(x, dim) returns x unchanged.
  Tensor squeeze(std::int64_t axis) const;
  /// Element i along the first axis (shape without the first extent).
  /// A view; negative i counts from the end (like x[i]).
  Tensor select(std::int64_t i) const;
  /// Same as select(i).
  Tensor operator[](std::int64_t i) const { return select(i); }
  /// Rows [begin, end) along the first axis.
  /// A view; negative bounds count from the end (like x[begin:end]). Throws diffuse::Error
  /// when out of range, where Python slicing would clamp.
  Tensor slice(std::int64_t begin, std::int64_t end) const;

  /// Low-level access for ops.
  const std::shared_ptr<detail::TensorImpl<T>>& impl() const { return impl_; }
  /// Wraps an implementation (for ops).
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

/// Prints shape and values (at most 6 per row; long axes are elided with "...").
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
