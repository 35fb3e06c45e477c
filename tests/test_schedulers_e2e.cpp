// End to end: train a small MLP to predict the noise of a 2-D distribution (four Gaussian
// blobs), then sample it with DDPM, DDIM (20 steps) and DPM-Solver++ (10 steps). Each sampler's
// points must be close to the data in energy distance, with a threshold that samples from the
// untrained model (and plain noise) fail.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "diffuse/autograd/elementwise.hpp"
#include "diffuse/core/grad_mode.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/models/mlp_denoiser.hpp"
#include "diffuse/nn/functional.hpp"
#include "diffuse/nn/linear.hpp"
#include "diffuse/optim/adam.hpp"
#include "diffuse/schedulers/factory.hpp"

using namespace diffuse;
using schedulers::json;

namespace {

constexpr std::int64_t kTrainSteps = 200;  // diffusion timesteps of training

// Four Gaussian blobs at (+-1, +-1) with standard deviation 0.15.
Tensor<float> sample_data(std::int64_t n, Generator& gen) {
  Tensor<float> x = gen.randn<float>({n, 2});
  const auto corner = gen.randint_list(0, 4, n);
  for (std::int64_t i = 0; i < n; ++i) {
    x.data()[2 * i] = 0.15f * x.data()[2 * i] + (corner[i] & 1 ? 1.f : -1.f);
    x.data()[2 * i + 1] = 0.15f * x.data()[2 * i + 1] + (corner[i] & 2 ? 1.f : -1.f);
  }
  return x;
}

void train(models::MLPDenoiser<float>& model, schedulers::Scheduler<float>& sched, int iterations,
           Generator& gen) {
  optim::Adam<float> opt(model.parameters(), {.lr = 3e-3});
  const std::int64_t batch = 256;
  for (int it = 0; it < iterations; ++it) {
    if (it == iterations * 2 / 3) opt.set_lr(1e-3);
    const Tensor<float> x0 = sample_data(batch, gen);
    const Tensor<float> noise = gen.randn<float>({batch, 2});
    const auto ti = gen.randint_list(0, kTrainSteps, batch);
    const std::vector<double> t(ti.begin(), ti.end());
    const Tensor<float> noisy = sched.add_noise(x0, noise, t);
    Tensor<float> loss = nn::functional::mse_loss(model(noisy, t), noise);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
}

Tensor<float> sample(const models::MLPDenoiser<float>& model, schedulers::Scheduler<float>& sched,
                     std::int64_t n, std::int64_t steps, Generator& gen) {
  NoGradGuard no_grad;
  sched.set_timesteps(steps);
  Tensor<float> x = gen.randn<float>({n, 2});
  const double s0 = sched.init_noise_sigma();
  for (auto& v : x) v = static_cast<float>(v * s0);
  for (double t : sched.timesteps()) {
    const Tensor<float> eps = model(sched.scale_model_input(x, t), std::vector<double>(n, t));
    x = sched.step(eps, t, x, gen).prev_sample;
  }
  return x;
}

// Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two point sets.
double energy_distance(const Tensor<float>& a, const Tensor<float>& b) {
  auto mean_dist = [](const Tensor<float>& p, const Tensor<float>& q) {
    double s = 0;
    for (std::int64_t i = 0; i < p.size(0); ++i)
      for (std::int64_t j = 0; j < q.size(0); ++j)
        s += std::hypot(p.data()[2 * i] - q.data()[2 * j], p.data()[2 * i + 1] - q.data()[2 * j + 1]);
    return s / static_cast<double>(p.size(0) * q.size(0));
  };
  return 2 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b);
}

}  // namespace

TEST_CASE("a trained toy denoiser samples the data distribution with DDPM, DDIM and DPM-Solver++") {
  // Tiny matrices: one thread is fastest (and immune to a busy machine's OpenMP contention).
  const int threads = num_threads();
  set_num_threads(1);
  Generator gen(1234);
  // 200 training timesteps, linear betas up to 0.04 (alphas_cumprod ends near 0.02)
  const json config = {{"num_train_timesteps", kTrainSteps},
                       {"beta_schedule", "linear"},
                       {"beta_end", 0.04},
                       {"clip_sample", false}};
  auto ddpm = schedulers::make_scheduler<float>("DDPMScheduler", config);
  const std::int64_t n = 600;
  const Tensor<float> reference = sample_data(n, gen);
  const double threshold = 0.03;

  // untrained samples and plain noise fail the threshold (so the test can tell)
  models::MLPDenoiser<float> model({.num_train_timesteps = kTrainSteps}, gen);
  const double untrained = energy_distance(sample(model, *ddpm, n, kTrainSteps, gen), reference);
  const double noise = energy_distance(gen.randn<float>({n, 2}), reference);
  std::printf("energy distance: plain noise %.4f, untrained DDPM %.4f\n", noise, untrained);
  CHECK(untrained > threshold);
  CHECK(noise > threshold);

  train(model, *ddpm, 3000, gen);

  struct Sampler {
    const char* name;
    std::unique_ptr<schedulers::Scheduler<float>> sched;
    std::int64_t steps;
  };
  std::vector<Sampler> samplers;
  samplers.push_back({"DDPM", schedulers::make_scheduler<float>("DDPMScheduler", config), kTrainSteps});
  samplers.push_back({"DDIM", schedulers::make_scheduler<float>("DDIMScheduler", config), 20});
  samplers.push_back(
      {"DPM-Solver++", schedulers::make_scheduler<float>("DPMSolverMultistepScheduler", config), 10});
  for (auto& s : samplers) {
    const double d = energy_distance(sample(model, *s.sched, n, s.steps, gen), reference);
    std::printf("energy distance: %-13s %3lld steps %.4f\n", s.name, static_cast<long long>(s.steps), d);
    INFO(s.name << " energy distance " << d);
    CHECK(d < threshold);
  }
  set_num_threads(threads);
}
