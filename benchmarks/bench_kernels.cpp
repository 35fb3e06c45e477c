// Throughput of the raw kernels (float) at the sizes of a small UNet layer, with GEMM 1024^2 as the
// machine's yardstick. Rates are per wall-clock second (UseRealTime): the kernels run on all threads.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "diffuse/kernels/attention.hpp"
#include "diffuse/kernels/conv2d.hpp"
#include "diffuse/kernels/gemm.hpp"
#include "diffuse/kernels/group_norm.hpp"

namespace k = diffuse::kernels;
using std::int64_t;

namespace {

std::vector<float> randn(int64_t n, unsigned seed = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void set_rate(benchmark::State& state, const char* name, double per_iteration) {
  state.counters[name] =
      benchmark::Counter(per_iteration * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Gemm1024(benchmark::State& state) {
  const int64_t n = 1024;
  auto a = randn(n * n, 1), b = randn(n * n, 2), c = randn(n * n, 3);
  for (auto _ : state) {
    k::gemm(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "GFLOP/s", 2.0 * n * n * n / 1e9);
}
BENCHMARK(BM_Gemm1024)->Unit(benchmark::kMillisecond)->UseRealTime();

// N=16, C=O=128, 16x16, 3x3, padding 1 (a UNet block at 16x16)
const k::Conv2dGeometry kConv{16, 128, 16, 16, 128, 3, 3, 1, 1};
double conv_flops(const k::Conv2dGeometry& g) {
  return 2.0 * g.N * g.O * g.OH() * g.OW() * g.C * g.KH * g.KW;
}

void BM_Conv2dForward(benchmark::State& state) {
  const auto& g = kConv;
  auto x = randn(g.N * g.C * g.H * g.W, 1), w = randn(g.O * g.C * g.KH * g.KW, 2), b = randn(g.O, 3);
  std::vector<float> y(g.N * g.O * g.OH() * g.OW());
  for (auto _ : state) {
    k::conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "GFLOP/s", conv_flops(g) / 1e9);
}
BENCHMARK(BM_Conv2dForward)->Unit(benchmark::kMillisecond)->UseRealTime();

// gx, gw and gb: two GEMMs of the forward's size
void BM_Conv2dBackward(benchmark::State& state) {
  const auto& g = kConv;
  auto x = randn(g.N * g.C * g.H * g.W, 1), w = randn(g.O * g.C * g.KH * g.KW, 2);
  auto gy = randn(g.N * g.O * g.OH() * g.OW(), 3);
  std::vector<float> gx(x.size()), gw(w.size()), gb(g.O);
  for (auto _ : state) {
    k::conv2d_backward(g, x.data(), w.data(), gy.data(), gx.data(), gw.data(), gb.data());
    benchmark::DoNotOptimize(gx.data());
    benchmark::DoNotOptimize(gw.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "GFLOP/s", 2.0 * conv_flops(g) / 1e9);
}
BENCHMARK(BM_Conv2dBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

// The six 5x5 convolutions (padding 2) of the course's BasicUNet at batch 128, by layer index:
// down 1->32 @28, 32->64 @14, 64->64 @7; up 64->64 @7, 64->32 @14, 32->1 @28.
const k::Conv2dGeometry kUNetConv[6] = {
    {128, 1, 28, 28, 32, 5, 5, 1, 2}, {128, 32, 14, 14, 64, 5, 5, 1, 2}, {128, 64, 7, 7, 64, 5, 5, 1, 2},
    {128, 64, 7, 7, 64, 5, 5, 1, 2},  {128, 64, 14, 14, 32, 5, 5, 1, 2}, {128, 32, 28, 28, 1, 5, 5, 1, 2},
};

void BM_BasicUNetConvForward(benchmark::State& state) {
  const auto& g = kUNetConv[state.range(0)];
  auto x = randn(g.N * g.C * g.H * g.W, 1), w = randn(g.O * g.C * g.KH * g.KW, 2), b = randn(g.O, 3);
  std::vector<float> y(g.N * g.O * g.OH() * g.OW());
  for (auto _ : state) {
    k::conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "GFLOP/s", conv_flops(g) / 1e9);
}
BENCHMARK(BM_BasicUNetConvForward)->DenseRange(0, 5)->Unit(benchmark::kMicrosecond)->UseRealTime();

// gx (except for the first layer, whose input needs none, as in training), gw and gb.
void BM_BasicUNetConvBackward(benchmark::State& state) {
  const auto& g = kUNetConv[state.range(0)];
  const bool want_gx = state.range(0) != 0;
  auto x = randn(g.N * g.C * g.H * g.W, 1), w = randn(g.O * g.C * g.KH * g.KW, 2);
  auto gy = randn(g.N * g.O * g.OH() * g.OW(), 3);
  std::vector<float> gx(x.size()), gw(w.size()), gb(g.O);
  for (auto _ : state) {
    k::conv2d_backward(g, x.data(), w.data(), gy.data(), want_gx ? gx.data() : nullptr, gw.data(), gb.data());
    benchmark::DoNotOptimize(gx.data());
    benchmark::DoNotOptimize(gw.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "GFLOP/s", (want_gx ? 2.0 : 1.0) * conv_flops(g) / 1e9);
}
BENCHMARK(BM_BasicUNetConvBackward)->DenseRange(0, 5)->Unit(benchmark::kMicrosecond)->UseRealTime();

// N=16, C=128, 16x16, 32 groups. Memory-bound: GB/s counts the bytes that must move at least.
constexpr int64_t kGnN = 16, kGnC = 128, kGnHW = 256, kGnG = 32;

void BM_GroupNormForward(benchmark::State& state) {
  const int64_t n = kGnN * kGnC * kGnHW;
  auto x = randn(n, 1), gamma = randn(kGnC, 2), beta = randn(kGnC, 3);
  std::vector<float> y(n), mean(kGnN * kGnG), rstd(kGnN * kGnG);
  for (auto _ : state) {
    k::group_norm_forward(kGnN, kGnC, kGnHW, kGnG, 1e-5f, x.data(), gamma.data(), beta.data(), y.data(),
                          mean.data(), rstd.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "GB/s", 2.0 * n * sizeof(float) / 1e9);  // read x, write y
}
BENCHMARK(BM_GroupNormForward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_GroupNormBackward(benchmark::State& state) {
  const int64_t n = kGnN * kGnC * kGnHW;
  auto x = randn(n, 1), gamma = randn(kGnC, 2), beta = randn(kGnC, 3), gy = randn(n, 4);
  std::vector<float> y(n), mean(kGnN * kGnG), rstd(kGnN * kGnG), gx(n), gg(kGnC), gb(kGnC);
  k::group_norm_forward(kGnN, kGnC, kGnHW, kGnG, 1e-5f, x.data(), gamma.data(), beta.data(), y.data(),
                        mean.data(), rstd.data());
  for (auto _ : state) {
    k::group_norm_backward(kGnN, kGnC, kGnHW, kGnG, x.data(), gamma.data(), mean.data(), rstd.data(),
                           gy.data(), gx.data(), gg.data(), gb.data());
    benchmark::DoNotOptimize(gx.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "GB/s", 3.0 * n * sizeof(float) / 1e9);  // read x and gy, write gx
}
BENCHMARK(BM_GroupNormBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

// B=16 sequences of 256 tokens (a 16x16 feature map), one head of 128 channels.
constexpr int64_t kAtB = 16, kAtL = 256, kAtD = 128;
constexpr double kAtFlops = 2.0 * 2.0 * kAtB * kAtL * kAtL * kAtD;  // q k^T and P v

void BM_AttentionForward(benchmark::State& state) {
  auto q = randn(kAtB * kAtL * kAtD, 1), kk = randn(kAtB * kAtL * kAtD, 2), v = randn(kAtB * kAtL * kAtD, 3);
  std::vector<float> out(q.size()), probs(kAtB * kAtL * kAtL);
  for (auto _ : state) {
    k::attention_forward(kAtB, kAtL, kAtL, kAtD, kAtD, 0.088f, q.data(), kk.data(), v.data(), out.data(),
                         probs.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "GFLOP/s", kAtFlops / 1e9);
}
BENCHMARK(BM_AttentionForward)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_AttentionBackward(benchmark::State& state) {
  auto q = randn(kAtB * kAtL * kAtD, 1), kk = randn(kAtB * kAtL * kAtD, 2), v = randn(kAtB * kAtL * kAtD, 3);
  auto go = randn(q.size(), 4);
  std::vector<float> out(q.size()), probs(kAtB * kAtL * kAtL), gq(q.size()), gk(q.size()), gv(q.size());
  k::attention_forward(kAtB, kAtL, kAtL, kAtD, kAtD, 0.088f, q.data(), kk.data(), v.data(), out.data(),
                       probs.data());
  for (auto _ : state) {
    k::attention_backward(kAtB, kAtL, kAtL, kAtD, kAtD, 0.088f, q.data(), kk.data(), v.data(), probs.data(),
                          go.data(), gq.data(), gk.data(), gv.data());
    benchmark::DoNotOptimize(gq.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "GFLOP/s", 2.0 * kAtFlops / 1e9);  // four GEMMs of the forward's size
}
BENCHMARK(BM_AttentionBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
