// Data-parallel training speed (issue 12): the main job's UNet2DModel (train_unconditional's
// default: 28x28, widths 32/64/64, no attention) trained on a global batch split among the MPI
// ranks, gradients averaged by distributed::GradientReducer. Prints, on rank 0, images per second
// and the share of a step spent in MPI (what backward() did not hide).
//   OMP_NUM_THREADS=2 ./bench_distributed                       # 1 process x 2 threads
//   OMP_NUM_THREADS=1 mpirun -np 2 ./bench_distributed          # 2 processes x 1 thread
// Options: --global_batch 64 --steps 20 --warmup 3 --overlap 1 (0: reduce after backward)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "diffuse/core/generator.hpp"
#include "diffuse/distributed/broadcast.hpp"
#include "diffuse/distributed/gradient_reducer.hpp"
#include "diffuse/distributed/mpi.hpp"
#include "diffuse/models/unet_2d.hpp"
#include "diffuse/nn/functional.hpp"
#include "diffuse/optim/adamw.hpp"
#include "main_job_model.hpp"

using namespace diffuse;

int main(int argc, char** argv) {
  return distributed::run(argc, argv, [&] {
    std::int64_t global_batch = 64, steps = 20, warmup = 3;
    bool overlap = true;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string flag = argv[i];
      const std::int64_t v = std::stoll(argv[i + 1]);
      if (flag == "--global_batch")
        global_batch = v;
      else if (flag == "--steps")
        steps = v;
      else if (flag == "--warmup")
        warmup = v;
      else if (flag == "--overlap")
        overlap = v != 0;
      else
        throw Error("unknown flag " + flag + " (known: --global_batch --steps --warmup --overlap)");
    }
    const int n = distributed::world_size(), r = distributed::rank();
    if (global_batch % n != 0)
      throw Error("--global_batch " + std::to_string(global_batch) + " does not split among " +
                  std::to_string(n) + " ranks");
    const std::int64_t local = global_batch / n;
    Generator gen(0);
    models::UNet2DModel<float> unet(bench::main_job_model(), gen);  // the main job's model
    distributed::broadcast_parameters(unet);
    optim::AdamW<float> opt(unet.parameters(), {.lr = 1e-4});
    distributed::GradientReducer<float> reducer(unet.parameters(), {.overlap = overlap});
    Generator data(1 + static_cast<std::uint64_t>(r));
    const Tensor<float> x = data.randn<float>({local, 1, 28, 28}),
                        noise = data.randn<float>({local, 1, 28, 28});
    const auto t = data.randint(0, 1000, local);
    std::vector<double> seconds;
    double mpi_before = 0;
    for (std::int64_t step = 0; step < warmup + steps; ++step) {
      if (step == warmup) mpi_before = reducer.seconds_in_allreduce();
      distributed::barrier();
      const auto t0 = std::chrono::steady_clock::now();
      opt.zero_grad();
      nn::functional::mse_loss(unet(x, t), noise).backward();
      reducer.synchronize();
      opt.step();
      if (step >= warmup)
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double total = std::accumulate(seconds.begin(), seconds.end(), 0.0);
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    const double mpi_share = (reducer.seconds_in_allreduce() - mpi_before) / total;
    if (r == 0)
      std::printf(
          "%d process(es) x %d thread(s), global batch %lld, %zu buckets, %s: %.3f s/step (median of %lld), "
          "%.1f images/s, %.1f%% of a step in MPI, %lld parameters\n",
          n, omp_get_max_threads(), static_cast<long long>(global_batch), reducer.num_buckets(),
          overlap ? "overlapped" : "after backward", median, static_cast<long long>(steps),
          static_cast<double>(global_batch) / median, 100 * mpi_share,
          static_cast<long long>(unet.num_parameters()));
  });
}
