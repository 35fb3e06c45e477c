/// @file
/// Differentiable matrix products (matmul, bmm, linear). Every product runs through
/// kernels::gemm (Eigen).
#pragma once
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/kernels/gemm.hpp"

namespace diffuse {

/// [M,K] @ [K,N] -> [M,N]; [B,M,K] @ [B,K,N] -> [B,M,N]; [...,M,K] @ [K,N] -> [...,M,N].
/// Like torch.matmul, but batch axes must match (no broadcasting); throws diffuse::Error
/// when the shapes do not multiply or a matrix axis is empty.
template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  auto mismatch = [&] {
    return Error("matmul: shapes " + to_string(a.shape()) + " and " + to_string(b.shape()) +
                 " do not multiply");
  };
  if (a.dim() < 2 || b.dim() < 2) throw mismatch();
  const std::int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  if (b.size(-2) != K) throw mismatch();
  Shape out_shape(a.shape().begin(), a.shape().end() - 1);
  out_shape.push_back(N);
  if (M == 0 || N == 0 || K == 0)
    throw Error("matmul: shapes " + to_string(a.shape()) + " and " + to_string(b.shape()) +
                " have an empty matrix axis");
  Tensor<T> out = Tensor<T>::empty(out_shape);
  if (b.dim() == 2) {
    // Fold leading axes of a into rows: one GEMM.
    const std::int64_t rows = a.numel() / K;
    kernels::gemm<T>(false, false, rows, N, K, T(1), a.data(), K, b.data(), N, T(0), out.data(), N);
  } else {
    if (a.dim() != b.dim() || !std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin()))
      throw mismatch();
    const std::int64_t batch = a.numel() / (M * K);
    kernels::gemm_batched<T>(batch, false, false, M, N, K, T(1), a.data(), K, M * K, b.data(), N, K * N, T(0),
                             out.data(), N, M * N);
  }
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return detail::record(out, {&a, &b}, "matmul", [a, b, M, N, K, need_a, need_b](const Tensor<T>& g) {
    Tensor<T> ga, gb;
    if (b.dim() == 2) {
      const std::int64_t rows = a.numel() / K;
      if (need_a) {
        ga = Tensor<T>::empty(a.shape());
        kernels::gemm<T>(false, true, rows, K, N, T(1), g.data(), N, b.data(), N, T(0), ga.data(), K);
      }
      if (need_b) {
        gb = Tensor<T>::empty(b.shape());
        kernels::gemm<T>(true, false, K, N, rows, T(1), a.data(), K, g.data(), N, T(0), gb.data(), N);
      }
    } else {
      const std::int64_t batch = a.numel() / (M * K);
      if (need_a) {
        ga = Tensor<T>::empty(a.shape());
        kernels::gemm_batched<T>(batch, false, true, M, K, N, T(1), g.data(), N, M * N, b.data(), N, K * N,
                                 T(0), ga.data(), K, M * K);
      }
      if (need_b) {
        gb = Tensor<T>::empty(b.shape());
        kernels::gemm_batched<T>(batch, true, false, K, N, M, T(1), a.data(), K, M * K, g.data(), N, M * N,
                                 T(0), gb.data(), N, K * N);
      }
    }
    return std::vector<Tensor<T>>{ga, gb};
  });
}

/// [B,M,K] @ [B,K,N] -> [B,M,N] (like torch.bmm); throws diffuse::Error unless both are 3-D.
template <class T>
Tensor<T> bmm(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.dim() != 3 || b.dim() != 3)
    throw Error("bmm: needs two 3-D tensors, got " + to_string(a.shape()) + " and " + to_string(b.shape()));
  return matmul(a, b);
}

/// y = x W^T + b for x [..., in], W [out, in], b [out] (may be undefined), like torch.nn.functional.linear.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {}) {
  if (weight.dim() != 2 || x.dim() < 1 || x.size(-1) != weight.size(1))
    throw Error("linear: input of shape " + to_string(x.shape()) + " does not fit weight of shape " +
                to_string(weight.shape()) + " (expected last input extent = weight.shape[1])");
  if (weight.numel() == 0) throw Error("linear: weight of shape " + to_string(weight.shape()) + " is empty");
  const std::int64_t in = weight.size(1), outf = weight.size(0), rows = x.numel() / in;
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != outf))
    throw Error("linear: bias of shape " + to_string(bias.shape()) + " for " + std::to_string(outf) +
                " outputs");
  Shape out_shape = x.shape();
  out_shape.back() = outf;
  Tensor<T> out = Tensor<T>::empty(out_shape);
  T* po = out.data();
  if (bias.defined()) {
    for (std::int64_t r = 0; r < rows; ++r) std::copy(bias.data(), bias.data() + outf, po + r * outf);
  }
  kernels::gemm<T>(false, true, rows, outf, in, T(1), x.data(), in, weight.data(), in,
                   bias.defined() ? T(1) : T(0), po, outf);
  const bool nx = x.requires_grad(), nw = weight.requires_grad(), nb = bias.defined() && bias.requires_grad();
  return detail::record(out, {&x, &weight, &bias}, "linear",
                        [x, weight, rows, in, outf, nx, nw, nb](const Tensor<T>& g) {
                          Tensor<T> gx, gw, gb;
                          if (nx) {
                            gx = Tensor<T>::empty(x.shape());
                            kernels::gemm<T>(false, false, rows, in, outf, T(1), g.data(), outf,
                                             weight.data(), in, T(0), gx.data(), in);
                          }
                          if (nw) {
                            gw = Tensor<T>::empty(weight.shape());
                            kernels::gemm<T>(true, false, outf, in, rows, T(1), g.data(), outf, x.data(), in,
                                             T(0), gw.data(), in);
                          }
                          if (nb) {
                            gb = Tensor<T>::zeros({outf});
                            for (std::int64_t r = 0; r < rows; ++r)
                              for (std::int64_t o = 0; o < outf; ++o) gb.data()[o] += g.data()[r * outf + o];
                          }
                          return std::vector<Tensor<T>>{gx, gw, gb};
                        });
}

/// The operations the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_AUTOGRAD_LINALG_TEMPLATES(X, T)                  \
  X(Tensor<T> matmul<T>(const Tensor<T>& a, const Tensor<T>& b)) \
  X(Tensor<T> bmm<T>(const Tensor<T>& a, const Tensor<T>& b))    \
  X(Tensor<T> linear<T>(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_AUTOGRAD_LINALG_TEMPLATES)

}  // namespace diffuse
