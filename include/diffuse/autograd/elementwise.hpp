/// @file
/// Differentiable elementwise operations: arithmetic with NumPy broadcasting (+ - * /),
/// scalar arithmetic, and the unary functions diffusion models use (exp, log, sin, cos, sqrt,
/// pow, tanh, sigmoid, relu, silu, clamp, abs). Equal shapes and scalars take a direct OpenMP
/// loop; other broadcasts walk the output with each input's strides (0 along broadcast axes).
#pragma once
#include <cmath>
#include <functional>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/kernels/activation.hpp"

namespace diffuse {

namespace detail {

/// The element strides of a tensor of shape `in` read as the broadcast shape `out` (NumPy rules:
/// missing leading axes and axes of extent 1 get stride 0).
inline std::vector<std::int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<std::int64_t> strides(out.size(), 0);
  std::int64_t stride = 1;
  const std::size_t lead = out.size() - in.size();
  for (std::size_t i = in.size(); i-- > 0;) {
    if (in[i] != 1) strides[lead + i] = stride;
    stride *= in[i];
  }
  return strides;
}

/// Visits every element of a row-major tensor of shape `out` with the offsets of the same
/// position in two strided inputs: f(o, offset_a, offset_b), o = 0 .. numel - 1, in parallel over
/// the rows of the last axis (what broadcasting, permutation and expansion copy).
template <class F>
void for_each_strided(const Shape& out, const std::vector<std::int64_t>& strides_a,
                      const std::vector<std::int64_t>& strides_b, F f) {
  const std::size_t nd = out.size();
  if (nd == 0) {
    f(0, 0, 0);
    return;
  }
  const std::int64_t inner = out[nd - 1];
  const std::int64_t rows = inner == 0 ? 0 : numel_of(out) / inner;
  const std::int64_t step_a = strides_a[nd - 1], step_b = strides_b[nd - 1];
  auto row = [&](std::int64_t r) {
    std::int64_t rest = r, base_a = 0, base_b = 0;
    for (std::size_t d = nd - 1; d-- > 0;) {
      const std::int64_t i = rest % out[d];
      rest /= out[d];
      base_a += i * strides_a[d];
      base_b += i * strides_b[d];
    }
    for (std::int64_t j = 0; j < inner; ++j) f(r * inner + j, base_a + j * step_a, base_b + j * step_b);
  };
  if (rows * inner < kParallelGrain) {
    for (std::int64_t r = 0; r < rows; ++r) row(r);
  } else {
    parallel_for_items(rows, row);
  }
}

/// out[i] = f(x[i])
template <class T, class F>
Tensor<T> map(const Tensor<T>& x, F f) {
  Tensor<T> out = Tensor<T>::empty(x.shape());
  const T* px = x.data();
  T* po = out.data();
  parallel_for(x.numel(), [&](std::int64_t i) { po[i] = f(px[i]); });
  return out;
}

/// out[i] = f(a[i], b[i]) for equal shapes
template <class T, class F>
Tensor<T> zip(const Tensor<T>& a, const Tensor<T>& b, F f) {
  Tensor<T> out = Tensor<T>::empty(a.shape());
  const T *pa = a.data(), *pb = b.data();
  T* po = out.data();
  parallel_for(a.numel(), [&](std::int64_t i) { po[i] = f(pa[i], pb[i]); });
  return out;
}

/// out[i] = f(a[i], b[i], c[i]) for equal shapes
template <class T, class F>
Tensor<T> zip3(const Tensor<T>& a, const Tensor<T>& b, const Tensor<T>& c, F f) {
  Tensor<T> out = Tensor<T>::empty(a.shape());
  const T *pa = a.data(), *pb = b.data(), *pc = c.data();
  T* po = out.data();
  parallel_for(a.numel(), [&](std::int64_t i) { po[i] = f(pa[i], pb[i], pc[i]); });
  return out;
}

/// Sums x over the axes where `reduce` is true, keeping them as extent 1. Accumulates in
/// double, in a fixed order. (Written by hand: xtensor 0.24's reducers crash under C++20.)
template <class T>
Tensor<T> sum_keepdim(const Tensor<T>& x, const std::vector<bool>& reduce) {
  const Shape& s = x.shape();
  const std::size_t nd = s.size();
  Shape out_shape = s;
  for (std::size_t d = 0; d < nd; ++d)
    if (reduce[d]) out_shape[d] = 1;
  Shape step = contiguous_strides(out_shape);
  for (std::size_t d = 0; d < nd; ++d)
    if (reduce[d]) step[d] = 0;
  std::vector<double> acc(static_cast<std::size_t>(numel_of(out_shape)), 0.0);
  std::vector<std::int64_t> idx(nd, 0);
  std::int64_t off = 0;
  const T* px = x.data();
  for (std::int64_t i = 0, n = x.numel(); i < n; ++i) {
    acc[off] += px[i];
    for (std::size_t d = nd; d-- > 0;) {  // odometer increment of the multi-index
      off += step[d];
      if (++idx[d] < s[d]) break;
      off -= step[d] * s[d];
      idx[d] = 0;
    }
  }
  Tensor<T> out = Tensor<T>::empty(out_shape);
  std::transform(acc.begin(), acc.end(), out.data(), [](double v) { return static_cast<T>(v); });
  return out;
}

/// Sums a broadcast gradient back to the shape of the operand it came from.
template <class T>
Tensor<T> sum_to(const Tensor<T>& g, const Shape& target) {
  if (g.shape() == target) return g;
  const std::size_t lead = g.shape().size() - target.size();
  std::vector<bool> reduce(g.shape().size(), false);
  for (std::size_t i = 0; i < g.shape().size(); ++i)
    reduce[i] = i < lead || (target[i - lead] == 1 && g.shape()[i] != 1);
  return sum_keepdim(g, reduce).detach().reshape(target);
}

/// f applied with broadcasting.
template <class T, class F>
Tensor<T> broadcast_zip(const Tensor<T>& a, const Tensor<T>& b, F f) {
  if (a.shape() == b.shape()) return zip(a, b, f);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape());
  if (b.numel() == 1 && out_shape == a.shape()) {
    const T s = b.data()[0];
    return map(a, [&](T x) { return f(x, s); });
  }
  if (a.numel() == 1 && out_shape == b.shape()) {
    const T s = a.data()[0];
    return map(b, [&](T y) { return f(s, y); });
  }
  Tensor<T> out = Tensor<T>::empty(out_shape);
  const T *pa = a.data(), *pb = b.data();
  T* po = out.data();
  for_each_strided(out_shape, broadcast_strides(a.shape(), out_shape),
                   broadcast_strides(b.shape(), out_shape),
                   [&](std::int64_t o, std::int64_t ia, std::int64_t ib) { po[o] = f(pa[ia], pb[ib]); });
  return out;
}

// The binary operations as named function objects (std::plus<> and its kin, and the one below):
// a forward pass and a backward pass that use the same one share its broadcast_zip instantiation
// (lambdas would each compile their own).
struct NegativeDivide {
  template <class X>
  X operator()(X x, X y) const {
    return -x / y;
  }
};

/// Records an elementwise unary op whose local derivative is df(x, y) (x input, y output).
template <class T, class F, class DF>
Tensor<T> unary(const Tensor<T>& x, const char* name, F f, DF df) {
  Tensor<T> y = map(x, f);
  // The node keeps a detached alias of its output: capturing y itself would make a cycle.
  return record(y, {&x}, name, [x, y = y.detach(), df](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{zip3(g, x, y, [&](T gi, T xi, T yi) { return gi * df(xi, yi); })};
  });
}

}  // namespace detail

// ---- binary arithmetic with broadcasting ----

/// a + b with NumPy broadcasting (like torch.add); throws diffuse::Error when the shapes do
/// not broadcast.
template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::broadcast_zip(a, b, std::plus<>{});
  return detail::record(out, {&a, &b}, "add", [sa = a.shape(), sb = b.shape()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{detail::sum_to(g, sa), detail::sum_to(g, sb)};
  });
}

/// a - b with broadcasting (like torch.sub).
template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::broadcast_zip(a, b, std::minus<>{});
  return detail::record(out, {&a, &b}, "sub", [sa = a.shape(), sb = b.shape()](const Tensor<T>& g) {
    Tensor<T> gb = detail::sum_to(g, sb);
    return std::vector<Tensor<T>>{detail::sum_to(g, sa), detail::map(gb, [](T v) { return -v; })};
  });
}

/// a * b, elementwise with broadcasting (like torch.mul).
template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::broadcast_zip(a, b, std::multiplies<>{});
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return detail::record(out, {&a, &b}, "mul", [a, b, need_a, need_b](const Tensor<T>& g) {
    Tensor<T> ga, gb;
    if (need_a) ga = detail::sum_to(detail::broadcast_zip(g, b, std::multiplies<>{}), a.shape());
    if (need_b) gb = detail::sum_to(detail::broadcast_zip(g, a, std::multiplies<>{}), b.shape());
    return std::vector<Tensor<T>>{ga, gb};
  });
}

/// a / b with broadcasting (like torch.div).
template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::broadcast_zip(a, b, std::divides<>{});
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return detail::record(out, {&a, &b}, "div", [a, b, out = out.detach(), need_a, need_b](const Tensor<T>& g) {
    Tensor<T> ga, gb;
    if (need_a) ga = detail::sum_to(detail::broadcast_zip(g, b, std::divides<>{}), a.shape());
    if (need_b) {
      // d(a/b)/db = -out / b
      Tensor<T> t = detail::broadcast_zip(g, out, std::multiplies<>{});
      gb = detail::sum_to(detail::broadcast_zip(t, b, detail::NegativeDivide{}), b.shape());
    }
    return std::vector<Tensor<T>>{ga, gb};
  });
}

// ---- scalar arithmetic ----

/// x + s for a scalar s.
template <class T>
Tensor<T> add_scalar(const Tensor<T>& x, T s) {
  return detail::unary(
      x, "add_scalar", [s](T v) { return v + s; }, [](T, T) { return T(1); });
}
/// x * s for a scalar s.
template <class T>
Tensor<T> mul_scalar(const Tensor<T>& x, T s) {
  return detail::unary(
      x, "mul_scalar", [s](T v) { return v * s; }, [s](T, T) { return s; });
}
/// x / s for a scalar s, divided as torch.div(x, s) divides (not multiplied by 1 / s).
template <class T>
Tensor<T> div_scalar(const Tensor<T>& x, T s) {
  return detail::unary(
      x, "div_scalar", [s](T v) { return v / s; }, [s](T, T) { return T(1) / s; });
}
/// -x (like torch.neg).
template <class T>
Tensor<T> neg(const Tensor<T>& x) {
  return mul_scalar(x, T(-1));
}

// ---- unary functions ----

/// e^x (like torch.exp).
template <class T>
Tensor<T> exp(const Tensor<T>& x) {
  return detail::unary(
      x, "exp", [](T v) { return std::exp(v); }, [](T, T y) { return y; });
}
/// Natural logarithm (like torch.log).
template <class T>
Tensor<T> log(const Tensor<T>& x) {
  return detail::unary(
      x, "log", [](T v) { return std::log(v); }, [](T v, T) { return T(1) / v; });
}
/// Sine (like torch.sin).
template <class T>
Tensor<T> sin(const Tensor<T>& x) {
  return detail::unary(
      x, "sin", [](T v) { return std::sin(v); }, [](T v, T) { return std::cos(v); });
}
/// Cosine (like torch.cos).
template <class T>
Tensor<T> cos(const Tensor<T>& x) {
  return detail::unary(
      x, "cos", [](T v) { return std::cos(v); }, [](T v, T) { return -std::sin(v); });
}
/// Square root (like torch.sqrt).
template <class T>
Tensor<T> sqrt(const Tensor<T>& x) {
  return detail::unary(
      x, "sqrt", [](T v) { return std::sqrt(v); }, [](T, T y) { return T(0.5) / y; });
}
/// x * x (like torch.square).
template <class T>
Tensor<T> square(const Tensor<T>& x) {
  return detail::unary(
      x, "square", [](T v) { return v * v; }, [](T v, T) { return T(2) * v; });
}
/// x^p for a scalar exponent p (like torch.pow(x, p)).
template <class T>
Tensor<T> pow(const Tensor<T>& x, T p) {
  return detail::unary(
      x, "pow", [p](T v) { return std::pow(v, p); }, [p](T v, T) { return p * std::pow(v, p - T(1)); });
}
/// |x| (like torch.abs); the gradient at 0 is 0.
template <class T>
Tensor<T> abs(const Tensor<T>& x) {
  return detail::unary(
      x, "abs", [](T v) { return std::abs(v); },
      [](T v, T) { return v > 0 ? T(1) : (v < 0 ? T(-1) : T(0)); });
}
/// Hyperbolic tangent (like torch.tanh).
template <class T>
Tensor<T> tanh(const Tensor<T>& x) {
  return detail::unary(
      x, "tanh", [](T v) { return std::tanh(v); }, [](T, T y) { return T(1) - y * y; });
}
/// 1 / (1 + e^-x) (like torch.sigmoid).
template <class T>
Tensor<T> sigmoid(const Tensor<T>& x) {
  return detail::unary(
      x, "sigmoid", [](T v) { return T(1) / (T(1) + std::exp(-v)); }, [](T, T y) { return y * (T(1) - y); });
}
/// max(x, 0) (like torch.relu); the gradient at 0 is 0.
template <class T>
Tensor<T> relu(const Tensor<T>& x) {
  return detail::unary(
      x, "relu", [](T v) { return v > 0 ? v : T(0); }, [](T v, T) { return v > 0 ? T(1) : T(0); });
}
/// x * sigmoid(x), forward and fused backward in vectorised kernels.
/// Like torch.nn.functional.silu.
template <class T>
Tensor<T> silu(const Tensor<T>& x) {
  Tensor<T> y = Tensor<T>::empty(x.shape());
  kernels::silu_forward<T>(x.numel(), x.data(), y.data());
  return detail::record(y, {&x}, "silu", [x](const Tensor<T>& g) {
    Tensor<T> gx = Tensor<T>::empty(x.shape());
    kernels::silu_backward<T>(x.numel(), x.data(), g.data(), gx.data());
    return std::vector<Tensor<T>>{gx};
  });
}
/// Limits x to [lo, hi]; throws diffuse::Error when lo > hi.
/// Gradient flows where the value was inside [lo, hi] (like torch.clamp).
template <class T>
Tensor<T> clamp(const Tensor<T>& x, T lo, T hi) {
  if (lo > hi) throw Error("clamp: lower bound is above upper bound");
  return detail::unary(
      x, "clamp", [lo, hi](T v) { return std::min(std::max(v, lo), hi); },
      [lo, hi](T v, T) { return (v >= lo && v <= hi) ? T(1) : T(0); });
}

// ---- operators ----

/// add(a, b).
template <class T>
Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) {
  return add(a, b);
}
/// sub(a, b).
template <class T>
Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) {
  return sub(a, b);
}
/// mul(a, b).
template <class T>
Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) {
  return mul(a, b);
}
/// div(a, b).
template <class T>
Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) {
  return div(a, b);
}
/// neg(a).
template <class T>
Tensor<T> operator-(const Tensor<T>& a) {
  return neg(a);
}
/// a + s for a scalar s, converted to the element type (so x + 1.0 works on a float tensor).
template <class T>
Tensor<T> operator+(const Tensor<T>& a, std::type_identity_t<T> s) {
  return add_scalar(a, s);
}
/// s + a.
template <class T>
Tensor<T> operator+(std::type_identity_t<T> s, const Tensor<T>& a) {
  return add_scalar(a, s);
}
/// a - s.
template <class T>
Tensor<T> operator-(const Tensor<T>& a, std::type_identity_t<T> s) {
  return add_scalar(a, -s);
}
/// s - a.
template <class T>
Tensor<T> operator-(std::type_identity_t<T> s, const Tensor<T>& a) {
  return add_scalar(neg(a), s);
}
/// a * s.
template <class T>
Tensor<T> operator*(const Tensor<T>& a, std::type_identity_t<T> s) {
  return mul_scalar(a, s);
}
/// s * a.
template <class T>
Tensor<T> operator*(std::type_identity_t<T> s, const Tensor<T>& a) {
  return mul_scalar(a, s);
}
/// a / s, computed as a * (1 / s).
template <class T>
Tensor<T> operator/(const Tensor<T>& a, std::type_identity_t<T> s) {
  return mul_scalar(a, T(1) / s);
}

/// The operations the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_AUTOGRAD_ELEMENTWISE_TEMPLATES(X, T)                       \
  X(Tensor<T> add<T>(const Tensor<T>& a, const Tensor<T>& b))              \
  X(Tensor<T> sub<T>(const Tensor<T>& a, const Tensor<T>& b))              \
  X(Tensor<T> mul<T>(const Tensor<T>& a, const Tensor<T>& b))              \
  X(Tensor<T> div<T>(const Tensor<T>& a, const Tensor<T>& b))              \
  X(Tensor<T> add_scalar<T>(const Tensor<T>& x, T s))                      \
  X(Tensor<T> mul_scalar<T>(const Tensor<T>& x, T s))                      \
  X(Tensor<T> div_scalar<T>(const Tensor<T>& x, T s))                      \
  X(Tensor<T> neg<T>(const Tensor<T>& x))                                  \
  X(Tensor<T> exp<T>(const Tensor<T>& x))                                  \
  X(Tensor<T> log<T>(const Tensor<T>& x))                                  \
  X(Tensor<T> sin<T>(const Tensor<T>& x))                                  \
  X(Tensor<T> cos<T>(const Tensor<T>& x))                                  \
  X(Tensor<T> sqrt<T>(const Tensor<T>& x))                                 \
  X(Tensor<T> square<T>(const Tensor<T>& x))                               \
  X(Tensor<T> pow<T>(const Tensor<T>& x, T p))                             \
  X(Tensor<T> abs<T>(const Tensor<T>& x))                                  \
  X(Tensor<T> tanh<T>(const Tensor<T>& x))                                 \
  X(Tensor<T> sigmoid<T>(const Tensor<T>& x))                              \
  X(Tensor<T> relu<T>(const Tensor<T>& x))                                 \
  X(Tensor<T> silu<T>(const Tensor<T>& x))                                 \
  X(Tensor<T> clamp<T>(const Tensor<T>& x, T lo, T hi))                    \
  X(Tensor<T> operator+<T>(const Tensor<T>& a, const Tensor<T>& b))        \
  X(Tensor<T> operator-<T>(const Tensor<T>& a, const Tensor<T>& b))        \
  X(Tensor<T> operator*<T>(const Tensor<T>& a, const Tensor<T>& b))        \
  X(Tensor<T> operator/<T>(const Tensor<T>& a, const Tensor<T>& b))        \
  X(Tensor<T> operator-<T>(const Tensor<T>& a))                            \
  X(Tensor<T> operator+<T>(const Tensor<T>& a, std::type_identity_t<T> s)) \
  X(Tensor<T> operator+<T>(std::type_identity_t<T> s, const Tensor<T>& a)) \
  X(Tensor<T> operator-<T>(const Tensor<T>& a, std::type_identity_t<T> s)) \
  X(Tensor<T> operator-<T>(std::type_identity_t<T> s, const Tensor<T>& a)) \
  X(Tensor<T> operator*<T>(const Tensor<T>& a, std::type_identity_t<T> s)) \
  X(Tensor<T> operator*<T>(std::type_identity_t<T> s, const Tensor<T>& a)) \
  X(Tensor<T> operator/<T>(const Tensor<T>& a, std::type_identity_t<T> s))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_AUTOGRAD_ELEMENTWISE_TEMPLATES)

}  // namespace diffuse
