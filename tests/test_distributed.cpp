// Data-parallel training over MPI (include/diffuse/distributed/), run by ctest as
// `mpirun -np 2 test_distributed` (label mpi). Every rank runs every test case in the same order,
// so their collectives meet; a check compares values that all ranks agree on, so a failure fails
// on every rank instead of leaving one waiting.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "diffuse/core/generator.hpp"
#include "diffuse/distributed/broadcast.hpp"
#include "diffuse/distributed/gradient_reducer.hpp"
#include "diffuse/distributed/mpi.hpp"
#include "diffuse/models/unet_2d.hpp"
#include "diffuse/nn/functional.hpp"
#include "diffuse/optim/adamw.hpp"

using namespace diffuse;
using models::UNet2DModel;

namespace {

models::UNet2DConfig small_unet() {
  return {.sample_size = 8,
          .in_channels = 1,
          .out_channels = 1,
          .layers_per_block = 1,
          .block_out_channels = {8, 16},
          .down_block_types = {"AttnDownBlock2D", "DownBlock2D"},
          .up_block_types = {"UpBlock2D", "AttnUpBlock2D"},
          .attention_head_dim = 4,
          .norm_num_groups = 4};
}

double max_over_ranks(double v) {
  double out = v;
  distributed::check_mpi(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  return out;
}

// The global batch of step `step`: the same on every rank and in the single-process reference.
template <class T>
struct Batch {
  Tensor<T> x, noise;
  std::vector<std::int64_t> t;
};
template <class T>
Batch<T> global_batch(std::int64_t step, std::int64_t size) {
  Generator g(1000 + static_cast<std::uint64_t>(step));
  Batch<T> b{g.randn<T>({size, 1, 8, 8}), g.randn<T>({size, 1, 8, 8}), g.randint(0, 1000, size)};
  return b;
}
template <class T>
Batch<T> rows(const Batch<T>& b, std::int64_t begin, std::int64_t end) {
  return {b.x.slice(begin, end), b.noise.slice(begin, end),
          std::vector<std::int64_t>(b.t.begin() + begin, b.t.begin() + end)};
}

// The largest relative difference of two models' parameters, per tensor ||a - b|| / ||b||.
// Attention's key bias is left out: its gradient is zero in exact arithmetic (a softmax does not
// change when one adds q . b_k to a whole row of scores), so what backward() computes for it is
// rounding noise, which Adam's m / sqrt(v) turns into steps of the full learning rate, one way or
// the other (in PyTorch too). The test compares what the averaging must preserve.
template <class T>
double relative_difference(const std::vector<std::pair<std::string, Tensor<T>>>& pa,
                           const std::vector<std::pair<std::string, Tensor<T>>>& pb) {
  double worst = 0;
  for (std::size_t k = 0; k < pa.size(); ++k) {
    if (pa[k].first.ends_with("to_k.bias")) continue;
    double diff = 0, norm = 0;
    for (std::int64_t i = 0; i < pa[k].second.numel(); ++i) {
      const double d = double(pa[k].second.data()[i]) - double(pb[k].second.data()[i]);
      diff += d * d;
      norm += double(pb[k].second.data()[i]) * double(pb[k].second.data()[i]);
    }
    worst = std::max(worst, std::sqrt(diff) / std::max(std::sqrt(norm), 1e-12));
  }
  return worst;
}

template <class T>
double relative_difference(const UNet2DModel<T>& a, const UNet2DModel<T>& b) {
  return relative_difference(a.named_parameters(), b.named_parameters());
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>>> named_grads(const UNet2DModel<T>& unet) {
  std::vector<std::pair<std::string, Tensor<T>>> out;
  for (auto& [name, p] : unet.named_parameters()) out.emplace_back(name, p.grad());
  return out;
}

constexpr std::int64_t kGlobalBatch = 128, kSteps = 5;

// One process, the whole global batch: what N processes must reproduce.
template <class T>
void train_reference(UNet2DModel<T>& unet) {
  optim::AdamW<T> opt(unet.parameters(), {.lr = 1e-3});
  for (std::int64_t step = 0; step < kSteps; ++step) {
    const auto b = global_batch<T>(step, kGlobalBatch);
    opt.zero_grad();
    nn::functional::mse_loss(unet(b.x, b.t), b.noise).backward();
    opt.step();
  }
}

// This rank's share of each global batch, split further into `micro` micro-batches whose
// gradients accumulate locally before one all-reduce.
template <class T>
void train_distributed(UNet2DModel<T>& unet, bool overlap, std::int64_t micro) {
  const int n = distributed::world_size(), r = distributed::rank();
  distributed::broadcast_parameters(unet);
  optim::AdamW<T> opt(unet.parameters(), {.lr = 1e-3});
  distributed::GradientReducer<T> reducer(
      unet.parameters(),
      {.bucket_cap_bytes = 16 << 10, .first_bucket_cap_bytes = 4 << 10, .overlap = overlap});
  REQUIRE(reducer.num_buckets() > 1);
  const std::int64_t local = kGlobalBatch / n, per_micro = local / micro;
  for (std::int64_t step = 0; step < kSteps; ++step) {
    const auto mine = rows(global_batch<T>(step, kGlobalBatch), r * local, (r + 1) * local);
    opt.zero_grad();
    for (std::int64_t m = 0; m < micro; ++m) {
      reducer.set_sync(m == micro - 1);
      const auto b = rows(mine, m * per_micro, (m + 1) * per_micro);
      (nn::functional::mse_loss(unet(b.x, b.t), b.noise) * (T(1) / static_cast<T>(micro))).backward();
    }
    reducer.synchronize();
    opt.step();
  }
}

}  // namespace

TEST_CASE("broadcast_parameters gives every rank rank 0's weights") {
  Generator gen(7 + static_cast<std::uint64_t>(distributed::rank()));  // a different start on each rank
  UNet2DModel<float> unet(small_unet(), gen);
  Generator gen0(7);
  UNet2DModel<float> rank0(small_unet(), gen0);
  distributed::broadcast_parameters(unet);
  CHECK(max_over_ranks(relative_difference(unet, rank0)) == 0.0);
}

TEST_CASE("the averaged gradient of N local batches is the gradient of the global batch") {
  Generator g0(3);
  UNet2DModel<double> reference(small_unet(), g0), unet(small_unet(), g0);
  distributed::broadcast_parameters(unet);
  reference.load_state_dict(unet.state_dict());
  const auto global = global_batch<double>(0, kGlobalBatch);
  nn::functional::mse_loss(reference(global.x, global.t), global.noise).backward();
  const int n = distributed::world_size(), r = distributed::rank();
  const std::int64_t local = kGlobalBatch / n;
  const auto mine = rows(global, r * local, (r + 1) * local);
  distributed::GradientReducer<double> reducer(
      unet.parameters(), {.bucket_cap_bytes = 16 << 10, .first_bucket_cap_bytes = 4 << 10});
  nn::functional::mse_loss(unet(mine.x, mine.t), mine.noise).backward();
  CHECK(reducer.buckets_started() == reducer.num_buckets());  // all started while backward() ran
  reducer.synchronize();
  CHECK(reducer.buckets_started() == 0);
  const double diff = max_over_ranks(relative_difference(named_grads(unet), named_grads(reference)));
  if (r == 0) std::printf("double gradients: largest relative difference %.3g\n", diff);
  CHECK(diff < 1e-12);
}

// After 5 AdamW steps the weights agree to about 1e-5 in float and 1e-8 in double (per tensor,
// relative): Adam's m / sqrt(v) magnifies the rounding of gradients much smaller than their
// neighbours' (the attention's group-norm biases here).
TEMPLATE_TEST_CASE("N ranks x batch B train like 1 process x batch N*B (AdamW, 5 steps)", "", float, double) {
  using T = TestType;
  Generator g0(3);
  UNet2DModel<T> reference(small_unet(), g0);
  train_reference(reference);
  for (bool overlap : {true, false})
    for (std::int64_t micro : {1, 2}) {
      Generator g(3 + 11 * static_cast<std::uint64_t>(distributed::rank()));
      UNet2DModel<T> unet(small_unet(), g);
      train_distributed(unet, overlap, micro);
      const double diff = max_over_ranks(relative_difference(unet, reference));
      if (distributed::rank() == 0)
        std::printf(
            "%s: %d ranks x batch %lld (%lld micro-batches, %s) vs 1 x %lld: largest relative difference "
            "%.3g\n",
            sizeof(T) == 4 ? "float" : "double", distributed::world_size(),
            static_cast<long long>(kGlobalBatch / distributed::world_size()), static_cast<long long>(micro),
            overlap ? "overlapped" : "after backward", static_cast<long long>(kGlobalBatch), diff);
      INFO("overlap " << overlap << ", micro-batches " << micro);
      CHECK(diff < (sizeof(T) == 4 ? 2e-4 : 2e-7));
    }
}

TEST_CASE("overlapped and after-backward reduction give the same bits") {
  std::vector<Tensor<float>> weights[2];
  for (bool overlap : {true, false}) {
    Generator g(5);
    UNet2DModel<float> unet(small_unet(), g);
    train_distributed<float>(unet, overlap, 1);
    weights[overlap] = unet.parameters();
  }
  double diff = 0;
  for (std::size_t k = 0; k < weights[0].size(); ++k)
    for (std::int64_t i = 0; i < weights[0][k].numel(); ++i)
      diff = std::max(diff, std::abs(double(weights[0][k].data()[i]) - double(weights[1][k].data()[i])));
  CHECK(max_over_ranks(diff) == 0.0);
}

TEST_CASE("errors are collective") {
  SECTION("agree: a failure on one rank is an error on every rank, naming it") {
    const int last = distributed::world_size() - 1;
    try {
      distributed::agree(distributed::rank() != last, "cannot read data/train.idx");
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()) == "rank " + std::to_string(last) + ": cannot read data/train.idx");
    }
    distributed::agree(true);  // and nothing is left pending
  }
  SECTION("a model that differs on one rank is refused everywhere") {
    auto config = small_unet();
    if (distributed::rank() == distributed::world_size() - 1) config.block_out_channels = {8, 24};
    Generator g(1);
    UNet2DModel<float> unet(config, g);
    if (distributed::world_size() > 1) {
      CHECK_THROWS_WITH(distributed::broadcast_parameters(unet),
                        Catch::Contains("other parameter names or shapes"));
      CHECK_THROWS_WITH(distributed::GradientReducer<float>(unet.parameters()),
                        Catch::Contains("different parameters"));
    }
  }
}

int main(int argc, char** argv) {
  // `--fail-on-rank R` (the test test_distributed_abort): rank R fails while the others wait in a
  // collective; distributed::run must stop them all with R's message instead of hanging.
  if (argc == 3 && std::string(argv[1]) == "--fail-on-rank") {
    const int failing = std::stoi(argv[2]);
    return distributed::run(argc, argv, [&] {
      if (distributed::rank() == failing)
        throw Error("cannot read train-images-idx3-ubyte.gz: the file is truncated");
      distributed::barrier();
    });
  }
  distributed::Environment mpi(argc, argv);
  return Catch::Session().run(argc, argv);
}
