// Tests of the raw kernels: each forward against a plain reference written here in double, each
// backward against central finite differences of the forward, and results that do not depend on
// the number of OpenMP threads.
#include <omp.h>

#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "diffuse/core/generator.hpp"
#include "diffuse/kernels/activation.hpp"
#include "diffuse/kernels/attention.hpp"
#include "diffuse/kernels/conv2d.hpp"
#include "diffuse/kernels/gemm.hpp"
#include "diffuse/kernels/group_norm.hpp"
#include "diffuse/kernels/resample.hpp"
#include "diffuse/kernels/softmax.hpp"

namespace k = diffuse::kernels;
using std::int64_t;
using Vec = std::vector<double>;

namespace {

template <class T = double>
std::vector<T> randn(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = T(d(rng));
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

double max_abs_diff(const Vec& a, const Vec& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Central finite differences of the scalar loss() with respect to every entry of p.
Vec numeric_grad(Vec& p, const std::function<double()>& loss, double h = 1e-6) {
  Vec g(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const double old = p[i];
    p[i] = old + h;
    const double lp = loss();
    p[i] = old - h;
    const double lm = loss();
    p[i] = old;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

#define CHECK_CLOSE(a, b, tol) CHECK(max_abs_diff((a), (b)) < (tol))

// ---- plain references -------------------------------------------------------------------------

Vec ref_conv(const k::Conv2dGeometry& g, const Vec& x, const Vec& w, const double* bias) {
  const int64_t OH = g.OH(), OW = g.OW();
  Vec y(g.N * g.O * OH * OW, 0.0);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double s = bias ? bias[o] : 0.0;
          for (int64_t c = 0; c < g.C; ++c)
            for (int64_t kh = 0; kh < g.KH; ++kh)
              for (int64_t kw = 0; kw < g.KW; ++kw) {
                const int64_t ih = oh * g.stride - g.padding + kh, iw = ow * g.stride - g.padding + kw;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                s += x[((n * g.C + c) * g.H + ih) * g.W + iw] * w[((o * g.C + c) * g.KH + kh) * g.KW + kw];
              }
          y[((n * g.O + o) * OH + oh) * OW + ow] = s;
        }
  return y;
}

Vec ref_group_norm(int64_t N, int64_t C, int64_t HW, int64_t G, double eps, const Vec& x, const double* gamma,
                   const double* beta) {
  Vec y(x.size());
  const int64_t CG = C / G;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      double m = 0, v = 0;
      for (int64_t c = g * CG; c < (g + 1) * CG; ++c)
        for (int64_t i = 0; i < HW; ++i) m += x[(n * C + c) * HW + i];
      m /= double(CG * HW);
      for (int64_t c = g * CG; c < (g + 1) * CG; ++c)
        for (int64_t i = 0; i < HW; ++i) v += std::pow(x[(n * C + c) * HW + i] - m, 2);
      v /= double(CG * HW);
      for (int64_t c = g * CG; c < (g + 1) * CG; ++c)
        for (int64_t i = 0; i < HW; ++i) {
          const int64_t j = (n * C + c) * HW + i;
          y[j] = (x[j] - m) / std::sqrt(v + eps) * (gamma ? gamma[c] : 1.0) + (beta ? beta[c] : 0.0);
        }
    }
  return y;
}

Vec ref_softmax(int64_t rows, int64_t cols, const Vec& x) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) s += std::exp(x[r * cols + j]);
    for (int64_t j = 0; j < cols; ++j) y[r * cols + j] = std::exp(x[r * cols + j]) / s;
  }
  return y;
}

Vec ref_attention(int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv, double scale, const Vec& q,
                  const Vec& kk, const Vec& v) {
  Vec out(B * Lq * Dv, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i) {
      Vec s(Lk);
      double z = 0;
      for (int64_t j = 0; j < Lk; ++j) {
        double d = 0;
        for (int64_t e = 0; e < D; ++e) d += q[(b * Lq + i) * D + e] * kk[(b * Lk + j) * D + e];
        s[j] = std::exp(scale * d);
        z += s[j];
      }
      for (int64_t j = 0; j < Lk; ++j)
        for (int64_t e = 0; e < Dv; ++e) out[(b * Lq + i) * Dv + e] += s[j] / z * v[(b * Lk + j) * Dv + e];
    }
  return out;
}

}  // namespace

// ---- gemm ---------------------------------------------------------------------------------------

TEST_CASE("gemm matches a plain triple loop for every transpose, stride, alpha and beta", "[kernels][gemm]") {
  // 300 x 600 spans several 128 x 512 tiles of the parallel GEMM; one row or one column takes the
  // matrix-vector path.
  for (auto [M, N, K] :
       {std::tuple<int64_t, int64_t, int64_t>{3, 5, 7}, {300, 600, 20}, {1, 1, 1}, {1, 9, 13}, {11, 1, 17}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const int64_t lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 1, ldc = N + 3;
        Vec A = randn((ta ? K : M) * lda, 1), B = randn((tb ? N : K) * ldb, 2), C = randn(M * ldc, 3);
        Vec ref = C;
        const double alpha = 0.7, beta = -1.3;
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double s = 0;
            for (int64_t l = 0; l < K; ++l)
              s += (ta ? A[l * lda + i] : A[i * lda + l]) * (tb ? B[j * ldb + l] : B[l * ldb + j]);
            ref[i * ldc + j] = alpha * s + beta * C[i * ldc + j];
          }
        k::gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        CHECK_CLOSE(C, ref, 1e-10);
      }
}

TEST_CASE("gemm with beta = 0 ignores NaN in C; K = 0 scales C", "[kernels][gemm]") {
  Vec A = randn(6, 1), B = randn(6, 2), C(4, std::nan(""));
  k::gemm(false, false, 2, 2, 3, 1.0, A.data(), 3, B.data(), 2, 0.0, C.data(), 2);
  for (double c : C) CHECK(std::isfinite(c));
  Vec D = {1, 2, 3, 4};
  k::gemm(false, false, 2, 2, 0, 1.0, A.data(), 1, B.data(), 2, 2.0, D.data(), 2);
  CHECK(D == Vec{2, 4, 6, 8});
  CHECK_THROWS_AS(k::gemm(false, false, 2, 2, 3, 1.0, A.data(), 2, B.data(), 2, 0.0, C.data(), 2),
                  diffuse::Error);
}

TEST_CASE("flop_counter counts two operations per multiply-add of GEMM and convolution", "[kernels]") {
  const int64_t M = 30, N = 50, K = 20;
  const Vec A = randn(M * K, 1), B = randn(K * N, 2);
  Vec C(M * N);
  auto before = k::flop_counter().load();
  k::gemm(false, false, M, N, K, 1.0, A.data(), K, B.data(), N, 0.0, C.data(), N);  // several tiles or one
  CHECK(k::flop_counter().load() - before == 2 * M * N * K);
  for (const k::Conv2dGeometry& g : {k::Conv2dGeometry{2, 3, 9, 8, 4, 3, 3, 1, 1},     // im2col + GEMM
                                     k::Conv2dGeometry{2, 3, 9, 8, 1, 5, 5, 1, 2},     // one output channel
                                     k::Conv2dGeometry{2, 3, 9, 8, 4, 3, 3, 2, 1}}) {  // stride 2
    const Vec x = randn(g.N * g.C * g.H * g.W, 3), w = randn(g.O * g.C * g.KH * g.KW, 4);
    Vec y(g.N * g.O * g.OH() * g.OW());
    before = k::flop_counter().load();
    k::conv2d_forward<double>(g, x.data(), w.data(), nullptr, y.data());
    CHECK(k::flop_counter().load() - before == 2 * g.N * g.O * g.OH() * g.OW() * g.C * g.KH * g.KW);
  }
}

TEST_CASE("gemm_batched equals one gemm per batch", "[kernels][gemm]") {
  const int64_t count = 5, M = 4, N = 6, K = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Vec A = randn(count * M * K, 4), B = randn(count * K * N, 5), C = randn(count * M * N, 6);
      Vec ref = C;
      const int64_t lda = ta ? M : K, ldb = tb ? K : N;
      for (int64_t i = 0; i < count; ++i)
        k::gemm(ta, tb, M, N, K, 2.0, A.data() + i * M * K, lda, B.data() + i * K * N, ldb, 0.5,
                ref.data() + i * M * N, N);
      k::gemm_batched(count, ta, tb, M, N, K, 2.0, A.data(), lda, M * K, B.data(), ldb, K * N, 0.5, C.data(),
                      N, M * N);
      CHECK_CLOSE(C, ref, 1e-12);
    }
}

// ---- conv2d -------------------------------------------------------------------------------------

namespace {
std::vector<k::Conv2dGeometry> conv_cases() {
  return {
      {2, 3, 5, 6, 4, 3, 3, 1, 1},     // 3x3 pad 1
      {2, 3, 7, 5, 2, 3, 3, 2, 1},     // stride 2, odd sizes
      {3, 2, 6, 6, 3, 1, 1, 1, 0},     // pointwise (no im2col)
      {1, 2, 5, 5, 2, 1, 1, 2, 0},     // 1x1 stride 2
      {2, 2, 7, 6, 3, 5, 5, 1, 2},     // 5x5 pad 2
      {2, 2, 8, 7, 2, 5, 5, 2, 1},     // 5x5 stride 2
      {2, 20, 4, 5, 3, 3, 3, 1, 1},    // several channel blocks in backward
      {1, 2, 3, 3, 2, 3, 3, 1, 0},     // output 1x1
      {1, 2, 20, 19, 2, 3, 3, 1, 1},   // forward splits the image into bands of rows
      {1, 2, 30, 20, 2, 1, 1, 1, 0},   // pointwise, in bands
      {3, 20, 12, 14, 2, 5, 5, 1, 2},  // stride 1: three images in one tile
      {2, 3, 6, 7, 1, 5, 5, 1, 2},     // one output channel (direct path)
      {3, 1, 6, 6, 4, 5, 5, 1, 2},     // one input channel
      {2, 2, 4, 3, 3, 3, 3, 1, 3},     // padding > kernel - 1: input gradient by col2im
      {2, 3, 5, 6, 4, 3, 2, 1, 1},     // non-square kernel
  };
}
}  // namespace

TEST_CASE("conv2d forward matches the direct sum", "[kernels][conv2d]") {
  for (const auto& g : conv_cases()) {
    INFO("C=" << g.C << " H=" << g.H << " W=" << g.W << " O=" << g.O << " K=" << g.KH << " s=" << g.stride
              << " p=" << g.padding);
    Vec x = randn(g.N * g.C * g.H * g.W, 1), w = randn(g.O * g.C * g.KH * g.KW, 2), b = randn(g.O, 3);
    Vec y(g.N * g.O * g.OH() * g.OW(), 99.0);
    k::conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
    CHECK_CLOSE(y, ref_conv(g, x, w, b.data()), 1e-12);
    k::conv2d_forward<double>(g, x.data(), w.data(), nullptr, y.data());
    CHECK_CLOSE(y, ref_conv(g, x, w, nullptr), 1e-12);
    // float against the double reference
    std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), bf(b.begin(), b.end()), yf(y.size());
    k::conv2d_forward(g, xf.data(), wf.data(), bf.data(), yf.data());
    CHECK_CLOSE(Vec(yf.begin(), yf.end()), ref_conv(g, x, w, b.data()), 1e-4);
  }
}

TEST_CASE("conv2d backward matches finite differences", "[kernels][conv2d]") {
  for (const auto& g : conv_cases()) {
    INFO("C=" << g.C << " H=" << g.H << " W=" << g.W << " O=" << g.O << " K=" << g.KH << " s=" << g.stride
              << " p=" << g.padding);
    Vec x = randn(g.N * g.C * g.H * g.W, 1), w = randn(g.O * g.C * g.KH * g.KW, 2), b = randn(g.O, 3);
    const Vec r = randn(g.N * g.O * g.OH() * g.OW(), 4);  // loss = sum(y * r), so gy = r
    Vec y(r.size());
    auto loss = [&] {
      k::conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
      return dot(y, r);
    };
    Vec gx(x.size(), 7.0), gw(w.size(), 7.0), gb(b.size(), 7.0);  // garbage: outputs are overwritten
    k::conv2d_backward(g, x.data(), w.data(), r.data(), gx.data(), gw.data(), gb.data());
    CHECK_CLOSE(gx, numeric_grad(x, loss), 1e-6);
    CHECK_CLOSE(gw, numeric_grad(w, loss), 1e-6);
    CHECK_CLOSE(gb, numeric_grad(b, loss), 1e-6);
    // Unwanted outputs may be nullptr; the others do not change.
    Vec gx2(x.size()), gw2(w.size()), gb2(b.size());
    k::conv2d_backward<double>(g, x.data(), w.data(), r.data(), gx2.data(), nullptr, nullptr);
    k::conv2d_backward<double>(g, x.data(), w.data(), r.data(), nullptr, gw2.data(), nullptr);
    k::conv2d_backward<double>(g, x.data(), w.data(), r.data(), nullptr, nullptr, gb2.data());
    CHECK(gx2 == gx);
    CHECK(gw2 == gw);
    CHECK(gb2 == gb);
  }
}

TEST_CASE("conv2d on geometries with several tiles: forward matches the direct sum, backward is its adjoint",
          "[kernels][conv2d]") {
  // Too large for finite differences in every entry; the convolution is linear in x and in w, so
  // <gx, dx> = <conv(dx, w), gy> and <gw, dw> = <conv(x, dw), gy> for any dx, dw (bias off).
  for (const k::Conv2dGeometry& g :
       {k::Conv2dGeometry{2, 64, 12, 13, 3, 5, 5, 1, 2},     // 2 tiles, 1 mid-image
        k::Conv2dGeometry{20, 64, 7, 6, 4, 5, 5, 1, 2},      // 4 tiles of 7x6 images
        k::Conv2dGeometry{3, 32, 28, 28, 1, 5, 5, 1, 2}}) {  // one output channel
    INFO("N=" << g.N << " C=" << g.C << " H=" << g.H << " W=" << g.W << " O=" << g.O);
    const Vec x = randn(g.N * g.C * g.H * g.W, 1), w = randn(g.O * g.C * g.KH * g.KW, 2), b = randn(g.O, 3);
    const Vec gy = randn(g.N * g.O * g.OH() * g.OW(), 4), dx = randn(x.size(), 5), dw = randn(w.size(), 6);
    Vec y(gy.size());
    k::conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
    CHECK_CLOSE(y, ref_conv(g, x, w, b.data()), 1e-10);
    Vec gx(x.size(), 7.0), gw(w.size(), 7.0), gb(b.size(), 7.0);
    k::conv2d_backward(g, x.data(), w.data(), gy.data(), gx.data(), gw.data(), gb.data());
    k::conv2d_forward<double>(g, dx.data(), w.data(), nullptr, y.data());
    CHECK(dot(gx, dx) == Approx(dot(y, gy)).epsilon(1e-10));
    k::conv2d_forward<double>(g, x.data(), dw.data(), nullptr, y.data());
    CHECK(dot(gw, dw) == Approx(dot(y, gy)).epsilon(1e-10));
    // and entry by entry for a few weights: gw[i] = <conv(x, e_i), gy>
    for (int64_t i : {int64_t(0), int64_t(w.size() / 2 + 3), int64_t(w.size() - 1)}) {
      Vec e(w.size(), 0.0);
      e[i] = 1.0;
      k::conv2d_forward<double>(g, x.data(), e.data(), nullptr, y.data());
      CHECK(gw[i] == Approx(dot(y, gy)).epsilon(1e-10));
    }
  }
}

TEST_CASE("stride-1 convolution tiles split the work evenly between two threads", "[kernels][conv2d]") {
  // The static schedule gives each of two threads half of the tiles; tiles are equal up to the last,
  // even in number, and a multiple of the weight gradient's chunks when there are more of them
  // (a 4x4 layer of 256 pixels was once split 192 + 64).
  for (const auto& [N, C, H, K] : {std::array<int64_t, 4>{16, 256, 4, 3},
                                   {16, 512, 4, 3},
                                   {16, 256, 8, 3},
                                   {16, 64, 32, 3},
                                   {128, 1, 28, 5},
                                   {128, 32, 14, 5},
                                   {1, 8, 3, 3}}) {
    const k::detail::S1Conv s{N, C, H + K - 1, H + K - 1, K, K, 64};
    const int64_t tile = s.tile(), tiles = (s.cols() + tile - 1) / tile, last = s.cols() - (tiles - 1) * tile;
    INFO("N=" << N << " C=" << C << " H=" << H << " tile=" << tile << " tiles=" << tiles);
    CHECK(tile % 16 == 0);
    CHECK((tiles % 2 == 0 || s.cols() <= 16));
    CHECK((tiles <= k::detail::kGradChunks || tiles % k::detail::kGradChunks == 0));
    const int64_t first_half = (tiles + 1) / 2 * tile, second_half = s.cols() - first_half;
    if (tiles > 1) CHECK(second_half >= 0.9 * first_half);
    CHECK(last > 0);
  }
}

namespace {
// Sets kernels::winograd_enabled() for a scope.
struct WinogradSwitch {
  bool saved = k::winograd_enabled().load();
  explicit WinogradSwitch(bool on) { k::winograd_enabled() = on; }
  ~WinogradSwitch() { k::winograd_enabled() = saved; }
};

double max_rel_diff(const Vec& a, const Vec& ref) {
  double scale = 0;
  for (double v : ref) scale = std::max(scale, std::abs(v));
  return max_abs_diff(a, ref) / scale;
}
}  // namespace

TEST_CASE("conv2d 3x3 and 5x5 with 16+ channels (Winograd F(4x4,RxR)) matches the direct sum and im2col",
          "[kernels][conv2d]") {
  // Batches of at least 64 tiles of 4x4 outputs (fewer take im2col), forward and input gradient.
  for (const k::Conv2dGeometry& g :
       {k::Conv2dGeometry{4, 16, 14, 14, 16, 5, 5, 1, 2},   // tiles cross the edge
        k::Conv2dGeometry{11, 20, 7, 9, 17, 5, 5, 1, 2},    // odd sizes
        k::Conv2dGeometry{11, 16, 13, 11, 24, 5, 5, 1, 0},  // no padding
        k::Conv2dGeometry{16, 16, 6, 6, 16, 5, 5, 1, 4},    // input gradient unpadded
        k::Conv2dGeometry{40, 16, 7, 7, 16, 5, 5, 1, 2},    // 160 tiles: 2 blocks
        k::Conv2dGeometry{4, 16, 14, 14, 16, 3, 3, 1, 1},   // 3x3
        k::Conv2dGeometry{11, 24, 7, 9, 17, 3, 3, 1, 1}, k::Conv2dGeometry{8, 16, 13, 11, 20, 3, 3, 1, 0},
        k::Conv2dGeometry{40, 16, 7, 7, 16, 3, 3, 1, 1}}) {
    INFO("N=" << g.N << " C=" << g.C << " H=" << g.H << " W=" << g.W << " O=" << g.O << " K=" << g.KH
              << " p=" << g.padding);
    REQUIRE(k::detail::winograd_applies<float>(g.C, g.O, g.KH, g.KW, g.stride,
                                               k::detail::winograd_tiles(g.N, g.OH(), g.OW())));
    REQUIRE(k::detail::winograd_applies<float>(g.O, g.C, g.KH, g.KW, g.stride,
                                               k::detail::winograd_tiles(g.N, g.H, g.W)));
    REQUIRE_FALSE(k::detail::winograd_applies<double>(g.C, g.O, g.KH, g.KW, g.stride, 1 << 20));
    const Vec x = randn(g.N * g.C * g.H * g.W, 1), w = randn(g.O * g.C * g.KH * g.KW, 2), b = randn(g.O, 3);
    const Vec gy = randn(g.N * g.O * g.OH() * g.OW(), 4), dx = randn(x.size(), 5);
    const Vec ref = ref_conv(g, x, w, b.data());
    // The algorithm itself, in double (conv2d keeps im2col for double): rounding-level agreement.
    Vec y(gy.size(), 99.0);
    k::detail::winograd_conv<double, 0>({g.N, g.C, g.H, g.W, g.padding, g.O, g.KH}, x.data(), w.data(),
                                        b.data(), y.data());
    CHECK(max_rel_diff(y, ref) < 1e-13);
    // float32 through conv2d: within a few 1e-6 of the output's scale (im2col: about 1e-6), the same
    // on any thread count; the input gradient matches im2col's and is the adjoint of the forward.
    auto to_float = [](const Vec& v) { return std::vector<float>(v.begin(), v.end()); };
    auto to_double = [](const std::vector<float>& v) { return Vec(v.begin(), v.end()); };
    const std::vector<float> xf = to_float(x), wf = to_float(w), bf = to_float(b), gyf = to_float(gy),
                             dxf = to_float(dx);
    std::vector<float> y1(y.size()), y2(y.size()), gx(x.size(), 7.f), gw(w.size(), 7.f), gx_im2col(x.size()),
        gw_im2col(w.size()), conv_dx(y.size());
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    k::conv2d_forward(g, xf.data(), wf.data(), bf.data(), y1.data());
    omp_set_num_threads(2);
    k::conv2d_forward(g, xf.data(), wf.data(), bf.data(), y2.data());
    omp_set_num_threads(saved);
    CHECK(y1 == y2);
    CHECK(max_rel_diff(to_double(y1), ref) < 2e-5);
    k::conv2d_backward(g, xf.data(), wf.data(), gyf.data(), gx.data(), gw.data(),
                       static_cast<float*>(nullptr));
    {
      WinogradSwitch off(false);
      k::conv2d_backward(g, xf.data(), wf.data(), gyf.data(), gx_im2col.data(), gw_im2col.data(),
                         static_cast<float*>(nullptr));
    }
    CHECK(max_rel_diff(to_double(gx), to_double(gx_im2col)) < 2e-5);
    CHECK(gw == gw_im2col);  // the weight gradient never takes Winograd
    k::conv2d_forward(g, dxf.data(), wf.data(), static_cast<float*>(nullptr), conv_dx.data());
    CHECK(dot(to_double(gx), dx) == Approx(dot(to_double(conv_dx), gy)).epsilon(1e-4));
  }
}

TEST_CASE("conv2d rejects impossible geometry", "[kernels][conv2d]") {
  Vec buf(1000);
  k::Conv2dGeometry g{1, 2, 2, 2, 1, 5, 5, 1, 0};  // kernel larger than input
  CHECK_THROWS_AS(k::conv2d_forward(g, buf.data(), buf.data(), (double*)nullptr, buf.data()), diffuse::Error);
  g = {1, 0, 4, 4, 1, 3, 3, 1, 1};
  CHECK_THROWS_WITH(k::conv2d_forward(g, buf.data(), buf.data(), (double*)nullptr, buf.data()),
                    Catch::Contains("C must be positive, got 0"));
  g = {1, 1, 4, 4, 1, 3, 3, 0, 1};
  CHECK_THROWS_AS(
      k::conv2d_backward(g, buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), buf.data()),
      diffuse::Error);
}

// ---- group norm ---------------------------------------------------------------------------------

TEST_CASE("group_norm forward matches the definition and saves mean/rstd", "[kernels][group_norm]") {
  const int64_t N = 2, C = 6, HW = 5, G = 3;
  Vec x = randn(N * C * HW, 1), gamma = randn(C, 2), beta = randn(C, 3);
  for (auto& v : x) v += 10.0;  // a large mean must not hurt the variance
  Vec y(x.size()), mean(N * G), rstd(N * G);
  k::group_norm_forward(N, C, HW, G, 1e-5, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                        rstd.data());
  CHECK_CLOSE(y, ref_group_norm(N, C, HW, G, 1e-5, x, gamma.data(), beta.data()), 1e-10);
  double m0 = 0;
  for (int64_t i = 0; i < 2 * HW; ++i) m0 += x[i];
  CHECK(mean[0] == Approx(m0 / (2 * HW)));
  k::group_norm_forward<double>(N, C, HW, G, 1e-5, x.data(), nullptr, nullptr, y.data(), mean.data(),
                                rstd.data());
  CHECK_CLOSE(y, ref_group_norm(N, C, HW, G, 1e-5, x, nullptr, nullptr), 1e-10);
}

TEST_CASE("group_norm backward matches finite differences", "[kernels][group_norm]") {
  const int64_t N = 2, C = 6, HW = 7, G = 2;
  for (bool affine : {true, false}) {
    Vec x = randn(N * C * HW, 1), gamma = randn(C, 2), beta = randn(C, 3);
    const Vec r = randn(x.size(), 4);
    Vec y(x.size()), mean(N * G), rstd(N * G);
    const double* ga = affine ? gamma.data() : nullptr;
    const double* be = affine ? beta.data() : nullptr;
    auto loss = [&] {
      k::group_norm_forward(N, C, HW, G, 1e-5, x.data(), ga, be, y.data(), mean.data(), rstd.data());
      return dot(y, r);
    };
    loss();
    Vec gx(x.size(), 7.0), gg(C, 7.0), gb(C, 7.0);
    k::group_norm_backward(N, C, HW, G, x.data(), ga, mean.data(), rstd.data(), r.data(), gx.data(),
                           gg.data(), gb.data());
    CHECK_CLOSE(gx, numeric_grad(x, loss), 1e-6);
    if (affine) {
      CHECK_CLOSE(gg, numeric_grad(gamma, loss), 1e-6);
      CHECK_CLOSE(gb, numeric_grad(beta, loss), 1e-6);
    }
    loss();  // the finite differences left mean/rstd of a perturbed x
    Vec gx2(x.size());
    k::group_norm_backward<double>(N, C, HW, G, x.data(), ga, mean.data(), rstd.data(), r.data(), gx2.data(),
                                   nullptr, nullptr);
    CHECK(gx2 == gx);
    Vec gg2(C), gb2(C);
    k::group_norm_backward<double>(N, C, HW, G, x.data(), ga, mean.data(), rstd.data(), r.data(), nullptr,
                                   gg2.data(), gb2.data());
    CHECK(gg2 == gg);
    CHECK(gb2 == gb);
  }
}

TEST_CASE("group_norm rejects channels not divisible by groups", "[kernels][group_norm]") {
  Vec b(100);
  CHECK_THROWS_WITH(k::group_norm_forward<double>(1, 6, 4, 4, 1e-5, b.data(), nullptr, nullptr, b.data(),
                                                  b.data(), b.data()),
                    Catch::Contains("C=6") && Catch::Contains("G=4"));
}

// ---- softmax and attention ---------------------------------------------------------------------

TEST_CASE("softmax forward and backward", "[kernels][softmax]") {
  for (int64_t cols : {7, 37}) {  // a tail only; whole 16-wide exp blocks and a tail
    const int64_t rows = 3;
    Vec x = randn(rows * cols, 1), y(x.size());
    x[0] = 800;  // would overflow exp without the max shift
    k::softmax_forward(rows, cols, x.data(), y.data());
    for (auto v : y) CHECK(std::isfinite(v));
    x[0] = 0.3;
    k::softmax_forward(rows, cols, x.data(), y.data());
    CHECK_CLOSE(y, ref_softmax(rows, cols, x), 1e-14);
    const Vec r = randn(x.size(), 2);
    Vec gx(x.size());
    k::softmax_backward(rows, cols, y.data(), r.data(), gx.data());
    auto loss = [&] {
      Vec z(x.size());
      k::softmax_forward(rows, cols, x.data(), z.data());
      return dot(z, r);
    };
    CHECK_CLOSE(gx, numeric_grad(x, loss), 1e-7);
  }
}

TEST_CASE("softmax does not depend on the alignment of its buffers", "[kernels][softmax]") {
  // Vectorised code often treats an unaligned head differently; the kernels must not.
  const int64_t cols = 75;
  const auto x = randn<float>(cols + 1, 3);
  std::vector<float> ga(cols), gb(cols + 1);
  std::vector<float> xs(x.begin() + 1, x.end()), ys(cols);  // same values, other alignment
  k::softmax_forward(1, cols, xs.data(), ys.data());
  std::vector<float> xo(cols + 1), yo(cols + 1);
  std::copy(xs.begin(), xs.end(), xo.begin() + 1);
  k::softmax_forward(1, cols, xo.data() + 1, yo.data() + 1);
  CHECK(std::memcmp(ys.data(), yo.data() + 1, cols * sizeof(float)) == 0);
  k::softmax_backward(1, cols, ys.data(), xs.data(), ga.data());
  k::softmax_backward(1, cols, yo.data() + 1, xo.data() + 1, gb.data() + 1);
  CHECK(std::memcmp(ga.data(), gb.data() + 1, cols * sizeof(float)) == 0);
}

TEST_CASE("attention forward matches the definition, backward matches finite differences",
          "[kernels][attention]") {
  // Lq = 70 spans two query tiles of the forward.
  for (auto [B, Lq, Lk, D, Dv] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{3, 5, 7, 4, 3}, {1, 70, 3, 2, 2}}) {
    const double scale = 1.0 / std::sqrt(double(D));
    Vec q = randn(B * Lq * D, 1), kk = randn(B * Lk * D, 2), v = randn(B * Lk * Dv, 3);
    Vec out(B * Lq * Dv), probs(B * Lq * Lk);
    k::attention_forward(B, Lq, Lk, D, Dv, scale, q.data(), kk.data(), v.data(), out.data(), probs.data());
    CHECK_CLOSE(out, ref_attention(B, Lq, Lk, D, Dv, scale, q, kk, v), 1e-12);
    double row0 = 0;
    for (int64_t j = 0; j < Lk; ++j) row0 += probs[j];
    CHECK(row0 == Approx(1.0));

    const Vec r = randn(out.size(), 4);
    Vec gq(q.size(), 7.0), gk(kk.size(), 7.0), gv(v.size(), 7.0);
    k::attention_backward(B, Lq, Lk, D, Dv, scale, q.data(), kk.data(), v.data(), probs.data(), r.data(),
                          gq.data(), gk.data(), gv.data());
    auto loss = [&] {
      Vec o(out.size()), p(probs.size());
      k::attention_forward(B, Lq, Lk, D, Dv, scale, q.data(), kk.data(), v.data(), o.data(), p.data());
      return dot(o, r);
    };
    CHECK_CLOSE(gq, numeric_grad(q, loss), 1e-6);
    CHECK_CLOSE(gk, numeric_grad(kk, loss), 1e-6);
    CHECK_CLOSE(gv, numeric_grad(v, loss), 1e-6);
  }
}

// ---- resampling ---------------------------------------------------------------------------------

TEST_CASE("nearest 2x upsampling", "[kernels][resample]") {
  const int64_t P = 2, H = 3, W = 5;
  Vec x = randn(P * H * W, 1), y(P * 4 * H * W);
  k::upsample_nearest2x_forward(P, H, W, x.data(), y.data());
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < 2 * H; ++i)
      for (int64_t j = 0; j < 2 * W; ++j)
        CHECK(y[(p * 2 * H + i) * 2 * W + j] == x[(p * H + i / 2) * W + j / 2]);
  const Vec r = randn(y.size(), 2);
  Vec gx(x.size(), 7.0);
  k::upsample_nearest2x_backward(P, H, W, r.data(), gx.data());
  auto loss = [&] {
    Vec z(y.size());
    k::upsample_nearest2x_forward(P, H, W, x.data(), z.data());
    return dot(z, r);
  };
  CHECK_CLOSE(gx, numeric_grad(x, loss), 1e-7);
}

TEST_CASE("2x2 max and average pooling, odd sizes floor", "[kernels][resample]") {
  for (auto [H, W] : {std::pair<int64_t, int64_t>{4, 6}, {5, 7}}) {
    const int64_t P = 3, OH = H / 2, OW = W / 2;
    Vec x = randn(P * H * W, 1), y(P * OH * OW), ya(y.size());
    std::vector<int32_t> am(y.size());
    k::max_pool2x_forward(P, H, W, x.data(), y.data(), am.data());
    k::avg_pool2x_forward(P, H, W, x.data(), ya.data());
    Vec y_no_argmax(y.size());  // without argmax (no-grad): the same maxima
    k::max_pool2x_forward(P, H, W, x.data(), y_no_argmax.data(), static_cast<int32_t*>(nullptr));
    CHECK(y_no_argmax == y);
    for (int64_t p = 0; p < P; ++p)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          const double* xp = x.data() + p * H * W;
          const double a = xp[2 * i * W + 2 * j], b = xp[2 * i * W + 2 * j + 1],
                       c = xp[(2 * i + 1) * W + 2 * j], d = xp[(2 * i + 1) * W + 2 * j + 1];
          const int64_t o = (p * OH + i) * OW + j;
          CHECK(y[o] == std::max({a, b, c, d}));
          CHECK(xp[am[o]] == y[o]);
          CHECK(ya[o] == Approx((a + b + c + d) / 4));
        }
    const Vec r = randn(y.size(), 2);
    Vec gx(x.size(), 7.0), gxa(x.size(), 7.0);
    k::max_pool2x_backward(P, H, W, am.data(), r.data(), gx.data());
    k::avg_pool2x_backward(P, H, W, r.data(), gxa.data());
    auto loss_max = [&] {
      Vec z(y.size());
      std::vector<int32_t> a(y.size());
      k::max_pool2x_forward(P, H, W, x.data(), z.data(), a.data());
      return dot(z, r);
    };
    auto loss_avg = [&] {
      Vec z(y.size());
      k::avg_pool2x_forward(P, H, W, x.data(), z.data());
      return dot(z, r);
    };
    CHECK_CLOSE(gx, numeric_grad(x, loss_max), 1e-7);
    CHECK_CLOSE(gxa, numeric_grad(x, loss_avg), 1e-7);
  }
  Vec b(10);
  std::vector<int32_t> a(10);
  CHECK_THROWS_AS(k::max_pool2x_forward<double>(1, 1, 4, b.data(), b.data(), a.data()), diffuse::Error);
}

// ---- thread-count independence ------------------------------------------------------------------

TEST_CASE("kernel results are bitwise identical with 1, 2 and 3 threads", "[kernels][threads]") {
  const int saved = omp_get_max_threads();
  // float, sizes that split into several tiles / blocks / tasks
  const k::Conv2dGeometry g{3, 24, 20, 19, 16, 3, 3, 1, 1};
  const auto x = randn<float>(g.N * g.C * g.H * g.W, 1), w = randn<float>(g.O * g.C * 9, 2),
             b = randn<float>(g.O, 3), gy = randn<float>(g.N * g.O * g.OH() * g.OW(), 4);
  const int64_t M = 300, N = 700, K = 257;
  const auto A = randn<float>(M * K, 5), Bm = randn<float>(K * N, 6);
  const int64_t AB = 3, Lq = 100, Lk = 90, D = 32;
  const auto q = randn<float>(AB * Lq * D, 7), kk = randn<float>(AB * Lk * D, 8),
             v = randn<float>(AB * Lk * D, 9), go = randn<float>(AB * Lq * D, 10);
  const auto gam = randn<float>(g.C, 11);

  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    std::vector<std::vector<float>> r;
    auto add = [&](int64_t n) -> float* { return r.emplace_back(n).data(); };
    k::conv2d_forward(g, x.data(), w.data(), b.data(), add(gy.size()));
    k::conv2d_backward(g, x.data(), w.data(), gy.data(), add(x.size()), add(w.size()), add(b.size()));
    // stride-1 paths: tiles across images and gradient chunks (C*KK = 1600: 288-pixel tiles over
    // 20 x 42 pixels), one output channel (direct), padding > K-1, and stride 2
    using G = k::Conv2dGeometry;
    for (const G& h : {G{20, 64, 7, 6, 8, 5, 5, 1, 2}, G{9, 64, 7, 6, 1, 5, 5, 1, 2},
                       G{4, 5, 9, 8, 6, 3, 3, 1, 3}, G{3, 6, 9, 8, 5, 3, 3, 2, 1}}) {
      const auto hx = randn<float>(h.N * h.C * h.H * h.W, 12), hw = randn<float>(h.O * h.C * h.KH * h.KW, 13),
                 hb = randn<float>(h.O, 14), hgy = randn<float>(h.N * h.O * h.OH() * h.OW(), 15);
      k::conv2d_forward(h, hx.data(), hw.data(), hb.data(), add(hgy.size()));
      k::conv2d_backward(h, hx.data(), hw.data(), hgy.data(), add(hx.size()), add(hw.size()), add(hb.size()));
    }
    k::gemm(false, false, M, N, K, 1.0f, A.data(), K, Bm.data(), N, 0.0f, add(M * N), N);
    float* out = add(AB * Lq * D);
    float* probs = add(AB * Lq * Lk);
    k::attention_forward(AB, Lq, Lk, D, D, 0.2f, q.data(), kk.data(), v.data(), out, probs);
    k::attention_backward(AB, Lq, Lk, D, D, 0.2f, q.data(), kk.data(), v.data(), probs, go.data(),
                          add(q.size()), add(kk.size()), add(v.size()));
    float* mean = add(g.N * 8);
    float* rstd = add(g.N * 8);
    k::group_norm_forward(g.N, g.C, g.H * g.W, int64_t(8), 1e-5f, x.data(), gam.data(), gam.data(),
                          add(x.size()), mean, rstd);
    k::group_norm_backward(g.N, g.C, g.H * g.W, int64_t(8), x.data(), gam.data(), mean, rstd, x.data(),
                           add(x.size()), add(g.C), add(g.C));
    return r;
  };
  const auto one = run(1), two = run(2), three = run(3);
  omp_set_num_threads(saved);
  REQUIRE(one.size() == two.size());
  REQUIRE(one.size() == three.size());
  for (size_t i = 0; i < one.size(); ++i) {
    INFO("output " << i);
    CHECK(std::memcmp(one[i].data(), two[i].data(), one[i].size() * sizeof(float)) == 0);
    CHECK(std::memcmp(one[i].data(), three[i].data(), one[i].size() * sizeof(float)) == 0);
  }
}

TEST_CASE("silu kernels: exact formula, independent of alignment and thread count") {
  const std::int64_t n = 40000 + 7;  // several chunks and a ragged tail
  std::vector<float> buf(n + 3), gy(n), y1(n), y2(n), g1(n), g2(n);
  diffuse::Generator gen(5);
  auto r = gen.randn<float>({n + 3});
  std::copy(r.begin(), r.end(), buf.begin());
  auto rg = gen.randn<float>({n});
  std::copy(rg.begin(), rg.end(), gy.begin());
  const float* x = buf.data() + 1;  // unaligned on purpose
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  diffuse::kernels::silu_forward<float>(n, x, y1.data());
  diffuse::kernels::silu_backward<float>(n, x, gy.data(), g1.data());
  omp_set_num_threads(2);
  diffuse::kernels::silu_forward<float>(n, x, y2.data());
  diffuse::kernels::silu_backward<float>(n, x, gy.data(), g2.data());
  omp_set_num_threads(saved);
  CHECK(y1 == y2);
  CHECK(g1 == g2);
  // an aligned copy of the same values gives the same bits
  std::vector<float> xa(x, x + n), y3(n);
  diffuse::kernels::silu_forward<float>(n, xa.data(), y3.data());
  CHECK(y1 == y3);
  for (std::int64_t i = 0; i < n; i += 997) {
    const double xi = x[i], s = 1 / (1 + std::exp(-xi));
    CHECK(y1[i] == Approx(xi * s).margin(1e-6));
    CHECK(g1[i] == Approx(gy[i] * s * (1 + xi * (1 - s))).margin(1e-5));
  }
}
