// The model card (README.md) that train_unconditional writes into its pipeline folder, as the
// course writes one before sharing a model on the Hub: front matter with the diffusers library
// tag and the unconditional-image-generation pipeline tag, the recipe, the sample grid, and how
// to use the folder from Python and from C++ (for a class-conditional model: its classes, the
// "no class" label and a guided sampling loop).
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <diffuse/io/atomic_file.hpp>

namespace tools {

struct ModelCard {
  std::string dataset;
  std::int64_t resolution = 0, batch_size = 0;
  double learning_rate = 0;
  std::string lr_scheduler;
  bool use_ema = false;
  std::string prediction_type, beta_schedule;
  std::int64_t num_train_timesteps = 1000, num_parameters = 0, steps = 0, epochs = 0;
  bool has_samples = false;
  // Class-conditional models (train_unconditional --num_class_embeds): the classes by label; the
  // label after the last means "no class".
  std::vector<std::string> class_names = {};
  double conditioning_dropout_prob = 0, guidance_scale = 1;
  bool has_class_grid = false;
};

// The card's part on classes and guidance, with how to sample a class in Python and in C++.
inline std::string class_section(const ModelCard& c, const std::string& folder_name) {
  const std::size_t n = c.class_names.size();
  const std::size_t example = std::min<std::size_t>(7, n - 1);  // the class the examples draw
  std::ostringstream s;
  s << "## Classes\n\n"
    << "The model is class-conditional: `num_class_embeds` is " << n + 1 << ", labels 0 to " << n - 1
    << " are the classes below and label **" << n
    << "** means \"no class\". It was trained with classifier-free guidance (Ho & Salimans 2022): "
    << c.conditioning_dropout_prob * 100 << "% of the training labels were replaced by " << n
    << ", so the model predicts both with and without a class.\n\n| label | class |\n| ---: | --- |\n";
  for (std::size_t k = 0; k < n; ++k) s << "| " << k << " | " << c.class_names[k] << " |\n";
  s << "| " << n << " | (no class) |\n\n";
  if (c.has_class_grid)
    s << "One row per class, guidance scale " << c.guidance_scale << ":\n\n![classes](class_grid.png)\n\n";
  s << "### Sampling a class with guidance, in Python\n\n"
       "diffusers' `DDPMPipeline` passes no class labels; this loop does, with guidance scale `w`:\n\n"
       "```python\nimport torch\n"
       "from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel\n\n"
       "unet = UNet2DModel.from_pretrained(\""
    << folder_name << "\", subfolder=\"unet\")\n"
    << "ddpm = DDPMScheduler.from_pretrained(\"" << folder_name << "\", subfolder=\"scheduler\")\n"
    << "scheduler = DPMSolverMultistepScheduler.from_config(ddpm.config)\n"
       "scheduler.set_timesteps(20)\n"
       "w = "
    << c.guidance_scale << "\nlabels = torch.full((10,), " << example << ")  # ten images of class "
    << example << " (" << c.class_names[example] << ")\n"
    << "no_class = torch.full((10,), " << n << ")\n"
    << "x = torch.randn(10, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)\n"
       "x = x * scheduler.init_noise_sigma\n"
       "for t in scheduler.timesteps:\n"
       "    model_input = scheduler.scale_model_input(x, t)\n"
       "    with torch.no_grad():\n"
       "        out = unet(torch.cat([model_input, model_input]), t,\n"
       "                   class_labels=torch.cat([labels, no_class])).sample\n"
       "    cond, uncond = out.chunk(2)\n"
       "    x = scheduler.step(uncond + w * (cond - uncond), t, x).prev_sample\n"
       "images = (x / 2 + 0.5).clamp(0, 1)  # [10, C, H, W]\n```\n\n"
       "In C++: `pipe({.batch_size = 10, .num_inference_steps = 20, .class_labels = {"
    << example << "}, .guidance_scale = " << c.guidance_scale << "}, gen)`, or `sample --pipeline "
    << folder_name << " --class_label " << example << " --guidance_scale " << c.guidance_scale
    << "` (`--class_label all`: one row per class).\n\n";
  return s.str();
}

inline std::string model_card_text(const ModelCard& c, const std::string& folder_name) {
  std::ostringstream s;
  s << "---\n"
       "library_name: diffusers\n"
       "pipeline_tag: unconditional-image-generation\n"
       "tags:\n"
       "- diffusers\n"
       "- unconditional-image-generation\n"
       "- diffusion-models-class\n"
       "- diffuse\n"
    << (c.class_names.empty() ? "" : "- class-conditional\n- classifier-free-guidance\n") << "---\n\n"
    << "# " << folder_name << "\n\n"
    << "A `UNet2DModel` (" << c.num_parameters << " parameters) trained to generate " << c.resolution << "x"
    << c.resolution << " images like those of " << c.dataset
    << ", with the DDPM objective, by `train_unconditional` of the C++ library diffuse.\n\n"
    << "## Training recipe\n\n"
    << "| | |\n| --- | --- |\n"
    << "| steps | " << c.steps << " (" << c.epochs << (c.epochs == 1 ? " full epoch" : " full epochs")
    << ") |\n"
    << "| batch size | " << c.batch_size << " |\n"
    << "| optimizer | AdamW, learning rate " << c.learning_rate << ", " << c.lr_scheduler << " schedule |\n"
    << "| EMA of the weights | " << (c.use_ema ? "yes (these are the EMA weights)" : "no") << " |\n"
    << "| noise schedule | DDPM, " << c.beta_schedule << " betas, " << c.num_train_timesteps
    << " training timesteps |\n"
    << "| prediction type | " << c.prediction_type << " |\n\n";
  if (c.has_samples) s << "## Samples\n\n![samples](samples.png)\n\n";
  if (!c.class_names.empty()) return s.str() + class_section(c, folder_name);  // its own usage
  s << "## Usage\n\nIn Python, with diffusers:\n\n```python\n"
       "from diffusers import DDPMPipeline, DPMSolverMultistepScheduler\n\n"
       "pipeline = DDPMPipeline.from_pretrained(\""
    << folder_name
    << "\")\n"
       "pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config)\n"
       "image = pipeline(num_inference_steps=20).images[0]\n"
       "image.save(\"sample.png\")\n```\n\n"
       "In C++, with diffuse:\n\n```cpp\n"
       "#include <diffuse/diffuse.hpp>\n\n"
       "auto pipe = diffuse::pipelines::DiffusionPipeline<float>::from_pretrained(\""
    << folder_name
    << "\");\n"
       "diffuse::Generator gen(0);\n"
       "auto images = pipe({.batch_size = 16, .num_inference_steps = 1000}, gen);  // [16, C, H, W] in [0, "
       "1]\n"
       "diffuse::viz::save_image(images, \"samples.png\", {.nrow = 4});\n```\n\n"
       "or from the command line: `sample --pipeline "
    << folder_name << " --scheduler dpmpp_2m --num_inference_steps 20 --batch_size 64`.\n";
  return s.str();
}

inline void write_model_card(const std::filesystem::path& dir, const ModelCard& card) {
  const std::string name = std::filesystem::absolute(dir).lexically_normal().filename().string();
  diffuse::io::write_file_atomic(dir / "README.md", model_card_text(card, name.empty() ? "." : name));
}

}  // namespace tools
