// # Diffusion on a 2-D toy distribution
//
// The smallest complete diffusion workflow: points drawn from four Gaussian blobs, a little MLP
// that learns to predict the noise added to them, and every sampler of diffuse::schedulers
// turning fresh noise back into points. Each sampler's result is saved as a scatter plot
// (grey: data, blue: samples), one PNG per sampler.
//
//   toy2d [output_folder]        (default: toy2d_out)
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "diffuse/autograd/elementwise.hpp"
#include "diffuse/core/grad_mode.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/models/mlp_denoiser.hpp"
#include "diffuse/nn/functional.hpp"
#include "diffuse/nn/linear.hpp"
#include "diffuse/optim/adam.hpp"
#include "diffuse/schedulers/factory.hpp"
#include "diffuse/viz/scatter.hpp"

using namespace diffuse;

constexpr std::int64_t kTrainSteps = 200;

// ## The data: four blobs at (+-1, +-1)
Tensor<float> sample_data(std::int64_t n, Generator& gen) {
  Tensor<float> x = gen.randn<float>({n, 2});
  const auto corner = gen.randint_list(0, 4, n);
  for (std::int64_t i = 0; i < n; ++i) {
    x.data()[2 * i] = 0.15f * x.data()[2 * i] + (corner[i] & 1 ? 1.f : -1.f);
    x.data()[2 * i + 1] = 0.15f * x.data()[2 * i + 1] + (corner[i] & 2 ? 1.f : -1.f);
  }
  return x;
}

int main(int argc, char** argv) {
  const std::filesystem::path out_dir = argc > 1 ? argv[1] : "toy2d_out";
  std::filesystem::create_directories(out_dir);
  set_num_threads(1);  // tiny matrices: one thread is fastest
  Generator gen(42);

  // ## Training: add noise with the DDPM schedule, learn to predict it
  const schedulers::json config = {
      {"num_train_timesteps", kTrainSteps}, {"beta_end", 0.04}, {"clip_sample", false}};
  schedulers::DDPMScheduler<float> noise_scheduler = schedulers::DDPMScheduler<float>::from_config(config);
  models::MLPDenoiser<float> model({.num_train_timesteps = kTrainSteps}, gen);
  optim::Adam<float> opt(model.parameters(), {.lr = 3e-3});
  for (int it = 0; it < 4000; ++it) {
    if (it == 3000) opt.set_lr(1e-3);
    const auto x0 = sample_data(256, gen);
    const auto noise = gen.randn<float>({256, 2});
    const auto t = gen.randint_list(0, kTrainSteps, 256);
    const auto noisy = noise_scheduler.add_noise(x0, noise, t);
    auto loss = nn::functional::mse_loss(model(noisy, t), noise);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (it % 500 == 0) std::printf("iteration %4d  loss %.4f\n", it, loss.item());
  }

  // ## Sampling: the same model with every scheduler (they share the training config)
  const auto data = sample_data(1000, gen);
  viz::ScatterPlot({.xmin = -2.5, .xmax = 2.5, .ymin = -2.5, .ymax = 2.5})
      .add(data, {0.3f, 0.3f, 0.3f})
      .save(out_dir / "data.png");
  const std::vector<std::pair<std::string, std::int64_t>> samplers{{"DDPMScheduler", kTrainSteps},
                                                                   {"DDIMScheduler", 20},
                                                                   {"PNDMScheduler", 20},
                                                                   {"EulerDiscreteScheduler", 20},
                                                                   {"EulerAncestralDiscreteScheduler", 20},
                                                                   {"HeunDiscreteScheduler", 10},
                                                                   {"DPMSolverMultistepScheduler", 10},
                                                                   {"UniPCMultistepScheduler", 10}};
  NoGradGuard no_grad;
  for (const auto& [name, steps] : samplers) {
    auto scheduler = schedulers::make_scheduler<float>(name, config);
    scheduler->set_timesteps(steps);
    auto x = gen.randn<float>({1000, 2});
    for (auto& v : x) v = static_cast<float>(v * scheduler->init_noise_sigma());
    for (double t : scheduler->timesteps())
      x = scheduler->step(model(scheduler->scale_model_input(x, t), t), t, x, gen).prev_sample;
    const auto file = out_dir / (name + ".png");
    viz::ScatterPlot({.xmin = -2.5, .xmax = 2.5, .ymin = -2.5, .ymax = 2.5})
        .add(data, {0.8f, 0.8f, 0.8f})
        .add(x)
        .save(file);
    std::printf("%-32s %3lld model evaluations -> %s\n", name.c_str(),
                static_cast<long long>(scheduler->timesteps().size()), file.string().c_str());
  }
}
