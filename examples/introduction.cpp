// The course's introduction notebook ("Introduction to 🤗 Diffusers"), step by step in C++:
// data and transforms, the scheduler and its noise figure, the model, the training loop written
// out, the loss plot, then generating images two ways (option 1: the pipeline; option 2: the
// sampling loop written out), and saving the pipeline for Python's diffusers.
//
// Usage: introduction [--steps N] [--out DIR]    (default: 600 steps, about 10 minutes on 2 cores)
// The full-featured version of this loop (EMA, LR schedules, checkpoints, metrics, image folders)
// is the train_unconditional tool.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include <diffuse/diffuse.hpp>

using namespace diffuse;

int main(int argc, char** argv) try {
  std::int64_t steps = 600;
  std::filesystem::path out = "outputs/introduction";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps"))
      steps = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--out"))
      out = argv[i + 1];
    else
      throw Error(std::string("unknown argument '") + argv[i] + "' (known: --steps N, --out DIR)");
  }
  std::filesystem::create_directories(out);
  Generator gen(0);

  // ## Download a training dataset: Fashion-MNIST, with the notebook's transforms
  // (a random flip, then [0, 1] -> [-1, 1]).
  auto dataset =
      data::with_transform(data::FashionMNIST::train(),
                           data::Compose({data::RandomHorizontalFlip(), data::Normalize({0.5}, {0.5})}));
  data::DataLoader train_dataloader(dataset, {.batch_size = 64, .shuffle = true}, gen);

  // ## Define the scheduler: how much noise to add at each of 1000 timesteps
  schedulers::DDPMScheduler<float> noise_scheduler(
      {.num_train_timesteps = 1000, .beta_schedule = "squaredcos_cap_v2"});
  viz::schedule_plot(noise_scheduler, "squaredcos_cap_v2").save(out / "noise_schedule.svg");
  auto first = *train_dataloader.begin();
  Tensor<float> xb = first.images.slice(0, 8);
  viz::save_image(viz::noise_strip(noise_scheduler, xb, {0, 50, 100, 200, 400, 600, 800, 999}, gen),
                  out / "noisy_images.png", {.nrow = 8, .value_range = {{-1.0, 1.0}}});

  // ## Define the model: the notebook's UNet2DModel (1,707,009 parameters)
  models::UNet2DModel<float> model({.sample_size = 28,
                                    .in_channels = 1,
                                    .out_channels = 1,
                                    .layers_per_block = 2,
                                    .block_out_channels = {32, 64, 64},
                                    .down_block_types = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"},
                                    .up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"}},
                                   gen);
  std::printf("UNet2DModel: %lld parameters\n", static_cast<long long>(model.num_parameters()));

  // ## Create a training loop: noise the images, predict the noise, step AdamW
  optim::AdamW<float> optimizer(model.parameters(), {.lr = 4e-4});
  std::vector<double> losses;
  training::ProgressBar progress(steps, {.desc = "train"});
  for (std::int64_t step = 0; step < steps;) {
    for (auto& batch : train_dataloader) {
      const Tensor<float>& clean_images = batch.images;
      Tensor<float> noise = gen.randn<float>(clean_images.shape());
      auto timesteps = gen.randint(0, 1000, batch.size());  // integers, as torch.randint
      Tensor<float> noisy_images = noise_scheduler.add_noise(clean_images, noise, timesteps);
      Tensor<float> noise_pred = model(noisy_images, timesteps);
      Tensor<float> loss = nn::functional::mse_loss(noise_pred, noise);
      loss.backward();
      optimizer.step();
      optimizer.zero_grad();
      losses.push_back(loss.item());
      progress.update(1, loss.item());
      if (++step == steps) break;
    }
  }
  progress.close();
  viz::loss_plot(losses, {.log_y = true}).save(out / "loss.svg");

  // ## Generate images, option 1: create a pipeline
  pipelines::DDPMPipeline<float> image_pipe(model, noise_scheduler);
  Tensor<float> pipeline_output = image_pipe({.batch_size = 16, .num_inference_steps = 1000}, gen);
  viz::save_image(pipeline_output, out / "pipeline_samples.png", {.nrow = 4});

  // ## Generate images, option 2: write the sampling loop
  {
    NoGradGuard no_grad;
    model.eval();
    noise_scheduler.set_timesteps(1000);
    Tensor<float> sample = gen.randn<float>({16, 1, 28, 28});
    for (double t : noise_scheduler.timesteps()) {
      Tensor<float> residual = model(sample, t);  // the predicted noise
      sample = noise_scheduler.step(residual, t, sample, gen).prev_sample;
    }
    viz::save_image(sample, out / "loop_samples.png", {.nrow = 4, .value_range = {{-1.0, 1.0}}});
  }

  // ## Save the pipeline: it loads in Python with DDPMPipeline.from_pretrained
  image_pipe.save_pretrained(out / "pipeline");
  std::printf(
      "Wrote %s/{noise_schedule.svg, noisy_images.png, loss.svg, pipeline_samples.png, loop_samples.png, "
      "pipeline/}\n",
      out.string().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "introduction: %s\n", e.what());
  return 1;
}
