/// @file
/// Softmax over the last axis of a [rows, cols] buffer, forward and backward; one row per task.
#pragma once
#include <algorithm>
#include <cstdint>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/common.hpp"
#include "diffuse/kernels/packet.hpp"

namespace diffuse::kernels {

namespace detail {
/// y[j] = exp(x[j] - shift) with Eigen's vectorised exp, block by block (see packet.hpp).
template <class T>
void exp_shifted(std::int64_t n, const T* x, T shift, T* y) {
  constexpr int B = kPacketBlock;
  T blk[B];
  std::int64_t i = 0;
  for (; i + B <= n; i += B) {
    for (int j = 0; j < B; ++j) blk[j] = x[i + j] - shift;
    exp_block(blk, y + i);
  }
  if (i < n) {  // tail: pad the block, keep the first n - i results
    const int m = int(n - i);
    for (int j = 0; j < B; ++j) blk[j] = j < m ? x[i + j] - shift : T(0);
    exp_block(blk, blk);
    for (int j = 0; j < m; ++j) y[i + j] = blk[j];
  }
}

/// Largest element; 8 independent chains so the loop is not latency-bound.
template <class T>
T row_max(std::int64_t n, const T* x) {
  T m[8];
  for (int j = 0; j < 8; ++j) m[j] = x[0];
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) m[j] = std::max(m[j], x[i + j]);
  for (; i < n; ++i) m[0] = std::max(m[0], x[i]);
  for (int j = 1; j < 8; ++j) m[0] = std::max(m[0], m[j]);
  return m[0];
}

/// One row, in place allowed (y may equal x). Subtracting the max keeps exp from overflowing.
template <class T>
void softmax_row(std::int64_t cols, const T* x, T* y) {
  exp_shifted(cols, x, row_max(cols, x), y);
  const T inv = T(1) / fixed_sum<T>(cols, [&](std::int64_t j) { return y[j]; });
  for (std::int64_t j = 0; j < cols; ++j) y[j] *= inv;
}

/// gx = y * (gy - sum(gy * y)); gx may alias gy.
template <class T>
void softmax_backward_row(std::int64_t cols, const T* y, const T* gy, T* gx) {
  const T dot = fixed_sum<T>(cols, [&](std::int64_t j) { return gy[j] * y[j]; });
  for (std::int64_t j = 0; j < cols; ++j) gx[j] = y[j] * (gy[j] - dot);
}
}  // namespace detail

/// softmax over the last axis of [rows, cols] (like torch.softmax(x, -1)); y may equal x.
template <class T>
void softmax_forward(std::int64_t rows, std::int64_t cols, const T* x, T* y) {
  detail::check_positive("softmax", {{"rows", rows}, {"cols", cols}});
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 14))
  for (std::int64_t r = 0; r < rows; ++r) detail::softmax_row(cols, x + r * cols, y + r * cols);
}

/// Backward of softmax_forward from its output y and the output gradient gy:
/// gx [rows, cols] overwritten (may equal gy).
template <class T>
void softmax_backward(std::int64_t rows, std::int64_t cols, const T* y, const T* gy, T* gx) {
  detail::check_positive("softmax", {{"rows", rows}, {"cols", cols}});
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 14))
  for (std::int64_t r = 0; r < rows; ++r)
    detail::softmax_backward_row(cols, y + r * cols, gy + r * cols, gx + r * cols);
}

/// The kernels the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_KERNELS_SOFTMAX_TEMPLATES(X, T)                        \
  X(void softmax_forward<T>(std::int64_t, std::int64_t, const T*, T*)) \
  X(void softmax_backward<T>(std::int64_t, std::int64_t, const T*, const T*, T*))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_KERNELS_SOFTMAX_TEMPLATES)

}  // namespace diffuse::kernels
