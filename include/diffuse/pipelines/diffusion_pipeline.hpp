/// @file
/// DiffusionPipeline: samples images from a UNet2DModel with any scheduler, and saves/loads the
/// pair in diffusers' folder layout (model_index.json, unet/, scheduler/), so a pipeline trained
/// here loads in Python with DDPMPipeline.from_pretrained and the other way round.
///
/// @code
///   pipelines::DDPMPipeline pipe(unet, scheduler);
///   // images [16, C, H, W] with values in [0, 1]
///   Tensor<float> images = pipe({.batch_size = 16, .num_inference_steps = 1000}, gen);
///   pipe.save_pretrained("my_pipeline");
///   // a class-conditional UNet, with classifier-free guidance: ten images of class 7
///   Tensor<float> sneakers = pipe({.batch_size = 10, .num_inference_steps = 20, .class_labels = {7},
///                                  .guidance_scale = 3.0}, gen);
/// @endcode
///
/// Classifier-free guidance (Ho & Salimans 2022) needs a UNet trained to predict both with a class
/// and without one, as train_unconditional --num_class_embeds does: it replaces a share of the
/// labels by a "no class" label, the last row of the class embedding (num_class_embeds - 1). Each
/// step then runs the conditional and the unconditional prediction as one forward of 2B images and
/// uses uncond + w (cond - uncond), whatever the scheduler and the prediction type (epsilon, v or
/// sample: the combination is applied to the model output). w = 1 is the conditional prediction
/// alone and w = 0 the unconditional one: both run one forward of B images.
#pragma once
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "diffuse/autograd/shape_ops.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/io/config.hpp"
#include "diffuse/io/image.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/models/unet_2d.hpp"
#include "diffuse/schedulers/factory.hpp"

namespace diffuse::pipelines {

/// Arguments of a DiffusionPipeline call (as those of diffusers' pipeline __call__).
struct SampleOptions {
  /// Number of images.
  std::int64_t batch_size = 1;
  /// Denoising steps (scheduler.set_timesteps).
  std::int64_t num_inference_steps = 1000;
  std::optional<std::int64_t> height = std::nullopt;  ///< default: the UNet's sample_size
  std::optional<std::int64_t> width = std::nullopt;   ///< default: the UNet's sample_size
  /// One class per image for a class-conditional UNet (num_class_embeds); one value is repeated
  /// for the whole batch. Must be empty for an unconditional UNet.
  std::vector<std::int64_t> class_labels = {};
  /// Classifier-free guidance weight w (see the file comment): 1 (the default) samples with the
  /// class labels alone, 0 without them, w > 1 pushes the images towards their classes. Only for
  /// a class-conditional UNet.
  double guidance_scale = 1.0;
  /// The "no class" label of guidance; default: the last class, num_class_embeds - 1 (the one
  /// train_unconditional --num_class_embeds trains for it).
  std::optional<std::int64_t> unconditional_label = std::nullopt;
  /// The starting noise [batch_size, C, H, W] (standard normal; scaled by init_noise_sigma here),
  /// instead of drawing it from the generator.
  std::optional<Tensor<float>> noise = std::nullopt;
  /// Keyword arguments of every scheduler step, e.g. {"eta": 1.0} for DDIM (diffusers' eta); they
  /// stay set on the scheduler for later calls (empty: the scheduler's own step options).
  io::json step_kwargs = io::json::object();
  /// Called after each denoising step with (step index, number of steps), e.g. for a progress bar.
  std::function<void(std::int64_t, std::int64_t)> on_step = nullptr;
};

/// A UNet2DModel and a scheduler that sample together (diffusers' DDPMPipeline); see the file comment.
template <class T = float>
class DiffusionPipeline {
 public:
  /// The model type.
  using UNet = models::UNet2DModel<T>;
  /// The base type of the schedulers.
  using Scheduler = schedulers::Scheduler<T>;

  /// Uses the given model and scheduler without owning them (they must outlive the pipeline).
  DiffusionPipeline(UNet& unet, Scheduler& scheduler, std::string class_name = "DDPMPipeline")
      : unet_(&unet, [](UNet*) {}),
        scheduler_(&scheduler, [](Scheduler*) {}),
        class_name_(std::move(class_name)) {}
  /// Shares ownership of the model and the scheduler; diffuse::Error when either is null.
  DiffusionPipeline(std::shared_ptr<UNet> unet, std::shared_ptr<Scheduler> scheduler,
                    std::string class_name = "DDPMPipeline")
      : unet_(std::move(unet)), scheduler_(std::move(scheduler)), class_name_(std::move(class_name)) {
    if (!unet_ || !scheduler_)
      throw Error("DiffusionPipeline: the UNet and the scheduler must both be given");
  }

  /// Denoises Gaussian noise into images: for each timestep, the model predicts and the scheduler
  /// steps (diffusers' DDPMPipeline loop, with init_noise_sigma and scale_model_input so that
  /// sigma-based schedulers work too). Returns [batch, C, H, W] mapped from [-1, 1] to [0, 1].
  /// Images larger than io::max_image_pixels() are refused (a damaged config's sample_size 1e5 would
  /// ask for 1e10 pixels), and running out of memory is an Error that says what was being sampled.
  Tensor<T> operator()(const SampleOptions& options, Generator& gen);

  /// Writes model_index.json, unet/ (config.json, diffusion_pytorch_model.safetensors) and
  /// scheduler/scheduler_config.json into `dir`.
  void save_pretrained(const std::filesystem::path& dir) const;

  /// Loads a diffusers pipeline folder (one with a UNet2DModel and a scheduler). diffuse::FileError
  /// for a folder with other components (vae, text_encoder, ...) or another kind of unet.
  static DiffusionPipeline from_pretrained(const std::filesystem::path& dir,
                                           models::PretrainedOptions options = {});

  /// The model.
  UNet& unet() const { return *unet_; }
  /// The number of classes of a class-conditional UNet (num_class_embeds), 0 for an unconditional one.
  std::int64_t num_classes() const { return unet_->config().num_class_embeds.value_or(0); }
  /// The scheduler in use.
  Scheduler& scheduler() const { return *scheduler_; }
  /// Swaps the sampler, e.g. for a DDIM or DPM-Solver++ scheduler made from the same config.
  void set_scheduler(std::shared_ptr<Scheduler> scheduler) {
    if (!scheduler) throw Error("DiffusionPipeline::set_scheduler: no scheduler given");
    scheduler_ = std::move(scheduler);
  }
  /// The pipeline class name written to model_index.json ("DDPMPipeline" unless given or loaded).
  const std::string& class_name() const { return class_name_; }

 private:
  Tensor<T> sample(const SampleOptions& options, Generator& gen, std::int64_t h, std::int64_t w);

  // The class labels of a sampling call as tensors [batch_size], checked against the UNet: the
  // images' classes (or none for an unconditional UNet) and, for guidance, the "no class" label.
  struct Labels {
    Tensor<T> cond, uncond;
  };
  Labels labels_for(const SampleOptions& o) const;

  std::shared_ptr<UNet> unet_;
  std::shared_ptr<Scheduler> scheduler_;
  std::string class_name_;
};

template <class T>
auto DiffusionPipeline<T>::operator()(const SampleOptions& options, Generator& gen) -> Tensor<T> {
  const auto& config = unet_->config();
  const std::int64_t h = options.height.value_or(config.sample_size ? config.sample_size->height : 0);
  const std::int64_t w = options.width.value_or(config.sample_size ? config.sample_size->width : 0);
  if (options.batch_size < 1 || h < 1 || w < 1)
    throw Error("DiffusionPipeline: batch_size, height and width must be positive (got " +
                std::to_string(options.batch_size) + ", " + std::to_string(h) + ", " + std::to_string(w) +
                "; the UNet config has no sample_size to default to)");
  if (h > io::max_image_pixels().load() / w)
    throw Error("DiffusionPipeline: " + std::to_string(h) + "x" + std::to_string(w) +
                " images are more pixels than the limit of " + std::to_string(io::max_image_pixels().load()) +
                " (io::max_image_pixels())");
  try {
    return sample(options, gen, h, w);
  } catch (const std::bad_alloc&) {
    throw Error("DiffusionPipeline: out of memory sampling " + std::to_string(options.batch_size) +
                " images of " + std::to_string(h) + "x" + std::to_string(w) + "; sample fewer at a time");
  }
}

template <class T>
DIFFUSE_COLD void DiffusionPipeline<T>::save_pretrained(const std::filesystem::path& dir) const {
  unet_->save_pretrained(dir / "unet");
  schedulers::save_scheduler(*scheduler_, dir / "scheduler");
  io::json index = {{"_class_name", class_name_},
                    {"_diffusers_version", io::kDiffusersVersion},
                    {"scheduler", {"diffusers", scheduler_->class_name()}},
                    {"unet", {"diffusers", "UNet2DModel"}}};
  io::write_json(dir / "model_index.json", index);
}

template <class T>
DIFFUSE_COLD auto DiffusionPipeline<T>::from_pretrained(const std::filesystem::path& dir,
                                                        models::PretrainedOptions options)
    -> DiffusionPipeline {
  const auto index_path = dir / "model_index.json";
  const io::json index = io::read_json(index_path);
  if (!index.is_object()) throw FileError("'" + index_path.string() + "': not a JSON object");
  for (const char* part : {"unet", "scheduler"})
    if (!index.contains(part))
      throw FileError("'" + index_path.string() + "': no \"" + std::string(part) +
                      "\" entry; not a UNet pipeline");
  // A latent or text-to-image pipeline has more parts (vae, text_encoder, ...): say which.
  for (auto it = index.begin(); it != index.end(); ++it)
    if (it.key().rfind('_', 0) != 0 && it.key() != "unet" && it.key() != "scheduler" && !it.value().is_null())
      throw FileError("'" + index_path.string() + "': component \"" + it.key() + "\" (" +
                      io::describe_json(it.value()) +
                      ") is not supported; diffuse loads pipelines made of a UNet2DModel and a scheduler");
  if (index["unet"].is_array() && index["unet"].size() == 2 && index["unet"][1] != "UNet2DModel")
    throw FileError("'" + index_path.string() + "': the unet is a " + io::describe_json(index["unet"][1]) +
                    ", diffuse loads UNet2DModel");
  // new UNet(prvalue) constructs in place: a Module is neither copied nor moved.
  std::shared_ptr<UNet> unet(new UNet(UNet::from_pretrained(dir / "unet", options)));
  std::shared_ptr<Scheduler> scheduler =
      schedulers::load_scheduler<T>(dir / "scheduler" / "scheduler_config.json");
  std::string class_name = "DDPMPipeline";
  if (index.contains("_class_name")) {
    if (!index["_class_name"].is_string())
      throw FileError("'" + index_path.string() + "': \"_class_name\" must be a string, got " +
                      io::describe_json(index["_class_name"]));
    class_name = index["_class_name"].get<std::string>();
  }
  return DiffusionPipeline(std::move(unet), std::move(scheduler), class_name);
}

template <class T>
auto DiffusionPipeline<T>::sample(const SampleOptions& options, Generator& gen, std::int64_t h,
                                  std::int64_t w) -> Tensor<T> {
  const auto& config = unet_->config();
  NoGradGuard no_grad;
  // Sampling is inference: dropout off (the previous mode is restored afterwards).
  struct EvalMode {
    UNet& m;
    bool was_training;
    ~EvalMode() { m.train(was_training); }
  } eval_mode{*unet_, unet_->is_training()};
  unet_->eval();
  const Labels labels = labels_for(options);
  const double scale = options.guidance_scale;
  // Scale 1 and 0 need one prediction only; any other scale both, as one batch of 2B images.
  const bool guided = scale != 1.0 && scale != 0.0;
  const Tensor<T>& class_labels = scale == 0.0 ? labels.uncond : labels.cond;
  const Tensor<T> both_labels =
      guided ? concat(std::vector<Tensor<T>>{labels.cond, labels.uncond}) : Tensor<T>();
  if (!options.step_kwargs.empty()) scheduler_->set_step_kwargs(options.step_kwargs);
  scheduler_->set_timesteps(options.num_inference_steps);
  const Shape shape{options.batch_size, config.in_channels, h, w};
  Tensor<T> image;
  if (options.noise) {
    if (options.noise->shape() != shape)
      throw Error("DiffusionPipeline: the initial noise has shape " + to_string(options.noise->shape()) +
                  ", expected " + to_string(shape));
    image = Tensor<T>::empty(shape);
    std::copy(options.noise->begin(), options.noise->end(), image.data());
  } else {
    image = gen.randn<T>(shape);
  }
  if (const double sigma = scheduler_->init_noise_sigma(); sigma != 1.0)
    image = image * static_cast<T>(sigma);
  const auto timesteps = scheduler_->timesteps();
  for (std::size_t i = 0; i < timesteps.size(); ++i) {
    const double t = timesteps[i];
    const Tensor<T> model_input = scheduler_->scale_model_input(image, t);
    Tensor<T> model_output;
    if (guided) {
      const Tensor<T> both =
          (*unet_)(concat(std::vector<Tensor<T>>{model_input, model_input}), t, both_labels);
      const Tensor<T> cond = both.slice(0, options.batch_size),
                      uncond = both.slice(options.batch_size, 2 * options.batch_size);
      model_output = uncond + static_cast<T>(scale) * (cond - uncond);
    } else {
      model_output = (*unet_)(model_input, t, class_labels);
    }
    image = scheduler_->step(model_output, t, image, gen).prev_sample;
    if (options.on_step)
      options.on_step(static_cast<std::int64_t>(i), static_cast<std::int64_t>(timesteps.size()));
  }
  return clamp(image * T(0.5) + T(0.5), T(0), T(1));
}

template <class T>
auto DiffusionPipeline<T>::labels_for(const SampleOptions& o) const -> Labels {
  const std::int64_t classes = num_classes();
  const double w = o.guidance_scale;
  if (!std::isfinite(w))
    throw Error("DiffusionPipeline: guidance_scale must be finite, got " + std::to_string(w));
  if (classes == 0) {
    if (!o.class_labels.empty())
      throw Error(
          "DiffusionPipeline: class_labels given, but the UNet is not class-conditional (no "
          "num_class_embeds)");
    if (w != 1.0)
      throw Error("DiffusionPipeline: guidance_scale " + std::to_string(w) +
                  " needs a class-conditional UNet (num_class_embeds); this one is unconditional");
    return {};
  }
  auto check = [&](std::int64_t c, const char* what) {
    if (c < 0 || c >= classes)
      throw Error("DiffusionPipeline: " + std::string(what) + " " + std::to_string(c) + " is outside [0, " +
                  std::to_string(classes) + ") (the UNet's num_class_embeds)");
    return static_cast<T>(c);
  };
  Labels out;
  if (w != 1.0) {
    const T none = check(o.unconditional_label.value_or(classes - 1), "unconditional_label");
    out.uncond = Tensor<T>::full({o.batch_size}, none);
  }
  if (w == 0.0 && o.class_labels.empty()) return out;  // unconditional: no class needed
  if (o.class_labels.empty())
    throw Error("DiffusionPipeline: the UNet is class-conditional (num_class_embeds " +
                std::to_string(classes) + "): pass class_labels");
  const auto n = static_cast<std::int64_t>(o.class_labels.size());
  if (n != 1 && n != o.batch_size)
    throw Error("DiffusionPipeline: " + std::to_string(n) + " class_labels for a batch of " +
                std::to_string(o.batch_size) + " (give one, or one per image)");
  out.cond = Tensor<T>::empty({o.batch_size});
  for (std::int64_t i = 0; i < o.batch_size; ++i)
    out.cond.data()[i] = check(o.class_labels[n == 1 ? 0 : i], "class label");
  return out;
}

/// diffusers' name for the same thing.
template <class T = float>
using DDPMPipeline = DiffusionPipeline<T>;

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_PIPELINES_DIFFUSION_PIPELINE_TEMPLATES(X, T) X(class DiffusionPipeline<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_PIPELINES_DIFFUSION_PIPELINE_TEMPLATES)

}  // namespace diffuse::pipelines
