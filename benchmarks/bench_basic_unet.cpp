// Training and inference throughput of the course's BasicUNet (images/s), batch 128, 28x28,
// on all OpenMP threads. Compare with benchmarks/peer_basic_unet.py (PyTorch, same model).
//
// Usage: bench_basic_unet [--iters N] [--batch B]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "diffuse/autograd/backward.hpp"
#include "diffuse/models/basic_unet.hpp"
#include "diffuse/optim/adam.hpp"

using namespace diffuse;

int main(int argc, char** argv) {
  int iters = 10, batch = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--iters")) iters = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch")) batch = std::stoi(argv[i + 1]);
  }
  Generator gen(0);
  models::BasicUNet<float> net(1, 1, gen);
  optim::Adam opt(net.parameters(), {.lr = 1e-3});
  Tensor<float> x = gen.rand<float>({batch, 1, 28, 28});
  Tensor<float> target = gen.rand<float>({batch, 1, 28, 28});
  auto train_step = [&] {
    auto loss = nn::functional::mse_loss(net(x), target);
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  auto forward = [&] {
    NoGradGuard no_grad;
    return net(x);
  };
  auto rate = [&](auto&& fn) {
    fn();  // warm-up
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return batch * iters / s;
  };
  std::printf("BasicUNet 28x28, batch %d, %d threads\n", batch, num_threads());
  std::printf("forward:       %8.1f images/s\n", rate(forward));
  std::printf("training step: %8.1f images/s\n", rate(train_step));
  return 0;
}
