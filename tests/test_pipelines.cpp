// DiffusionPipeline: the sampling loop is wired the way diffusers' is, results are reproducible,
// any scheduler plugs in, and save_pretrained/from_pretrained round-trip the diffusers layout.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "diffuse/pipelines/diffusion_pipeline.hpp"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {
models::UNet2DConfig tiny_config() {
  models::UNet2DConfig c;
  c.sample_size = 8;
  c.in_channels = 1;
  c.out_channels = 1;
  c.layers_per_block = 1;
  c.block_out_channels = {8, 16};
  c.down_block_types = {"DownBlock2D", "AttnDownBlock2D"};
  c.up_block_types = {"AttnUpBlock2D", "UpBlock2D"};
  c.norm_num_groups = 4;
  c.attention_head_dim = 4;
  return c;
}

fs::path scratch(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("diffuse_test_pipelines_" + name);
  fs::remove_all(p);
  return p;
}
}  // namespace

TEST_CASE("one pipeline step is scheduler.step(unet(noise, t)) mapped to [0, 1]") {
  Generator init(1);
  models::UNet2DModel<float> unet(tiny_config(), init);
  auto scheduler = schedulers::make_scheduler<float>("DDPMScheduler", {{"num_train_timesteps", 1000}});
  pipelines::DDPMPipeline<float> pipe(unet, *scheduler);
  Generator gen(7);
  Tensor<float> images = pipe({.batch_size = 2, .num_inference_steps = 1}, gen);
  REQUIRE(images.shape() == Shape{2, 1, 8, 8});

  // The same by hand, with the same random draws.
  Generator manual(7);
  auto reference = schedulers::make_scheduler<float>("DDPMScheduler", {{"num_train_timesteps", 1000}});
  reference->set_timesteps(1);
  const double t = reference->timesteps().at(0);
  Tensor<float> x = manual.randn<float>({2, 1, 8, 8});
  NoGradGuard no_grad;
  Tensor<float> prev = reference->step(unet(x, t), t, x, manual).prev_sample;
  for (std::int64_t i = 0; i < prev.numel(); ++i)
    CHECK(images.data()[i] == Approx(std::clamp(prev.data()[i] * 0.5f + 0.5f, 0.f, 1.f)).margin(1e-6));
}

TEST_CASE("sampling is reproducible, works with other schedulers, reports progress") {
  Generator init(2);
  models::UNet2DModel<float> unet(tiny_config(), init);
  std::shared_ptr<schedulers::Scheduler<float>> ddpm =
      schedulers::make_scheduler<float>("DDPMScheduler", {{"num_train_timesteps", 1000}});
  pipelines::DDPMPipeline<float> pipe(unet, *ddpm);
  Generator a(3), b(3);
  auto first = pipe({.batch_size = 1, .num_inference_steps = 4}, a);
  auto second = pipe({.batch_size = 1, .num_inference_steps = 4}, b);
  CHECK(first.to_vector() == second.to_vector());
  for (float v : first) REQUIRE((v >= 0.f && v <= 1.f));

  for (const char* name : {"DDIMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler"}) {
    INFO(name);
    pipe.set_scheduler(schedulers::make_scheduler<float>(name, ddpm->to_json()));
    std::int64_t calls = 0;
    Generator g(4);
    auto images = pipe({.batch_size = 2,
                        .num_inference_steps = 3,
                        .height = 16,
                        .width = 8,
                        .on_step = [&](std::int64_t, std::int64_t) { ++calls; }},
                       g);
    CHECK(images.shape() == Shape{2, 1, 16, 8});
    CHECK(calls == static_cast<std::int64_t>(pipe.scheduler().timesteps().size()));
  }
  CHECK_THROWS_WITH(pipe({.batch_size = 0}, a), Catch::Contains("batch_size"));
  // A damaged config's sample_size 1e5 asks for 1e10 pixels: an Error, not std::bad_alloc.
  CHECK_THROWS_WITH(pipe({.batch_size = 1, .num_inference_steps = 1, .height = 100000, .width = 100000}, a),
                    Catch::Contains("100000x100000") && Catch::Contains("max_image_pixels"));
}

TEST_CASE("sampling runs the model in eval mode: dropout off, the seed decides everything") {
  Generator init(8);
  auto config = tiny_config();
  config.dropout = 0.5;
  models::UNet2DModel<float> unet(config, init);
  REQUIRE(unet.is_training());
  auto scheduler = schedulers::make_scheduler<float>("DDIMScheduler", {{"num_train_timesteps", 1000}});
  pipelines::DDPMPipeline<float> pipe(unet, *scheduler);
  Generator a(3), b(3);
  CHECK(pipe({.batch_size = 1, .num_inference_steps = 3}, a).to_vector() ==
        pipe({.batch_size = 1, .num_inference_steps = 3}, b).to_vector());
  CHECK(unet.is_training());  // the mode is given back
}

TEST_CASE("save_pretrained writes diffusers' layout and from_pretrained reads it back") {
  Generator init(5);
  models::UNet2DModel<float> unet(tiny_config(), init);
  auto scheduler = schedulers::make_scheduler<float>(
      "DDIMScheduler", {{"num_train_timesteps", 1000}, {"beta_schedule", "squaredcos_cap_v2"}});
  pipelines::DDPMPipeline<float> pipe(unet, *scheduler);
  const fs::path dir = scratch("roundtrip");
  pipe.save_pretrained(dir);
  for (const char* f : {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                        "scheduler/scheduler_config.json"})
    CHECK(fs::exists(dir / f));
  const io::json index = io::read_json(dir / "model_index.json");
  CHECK(index["_class_name"] == "DDPMPipeline");
  CHECK(index["unet"] == io::json::array({"diffusers", "UNet2DModel"}));
  CHECK(index["scheduler"] == io::json::array({"diffusers", "DDIMScheduler"}));

  auto loaded = pipelines::DDPMPipeline<float>::from_pretrained(dir);
  CHECK(loaded.scheduler().class_name() == "DDIMScheduler");
  CHECK_FALSE(loaded.unet().is_training());  // from_pretrained leaves the model in eval mode, like diffusers
  io::json bad_index = index;
  bad_index["_class_name"] = 3;
  io::write_json(dir / "model_index.json", bad_index);
  CHECK_THROWS_WITH(pipelines::DDPMPipeline<float>::from_pretrained(dir),
                    Catch::Contains("\"_class_name\" must be a string"));
  io::write_json(dir / "model_index.json", index);
  Generator a(6), b(6);
  CHECK(pipe({.batch_size = 2, .num_inference_steps = 5}, a).to_vector() ==
        loaded({.batch_size = 2, .num_inference_steps = 5}, b).to_vector());
  fs::remove_all(dir);
}

TEST_CASE("from_pretrained names what is wrong with a folder") {
  const fs::path dir = scratch("broken");
  CHECK_THROWS_WITH(pipelines::DDPMPipeline<float>::from_pretrained(dir),
                    Catch::Contains("model_index.json"));
  fs::create_directories(dir);
  std::ofstream(dir / "model_index.json")
      << R"({"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"]})";
  CHECK_THROWS_WITH(pipelines::DDPMPipeline<float>::from_pretrained(dir), Catch::Contains("\"unet\""));
  std::ofstream(dir / "model_index.json")
      << R"({"unet": ["diffusers", "UNet2DConditionModel"], "scheduler": ["diffusers", "DDPMScheduler"]})";
  CHECK_THROWS_WITH(pipelines::DDPMPipeline<float>::from_pretrained(dir),
                    Catch::Contains("UNet2DConditionModel"));
  std::ofstream(dir / "model_index.json")
      << R"({"unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers", "DDPMScheduler"]})";
  CHECK_THROWS_WITH(pipelines::DDPMPipeline<float>::from_pretrained(dir), Catch::Contains("config.json"));
  // A latent pipeline's extra parts are named.
  std::ofstream(dir / "model_index.json")
      << R"({"unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers",
      "DDIMScheduler"], "vqvae": ["diffusers", "VQModel"]})";
  CHECK_THROWS_WITH(pipelines::DDPMPipeline<float>::from_pretrained(dir),
                    Catch::Contains("vqvae") && Catch::Contains("VQModel"));
  // A missing scheduler config is named by its real path.
  Generator init(0);
  models::UNet2DModel<float> unet(tiny_config(), init);
  unet.save_pretrained(dir / "unet");
  std::ofstream(dir / "model_index.json")
      << R"({"unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers", "DDPMScheduler"]})";
  try {
    pipelines::DDPMPipeline<float>::from_pretrained(dir);
    FAIL("no error for a folder without a scheduler");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains((dir / "scheduler" / "scheduler_config.json").string()) ||
                        Catch::Contains((dir / "scheduler_config.json").string()));
    CHECK_THAT(msg, !Catch::Contains("scheduler/scheduler/"));
  }
  fs::remove_all(dir);
}

TEST_CASE("class-conditional sampling: class_labels reach the UNet, bad labels are named") {
  auto config = tiny_config();
  config.num_class_embeds = 3;
  Generator init(4);
  models::UNet2DModel<float> unet(config, init);
  auto scheduler = schedulers::make_scheduler<float>("DDIMScheduler", {{"num_train_timesteps", 1000}});
  pipelines::DDPMPipeline<float> pipe(unet, *scheduler);
  auto sample = [&](std::vector<std::int64_t> labels) {
    Generator gen(9);
    return pipe({.batch_size = 2, .num_inference_steps = 3, .class_labels = std::move(labels)}, gen)
        .to_vector();
  };
  const auto a = sample({0}), b = sample({2}), same = sample({0, 0}), mixed = sample({0, 2});
  CHECK(a == same);  // one label is repeated for the batch
  CHECK(a != b);     // the label changes the images
  const std::size_t half = a.size() / 2;
  CHECK(std::equal(mixed.begin(), mixed.begin() + half, a.begin()));       // image 0 has class 0
  CHECK(std::equal(mixed.begin() + half, mixed.end(), b.begin() + half));  // image 1 has class 2
  Generator gen(0);
  CHECK_THROWS_WITH(pipe({.batch_size = 2, .num_inference_steps = 1}, gen), Catch::Contains("class_labels"));
  CHECK_THROWS_WITH(pipe({.batch_size = 2, .num_inference_steps = 1, .class_labels = {3}}, gen),
                    Catch::Contains("class label 3") && Catch::Contains("num_class_embeds"));
  CHECK_THROWS_WITH(pipe({.batch_size = 2, .num_inference_steps = 1, .class_labels = {0, 1, 2}}, gen),
                    Catch::Contains("3 class_labels"));
  models::UNet2DModel<float> plain(tiny_config(), init);
  pipelines::DDPMPipeline<float> plain_pipe(plain, *scheduler);
  CHECK_THROWS_WITH(plain_pipe({.batch_size = 1, .num_inference_steps = 1, .class_labels = {0}}, gen),
                    Catch::Contains("not class-conditional"));
}

TEST_CASE("classifier-free guidance: one batched forward of 2B, uncond + w (cond - uncond), any scheduler") {
  auto config = tiny_config();
  config.num_class_embeds = 4;  // classes 0, 1, 2 and 3 = "no class"
  Generator init(6);
  models::UNet2DModel<float> unet(config, init);
  const Tensor<float> labels = Tensor<float>::from_vector({0.f, 2.f}), none = Tensor<float>::full({2}, 3.f);
  // The loop by hand, with two separate forwards (uncond absent: the conditional one alone).
  auto by_hand = [&](schedulers::Scheduler<float>& scheduler, const Tensor<float>& cond_labels,
                     const Tensor<float>* uncond_labels, float w) {
    NoGradGuard no_grad;
    Generator gen(9);
    scheduler.set_timesteps(4);
    Tensor<float> x = gen.randn<float>({2, 1, 8, 8});
    if (scheduler.init_noise_sigma() != 1.0) x = x * static_cast<float>(scheduler.init_noise_sigma());
    for (double t : scheduler.timesteps()) {
      const Tensor<float> in = scheduler.scale_model_input(x, t);
      Tensor<float> out = unet(in, t, cond_labels);
      if (uncond_labels) {
        const Tensor<float> uncond = unet(in, t, *uncond_labels);
        out = uncond + w * (out - uncond);
      }
      x = scheduler.step(out, t, x, gen).prev_sample;
    }
    return clamp(x * 0.5f + 0.5f, 0.f, 1.f);
  };
  for (const std::string prediction : {"epsilon", "v_prediction", "sample"})
    for (const auto& name : schedulers::scheduler_names()) {
      INFO(name << ", " << prediction);
      const io::json scheduler_config = {{"num_train_timesteps", 1000}, {"prediction_type", prediction}};
      std::shared_ptr<schedulers::Scheduler<float>> scheduler;
      try {
        scheduler = schedulers::make_scheduler<float>(name, scheduler_config);
      } catch (const Error& e) {  // PNDM and Euler ancestral refuse "sample", as in diffusers
        CHECK_THAT(e.what(), Catch::Contains("unknown prediction_type 'sample'"));
        continue;
      }
      auto reference = schedulers::make_scheduler<float>(name, scheduler_config);
      pipelines::DDPMPipeline<float> pipe(unet, *scheduler);
      auto sample = [&](double w) {
        Generator gen(9);
        return pipe({.batch_size = 2, .num_inference_steps = 4, .class_labels = {0, 2}, .guidance_scale = w},
                    gen);
      };
      // w = 2.5: the batched forward equals two separate ones, to float rounding.
      const Tensor<float> guided = sample(2.5), expected = by_hand(*reference, labels, &none, 2.5f);
      for (std::int64_t i = 0; i < guided.numel(); ++i)
        REQUIRE(guided.data()[i] == Approx(expected.data()[i]).margin(1e-4));
      // w = 1 is plain conditional sampling and w = 0 unconditional sampling, bit for bit.
      const auto conditional = sample(1.0).to_vector();
      CHECK(conditional == by_hand(*reference, labels, nullptr, 1.f).to_vector());
      CHECK(sample(0.0).to_vector() == by_hand(*reference, none, nullptr, 1.f).to_vector());
      CHECK(guided.to_vector() != conditional);  // guidance changes the images
    }
}

TEST_CASE("classifier-free guidance: bad scales and labels are named") {
  auto config = tiny_config();
  config.num_class_embeds = 4;
  Generator init(6), gen(0);
  models::UNet2DModel<float> unet(config, init);
  auto scheduler = schedulers::make_scheduler<float>("DDIMScheduler", {{"num_train_timesteps", 1000}});
  pipelines::DDPMPipeline<float> pipe(unet, *scheduler);
  // Unconditional sampling needs no class labels; the other scales do.
  CHECK(pipe({.batch_size = 1, .num_inference_steps = 1, .guidance_scale = 0.0}, gen).shape() ==
        Shape{1, 1, 8, 8});
  CHECK_THROWS_WITH(pipe({.batch_size = 1, .num_inference_steps = 1, .guidance_scale = 2.0}, gen),
                    Catch::Contains("pass class_labels"));
  CHECK_THROWS_WITH(pipe({.batch_size = 1,
                          .num_inference_steps = 1,
                          .class_labels = {0},
                          .guidance_scale = 2.0,
                          .unconditional_label = 4},
                         gen),
                    Catch::Contains("unconditional_label 4 is outside [0, 4)"));
  CHECK_THROWS_WITH(pipe({.batch_size = 1,
                          .num_inference_steps = 1,
                          .class_labels = {0},
                          .guidance_scale = std::numeric_limits<double>::quiet_NaN()},
                         gen),
                    Catch::Contains("guidance_scale must be finite"));
  CHECK_THROWS_WITH(
      pipe({.batch_size = 1, .num_inference_steps = 1, .class_labels = {7}, .guidance_scale = 2.0}, gen),
      Catch::Contains("class label 7 is outside [0, 4)"));
  models::UNet2DModel<float> plain(tiny_config(), init);
  pipelines::DDPMPipeline<float> plain_pipe(plain, *scheduler);
  CHECK_THROWS_WITH(plain_pipe({.batch_size = 1, .num_inference_steps = 1, .guidance_scale = 3.0}, gen),
                    Catch::Contains("needs a class-conditional UNet"));
}

TEST_CASE("given initial noise replaces the generator's draw; eta reaches DDIM") {
  Generator init(5);
  models::UNet2DModel<float> unet(tiny_config(), init);
  auto scheduler = schedulers::make_scheduler<float>("DDIMScheduler", {{"num_train_timesteps", 1000}});
  pipelines::DDPMPipeline<float> pipe(unet, *scheduler);
  Generator g1(3), g2(3), unused(99);
  const Tensor<float> noise = g1.randn<float>({2, 1, 8, 8});
  const auto drawn = pipe({.batch_size = 2, .num_inference_steps = 4}, g2).to_vector();
  const auto given = pipe({.batch_size = 2, .num_inference_steps = 4, .noise = noise}, unused).to_vector();
  CHECK(drawn == given);
  Generator g3(3);
  const auto stochastic =
      pipe({.batch_size = 2, .num_inference_steps = 4, .step_kwargs = {{"eta", 1.0}}}, g3).to_vector();
  CHECK(stochastic != drawn);
  CHECK_THROWS_WITH(pipe({.batch_size = 3, .num_inference_steps = 1, .noise = noise}, unused),
                    Catch::Contains("initial noise"));
}

TEST_CASE("a pipeline folder with PyTorch .bin weights loads") {
  const fs::path dir = scratch("bin");
  fs::create_directories(dir / "unet");
  for (const char* f : {"config.json", "diffusion_pytorch_model.bin"})
    fs::copy_file(fs::path(DIFFUSE_TORCH_FIXTURES) / "unet_fourier_bin" / f, dir / "unet" / f);
  schedulers::save_scheduler(*schedulers::make_scheduler<float>("DDPMScheduler", io::json::object()),
                             dir / "scheduler");
  std::ofstream(dir / "model_index.json")
      << R"({"_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers", "DDPMScheduler"]})";
  auto pipe = pipelines::DDPMPipeline<float>::from_pretrained(dir);
  CHECK(pipe.unet().num_parameters() > 0);
  fs::remove_all(dir);
}
