// The model card (README.md) that train_unconditional writes into its pipeline folder, as the
// course writes one before sharing a model on the Hub: front matter with the diffusers library
// tag and the unconditional-image-generation pipeline tag, the recipe, the sample grid, and how
// to use the folder from Python and from C++.
#pragma once
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>

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
};

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
       "---\n\n"
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
