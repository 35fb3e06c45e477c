// sample: draws images from a diffusers pipeline folder (one written by train_unconditional, or
// by diffusers' save_pretrained) with any of the schedulers, built from the folder's scheduler
// config as diffusers' from_config does.
//
//   sample --pipeline ddpm-model --scheduler dpmpp_2m --num_inference_steps 20 --batch_size 64
//
// Writes into --output_dir: grid.png, one PNG per image (image_0000.png, ...) and samples.npy
// (float32, N x C x H x W, values in [-1, 1]). Large batches run in chunks of --chunk_size images,
// so memory stays bounded.
//
// A class-conditional pipeline (train_unconditional --num_class_embeds) samples one class
// (--class_label 7) or every class (--class_label all: --batch_size images of each, one row per
// class), with classifier-free guidance (--guidance_scale; 1: none).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include <diffuse/diffuse.hpp>

#include "cli.hpp"
#include "samplers.hpp"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

struct Args {
  fs::path pipeline, init_noise, output_dir = "samples";
  std::string scheduler = "dpmpp_2m", class_label;
  std::int64_t num_inference_steps = 20, batch_size = 16, seed = 0, chunk_size = 64;
  std::optional<double> eta, guidance_scale;
};

Args parse_args(int argc, char** argv) {
  Args a;
  cli::Parser p("sample",
                "Samples images from a diffusers pipeline folder (model_index.json, unet/, scheduler/).");
  p.add("--pipeline", a.pipeline, "the pipeline folder (required)");
  p.add("--scheduler", a.scheduler, "ddpm, ddim, pndm, euler, euler_ancestral, heun, dpmpp_2m or unipc");
  p.add("--num_inference_steps", a.num_inference_steps, "denoising steps");
  p.add("--batch_size", a.batch_size, "how many images to draw (with --class_label all: of each class)");
  p.add("--chunk_size", a.chunk_size,
        "images denoised at once (bounds the memory; guidance runs twice as many through the UNet)");
  p.add("--seed", a.seed, "seed of the initial noise and of stochastic steps");
  p.add("--eta", a.eta, "DDIM's eta: 0 deterministic, 1 as DDPM (ddim only)");
  p.add("--class_label", a.class_label,
        "class of every image, for a class-conditional UNet, or 'all': one row per class (the last\n"
        "      label of the class embedding is \"no class\", as train_unconditional trains it)");
  p.add("--guidance_scale", a.guidance_scale,
        "classifier-free guidance of a class-conditional UNet trained with label dropout (1: none;\n"
        "      3 is the best of docs/recipes.md for Fashion-MNIST)");
  p.add("--init_noise", a.init_noise,
        "a float32 .npy [N, C, H, W] of initial noise, used instead of drawing it");
  p.add("--output_dir", a.output_dir, "where grid.png, image_XXXX.png and samples.npy go");
  p.parse(argc, argv);
  if (a.pipeline.empty()) throw cli::UsageError("--pipeline is required (a folder with model_index.json)");
  if (a.num_inference_steps < 1) throw cli::UsageError("--num_inference_steps must be at least 1");
  if (a.batch_size < 1) throw cli::UsageError("--batch_size must be at least 1");
  if (a.chunk_size < 1) throw cli::UsageError("--chunk_size must be at least 1");
  cli::check_choice("--scheduler", a.scheduler, tools::sampler_names());
  if (a.eta && a.scheduler != "ddim") throw cli::UsageError("--eta applies to --scheduler ddim only");
  if (a.eta && !(*a.eta >= 0)) throw cli::UsageError("--eta must not be negative");
  if (!a.class_label.empty() && a.class_label != "all") cli::Parser::to_int("--class_label", a.class_label);
  if (a.guidance_scale && !std::isfinite(*a.guidance_scale))
    throw cli::UsageError("--guidance_scale must be a finite number");
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sample: %s\n", e.what());
    return 2;
  }
  try {
    auto pipe = pipelines::DiffusionPipeline<float>::from_pretrained(args.pipeline);
    pipe.set_scheduler(tools::make_sampler<float>(args.scheduler, pipe.scheduler().to_json()));
    const auto& config = pipe.unet().config();
    const std::int64_t c = config.in_channels;
    if (!config.sample_size)
      throw Error("the UNet config in '" + args.pipeline.string() +
                  "' has no sample_size: the image size is unknown");
    const std::int64_t h = config.sample_size->height, w = config.sample_size->width;

    pipelines::SampleOptions options{.num_inference_steps = args.num_inference_steps};
    if (args.eta) options.step_kwargs = {{"eta", *args.eta}};
    // One label per image: K for all, or each class in turn (rows of --batch_size).
    std::vector<std::int64_t> labels;
    std::int64_t nrow = 0;  // 0: a square grid
    if (args.class_label == "all") {
      if (pipe.num_classes() < 2)
        throw Error("--class_label all: the UNet in '" + args.pipeline.string() +
                    "' is not class-conditional");
      const std::int64_t classes = pipe.num_classes() - 1;  // the last label is "no class"
      for (std::int64_t k = 0; k < classes; ++k) labels.insert(labels.end(), args.batch_size, k);
      nrow = args.batch_size;
      args.batch_size *= classes;
    } else if (!args.class_label.empty()) {
      labels.assign(args.batch_size, cli::Parser::to_int("--class_label", args.class_label));
    } else if (pipe.num_classes() > 0) {
      throw Error("the UNet in '" + args.pipeline.string() + "' is class-conditional (" +
                  std::to_string(pipe.num_classes()) + " classes): pass --class_label");
    }
    // Off unless asked for: a UNet not trained with label dropout has no "no class" prediction.
    options.guidance_scale = args.guidance_scale.value_or(1.0);

    std::optional<Tensor<float>> init;
    if (!args.init_noise.empty()) {
      init = io::load_npy<float>(args.init_noise);
      if (init->dim() != 4 || init->size(1) != c || init->size(2) != h || init->size(3) != w)
        throw Error("--init_noise '" + args.init_noise.string() + "' has shape " + to_string(init->shape()) +
                    ", expected [N, " + std::to_string(c) + ", " + std::to_string(h) + ", " +
                    std::to_string(w) + "]");
      if (init->size(0) < 1) throw Error("--init_noise '" + args.init_noise.string() + "' holds no image");
      if (args.class_label == "all" && init->size(0) != args.batch_size)
        throw Error("--init_noise '" + args.init_noise.string() + "' holds " + std::to_string(init->size(0)) +
                    " images; --class_label all needs " + std::to_string(args.batch_size));
      args.batch_size = init->size(0);  // the file decides how many images
      if (!labels.empty()) labels.resize(static_cast<std::size_t>(args.batch_size), labels[0]);
    }

    fs::create_directories(args.output_dir);
    const std::int64_t n = args.batch_size;
    Tensor<float> all = Tensor<float>::empty({n, c, h, w});
    Generator gen(static_cast<std::uint64_t>(args.seed));
    const std::int64_t chunks = (n + args.chunk_size - 1) / args.chunk_size;
    training::ProgressBar progress(chunks * args.num_inference_steps, {.desc = "sample"});
    options.on_step = [&](std::int64_t, std::int64_t) { progress.update(1); };
    const std::int64_t per_image = c * h * w;
    for (std::int64_t start = 0; start < n; start += args.chunk_size) {
      options.batch_size = std::min(args.chunk_size, n - start);
      if (init) options.noise = init->slice(start, start + options.batch_size);
      if (!labels.empty())
        options.class_labels.assign(labels.begin() + start, labels.begin() + start + options.batch_size);
      Tensor<float> images = pipe(options, gen);  // [0, 1]
      float* out = all.data() + start * per_image;
      for (std::int64_t i = 0; i < images.numel(); ++i) out[i] = images.data()[i] * 2.f - 1.f;
      for (std::int64_t k = 0; k < options.batch_size; ++k) {
        char name[32];
        std::snprintf(name, sizeof name, "image_%04lld.png", static_cast<long long>(start + k));
        io::write_png(args.output_dir / name, images.select(k));
      }
    }
    progress.close();
    io::save_npy(args.output_dir / "samples.npy", all);
    if (nrow == 0) nrow = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
    viz::save_image(all, args.output_dir / "grid.png", {.nrow = nrow, .value_range = {{-1.0, 1.0}}});
    if (!labels.empty()) {  // which class each image was asked for, one per line
      std::string text;
      for (std::int64_t c : labels) text += std::to_string(c) + "\n";
      io::write_file_atomic(args.output_dir / "labels.txt", text);
    }
    char guidance[48] = "";
    if (options.guidance_scale != 1.0)
      std::snprintf(guidance, sizeof guidance, ", guidance %g", options.guidance_scale);
    std::printf("Wrote %lld images (%s, %lld steps%s) to %s/{grid.png, image_XXXX.png, samples.npy%s}\n",
                static_cast<long long>(n), args.scheduler.c_str(),
                static_cast<long long>(args.num_inference_steps), guidance, args.output_dir.string().c_str(),
                labels.empty() ? "" : ", labels.txt");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sample: %s\n", e.what());
    return 1;
  }
}
