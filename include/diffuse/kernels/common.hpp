/// @file
/// Shared helpers of the raw kernels: argument checks that throw diffuse::Error, a sum in a fixed
/// order, per-thread scratch buffers and the flop counter.
#pragma once
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include "diffuse/core/error.hpp"

namespace diffuse::kernels {

/// Floating-point operations done by the product kernels (GEMM, convolution), two per multiply-add,
/// since the program started: what the benchmarks divide by time to report GFLOP/s. A Winograd
/// convolution counts the direct sum's operations (an effective rate, as cuDNN and oneDNN report).
inline std::atomic<std::int64_t>& flop_counter() {
  static std::atomic<std::int64_t> count{0};
  return count;
}

}  // namespace diffuse::kernels

namespace diffuse::kernels::detail {

inline void count_flops(std::int64_t multiply_adds) {
  flop_counter().fetch_add(2 * multiply_adds, std::memory_order_relaxed);
}

/// Throws unless every size is >= 1; `what` names the kernel, `sizes` the (name, value) pairs.
inline void check_positive(const char* what,
                           std::initializer_list<std::pair<const char*, std::int64_t>> sizes) {
  for (auto& [name, v] : sizes)
    if (v < 1) throw Error(std::string(what) + ": " + name + " must be positive, got " + std::to_string(v));
}

inline void check_nonnegative(const char* what,
                              std::initializer_list<std::pair<const char*, std::int64_t>> sizes) {
  for (auto& [name, v] : sizes)
    if (v < 0)
      throw Error(std::string(what) + ": " + name + " must be non-negative, got " + std::to_string(v));
}

/// Sum of f(i) over [0, n) in an order fixed by n alone: 8 interleaved partial sums combined
/// pairwise. Unlike `omp simd reduction` or Eigen's sum(), the order does not depend on how the
/// buffer happens to be aligned, and the 8 independent chains still vectorise.
template <class Acc, class F>
inline Acc fixed_sum(std::int64_t n, F&& f) {
  Acc a[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] += Acc(f(i + j));
  for (int j = 0; i < n; ++i, ++j) a[j] += Acc(f(i));
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

/// Scratch of at least n elements (uninitialised), owned by the calling thread and kept between calls,
/// so repeated convolutions neither page-fault fresh memory nor zero-fill it. Each Slot is one buffer;
/// a thread must not use a slot twice at the same time.
template <class T, int Slot>
T* thread_scratch(std::int64_t n) {
  thread_local std::unique_ptr<T[]> buf;
  thread_local std::int64_t cap = 0;
  if (cap < n) {
    buf.reset();
    buf.reset(new T[n]);
    cap = n;
  }
  return buf.get();
}

}  // namespace diffuse::kernels::detail
