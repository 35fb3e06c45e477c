// train_unconditional: the C++ counterpart of diffusers'
// examples/unconditional_image_generation/train_unconditional.py, with its flag names.
//
// Trains a UNet2DModel with the DDPM objective on Fashion-MNIST (the default) or on a folder of
// images, and leaves a diffusers pipeline folder in --output_dir (model_index.json, unet/,
// scheduler/, README.md), so Python's DDPMPipeline.from_pretrained(output_dir) loads it.
// Along the way: sample grids, the loss curve, metrics (CSV and JSON lines), checkpoints in
// output_dir/checkpoint-STEP/ that --resume_from_checkpoint continues bit for bit.
//
// The defaults are this project's recipe for Fashion-MNIST on a 2-core CPU (docs/recipes.md):
// about 14 minutes of training and a sample grid.
//
// With --num_class_embeds it trains a class-conditional model for classifier-free guidance (Ho &
// Salimans 2022): a share of the labels (--conditioning_dropout_prob) is replaced by a "no class"
// label, the last row of the class embedding, so one model learns both predictions; at the end it
// draws class_grid.png, one row per class, with guidance (--guidance_scale).
//
// Under `mpirun -np N` (docs/distributed.md) it trains data-parallel, as diffusers' script does under
// `accelerate launch`: each process reads its share of every global batch of N x --train_batch_size
// images, the gradients are averaged every step, and rank 0 alone logs, samples and writes files.
// A sample's noise and timestep depend only on the step and its place in the global batch, so N
// processes train the model one process trains with a batch N times as large.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <unistd.h>

#include <diffuse/diffuse.hpp>

#include "cli.hpp"
#include "data_parallel.hpp"
#include "model_card.hpp"
#include "samplers.hpp"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

struct Args {
  // Data
  std::string dataset = "fashion-mnist";
  fs::path train_data_dir;
  std::int64_t resolution = 28;
  bool center_crop = false, random_flip = false;
  // Model
  fs::path model_config;
  std::optional<std::int64_t> num_class_embeds;  // classes of the data: train with labels
  double conditioning_dropout_prob = 0.1;
  double guidance_scale = 3.0;
  // Training
  std::int64_t train_batch_size = 64, eval_batch_size = 64, num_epochs = 100;
  std::optional<std::int64_t> max_train_steps = 1150;  // planned; ~790 s at 94 images/s (docs/recipes.md)
  std::int64_t gradient_accumulation_steps = 1;
  double learning_rate = 2e-3;
  std::string lr_scheduler = "cosine";
  std::int64_t lr_warmup_steps = 200;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_weight_decay = 1e-6, adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  bool use_ema = true;
  double ema_inv_gamma = 1.0, ema_power = 0.75, ema_max_decay = 0.999;
  std::optional<double> snr_gamma = 5.0;
  // Noise schedule
  std::int64_t ddpm_num_steps = 1000;
  std::string ddpm_beta_schedule = "squaredcos_cap_v2";
  std::string prediction_type = "v_prediction";  // epsilon + cosine betas breaks fast samplers (recipes.md)
  // Evaluation and saving
  std::string eval_scheduler = "dpmpp_2m";
  std::int64_t ddpm_num_inference_steps = 20;
  std::int64_t save_images_epochs = 1, save_model_epochs = 1;
  std::optional<std::int64_t> checkpointing_steps = 500, checkpoints_total_limit = 2;
  std::string resume_from_checkpoint;
  fs::path output_dir = "ddpm-model";
  std::int64_t seed = 0;
  double time_budget = 840;
};

Args parse_args(int argc, char** argv) {
  Args a;
  cli::Parser p(
      "train_unconditional",
      "Trains a diffusers UNet2DModel to generate images (DDPM objective) and writes a diffusers\n"
      "pipeline folder. Flags follow diffusers' train_unconditional.py; the defaults are the recipe\n"
      "for Fashion-MNIST on a 2-core CPU (docs/recipes.md).");
  p.add("--dataset", a.dataset, "the training data when --train_data_dir is not given: fashion-mnist");
  p.add("--train_data_dir", a.train_data_dir,
        "a folder of images (sub-folders are classes) to train on instead");
  p.add("--resolution", a.resolution, "images are resized to this size (shorter side), then cropped square");
  p.add("--center_crop", a.center_crop, "crop the center instead of a random square");
  p.add("--random_flip", a.random_flip, "flip images horizontally at random");
  p.add("--model_config", a.model_config,
        "a diffusers UNet2DModel config.json (default: the recipe's model)");
  p.add("--num_class_embeds", a.num_class_embeds,
        "train with class labels: the number of classes of the data (Fashion-MNIST: 10; an image\n"
        "      folder: its sub-folders); the UNet gets one more, the \"no class\" label of guidance");
  p.add("--conditioning_dropout_prob", a.conditioning_dropout_prob,
        "share of the training labels replaced by \"no class\" (classifier-free guidance)");
  p.add("--guidance_scale", a.guidance_scale,
        "classifier-free guidance of the class-conditional sample grids (1: none)");
  p.add("--train_batch_size", a.train_batch_size,
        "images per training micro-batch of each process (mpirun -np N: N times this in all)");
  p.add("--eval_batch_size", a.eval_batch_size, "images in each sample grid");
  p.add("--num_epochs", a.num_epochs, "passes over the data (--max_train_steps stops earlier)");
  p.add("--max_train_steps", a.max_train_steps, "optimizer steps in all (none: num_epochs decides)");
  p.add("--gradient_accumulation_steps", a.gradient_accumulation_steps, "micro-batches per optimizer step");
  p.add("--learning_rate", a.learning_rate, "peak learning rate of AdamW");
  p.add("--lr_scheduler", a.lr_scheduler,
        "linear, cosine, cosine_with_restarts, polynomial, constant or constant_with_warmup");
  p.add("--lr_warmup_steps", a.lr_warmup_steps, "steps of linear warmup");
  p.add("--adam_beta1", a.adam_beta1, "AdamW beta1");
  p.add("--adam_beta2", a.adam_beta2, "AdamW beta2");
  p.add("--adam_weight_decay", a.adam_weight_decay, "AdamW weight decay");
  p.add("--adam_epsilon", a.adam_epsilon, "AdamW epsilon");
  p.add("--max_grad_norm", a.max_grad_norm, "clip the gradient norm to this (0: no clipping)");
  p.add("--use_ema", a.use_ema, "keep an exponential moving average of the weights and save that");
  p.add("--ema_inv_gamma", a.ema_inv_gamma, "EMA warmup inv_gamma");
  p.add("--ema_power", a.ema_power, "EMA warmup power");
  p.add("--ema_max_decay", a.ema_max_decay, "the largest EMA decay");
  p.add("--snr_gamma", a.snr_gamma, "min-SNR-gamma loss weighting (none: plain MSE)");
  p.add("--ddpm_num_steps", a.ddpm_num_steps, "training timesteps of the DDPM noise schedule");
  p.add("--ddpm_beta_schedule", a.ddpm_beta_schedule, "linear, scaled_linear or squaredcos_cap_v2");
  p.add("--prediction_type", a.prediction_type, "what the UNet predicts: epsilon, v_prediction or sample");
  p.add("--eval_scheduler", a.eval_scheduler,
        "sampler of the sample grids: ddpm, ddim, pndm, euler, euler_ancestral, heun, dpmpp_2m, unipc");
  p.add("--ddpm_num_inference_steps", a.ddpm_num_inference_steps, "denoising steps of the sample grids");
  p.add("--save_images_epochs", a.save_images_epochs,
        "write a sample grid every this many epochs (and at the end)");
  p.add("--save_model_epochs", a.save_model_epochs,
        "write the pipeline every this many epochs (and at the end)");
  p.add("--checkpointing_steps", a.checkpointing_steps, "save a resumable checkpoint every this many steps");
  p.add("--checkpoints_total_limit", a.checkpoints_total_limit, "keep at most this many checkpoints");
  p.add("--resume_from_checkpoint", a.resume_from_checkpoint,
        "a checkpoint folder, or 'latest' in --output_dir. Flags that shape the LR schedule may\n"
        "      differ from the checkpoint's run; each difference is reported. --max_train_steps, "
        "--num_epochs,\n"
        "      --gradient_accumulation_steps and --lr_warmup_steps rebuild the schedule for the new values\n"
        "      at the saved step; --learning_rate keeps the checkpoint's; another --lr_scheduler or\n"
        "      --train_batch_size is refused");
  p.add("--output_dir", a.output_dir, "where the pipeline, samples, metrics and checkpoints go");
  p.add("--seed", a.seed, "seed of every random draw");
  p.add("--time_budget", a.time_budget,
        "seconds of training; then stop cleanly, save and sample (0: no limit)");
  p.parse(argc, argv);

  auto positive = [](const char* flag, std::int64_t v) {
    if (v < 1) throw cli::UsageError(std::string(flag) + " must be at least 1, got " + std::to_string(v));
  };
  positive("--resolution", a.resolution);
  positive("--train_batch_size", a.train_batch_size);
  positive("--eval_batch_size", a.eval_batch_size);
  positive("--num_epochs", a.num_epochs);
  positive("--gradient_accumulation_steps", a.gradient_accumulation_steps);
  positive("--ddpm_num_steps", a.ddpm_num_steps);
  positive("--ddpm_num_inference_steps", a.ddpm_num_inference_steps);
  positive("--save_images_epochs", a.save_images_epochs);
  positive("--save_model_epochs", a.save_model_epochs);
  if (a.max_train_steps) positive("--max_train_steps", *a.max_train_steps);
  if (a.checkpointing_steps) positive("--checkpointing_steps", *a.checkpointing_steps);
  if (a.checkpoints_total_limit) positive("--checkpoints_total_limit", *a.checkpoints_total_limit);
  if (a.lr_warmup_steps < 0) throw cli::UsageError("--lr_warmup_steps must not be negative");
  if (!(a.learning_rate > 0)) throw cli::UsageError("--learning_rate must be positive");
  if (a.time_budget < 0) throw cli::UsageError("--time_budget must not be negative");
  if (a.snr_gamma && !(*a.snr_gamma > 0)) throw cli::UsageError("--snr_gamma must be positive");
  if (!(a.adam_beta1 >= 0 && a.adam_beta1 < 1)) throw cli::UsageError("--adam_beta1 must be in [0, 1)");
  if (!(a.adam_beta2 >= 0 && a.adam_beta2 < 1)) throw cli::UsageError("--adam_beta2 must be in [0, 1)");
  if (!(a.adam_epsilon > 0)) throw cli::UsageError("--adam_epsilon must be positive");
  if (a.adam_weight_decay < 0) throw cli::UsageError("--adam_weight_decay must not be negative");
  if (!(a.ema_max_decay >= 0 && a.ema_max_decay <= 1))
    throw cli::UsageError("--ema_max_decay must be in [0, 1]");
  if (!(a.ema_inv_gamma > 0) || !(a.ema_power > 0))
    throw cli::UsageError("--ema_inv_gamma and --ema_power must be positive");
  if (a.max_grad_norm < 0) throw cli::UsageError("--max_grad_norm must not be negative (0: no clipping)");
  if (a.num_class_embeds) positive("--num_class_embeds", *a.num_class_embeds);
  if (!(a.conditioning_dropout_prob >= 0 && a.conditioning_dropout_prob <= 1))
    throw cli::UsageError("--conditioning_dropout_prob must be in [0, 1]");
  if (!std::isfinite(a.guidance_scale)) throw cli::UsageError("--guidance_scale must be a finite number");
  if (a.output_dir.empty()) throw cli::UsageError("--output_dir must not be empty");
  if (a.ddpm_num_inference_steps > a.ddpm_num_steps)
    throw cli::UsageError("--ddpm_num_inference_steps must not exceed --ddpm_num_steps");
  cli::check_choice("--dataset", a.dataset, {"fashion-mnist"});
  cli::check_choice("--lr_scheduler", a.lr_scheduler, optim::schedule_names());
  cli::check_choice("--ddpm_beta_schedule", a.ddpm_beta_schedule,
                    {"linear", "scaled_linear", "squaredcos_cap_v2"});
  cli::check_choice("--prediction_type", a.prediction_type, {"epsilon", "v_prediction", "sample"});
  cli::check_choice("--eval_scheduler", a.eval_scheduler, tools::sampler_names());
  return a;
}

// The recipe's model for 28x28 Fashion-MNIST (docs/recipes.md), or the given config.json; with
// --num_class_embeds, a class embedding of the classes + 1 ("no class").
models::UNet2DConfig model_config(const Args& a, std::int64_t channels) {
  const std::optional<std::int64_t> class_embeds =
      a.num_class_embeds ? std::optional<std::int64_t>(*a.num_class_embeds + 1) : std::nullopt;
  if (!a.model_config.empty()) {
    models::UNet2DConfig c = models::UNet2DConfig::from_json(io::read_json(a.model_config));
    if (c.in_channels != channels || c.out_channels != channels)
      throw Error("in_channels and out_channels must be " + std::to_string(channels) +
                  " for this data (got " + std::to_string(c.in_channels) + " and " +
                  std::to_string(c.out_channels) + ")");
    if (c.num_class_embeds && c.num_class_embeds != class_embeds)
      throw Error("num_class_embeds is " + std::to_string(*c.num_class_embeds) +
                  (a.num_class_embeds
                       ? ", but --num_class_embeds " + std::to_string(*a.num_class_embeds) + " needs " +
                             std::to_string(*class_embeds) + " (the classes and \"no class\")"
                       : "; to train with labels, pass --num_class_embeds (the classes of the data)"));
    if (c.class_embed_type && a.num_class_embeds)
      throw Error("class_embed_type \"" + *c.class_embed_type +
                  "\" takes no class labels; --num_class_embeds needs class_embed_type null");
    c.num_class_embeds = class_embeds;
    c.sample_size = a.resolution;
    c.to_json();  // a config diffusers 0.21 cannot load fails now, not at the first save
    return c;
  }
  // The notebook's widths without attention: in 14 minutes on 2 cores the 40% higher throughput buys
  // more than attention does at 28x28 (docs/recipes.md).
  return {.sample_size = a.resolution,
          .in_channels = channels,
          .out_channels = channels,
          .layers_per_block = 2,
          .block_out_channels = {32, 64, 64},
          .down_block_types = {"DownBlock2D", "DownBlock2D", "DownBlock2D"},
          .up_block_types = {"UpBlock2D", "UpBlock2D", "UpBlock2D"},
          .add_attention = false,
          .num_class_embeds = class_embeds};
}

// The run's UNet. An error from a value of --model_config (a key, or a module it sizes such as
// GroupNorm) names the file.
models::UNet2DModel<float> make_unet(const Args& a, std::int64_t channels, Generator& gen) {
  try {
    return models::UNet2DModel<float>(model_config(a, channels), gen);
  } catch (const FileError&) {
    throw;  // reading the file failed: the message names it
  } catch (const Error&) {
    if (a.model_config.empty()) throw;
    rethrow_with_prefix("'" + a.model_config.string() + "': ");
  }
}

// Resize + crop + flip + map to [-1, 1], as the diffusers script's torchvision transforms.
data::Compose augmentations(const Args& a) {
  std::vector<data::Transform> t{data::Resize(a.resolution)};
  if (a.center_crop)
    t.push_back(data::CenterCrop(a.resolution));
  else
    t.push_back(data::RandomCrop(a.resolution));
  if (a.random_flip) t.push_back(data::RandomHorizontalFlip());
  t.push_back(data::Normalize({0.5}, {0.5}));
  return data::Compose(std::move(t));
}

// Keeps the lines of a metrics file (CSV with a header, or JSON lines) whose step is at most `step`.
void keep_rows_up_to(const fs::path& path, std::int64_t step, bool csv) {
  if (!fs::exists(path)) return;
  std::string text = io::read_file_bytes(path);
  if (!text.empty() && text.back() != '\n')
    text.erase(text.rfind('\n') + 1);  // a torn last line (npos + 1 == 0)
  std::istringstream in(text);
  std::string line, kept;
  for (bool first = true; std::getline(in, line); first = false) {
    if (line.empty()) continue;
    std::int64_t row_step = 0;
    try {
      row_step = csv ? (first ? -1 : std::stoll(line.substr(0, line.find(','))))
                     : nlohmann::json::parse(line).at("step").get<std::int64_t>();
    } catch (const std::exception&) {
      continue;  // a torn last line
    }
    if (row_step <= step) kept += line + "\n";
  }
  io::write_file_atomic(path, kept);
}

// The flags that shape the LR schedule and the batches, saved in each checkpoint so a resume can
// tell what changed.
nlohmann::json run_settings(const Args& a, std::int64_t total_steps, int processes) {
  return {{"processes", processes},
          {"seed", a.seed},
          {"total_steps", total_steps},
          {"max_train_steps", a.max_train_steps ? nlohmann::json(*a.max_train_steps) : nlohmann::json()},
          {"num_epochs", a.num_epochs},
          {"gradient_accumulation_steps", a.gradient_accumulation_steps},
          {"train_batch_size", a.train_batch_size},
          {"lr_scheduler", a.lr_scheduler},
          {"lr_warmup_steps", a.lr_warmup_steps},
          {"learning_rate", a.learning_rate},
          {"num_class_embeds", a.num_class_embeds ? nlohmann::json(*a.num_class_embeds) : nlohmann::json()},
          {"conditioning_dropout_prob", a.conditioning_dropout_prob}};
}

// Says on stderr what a resume does with settings that differ from the checkpoint's run (see the
// help of --resume_from_checkpoint); throws for the ones it cannot continue with. A checkpoint
// without saved settings (an older version's) is not compared.
void check_resume_settings(const nlohmann::json& saved, const nlohmann::json& now, std::int64_t step,
                           bool verbose) {
  if (!saved.is_object()) return;
  auto text = [](const nlohmann::json& v) {
    return v.is_null() ? std::string("none") : v.is_string() ? v.get<std::string>() : io::describe_json(v);
  };
  auto differs = [&](const char* key) { return saved.contains(key) && saved[key] != now[key]; };
  auto difference = [&](const char* key) {
    return std::string("--") + key + " " + text(now[key]) + " differs from the checkpoint's " +
           text(saved[key]);
  };
  auto say = [verbose](const std::string& line) {
    if (verbose) std::fprintf(stderr, "train_unconditional: resume: %s\n", line.c_str());
  };
  // Each process's share of the data and its dropout stream continue only on as many processes.
  const auto processes = [](const nlohmann::json& settings) { return settings.value("processes", 1); };
  const auto runs_on = [](int n) {
    return n == 1 ? std::string("one process") : std::to_string(n) + " processes";
  };
  if (processes(saved) != processes(now))
    throw Error("resume: the checkpoint was written by a run on " + runs_on(processes(saved)) +
                ", this run is on " + runs_on(processes(now)) + "; a run continues only on as many: resume " +
                (processes(saved) == 1 ? std::string("without mpirun")
                                       : "with mpirun -np " + std::to_string(processes(saved))));
  if (differs("lr_scheduler"))
    throw Error("resume: " + difference("lr_scheduler") +
                "; a run cannot change its schedule: resume with --lr_scheduler " +
                text(saved["lr_scheduler"]));
  if (differs("seed"))
    throw Error("resume: " + difference("seed") +
                "; each sample's noise and timestep are drawn from the seed: resume with --seed " +
                text(saved["seed"]));
  if (differs("num_class_embeds"))
    throw Error("resume: " + difference("num_class_embeds") +
                "; the model's class embedding has another size");
  if (differs("train_batch_size"))
    throw Error("resume: " + difference("train_batch_size") + "; the saved data position counts batches of " +
                text(saved["train_batch_size"]) + ": resume with --train_batch_size " +
                text(saved["train_batch_size"]));
  const std::string total = text(now["total_steps"]);
  if (differs("max_train_steps"))
    say(difference("max_train_steps") + "; the LR schedule is rebuilt for " + total + " steps");
  else if (differs("total_steps"))
    say("the run now has " + total + " steps (--num_epochs " + text(now["num_epochs"]) +
        ", --gradient_accumulation_steps " + text(now["gradient_accumulation_steps"]) +
        "), the checkpoint's " + text(saved["total_steps"]) + "; the LR schedule is rebuilt for " + total +
        " steps");
  if (differs("total_steps") && step >= now["total_steps"].get<std::int64_t>())
    say("the checkpoint is at step " + std::to_string(step) + ", the run is over: nothing left to train");
  if (differs("lr_warmup_steps"))
    say(difference("lr_warmup_steps") + "; the LR schedule is rebuilt with " + text(now["lr_warmup_steps"]) +
        " warmup steps");
  if (differs("gradient_accumulation_steps"))
    say(difference("gradient_accumulation_steps") + "; each step from here on accumulates " +
        text(now["gradient_accumulation_steps"]) + " micro-batches");
  if (differs("conditioning_dropout_prob"))
    say(difference("conditioning_dropout_prob") +
        "; labels are dropped with the new probability from here on");
  if (differs("learning_rate"))
    say(difference("learning_rate") +
        "; the checkpoint's learning rate is kept (the optimizer state holds it)");
}

template <class Dataset>
int train(const Args& a, Dataset& dataset, const std::string& data_description,
          const std::vector<std::string>& class_names, tools::DataParallel& ranks) {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - started).count(); };
  const bool main_rank = ranks.is_main();  // logs, samples and writes files
  // Class-conditional: labels 0 .. classes - 1, and `classes` itself for "no class".
  const std::int64_t classes = a.num_class_embeds.value_or(0);
  // Guidance needs the "no class" prediction, which only label dropout trains.
  const double guidance = a.conditioning_dropout_prob > 0 ? a.guidance_scale : 1.0;
  if (classes > 0 && a.conditioning_dropout_prob == 0 && a.guidance_scale != 1.0 && main_rank)
    std::fprintf(
        stderr,
        "train_unconditional: --conditioning_dropout_prob 0 trains no \"no class\" prediction: the sample "
        "grids use no guidance\n");
  if (classes > 0 && classes != static_cast<std::int64_t>(class_names.size()))
    throw Error("--num_class_embeds " + std::to_string(classes) + " does not match the data, which has " +
                (class_names.empty() ? std::string("no classes (an image folder without sub-folders)")
                                     : std::to_string(class_names.size()) + " classes"));
  if (main_rank) fs::create_directories(a.output_dir);
  // Every rank draws the same model initialisation and epoch orders from `gen`.
  Generator gen(static_cast<std::uint64_t>(a.seed));

  data::DataLoader loader(dataset,
                          {.batch_size = a.train_batch_size,
                           .shuffle = true,
                           .drop_last = true,
                           .num_replicas = ranks.size(),
                           .rank = ranks.rank()},
                          gen);
  if (loader.size() == 0)
    throw Error("the data set has " + std::to_string(dataset.size()) + " images, fewer than one batch of " +
                std::to_string(a.train_batch_size * ranks.size()));
  training::ResumableLoader epochs(loader, gen);
  const std::int64_t channels = dataset.sample_shape()[0];
  const std::int64_t global_batch = a.train_batch_size * ranks.size() * a.gradient_accumulation_steps;
  // A sample's noise and timestep: keyed by the step and its place in the global batch.
  const training::SampleStreams streams(static_cast<std::uint64_t>(a.seed));
  const std::vector<std::int64_t> positions =
      data::global_batch_positions(a.train_batch_size, ranks.size(), ranks.rank());

  models::UNet2DModel<float> unet = make_unet(a, channels, gen);
  unet.train();
  // Dropout draws from the model's own generator, one stream per rank.
  unet.generator().manual_seed(ranks.rank() == 0
                                   ? static_cast<std::uint64_t>(a.seed) + 1
                                   : data::detail::mix_seed(static_cast<std::uint64_t>(a.seed) + 1,
                                                            static_cast<std::uint64_t>(ranks.rank())));
  ranks.share(unet);  // rank 0's weights on every rank; gradients averaged from now on
  schedulers::DDPMScheduler<float> noise_scheduler({.num_train_timesteps = a.ddpm_num_steps,
                                                    .beta_schedule = a.ddpm_beta_schedule,
                                                    .prediction_type = a.prediction_type});
  const Tensor<float> alphas_cumprod = noise_scheduler.alphas_cumprod();

  const std::int64_t steps_per_epoch = loader.size() / a.gradient_accumulation_steps;
  if (steps_per_epoch == 0)
    throw Error("--gradient_accumulation_steps " + std::to_string(a.gradient_accumulation_steps) +
                " exceeds the batches in an epoch (" + std::to_string(loader.size()) + ")");
  const std::int64_t total_steps = a.max_train_steps.value_or(a.num_epochs * steps_per_epoch);
  optim::AdamW<float> opt(optim::weight_decay_groups(unet, a.adam_weight_decay),
                          {.lr = a.learning_rate,
                           .beta1 = a.adam_beta1,
                           .beta2 = a.adam_beta2,
                           .eps = a.adam_epsilon,
                           .weight_decay = a.adam_weight_decay});
  auto lr_schedule = optim::get_scheduler(
      a.lr_scheduler, opt, {.num_warmup_steps = a.lr_warmup_steps, .num_training_steps = total_steps});
  std::optional<optim::EMAModel<float>> ema;
  if (a.use_ema)
    ema.emplace(unet, optim::EMAOptions{.decay = a.ema_max_decay,
                                        .use_ema_warmup = true,
                                        .inv_gamma = a.ema_inv_gamma,
                                        .power = a.ema_power});

  training::CheckpointManager checkpoints(a.output_dir,
                                          {.checkpoints_total_limit = a.checkpoints_total_limit});
  training::TrainingState<float> state{.model = &unet,
                                       .optimizer = &opt,
                                       .lr_scheduler = &lr_schedule,
                                       .ema = ema ? &*ema : nullptr,
                                       .data_loader = &epochs};
  // Every rank's dropout stream goes into the checkpoint: rank 0 saves the others' as
  // "dropout.rank1", ...; each rank restores its own.
  std::vector<Generator> other_ranks_dropout(static_cast<std::size_t>(ranks.size()));
  state.generators = {{"train", &gen}};
  for (int r = 0; r < ranks.size(); ++r)
    if (main_rank || r == ranks.rank())
      state.generators[r == 0 ? "dropout" : "dropout.rank" + std::to_string(r)] =
          r == ranks.rank() ? &unet.generator() : &other_ranks_dropout[static_cast<std::size_t>(r)];
  auto save_checkpoint = [&] {  // on every rank (collective), written by rank 0
    const std::vector<GeneratorState> dropout = ranks.gather_states(unet.generator());
    if (!main_rank) return;
    for (std::size_t r = 1; r < dropout.size(); ++r) other_ranks_dropout[r].set_state(dropout[r]);
    checkpoints.save(state);
  };
  const nlohmann::json settings = run_settings(a, total_steps, ranks.size());
  if (!a.resume_from_checkpoint.empty()) {
    // As diffusers' script: a checkpoint name is looked up in --output_dir. Rank 0 picks the folder
    // ("latest": the newest complete one) and every rank loads that one.
    std::string which = a.resume_from_checkpoint;
    if (which != "latest" && !fs::exists(which) && fs::exists(a.output_dir / which))
      which = (a.output_dir / which).string();
    std::string from;
    if (main_rank)
      if (const std::optional<fs::path> chosen = checkpoints.resolve(which)) from = chosen->string();
    from = ranks.from_main(from);
    if (!from.empty()) {
      const nlohmann::json info = training::read_checkpoint_info(from);
      const nlohmann::json extra = info.value("extra", nlohmann::json::object());
      if (extra.is_object() && info.contains("global_step") && info["global_step"].is_number_integer())
        check_resume_settings(extra.value("settings", nlohmann::json()), settings,
                              info["global_step"].get<std::int64_t>(), main_rank);
      // The schedule restores after the optimizer and sets each group's lr from its restored
      // initial_lr, so a rebuilt schedule's rate applies from the first step. Every rank reads the
      // checkpoint: on a cluster, --output_dir must be on a file system all machines share.
      checkpoints.resume(from, state);
      if (!ranks.same_on_all(std::to_string(state.global_step) + " " + std::to_string(state.epoch)))
        throw Error("resume: the ranks read different checkpoints from '" + from +
                    "'; on several machines, --output_dir must be on a shared file system");
      if (main_rank)
        std::printf("Resumed from step %lld (epoch %lld)\n", static_cast<long long>(state.global_step),
                    static_cast<long long>(state.epoch));
    } else if (main_rank) {
      std::printf("No checkpoint in '%s' to resume from: starting a new run\n",
                  a.output_dir.string().c_str());
    }
  }
  const bool resumed = state.global_step > 0;
  state.extra["settings"] = settings;  // this run's, in every checkpoint it saves

  if (main_rank) {
    std::printf("%s\nUNet2DModel: %lld parameters; %lld steps of %lld images (%lld steps per epoch)\n",
                data_description.c_str(), static_cast<long long>(unet.num_parameters()),
                static_cast<long long>(total_steps), static_cast<long long>(global_batch),
                static_cast<long long>(steps_per_epoch));
    if (ranks.size() > 1)
      std::printf("Data-parallel on %d processes: %lld images per process and micro-batch\n", ranks.size(),
                  static_cast<long long>(a.train_batch_size));
  }

  // The pipeline that samples and saves: the UNet (EMA weights swapped in) and the eval sampler.
  std::shared_ptr<schedulers::Scheduler<float>> sampler =
      tools::make_sampler<float>(a.eval_scheduler, noise_scheduler.to_json());
  pipelines::DDPMPipeline<float> pipe(unet, *sampler);
  if (main_rank) fs::create_directories(a.output_dir / "samples");
  auto with_ema_weights = [&](auto&& fn) {
    if (ema) {
      ema->store(unet);
      ema->copy_to(unet);
    }
    fn();
    if (ema) ema->restore(unet);
  };
  auto save_samples = [&](const std::string& tag) {
    Generator sample_gen(
        static_cast<std::uint64_t>(a.seed));  // the same noise every time: progress is visible
    pipelines::SampleOptions options{.batch_size = a.eval_batch_size,
                                     .num_inference_steps = a.ddpm_num_inference_steps};
    if (classes > 0) {  // the classes in turn, guided
      for (std::int64_t i = 0; i < a.eval_batch_size; ++i) options.class_labels.push_back(i % classes);
      options.guidance_scale = guidance;
    }
    Tensor<float> images;
    with_ema_weights([&] { images = pipe(options, sample_gen); });
    const auto nrow = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(a.eval_batch_size))));
    viz::save_image(images, a.output_dir / "samples" / (tag + ".png"), {.nrow = nrow});
    viz::save_image(images, a.output_dir / "samples.png", {.nrow = nrow});
  };
  // class_grid.png: one row of ten per class, guided; a class at a time, so memory stays bounded.
  auto save_class_grid = [&] {
    constexpr std::int64_t kPerClass = 10;
    Generator grid_gen(static_cast<std::uint64_t>(a.seed));
    std::vector<Tensor<float>> rows;
    with_ema_weights([&] {
      for (std::int64_t k = 0; k < classes; ++k)
        rows.push_back(pipe({.batch_size = kPerClass,
                             .num_inference_steps = a.ddpm_num_inference_steps,
                             .class_labels = {k},
                             .guidance_scale = guidance},
                            grid_gen));
    });
    viz::save_image(concat(rows), a.output_dir / "class_grid.png", {.nrow = kPerClass});
  };
  tools::ModelCard card{.dataset = data_description,
                        .resolution = a.resolution,
                        .batch_size = global_batch,
                        .learning_rate = a.learning_rate,
                        .lr_scheduler = a.lr_scheduler,
                        .use_ema = a.use_ema,
                        .prediction_type = a.prediction_type,
                        .beta_schedule = a.ddpm_beta_schedule,
                        .num_train_timesteps = a.ddpm_num_steps,
                        .num_parameters = unet.num_parameters(),
                        .class_names = classes > 0 ? class_names : std::vector<std::string>{},
                        .conditioning_dropout_prob = a.conditioning_dropout_prob,
                        .guidance_scale = guidance};
  auto save_pipeline = [&] {
    with_ema_weights([&] {
      // The folder holds the training scheduler (DDPM), as diffusers' script saves it.
      pipelines::DDPMPipeline<float> out(unet, noise_scheduler);
      out.save_pretrained(a.output_dir);
    });
    card.steps = state.global_step;
    card.epochs = state.epoch;
    card.has_samples = fs::exists(a.output_dir / "samples.png");
    card.has_class_grid = fs::exists(a.output_dir / "class_grid.png");
    tools::write_model_card(a.output_dir, card);
  };

  // Rank 0's files and terminal output.
  std::optional<training::MetricsLogger> csv, jsonl;
  std::optional<training::ProgressBar> progress;
  std::vector<double> losses;
  if (main_rank) {
    if (resumed) {  // rows logged after the checkpoint by the interrupted run are logged again
      keep_rows_up_to(a.output_dir / "metrics.csv", state.global_step, true);
      keep_rows_up_to(a.output_dir / "metrics.jsonl", state.global_step, false);
    }
    csv.emplace(a.output_dir / "metrics.csv", training::MetricsOptions{.append = resumed});
    jsonl.emplace(a.output_dir / "metrics.jsonl", training::MetricsOptions{.append = resumed});
    for (const auto& row : training::read_metrics(a.output_dir / "metrics.csv"))
      if (row.contains("loss") && row.at("loss").is_number() &&
          row.at("step").get<std::int64_t>() <= state.global_step)
        losses.push_back(row.at("loss").get<double>());
    progress.emplace(total_steps, training::ProgressOptions{.desc = "train"});
    progress->update(state.global_step);
  }
  const bool on_terminal = isatty(fileno(stderr));
  bool out_of_time = false;
  double loss_sum = 0;
  std::int64_t micro = 0, images_seen = 0;
  const double train_start = seconds();
  while (state.global_step < total_steps && !out_of_time) {
    for (auto& batch : epochs) {
      const Tensor<float>& clean = batch.images;
      auto [noise, t, uniform] =
          streams.draw<float>(clean.shape(), a.ddpm_num_steps, state.global_step, micro, positions);
      Tensor<float> noisy = noise_scheduler.add_noise(clean, noise, t);
      Tensor<float> target = a.prediction_type == "epsilon" ? noise
                             : a.prediction_type == "v_prediction"
                                 ? noise_scheduler.get_velocity(clean, noise, t)
                                 : clean;
      Tensor<float> labels;  // with classes: each sample's, or "no class" with the dropout probability
      if (classes > 0) {
        labels = Tensor<float>::empty({batch.size()});
        for (std::int64_t i = 0; i < batch.size(); ++i)
          labels.data()[i] =
              static_cast<float>(uniform[static_cast<std::size_t>(i)] < a.conditioning_dropout_prob
                                     ? classes
                                     : batch.label_ids[static_cast<std::size_t>(i)]);
      }
      Tensor<float> pred = unet(noisy, t, labels);
      Tensor<float> loss;
      if (a.snr_gamma) {
        Tensor<float> w = training::min_snr_weights(alphas_cumprod, t, *a.snr_gamma, a.prediction_type);
        loss =
            mean(square(pred - target) * w.reshape({batch.size(), 1, 1, 1}));  // diffusers' per-image weights
      } else if (a.prediction_type == "sample") {  // diffusers' script weights x0 errors by the SNR
        Tensor<float> w = training::compute_snr(alphas_cumprod, t);
        loss = mean(square(pred - target) * w.reshape({batch.size(), 1, 1, 1}));
      } else {
        loss = nn::functional::mse_loss(pred, target);
      }
      if (a.gradient_accumulation_steps > 1) loss = loss / static_cast<float>(a.gradient_accumulation_steps);
      if (micro == 0) opt.zero_grad();
      ranks.before_backward(micro + 1 == a.gradient_accumulation_steps);
      loss.backward();
      loss_sum += loss.item();
      images_seen += batch.size() * ranks.size();
      if (++micro < a.gradient_accumulation_steps) continue;
      micro = 0;
      ranks.average_gradients();
      const double grad_norm =
          a.max_grad_norm > 0 ? optim::clip_grad_norm_(unet.parameters(), a.max_grad_norm) : 0.0;
      opt.step();
      lr_schedule.step();
      if (ema) ema->step(unet);
      ++state.global_step;
      const double elapsed = seconds();
      // One collective a step: the loss of the global batch, and whether a rank ran out of time
      // (rank 0's clock decides, so all ranks stop after the same step).
      const auto [step_loss, stop] =
          ranks.mean_loss_and_any_stop(loss_sum, main_rank && a.time_budget > 0 && elapsed >= a.time_budget);
      loss_sum = 0;
      if (main_rank) {
        training::MetricsRow row = {{"step", state.global_step},
                                    {"epoch", epochs.epoch()},
                                    {"loss", step_loss},
                                    {"lr", opt.param_groups()[0].lr},
                                    {"grad_norm", grad_norm},
                                    {"ema_decay", ema ? ema->cur_decay_value() : 0.0},
                                    {"images_per_s", images_seen / std::max(elapsed - train_start, 1e-9)},
                                    {"time", elapsed}};
        csv->log(row);
        jsonl->log(row);
        losses.push_back(step_loss);
        progress->update(1, step_loss);
        if (!on_terminal &&
            (state.global_step % 100 == 0 || state.global_step == 1))  // a log file gets a line now and then
          std::printf("step %lld/%lld  loss %.4f  lr %.2e  %.0f images/s  %.0f s\n",
                      static_cast<long long>(state.global_step), static_cast<long long>(total_steps),
                      step_loss, opt.param_groups()[0].lr, row["images_per_s"].get<double>(), elapsed);
      }
      if (a.checkpointing_steps && state.global_step % *a.checkpointing_steps == 0) {
        state.epoch = epochs.epoch();
        save_checkpoint();
      }
      if (stop) {
        out_of_time = true;
        break;
      }
      if (state.global_step >= total_steps) break;
    }
    if (out_of_time || state.global_step >= total_steps) break;
    // An epoch ended.
    state.epoch = epochs.epoch();
    const std::int64_t done = epochs.epoch();
    if (main_rank) {
      if (done % a.save_images_epochs == 0) save_samples("epoch_" + std::to_string(done));
      if (done % a.save_model_epochs == 0) save_pipeline();
      viz::loss_plot(losses, {.log_y = true}).save(a.output_dir / "loss.svg");
    }
  }
  state.epoch = epochs.epoch();
  save_checkpoint();
  if (!main_rank) return 0;
  progress->close();
  if (out_of_time)
    std::printf("Time budget of %.0f s spent after step %lld: stopping\n", a.time_budget,
                static_cast<long long>(state.global_step));
  viz::loss_plot(losses, {.log_y = true}).save(a.output_dir / "loss.svg");
  save_samples("step_" + std::to_string(state.global_step));
  if (classes > 0) save_class_grid();
  save_pipeline();
  std::printf(
      "Trained %lld steps in %.0f s (%.0f images/s); wrote %s/{model_index.json, unet/, scheduler/, "
      "README.md, samples.png,%s loss.svg, metrics.csv, metrics.jsonl, checkpoint-%lld/}\n",
      static_cast<long long>(state.global_step), seconds(),
      images_seen / std::max(seconds() - train_start, 1e-9), a.output_dir.string().c_str(),
      classes > 0 ? " class_grid.png," : "", static_cast<long long>(state.global_step));
  if (ranks.size() > 1)
    std::printf("Rank 0 spent %.1f s in the gradient all-reduce that backward() did not hide\n",
                ranks.seconds_in_allreduce());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach a log file as they are written
  Args args;
  try {  // before MPI starts, so that --help ends the program cleanly on every rank
    args = parse_args(argc, argv);
  } catch (const std::exception& e) {  // every rank parses the same flags: one of them says it
    if (tools::DataParallel::launcher_rank() == 0)
      std::fprintf(stderr, "train_unconditional: %s\n", e.what());
    return 2;
  }
  std::optional<tools::DataParallel> ranks;  // MPI under mpirun, else a single process
  try {
    ranks.emplace(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_unconditional: %s\n", e.what());
    return 1;
  }
  try {
    if (!args.train_data_dir.empty()) {
      if (!fs::is_directory(args.train_data_dir))
        throw FileError("--train_data_dir '" + args.train_data_dir.string() + "' is not a folder");
      data::ImageFolder folder(args.train_data_dir, {.channels = 3});
      if (folder.size() == 0)
        throw FileError("--train_data_dir '" + args.train_data_dir.string() + "' holds no readable image (" +
                        std::to_string(folder.skipped().size()) + " skipped)");
      if (!folder.skipped().empty() && ranks->is_main()) std::fputs(folder.summary().c_str(), stderr);
      const std::string what = "image folder '" + args.train_data_dir.string() + "' (" +
                               std::to_string(folder.size()) + " images)";
      const std::vector<std::string> classes = folder.class_names();
      auto dataset = data::with_transform(std::move(folder), augmentations(args));
      return train(args, dataset, what, classes, *ranks);
    }
    auto fashion = data::FashionMNIST::train();
    const std::vector<std::string> classes = fashion.class_names();
    if (args.resolution == 28 && !args.random_flip) {
      auto dataset = data::with_transform(std::move(fashion), data::Compose({data::Normalize({0.5}, {0.5})}));
      return train(args, dataset, "Fashion-MNIST (60,000 training images, 28x28)", classes, *ranks);
    }
    auto dataset = data::with_transform(std::move(fashion), augmentations(args));
    return train(args, dataset, "Fashion-MNIST (60,000 training images)", classes, *ranks);
  } catch (const std::exception& e) {
    // A failure on one rank stops them all (the others may wait in a collective).
    if (ranks->size() > 1)
      std::fprintf(stderr, "train_unconditional: rank %d: %s\n", ranks->rank(), e.what());
    else
      std::fprintf(stderr, "train_unconditional: %s\n", e.what());
    std::fflush(stderr);
    ranks->abort_all(1);
    return 1;
  }
}
