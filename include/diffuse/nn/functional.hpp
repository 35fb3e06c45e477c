/// @file
/// Differentiable neural-network operations (like torch.nn.functional): conv2d, group_norm,
/// softmax, scaled dot-product attention, nearest upsampling, 2x2 pooling, dropout, mse_loss.
/// Forward and backward are the fused kernels of kernels/; this layer checks shapes and
/// records the graph.
#pragma once
#include <functional>

#include "diffuse/autograd/elementwise.hpp"
#include "diffuse/autograd/reduce.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/kernels/attention.hpp"
#include "diffuse/kernels/conv2d.hpp"
#include "diffuse/kernels/group_norm.hpp"
#include "diffuse/kernels/resample.hpp"
#include "diffuse/kernels/softmax.hpp"

namespace diffuse::nn::functional {

/// 2-D convolution (torch.nn.functional.conv2d), the same stride and padding on both axes.
/// x [N,C,H,W], weight [O,C,KH,KW], bias [O] (or undefined).
template <class T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {},
                 std::int64_t stride = 1, std::int64_t padding = 0) {
  if (x.dim() != 4 || weight.dim() != 4 || x.size(1) != weight.size(1))
    throw Error("conv2d: input of shape " + to_string(x.shape()) + " does not fit weight of shape " +
                to_string(weight.shape()) + " (expected input [N, C, H, W] with C = weight.shape[1])");
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0)))
    throw Error("conv2d: bias of shape " + to_string(bias.shape()) + " for " +
                std::to_string(weight.size(0)) + " output channels");
  kernels::Conv2dGeometry geo{x.size(0),      x.size(1),      x.size(2), x.size(3), weight.size(0),
                              weight.size(2), weight.size(3), stride,    padding};
  if (stride < 1 || padding < 0 || geo.OH() < 1 || geo.OW() < 1)
    throw Error("conv2d: input of shape " + to_string(x.shape()) + " is too small for kernel " +
                to_string({geo.KH, geo.KW}) + " with stride " + std::to_string(stride) + " and padding " +
                std::to_string(padding));
  Tensor<T> y = Tensor<T>::empty({geo.N, geo.O, geo.OH(), geo.OW()});
  kernels::conv2d_forward<T>(geo, x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, y.data());
  const bool nx = x.requires_grad(), nw = weight.requires_grad(), nb = bias.defined() && bias.requires_grad();
  return detail::record(y, {&x, &weight, &bias}, "conv2d", [x, weight, geo, nx, nw, nb](const Tensor<T>& g) {
    Tensor<T> gx, gw, gb;
    if (nx) gx = Tensor<T>::empty(x.shape());
    if (nw) gw = Tensor<T>::empty(weight.shape());
    if (nb) gb = Tensor<T>::empty({geo.O});
    kernels::conv2d_backward<T>(geo, x.data(), weight.data(), g.data(), nx ? gx.data() : nullptr,
                                nw ? gw.data() : nullptr, nb ? gb.data() : nullptr);
    return std::vector<Tensor<T>>{gx, gw, gb};
  });
}

/// Group normalisation over x [N, C, ...] with per-channel affine weight/bias [C] (or undefined)
/// (torch.nn.functional.group_norm). diffuse::Error when C is not a multiple of num_groups.
template <class T>
Tensor<T> group_norm(const Tensor<T>& x, std::int64_t num_groups, const Tensor<T>& weight = {},
                     const Tensor<T>& bias = {}, T eps = T(1e-5)) {
  if (x.dim() < 2) throw Error("group_norm: input of shape " + to_string(x.shape()) + " has no channel axis");
  const std::int64_t N = x.size(0), C = x.size(1), HW = x.numel() / std::max<std::int64_t>(N * C, 1);
  if (num_groups < 1 || C % num_groups != 0)
    throw Error("group_norm: " + std::to_string(C) + " channels cannot be split into " +
                std::to_string(num_groups) + " groups");
  for (const Tensor<T>* p : {&weight, &bias})
    if (p->defined() && (p->dim() != 1 || p->size(0) != C))
      throw Error("group_norm: affine parameter of shape " + to_string(p->shape()) + " for " +
                  std::to_string(C) + " channels");
  Tensor<T> y = Tensor<T>::empty(x.shape());
  Tensor<T> mean = Tensor<T>::empty({N * num_groups}), rstd = Tensor<T>::empty({N * num_groups});
  kernels::group_norm_forward<T>(N, C, HW, num_groups, eps, x.data(),
                                 weight.defined() ? weight.data() : nullptr,
                                 bias.defined() ? bias.data() : nullptr, y.data(), mean.data(), rstd.data());
  const bool nw = weight.defined() && weight.requires_grad(), nb = bias.defined() && bias.requires_grad();
  return detail::record(y, {&x, &weight, &bias}, "group_norm",
                        [x, weight, mean, rstd, N, C, HW, num_groups, nw, nb](const Tensor<T>& g) {
                          Tensor<T> gx = Tensor<T>::empty(x.shape()), gw, gb;
                          if (nw) gw = Tensor<T>::empty({C});
                          if (nb) gb = Tensor<T>::empty({C});
                          kernels::group_norm_backward<T>(N, C, HW, num_groups, x.data(),
                                                          weight.defined() ? weight.data() : nullptr,
                                                          mean.data(), rstd.data(), g.data(), gx.data(),
                                                          nw ? gw.data() : nullptr, nb ? gb.data() : nullptr);
                          return std::vector<Tensor<T>>{gx, gw, gb};
                        });
}

/// Softmax over the last axis (torch.softmax(x, dim=-1)).
template <class T>
Tensor<T> softmax(const Tensor<T>& x) {
  if (x.dim() < 1) throw Error("softmax: needs at least one axis");
  const std::int64_t cols = x.size(-1), rows = cols ? x.numel() / cols : 0;
  Tensor<T> y = Tensor<T>::empty(x.shape());
  kernels::softmax_forward<T>(rows, cols, x.data(), y.data());
  return detail::record(y, {&x}, "softmax", [y = y.detach(), rows, cols](const Tensor<T>& g) {
    Tensor<T> gx = Tensor<T>::empty(y.shape());
    kernels::softmax_backward<T>(rows, cols, y.data(), g.data(), gx.data());
    return std::vector<Tensor<T>>{gx};
  });
}

/// softmax(scale * q k^T) v for q [B,Lq,D], k [B,Lk,D], v [B,Lk,Dv]; scale 0 (the default) means
/// 1/sqrt(D). torch.nn.functional.scaled_dot_product_attention without mask or dropout.
template <class T>
Tensor<T> scaled_dot_product_attention(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                                       T scale = T(0)) {
  if (q.dim() != 3 || k.dim() != 3 || v.dim() != 3 || q.size(0) != k.size(0) || k.size(0) != v.size(0) ||
      q.size(2) != k.size(2) || k.size(1) != v.size(1))
    throw Error("attention: shapes q " + to_string(q.shape()) + ", k " + to_string(k.shape()) + ", v " +
                to_string(v.shape()) + " do not fit (expected [B,Lq,D], [B,Lk,D], [B,Lk,Dv])");
  const std::int64_t B = q.size(0), Lq = q.size(1), Lk = k.size(1), D = q.size(2), Dv = v.size(2);
  if (scale == T(0)) scale = T(1) / std::sqrt(static_cast<T>(D));
  Tensor<T> out = Tensor<T>::empty({B, Lq, Dv});
  Tensor<T> probs = Tensor<T>::empty({B, Lq, Lk});
  kernels::attention_forward<T>(B, Lq, Lk, D, Dv, scale, q.data(), k.data(), v.data(), out.data(),
                                probs.data());
  return detail::record(
      out, {&q, &k, &v}, "attention", [q, k, v, probs, B, Lq, Lk, D, Dv, scale](const Tensor<T>& g) {
        Tensor<T> gq = Tensor<T>::empty(q.shape()), gk = Tensor<T>::empty(k.shape()),
                  gv = Tensor<T>::empty(v.shape());
        kernels::attention_backward<T>(B, Lq, Lk, D, Dv, scale, q.data(), k.data(), v.data(), probs.data(),
                                       g.data(), gq.data(), gk.data(), gv.data());
        return std::vector<Tensor<T>>{gq, gk, gv};
      });
}

/// diffuse::Error naming `op` unless x is 4-D [N, C, H, W].
template <class T>
void check_image_batch(const Tensor<T>& x, const char* op) {
  if (x.dim() != 4)
    throw Error(std::string(op) + ": expected an image batch [N, C, H, W], got shape " +
                to_string(x.shape()));
}

/// Nearest-neighbour upsampling by 2 (nn.Upsample(scale_factor=2)).
template <class T>
Tensor<T> upsample_nearest2x(const Tensor<T>& x) {
  check_image_batch(x, "upsample_nearest2x");
  const std::int64_t P = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  Tensor<T> y = Tensor<T>::empty({x.size(0), x.size(1), 2 * H, 2 * W});
  kernels::upsample_nearest2x_forward<T>(P, H, W, x.data(), y.data());
  return detail::record(y, {&x}, "upsample_nearest2x", [s = x.shape(), P, H, W](const Tensor<T>& g) {
    Tensor<T> gx = Tensor<T>::empty(s);
    kernels::upsample_nearest2x_backward<T>(P, H, W, g.data(), gx.data());
    return std::vector<Tensor<T>>{gx};
  });
}

/// 2x2 max pooling with stride 2 (nn.MaxPool2d(2)).
template <class T>
Tensor<T> max_pool2x(const Tensor<T>& x) {
  check_image_batch(x, "max_pool2x");
  const std::int64_t P = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  if (H < 2 || W < 2)
    throw Error("max_pool2x: input of shape " + to_string(x.shape()) + " is smaller than 2x2");
  Tensor<T> y = Tensor<T>::empty({x.size(0), x.size(1), H / 2, W / 2});
  if (!detail::any_requires_grad<T>({&x})) {  // nothing will ask where the maxima were
    kernels::max_pool2x_forward<T>(P, H, W, x.data(), y.data(), static_cast<std::int32_t*>(nullptr));
    return y;
  }
  auto argmax = std::make_shared<std::vector<std::int32_t>>(static_cast<std::size_t>(y.numel()));
  kernels::max_pool2x_forward<T>(P, H, W, x.data(), y.data(), argmax->data());
  return detail::record(y, {&x}, "max_pool2x", [s = x.shape(), P, H, W, argmax](const Tensor<T>& g) {
    Tensor<T> gx = Tensor<T>::empty(s);
    kernels::max_pool2x_backward<T>(P, H, W, argmax->data(), g.data(), gx.data());
    return std::vector<Tensor<T>>{gx};
  });
}

/// 2x2 average pooling with stride 2 (nn.AvgPool2d(2)).
template <class T>
Tensor<T> avg_pool2x(const Tensor<T>& x) {
  check_image_batch(x, "avg_pool2x");
  const std::int64_t P = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  if (H < 2 || W < 2)
    throw Error("avg_pool2x: input of shape " + to_string(x.shape()) + " is smaller than 2x2");
  Tensor<T> y = Tensor<T>::empty({x.size(0), x.size(1), H / 2, W / 2});
  kernels::avg_pool2x_forward<T>(P, H, W, x.data(), y.data());
  return detail::record(y, {&x}, "avg_pool2x", [s = x.shape(), P, H, W](const Tensor<T>& g) {
    Tensor<T> gx = Tensor<T>::empty(s);
    kernels::avg_pool2x_backward<T>(P, H, W, g.data(), gx.data());
    return std::vector<Tensor<T>>{gx};
  });
}

/// Zeroes each element with probability p and scales the rest by 1/(1-p) when training
/// (torch.nn.functional.dropout); the mask is drawn from `gen`. Returns x itself when not training.
template <class T>
Tensor<T> dropout(const Tensor<T>& x, double p, bool training, Generator& gen) {
  if (!(p >= 0 && p <= 1)) throw Error("dropout: probability must be in [0, 1], got " + std::to_string(p));
  if (p == 1 && training) return diffuse::mul_scalar(x, T(0));
  if (!training || p == 0) return x;
  Tensor<T> mask = gen.rand<T>(x.shape());
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  mask = detail::map(mask, [&](T u) { return u < static_cast<T>(p) ? T(0) : keep_scale; });
  return diffuse::mul(x, mask);
}

/// Mean squared error, averaged over all elements (nn.functional.mse_loss, reduction='mean').
template <class T>
Tensor<T> mse_loss(const Tensor<T>& input, const Tensor<T>& target) {
  if (input.shape() != target.shape())
    throw Error("mse_loss: input of shape " + to_string(input.shape()) + " and target of shape " +
                to_string(target.shape()) + " differ");
  const std::int64_t n = input.numel();
  if (n == 0) throw Error("mse_loss of empty tensors");
  Tensor<T> diff = detail::zip(input, target, std::minus<>{});
  double total = 0;
  {
    const std::int64_t block = 4096, nb = (n + block - 1) / block;
    std::vector<double> part(static_cast<std::size_t>(nb));
    const T* d = diff.data();
    detail::parallel_for_items(nb, [&](std::int64_t b) {
      double s = 0;
      for (std::int64_t i = b * block; i < std::min(n, (b + 1) * block); ++i) s += double(d[i]) * d[i];
      part[b] = s;
    });
    for (double v : part) total += v;
  }
  Tensor<T> loss = Tensor<T>::scalar(static_cast<T>(total / n));
  const bool ni = input.requires_grad(), nt = target.requires_grad();
  return detail::record(loss, {&input, &target}, "mse_loss", [diff, n, ni, nt](const Tensor<T>& g) {
    const T scale = T(2) * g.item() / static_cast<T>(n);
    auto times = [](T factor) { return [factor](T d) { return factor * d; }; };  // one closure type
    Tensor<T> gi, gt;
    if (ni) gi = detail::map(diff, times(scale));
    if (nt) gt = detail::map(diff, times(-scale));
    return std::vector<Tensor<T>>{gi, gt};
  });
}

/// The operations the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_NN_FUNCTIONAL_TEMPLATES(X, T)                                                             \
  X(Tensor<T> softmax<T>(const Tensor<T>& x))                                                             \
  X(Tensor<T> scaled_dot_product_attention<T>(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, \
                                              T scale))                                                   \
  X(Tensor<T> upsample_nearest2x<T>(const Tensor<T>& x))                                                  \
  X(Tensor<T> max_pool2x<T>(const Tensor<T>& x))                                                          \
  X(Tensor<T> avg_pool2x<T>(const Tensor<T>& x))                                                          \
  X(Tensor<T> dropout<T>(const Tensor<T>& x, double p, bool training, Generator& gen))                    \
  X(Tensor<T> mse_loss<T>(const Tensor<T>& input, const Tensor<T>& target))                               \
  X(Tensor<T> conv2d<T>(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,               \
                        std::int64_t stride, std::int64_t padding))                                       \
  X(Tensor<T> group_norm<T>(const Tensor<T>& x, std::int64_t num_groups, const Tensor<T>& weight,         \
                            const Tensor<T>& bias, T eps))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_NN_FUNCTIONAL_TEMPLATES)

}  // namespace diffuse::nn::functional
