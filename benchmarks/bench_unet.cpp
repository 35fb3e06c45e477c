// Throughput of the course notebook's 28x28 UNet2DModel (1,707,009 parameters) at batch 128:
// inference forward passes and training steps (forward + MSE loss + backward + Adam), in images/s.
// Compare with benchmarks/peer_unet.py (PyTorch, same architecture, same thread count).
//   bench_unet [batch=128] [iterations=5]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "diffuse/autograd/backward.hpp"
#include "diffuse/models/unet_2d.hpp"
#include "diffuse/optim/adam.hpp"

using namespace diffuse;

template <class F>
double seconds_per_call(F&& f, int iterations) {
  f();  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iterations;
}

int main(int argc, char** argv) {
  const std::int64_t batch = argc > 1 ? std::atoll(argv[1]) : 128;
  const int iterations = argc > 2 ? std::atoi(argv[2]) : 5;
  Generator gen(0);
  models::UNet2DModel<float> unet({.sample_size = 28, .in_channels = 1, .out_channels = 1, .layers_per_block = 2,
                                   .block_out_channels = {32, 64, 64},
                                   .down_block_types = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"},
                                   .up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"}},
                                  gen);
  optim::Adam<float> opt(unet.parameters(), {.lr = 1e-4});
  Tensor<float> x = gen.randn<float>({batch, 1, 28, 28}), noise = gen.randn<float>({batch, 1, 28, 28});
  Tensor<float> t = gen.randint<float>(0, 1000, {batch});

  std::printf("UNet2DModel (course 28x28), %lld parameters, batch %lld, %d threads\n",
              static_cast<long long>(unet.num_parameters()), static_cast<long long>(batch), num_threads());
  const double fwd = seconds_per_call(
      [&] {
        NoGradGuard no_grad;
        unet(x, t);
      },
      iterations);
  std::printf("   forward: %8.1f ms/batch  %8.1f images/s\n", fwd * 1e3, batch / fwd);
  const double train = seconds_per_call(
      [&] {
        auto loss = nn::functional::mse_loss(unet(x, t), noise);
        opt.zero_grad();
        loss.backward();
        opt.step();
      },
      iterations);
  std::printf("train step: %8.1f ms/batch  %8.1f images/s\n", train * 1e3, batch / train);
}
