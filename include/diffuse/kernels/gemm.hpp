/// @file
/// Matrix products on row-major raw buffers. Every product in diffuse goes through here: Eigen's GEMM
/// routine, run single-threaded on tiles that our own OpenMP loop hands out, so the result does not
/// depend on the number of threads; products with one row or column are a plain loop.
#pragma once
// GCC 12 reports a false -Wmaybe-uninitialized inside its own AVX-512 intrinsics when Eigen's GEMM
// is inlined (GCC bug 105593); silence it for the Eigen code instantiated from this header only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <string>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/common.hpp"

namespace diffuse::kernels {

namespace detail {

/// y[i * incy] += alpha * sum_k M(i, k) x[k * incx] for i < rows, where M(i, k) is
/// m[i * row_stride + k * col_stride] and one of the strides is 1: the product of a matrix and a
/// vector, in a fixed order (what Eigen's GEMM would do with one row or column at the cost of
/// packing the whole matrix).
template <class T>
void gemv_serial(std::int64_t rows, std::int64_t depth, T alpha, const T* m, std::int64_t row_stride,
                 std::int64_t col_stride, const T* x, std::int64_t incx, T* y, std::int64_t incy) {
  if (col_stride == 1) {  // rows of M are contiguous: one dot product per row
    for (std::int64_t i = 0; i < rows; ++i) {
      const T* mi = m + i * row_stride;
      y[i * incy] += alpha * fixed_sum<T>(depth, [&](std::int64_t k) { return mi[k] * x[k * incx]; });
    }
  } else {  // columns of M are contiguous: add alpha * x[k] times column k, in order of k
    for (std::int64_t k = 0; k < depth; ++k) {
      const T xk = alpha * x[k * incx];
      const T* mk = m + k * col_stride;
      for (std::int64_t i = 0; i < rows; ++i) y[i * incy] += xk * mk[i * row_stride];
    }
  }
}

/// C += alpha op(A) op(B) through Eigen's GEMM routine itself (the one its product expressions
/// end in), for row-major C; LhsOrder/RhsOrder are the storage orders of op(A) and op(B). Calling
/// it directly, rather than through `c.noalias() += alpha * a * b`, leaves out the expression
/// machinery (small-size and vector special cases for each of the four transpose combinations),
/// which cost more compile time than the routine itself; info == nullptr keeps it on this thread.
template <int LhsOrder, int RhsOrder, class T>
void eigen_gemm(std::int64_t M, std::int64_t N, std::int64_t K, T alpha, const T* A, std::int64_t lda,
                const T* B, std::int64_t ldb, T* C, std::int64_t ldc) {
  using Index = Eigen::Index;
  Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic, Eigen::Dynamic, Eigen::Dynamic>
      blocking(M, N, K, 1, true);
  Eigen::internal::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false,
                                                 Eigen::RowMajor, 1>::run(M, N, K, A, lda, B, ldb, C, 1, ldc,
                                                                          alpha, blocking, nullptr);
}

/// C = alpha op(A) op(B) + beta C on one thread (no checks), not counted in flop_counter() (for
/// callers that count the work they stand for). beta == 0 never reads C.
template <class T>
void gemm_serial_uncounted(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
                           T alpha, const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C,
                           std::int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (beta != T(1))
    for (std::int64_t i = 0; i < M; ++i) {
      T* ci = C + i * ldc;
      if (beta == T(0))
        std::fill(ci, ci + N, T(0));
      else
        for (std::int64_t j = 0; j < N; ++j) ci[j] *= beta;
    }
  if (K <= 0 || alpha == T(0)) return;
  // Element (i, k) of op(A) is A[i * a_row + k * a_col]; element (k, j) of op(B) is B[k * b_row + j * b_col].
  const std::int64_t a_row = trans_a ? 1 : lda, a_col = trans_a ? lda : 1;
  const std::int64_t b_row = trans_b ? 1 : ldb, b_col = trans_b ? ldb : 1;
  if (N == 1)  // C[:, 0] += alpha op(A) op(B)[:, 0]
    gemv_serial(M, K, alpha, A, a_row, a_col, B, b_row, C, ldc);
  else if (M == 1)  // C[0, :] += alpha op(B)^T op(A)[0, :]
    gemv_serial(N, K, alpha, B, b_col, b_row, A, a_col, C, std::int64_t{1});
  else if (!trans_a && !trans_b)
    eigen_gemm<Eigen::RowMajor, Eigen::RowMajor>(M, N, K, alpha, A, lda, B, ldb, C, ldc);
  else if (!trans_a && trans_b)
    eigen_gemm<Eigen::RowMajor, Eigen::ColMajor>(M, N, K, alpha, A, lda, B, ldb, C, ldc);
  else if (trans_a && !trans_b)
    eigen_gemm<Eigen::ColMajor, Eigen::RowMajor>(M, N, K, alpha, A, lda, B, ldb, C, ldc);
  else
    eigen_gemm<Eigen::ColMajor, Eigen::ColMajor>(M, N, K, alpha, A, lda, B, ldb, C, ldc);
}

/// The same, counted.
template <class T>
void gemm_serial(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
                 const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
  if (M > 0 && N > 0 && K > 0 && alpha != T(0)) count_flops(M * N * K);
  gemm_serial_uncounted(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

inline void check_gemm(const char* what, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N,
                       std::int64_t K, std::int64_t lda, std::int64_t ldb, std::int64_t ldc) {
  check_nonnegative(what, {{"M", M}, {"N", N}, {"K", K}});
  const std::int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  if (lda < a_cols || ldb < b_cols || ldc < N)
    throw Error(std::string(what) + ": leading dimensions too small (lda=" + std::to_string(lda) +
                " needs >= " + std::to_string(a_cols) + ", ldb=" + std::to_string(ldb) +
                " needs >= " + std::to_string(b_cols) + ", ldc=" + std::to_string(ldc) +
                " needs >= " + std::to_string(N) + ")");
}

/// Tile sizes of the parallel GEMM: fixed constants, so the partition depends only on the shape.
inline constexpr std::int64_t kGemmTileM = 128;
inline constexpr std::int64_t kGemmTileN = 512;

}  // namespace detail

/// Row-major C[M,N] = alpha * op(A) * op(B) + beta * C, op = transpose when trans_* is true.
/// A is stored [M,K] (or [K,M] when trans_a), B is [K,N] (or [N,K] when trans_b). ld* = row stride.
/// Parallel over fixed tiles of C; each tile is one single-threaded Eigen product.
/// beta == 0 never reads C. Throws diffuse::Error on a negative size or a leading dimension too
/// small.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha, const T* A,
          std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
  detail::check_gemm("gemm", trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  const std::int64_t tm = detail::ceil_div(M, detail::kGemmTileM),
                     tn = detail::ceil_div(N, detail::kGemmTileN);
  const std::int64_t tiles = tm * tn;
#pragma omp parallel for schedule(dynamic, 1) if (tiles > 1)
  for (std::int64_t t = 0; t < tiles; ++t) {
    const std::int64_t i0 = (t / tn) * detail::kGemmTileM, j0 = (t % tn) * detail::kGemmTileN;
    const std::int64_t mi = std::min(detail::kGemmTileM, M - i0), nj = std::min(detail::kGemmTileN, N - j0);
    const T* a = trans_a ? A + i0 : A + i0 * lda;  // rows (or columns when transposed) i0.. of op(A)
    const T* b = trans_b ? B + j0 * ldb : B + j0;
    detail::gemm_serial(trans_a, trans_b, mi, nj, K, alpha, a, lda, b, ldb, beta, C + i0 * ldc + j0, ldc);
  }
}

/// Same, but batched: count independent products with the given element strides between batches;
/// parallel over the batch with single-threaded Eigen inside (fixed summation order).
template <class T>
void gemm_batched(std::int64_t count, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N,
                  std::int64_t K, T alpha, const T* A, std::int64_t lda, std::int64_t strideA, const T* B,
                  std::int64_t ldb, std::int64_t strideB, T beta, T* C, std::int64_t ldc,
                  std::int64_t strideC) {
  detail::check_gemm("gemm_batched", trans_a, trans_b, M, N, K, lda, ldb, ldc);
  detail::check_nonnegative("gemm_batched", {{"count", count}});
  if (count == 1) {  // one product: split it into tiles instead
    gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#pragma omp parallel for schedule(static) if (count > 1)
  for (std::int64_t i = 0; i < count; ++i)
    detail::gemm_serial(trans_a, trans_b, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta,
                        C + i * strideC, ldc);
}

/// The kernels the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_KERNELS_GEMM_TEMPLATES(X, T)                                                                \
  X(void gemm<T>(bool, bool, std::int64_t, std::int64_t, std::int64_t, T, const T*, std::int64_t, const T*, \
                 std::int64_t, T, T*, std::int64_t))                                                        \
  X(void gemm_batched<T>(std::int64_t, bool, bool, std::int64_t, std::int64_t, std::int64_t, T, const T*,   \
                         std::int64_t, std::int64_t, const T*, std::int64_t, std::int64_t, T, T*,           \
                         std::int64_t, std::int64_t))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_KERNELS_GEMM_TEMPLATES)

}  // namespace diffuse::kernels

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
