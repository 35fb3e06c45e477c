/// @file
/// Matrix products on row-major raw buffers. Every product in diffuse goes through here: Eigen::Map
/// views of the buffers and Eigen's GEMM, run single-threaded on tiles that our own OpenMP loop hands
/// out, so the result does not depend on the number of threads.
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

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using CMap = Eigen::Map<const RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using MMap = Eigen::Map<RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// C = alpha op(A) op(B) + beta C on one thread (no checks), not counted in flop_counter() (for
/// callers that count the work they stand for). beta == 0 never reads C.
template <class T>
void gemm_serial_uncounted(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
                           T alpha, const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C,
                           std::int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  MMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (beta == T(0))
    c.setZero();
  else if (beta != T(1))
    c *= beta;
  if (K <= 0 || alpha == T(0)) return;
  SerialEigen serial;
  // A stored [M,K] or [K,M]; B stored [K,N] or [N,K].
  CMap<T> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  CMap<T> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  if (!trans_a && !trans_b)
    c.noalias() += alpha * a * b;
  else if (!trans_a && trans_b)
    c.noalias() += alpha * a * b.transpose();
  else if (trans_a && !trans_b)
    c.noalias() += alpha * a.transpose() * b;
  else
    c.noalias() += alpha * a.transpose() * b.transpose();
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
