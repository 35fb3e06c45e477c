// UNet2DModel and the nn modules it is built from: parameter counts of the course's models, config
// JSON, errors on bad configs / inputs / checkpoints, and finite-difference gradient checks (double)
// of every new op and module.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <limits>

#include "capture_warnings.hpp"
#include "diffuse/autograd/activations.hpp"
#include "diffuse/autograd/channel_ops.hpp"
#include "diffuse/autograd/gradcheck.hpp"
#include "diffuse/autograd/reduce.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/models/unet_2d.hpp"
#include "diffuse/nn/functional.hpp"
#include "diffuse/optim/adam.hpp"

using namespace diffuse;
namespace fs = std::filesystem;
using models::UNet2DConfig;
using models::UNet2DModel;

namespace {

// The course notebook's Fashion-MNIST model and the butterflies model of the introduction notebook.
UNet2DModel<float>::Config course_config() {
  return {.sample_size = 28,
          .in_channels = 1,
          .out_channels = 1,
          .layers_per_block = 2,
          .block_out_channels = {32, 64, 64},
          .down_block_types = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"},
          .up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"}};
}

// A small model with every feature switched on, for fast tests.
UNet2DModel<double>::Config tiny_config() {
  return {.sample_size = 8,
          .in_channels = 2,
          .out_channels = 2,
          .layers_per_block = 1,
          .block_out_channels = {8, 16},
          .down_block_types = {"AttnDownBlock2D", "DownBlock2D"},
          .up_block_types = {"UpBlock2D", "AttnUpBlock2D"},
          .attention_head_dim = 4,
          .norm_num_groups = 4};
}

fs::path temp_dir(const std::string& tag) {
  return fs::temp_directory_path() /
         ("diffuse_test_unet_" + tag + "_" +
          std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
}

// sum(f(inputs) * R) with a fixed, non-symmetric R: a scalar whose gradient reaches every output.
Tensor<double> weighted_sum(const Tensor<double>& y) {
  Tensor<double> R = Tensor<double>::linspace(-1.0, 1.5, y.numel()).reshape(y.shape());
  for (std::int64_t i = 0; i < R.numel(); ++i) R.data()[i] += 0.3 * std::sin(1.7 * i);
  return sum(y * R);
}

void require_gradcheck(const std::function<Tensor<double>(const std::vector<Tensor<double>>&)>& f,
                       std::vector<Tensor<double>> inputs) {
  auto r = gradcheck(f, std::move(inputs), 1e-6, 1e-7, 1e-5);
  INFO(r.message << " (max abs error " << r.max_abs_error << ")");
  REQUIRE(r.ok);
}

template <class M>
std::vector<Tensor<double>> with_params(std::vector<Tensor<double>> inputs, const M& module) {
  for (auto& [name, p] : module.named_parameters())
    if (p.requires_grad()) inputs.push_back(p);
  return inputs;
}

}  // namespace

TEST_CASE("UNet2DModel parameter counts equal diffusers' for the course models") {
  UNet2DModel<float> course(course_config());
  CHECK(course.num_parameters() == 1'707'009);

  // The introduction notebook's butterflies model (attention in the two lowest resolutions).
  UNet2DModel<float> butterflies(
      {.sample_size = 32,
       .in_channels = 3,
       .out_channels = 3,
       .layers_per_block = 2,
       .block_out_channels = {64, 128, 128, 256},
       .down_block_types = {"DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"},
       .up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"}});
  CHECK(butterflies.num_parameters() == 18'536'323);
  // The same with attention only at 8x8 (count from diffusers' formula, via a PyTorch twin of the model)
  UNet2DModel<float> lighter(
      {.sample_size = 32,
       .in_channels = 3,
       .out_channels = 3,
       .layers_per_block = 2,
       .block_out_channels = {64, 128, 128, 256},
       .down_block_types = {"DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"},
       .up_block_types = {"UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"}});
  CHECK(lighter.num_parameters() == 17'217'923);
  CHECK(butterflies.parameters().size() == butterflies.named_parameters().size());
}

TEST_CASE("UNet2DModel parameter names follow diffusers") {
  UNet2DModel<double> unet(tiny_config());
  std::set<std::string> names;
  for (auto& [name, p] : unet.named_parameters()) names.insert(name);
  for (const char* n :
       {"conv_in.weight", "time_embedding.linear_1.weight", "time_embedding.linear_2.bias",
        "down_blocks.0.resnets.0.norm1.weight", "down_blocks.0.resnets.0.time_emb_proj.weight",
        "down_blocks.0.attentions.0.group_norm.weight", "down_blocks.0.attentions.0.to_q.weight",
        "down_blocks.0.attentions.0.to_out.0.bias", "down_blocks.0.downsamplers.0.conv.weight",
        "down_blocks.1.resnets.0.conv_shortcut.weight", "mid_block.resnets.1.conv2.bias",
        "mid_block.attentions.0.to_k.bias", "up_blocks.0.resnets.1.conv1.weight",
        "up_blocks.0.upsamplers.0.conv.weight", "up_blocks.1.attentions.1.to_v.weight",
        "conv_norm_out.weight", "conv_out.bias"})
    CHECK(names.count(n) == 1);
  CHECK(names.count("down_blocks.1.downsamplers.0.conv.weight") == 0);  // last down block: no downsampler
  CHECK(names.count("up_blocks.1.upsamplers.0.conv.weight") == 0);

  // "resnet" resampling puts a ResnetBlock2D under downsamplers.0 / upsamplers.0
  auto c = tiny_config();
  c.downsample_type = "resnet";
  c.upsample_type = "resnet";
  c.down_block_types = {"AttnDownBlock2D", "AttnDownBlock2D"};
  c.up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D"};
  UNet2DModel<double> r(c);
  names.clear();
  for (auto& [name, p] : r.named_parameters()) names.insert(name);
  CHECK(names.count("down_blocks.0.downsamplers.0.norm1.weight") == 1);
  CHECK(names.count("up_blocks.0.upsamplers.0.conv2.weight") == 1);
  Tensor<double> x = Generator(3).randn<double>({1, 2, 8, 8});
  CHECK(r(x, 10.0).shape() == Shape{1, 2, 8, 8});

  // class embeddings and scale_shift
  c = tiny_config();
  c.num_class_embeds = 5;
  c.resnet_time_scale_shift = "scale_shift";
  UNet2DModel<double> cc(c);
  names.clear();
  for (auto& [name, p] : cc.named_parameters()) names.insert(name);
  CHECK(names.count("class_embedding.weight") == 1);
  CHECK(names.count("mid_block.attentions.0.group_norm.weight") == 0);  // diffusers: none with scale_shift
  CHECK(cc.named_parameters().size() > 0);
}

TEST_CASE("UNet2DModel config JSON round trip and diffusers' keys") {
  auto c = tiny_config();
  c.center_input_sample = true;
  c.time_embedding_type = "fourier";
  c.flip_sin_to_cos = false;
  c.freq_shift = 1;
  c.mid_block_scale_factor = 1.5;
  c.downsample_padding = 0;
  c.act_fn = "mish";
  c.norm_eps = 1e-6;
  c.class_embed_type = "timestep";
  const auto j = c.to_json();
  CHECK(j["_class_name"] == "UNet2DModel");
  CHECK(j.contains("_diffusers_version"));
  CHECK(j["block_out_channels"] == io::json::array({8, 16}));
  CHECK(j["num_class_embeds"].is_null());
  CHECK(j["class_embed_type"] == "timestep");
  CHECK(j.size() == 26);  // 24 config keys of diffusers 0.21 + _class_name + _diffusers_version
  const auto back = UNet2DModel<double>::Config::from_json(j);
  CHECK(back.to_json() == j);

  // A config.json as diffusers writes it; private keys are skipped, unknown ones ignored with a
  // warning, defaults fill the rest.
  CaptureWarnings warnings;
  const auto parsed = UNet2DModel<float>::Config::from_json(io::json::parse(R"({
    "_class_name": "UNet2DModel", "_diffusers_version": "0.21.4", "_name_or_path": "x",
    "sample_size": 28, "in_channels": 1, "out_channels": 1, "block_out_channels": [32, 64, 64],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"], "attention_head_dim": null,
    "some_future_key": 3})"));
  CHECK(parsed.sample_size == 28);
  CHECK(!parsed.attention_head_dim);
  CHECK(parsed.layers_per_block == 2);
  CHECK(parsed.norm_num_groups == 32);
  REQUIRE(warnings.messages().size() == 1);
  CHECK_THAT(warnings.messages()[0],
             Catch::Contains("\"some_future_key\": 3") && Catch::Contains("UNet2DModel"));
  // newer diffusers' num_train_timesteps changes nothing here: quiet
  CHECK_NOTHROW(UNet2DConfig::from_json(io::json::parse(R"({"num_train_timesteps": null})")));
  CHECK(warnings.messages().size() == 1);
  CHECK_THROWS_WITH(UNet2DConfig::from_json(io::json::parse(R"({"in_channels": 1e300})")),
                    Catch::Contains("in_channels"));
  CHECK_THROWS_WITH(UNet2DConfig::from_json(io::json::parse(R"({"block_out_channels": [8, 1e300]})")),
                    Catch::Contains("block_out_channels"));
  CHECK_THROWS_WITH(UNet2DModel<float>::Config::from_json(io::json::parse(R"({"layers_per_block": "two"})")),
                    Catch::Contains("layers_per_block") && Catch::Contains("integer"));
  CHECK_THROWS_WITH(UNet2DModel<float>::Config::from_json(io::json::parse(R"({"_class_name": "VQModel"})")),
                    Catch::Contains("VQModel"));
}

TEST_CASE("UNet2DModel writes only keys diffusers 0.21 accepts, and refuses what it would run differently") {
  // config_keys.json: the keyword arguments of diffusers 0.21.4's UNet2DModel.__init__.
  const auto keys = io::read_json(fs::path(DIFFUSE_FIXTURES_DEFAULT) / "config_keys.json").at("UNet2DModel");
  for (const auto& config : {tiny_config(), UNet2DConfig{}}) {
    const auto j = config.to_json();
    for (auto it = j.begin(); it != j.end(); ++it) {
      INFO("key " << it.key());
      CHECK((it.key()[0] == '_' || keys.contains(it.key())));
    }
    for (auto it = keys.begin(); it != keys.end(); ++it) CHECK(j.contains(it.key()));
  }
  auto c = tiny_config();
  c.attn_norm_num_groups = 2;  // diffusers 0.21 ignores the key and normalises attention with norm_num_groups
  CHECK_THROWS_WITH(c.to_json(), Catch::Contains("attn_norm_num_groups"));
  c.attn_norm_num_groups = c.norm_num_groups;  // what 0.21 does anyway: fine, and not written
  CHECK(!c.to_json().contains("attn_norm_num_groups"));
  c.attn_norm_num_groups.reset();
  c.norm_num_groups.reset();  // diffusers 0.21 fails on null
  CHECK_THROWS_WITH(c.to_json(), Catch::Contains("norm_num_groups"));
  // Newer diffusers' folders carry "attn_norm_num_groups": null; it is read.
  CHECK_NOTHROW(UNet2DConfig::from_json(io::json::parse(R"({"attn_norm_num_groups": null})")));
}

TEST_CASE("sample_size may be [height, width], as in diffusers") {
  auto c = UNet2DConfig::from_json(io::json::parse(R"({"sample_size": [16, 24]})"));
  REQUIRE(c.sample_size);
  CHECK(c.sample_size->height == 16);
  CHECK(c.sample_size->width == 24);
  CHECK(c.to_json()["sample_size"] == io::json::array({16, 24}));
  CHECK(UNet2DConfig::from_json(io::json::parse(R"({"sample_size": [8, 8]})")).to_json()["sample_size"] == 8);
  CHECK_THROWS_WITH(UNet2DConfig::from_json(io::json::parse(R"({"sample_size": [1, 2, 3]})")),
                    Catch::Contains("sample_size"));
  CHECK_THROWS_WITH(UNet2DConfig::from_json(io::json::parse(R"({"sample_size": [8, "x"]})")),
                    Catch::Contains("sample_size"));
}

TEST_CASE("UNet2DModel refuses configs too large to build before allocating anything") {
  // Each of these once ended in std::bad_alloc (or, for layers_per_block, 5 GB and a minute of building).
  for (const char* text :
       {R"({"block_out_channels": [100000, 100000], "down_block_types": ["DownBlock2D", "DownBlock2D"],
                              "up_block_types": ["UpBlock2D", "UpBlock2D"]})",
        R"({"in_channels": 1000000000000})", R"({"num_class_embeds": 1000000000000})",
        R"({"layers_per_block": 10000000})"}) {
    INFO(text);
    const auto c = UNet2DConfig::from_json(io::json::parse(text));
    CHECK_THROWS_WITH(UNet2DModel<float>(c), Catch::Contains("parameters") && Catch::Contains("2^32"));
  }
  // Values that built a model computing NaN (norm_eps -1) or nothing (dropout 1.5).
  auto c = tiny_config();
  c.norm_eps = -1;
  CHECK_THROWS_WITH(UNet2DModel<float>(c), Catch::Contains("norm_eps"));
  c = tiny_config();
  c.dropout = 1.5;
  CHECK_THROWS_WITH(UNet2DModel<float>(c), Catch::Contains("dropout"));
  // (The estimate for diffusers' default UNet2DModel, 114 M parameters, is 8.3e8: far below the limit.)
}

TEST_CASE("UNet2DModel rejects unsupported configs, naming the value and what is accepted") {
  auto c = tiny_config();
  c.down_block_types[1] = "CrossAttnDownBlock2D";
  CHECK_THROWS_WITH(UNet2DModel<double>(c), Catch::Contains("CrossAttnDownBlock2D") &&
                                                Catch::Contains("DownBlock2D, AttnDownBlock2D"));
  c = tiny_config();
  c.up_block_types[0] = "SkipUpBlock2D";
  CHECK_THROWS_WITH(UNet2DModel<double>(c), Catch::Contains("SkipUpBlock2D") && Catch::Contains("accepted"));
  c = tiny_config();
  c.act_fn = "tanh";
  CHECK_THROWS_WITH(UNet2DModel<double>(c),
                    Catch::Contains("'tanh'") && Catch::Contains("silu, swish, mish, gelu, relu"));
  c = tiny_config();
  c.time_embedding_type = "learned";
  CHECK_THROWS_WITH(UNet2DModel<double>(c),
                    Catch::Contains("learned") && Catch::Contains("positional, fourier"));
  c = tiny_config();
  c.resnet_time_scale_shift = "ada_group";
  CHECK_THROWS_WITH(UNet2DModel<double>(c), Catch::Contains("ada_group"));
  c = tiny_config();
  c.downsample_type = "fir";
  CHECK_THROWS_WITH(UNet2DModel<double>(c), Catch::Contains("fir") && Catch::Contains("conv, resnet"));
  c = tiny_config();
  c.class_embed_type = "projection";
  CHECK_THROWS_WITH(UNet2DModel<double>(c), Catch::Contains("projection"));
  c = tiny_config();
  c.up_block_types.pop_back();
  CHECK_THROWS_WITH(UNet2DModel<double>(c), Catch::Contains("same length"));
  c = tiny_config();
  c.norm_num_groups = 3;
  CHECK_THROWS_WITH(UNet2DModel<double>(c), Catch::Contains("groups"));
}

TEST_CASE("UNet2DModel forward: shapes, timesteps, errors on bad input") {
  UNet2DModel<double> unet(tiny_config());
  Generator gen(1);
  Tensor<double> x = gen.randn<double>({2, 2, 8, 8});
  NoGradGuard no_grad;
  Tensor<double> y = unet(x, Tensor<double>::from_vector({7, 7}));
  CHECK(y.shape() == x.shape());
  CHECK(unet(x, 7.0).to_vector() == y.to_vector());                                    // scalar overload
  CHECK(unet(x, Tensor<double>::from_vector({7})).to_vector() == y.to_vector());       // one value
  CHECK(unet(x, Tensor<double>::from_vector({7, 500})).to_vector() != y.to_vector());  // per image
  // per-image timesteps: image 1 of a mixed batch equals image 1 of a batch run at its own timestep
  Tensor<double> mixed = unet(x, Tensor<double>::from_vector({7, 500}));
  Tensor<double> at500 = unet(x, 500.0);
  for (std::int64_t i = 128; i < 256; ++i) CHECK(mixed.data()[i] == Approx(at500.data()[i]).margin(1e-12));

  // the course's spelling: integer timesteps from randint, as torch.randint(0, 1000, (bs,))
  const std::vector<std::int64_t> ints{7, 500};
  CHECK(unet(x, ints).to_vector() == mixed.to_vector());
  CHECK(unet(x, std::vector<std::int64_t>{500}).to_vector() == at500.to_vector());
  CHECK(gen.randint(0, 1000, 4).size() == 4);
  CHECK_THROWS_WITH(unet(x, std::vector<std::int64_t>{1, 2, 3}), Catch::Contains("timesteps"));

  CHECK_THROWS_WITH(unet(gen.randn<double>({2, 3, 8, 8}), 1.0), Catch::Contains("[N, 2, H, W]"));
  CHECK_THROWS_WITH(unet(gen.randn<double>({2, 2, 7, 8}), 1.0), Catch::Contains("multiples of 2"));
  CHECK_THROWS_WITH(unet(gen.randn<double>({2, 2, 8}), 1.0), Catch::Contains("[N, 2, H, W]"));
  CHECK_THROWS_WITH(unet(x, Tensor<double>::from_vector({1, 2, 3})), Catch::Contains("timesteps"));

  auto c = tiny_config();
  c.num_class_embeds = 3;
  UNet2DModel<double> cond(c);
  CHECK_THROWS_WITH(cond(x, 1.0), Catch::Contains("class_labels"));
  CHECK_THROWS_WITH(cond(x, 1.0, Tensor<double>::from_vector({0, 3})), Catch::Contains("index 3"));
  CHECK(cond(x, 1.0, Tensor<double>::from_vector({0, 2})).shape() == x.shape());
  c.num_class_embeds.reset();
  c.class_embed_type = "identity";
  UNet2DModel<double> ident(c);
  CHECK(ident(x, 1.0, gen.randn<double>({2, 32})).shape() == x.shape());
  CHECK_THROWS_WITH(ident(x, 1.0, gen.randn<double>({2, 31})), Catch::Contains("identity"));
}

TEST_CASE("dropout draws from the model's generator, or the caller's, never the global one") {
  auto c = tiny_config();
  c.dropout = 0.5;
  Generator data(3);
  Tensor<double> x = data.randn<double>({2, 2, 8, 8});
  auto forward = [&](UNet2DModel<double>& m) {
    NoGradGuard no_grad;
    return m(x, 10.0).to_vector();
  };
  Generator init_a(5), init_b(5);
  UNet2DModel<double> a(c, init_a), b(c, init_b);  // the same weights
  const GeneratorState global_before = default_generator().state();
  CHECK(forward(a) == forward(b));                      // each owns a generator with seed 0
  CHECK(default_generator().state() == global_before);  // the global one is untouched
  CHECK(a.generator().state() == b.generator().state());
  const auto again = forward(a);
  b.generator().manual_seed(7);
  CHECK(forward(b) != again);  // the draws come from b's generator
  // One generator for the whole tree: every ResnetBlock2D draws from it, so it advances once per draw.
  const GeneratorState before = a.generator().state();
  forward(a);
  CHECK(!(a.generator().state() == before));
  // The caller's generator: a.set_generator(gen) makes a draw from gen, and equal gens give equal outputs.
  Generator g1(11), g2(11);
  a.set_generator(g1);
  b.set_generator(g2);
  CHECK(forward(a) == forward(b));
  CHECK(g1.state() == g2.state());
  CHECK(!(g1.state() == GeneratorState{11, 0}));
  // eval() turns dropout off: nothing is drawn.
  a.eval();
  const GeneratorState g1_before = g1.state();
  forward(a);
  CHECK(g1.state() == g1_before);
}

TEST_CASE("UNet2DModel save_pretrained / from_pretrained, strict checkpoint keys") {
  auto c = tiny_config();
  c.time_embedding_type = "fourier";  // frozen time_proj.weight and its alias time_proj.W travel too
  UNet2DModel<float> unet(c);
  const fs::path dir = temp_dir("save");
  unet.save_pretrained(dir);
  CHECK(fs::exists(dir / "config.json"));
  CHECK(fs::exists(dir / "diffusion_pytorch_model.safetensors"));
  for (auto& e : fs::directory_iterator(dir))
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  const auto keys = io::load_safetensors_info(dir / "diffusion_pytorch_model.safetensors");
  CHECK(keys.count("time_proj.W") == 1);
  CHECK(keys.count("time_proj.weight") == 1);
  CHECK(io::load_safetensors_metadata(dir / "diffusion_pytorch_model.safetensors").at("format") == "pt");

  auto loaded = UNet2DModel<float>::from_pretrained(dir);
  Tensor<float> x = Generator(2).randn<float>({1, 2, 8, 8});
  {
    NoGradGuard no_grad;
    CHECK(loaded(x, 3.0).to_vector() == unet(x, 3.0).to_vector());
  }
  // the frozen Fourier frequencies, registered under two names, are one parameter, not trained
  CHECK(loaded.parameters().size() + 1 == loaded.named_parameters().size());
  std::int64_t frozen = 0;
  for (auto& p : loaded.parameters()) frozen += !p.requires_grad();
  CHECK(frozen == 1);
  CHECK(loaded.num_parameters() + 8 == [&] {  // the 8 Fourier frequencies are counted once
    std::int64_t n = 0;
    for (auto& [name, p] : loaded.named_parameters()) n += p.numel();
    return n;
  }());

  // a weight holding NaN or infinity (every output would be non-finite): refused, naming it, unless asked
  auto weights = io::load_safetensors<float>(dir / "diffusion_pytorch_model.safetensors");
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    auto broken = weights;  // the tensors share storage: replace the one to break by a copy
    auto& w = broken.at("down_blocks.1.resnets.0.conv2.weight");
    w = w.clone();
    w.data()[5] = bad;
    io::save_safetensors(dir / "diffusion_pytorch_model.safetensors", broken);
    CHECK_THROWS_WITH(UNet2DModel<float>::from_pretrained(dir),
                      Catch::Contains("down_blocks.1.resnets.0.conv2.weight") && Catch::Contains("index 5") &&
                          Catch::Contains("check_finite"));
    CHECK_NOTHROW(UNet2DModel<float>::from_pretrained(dir, {.check_finite = false}));
  }
  io::save_safetensors(dir / "diffusion_pytorch_model.safetensors", weights);

  // a checkpoint with a missing and an unexpected weight: both named
  weights.erase("mid_block.attentions.0.to_q.bias");
  weights.emplace("mid_block.attentions.0.query.bias", Tensor<float>({16}));
  io::save_safetensors(dir / "diffusion_pytorch_model.safetensors", weights);
  CHECK_THROWS_WITH(UNet2DModel<float>::from_pretrained(dir),
                    Catch::Contains("missing keys: mid_block.attentions.0.to_q.bias") &&
                        Catch::Contains("unexpected keys: mid_block.attentions.0.query.bias") &&
                        Catch::Contains("diffusion_pytorch_model.safetensors"));
  // a wrong shape
  weights.erase("mid_block.attentions.0.query.bias");
  weights.emplace("mid_block.attentions.0.to_q.bias", Tensor<float>({15}));
  io::save_safetensors(dir / "diffusion_pytorch_model.safetensors", weights);
  CHECK_THROWS_WITH(UNet2DModel<float>::from_pretrained(dir),
                    Catch::Contains("to_q.bias (expected [16], got [15])"));
  // a config with an unsupported block
  auto j = c.to_json();
  j["down_block_types"][0] = "KDownBlock2D";
  io::write_json(dir / "config.json", j);
  CHECK_THROWS_WITH(UNet2DModel<float>::from_pretrained(dir),
                    Catch::Contains("KDownBlock2D") && Catch::Contains("config.json"));
  fs::remove_all(dir);
  CHECK_THROWS_AS(UNet2DModel<float>::from_pretrained(dir), FileError);
}

TEST_CASE("from_pretrained: an error of a module sized by config.json names the file and keeps its type") {
  auto c = tiny_config();
  c.down_block_types = {"DownBlock2D", "DownBlock2D"};
  c.up_block_types = {"UpBlock2D", "UpBlock2D"};
  const fs::path dir = temp_dir("module_errors");
  UNet2DModel<float>(c).save_pretrained(dir);
  const std::string file = (dir / "config.json").string();
  auto refused = [&](io::json j, const std::string& module_message) {
    io::write_json(dir / "config.json", j);
    try {
      UNet2DModel<float>::from_pretrained(dir);
      FAIL("from_pretrained accepted " << j.dump());
    } catch (const FileError& e) {
      FAIL("a config value's error became a FileError: " << e.what());
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Catch::StartsWith("'" + file + "': ") && Catch::Contains(module_message));
    }
  };
  auto j = c.to_json();
  j["block_out_channels"] = {30, 30};  // GroupNorm: 30 channels in 32 groups
  j["norm_num_groups"] = 32;
  refused(j, "GroupNorm: 30 channels cannot be split into 32 groups");
  j = c.to_json();
  j["downsample_padding"] = -1;
  refused(j, "Downsample2D: padding must be 0, 1 or 2, got -1");
  j["downsample_padding"] = 8885;  // grew the image instead of halving it (fuzz_unet_config)
  refused(j, "Downsample2D: padding must be 0, 1 or 2, got 8885");
  fs::remove_all(dir);
}

TEST_CASE("embeddings: sinusoidal timesteps, Fourier projection, class lookup") {
  // get_timestep_embedding(t, 6, flip, shift): freq_i = exp(-ln(1e4) * i / (3 - shift))
  Tensor<double> t = Tensor<double>::from_vector({0, 10});
  Tensor<double> e = nn::timestep_embedding(t, 6, false, 1.0);
  REQUIRE(e.shape() == Shape{2, 6});
  for (int i = 0; i < 3; ++i) {
    const double f = std::exp(-std::log(10000.0) * i / 2.0);
    CHECK(e.at({1, i}) == Approx(std::sin(10 * f)).margin(1e-15));
    CHECK(e.at({1, 3 + i}) == Approx(std::cos(10 * f)).margin(1e-15));
    CHECK(e.at({0, 3 + i}) == 1.0);
  }
  Tensor<double> flipped = nn::timestep_embedding(t, 7, true, 0.0);  // cos first, zero pad for odd dim
  CHECK(flipped.at({1, 0}) == Approx(std::cos(10.0)).margin(1e-15));
  CHECK(flipped.at({1, 3}) == Approx(std::sin(10.0)).margin(1e-15));
  CHECK(flipped.at({1, 6}) == 0.0);
  CHECK_THROWS_WITH(nn::timestep_embedding(t, 2, false, 1.0), Catch::Contains("division by zero"));

  Generator gen(5);
  nn::GaussianFourierProjection<double> fp(4, 16.0, true, false, gen);
  Tensor<double> g = fp(Tensor<double>::from_vector({2.5}));
  const double arg = std::log(2.5) * fp.weight.data()[1] * 2 * std::numbers::pi;
  CHECK(g.at({0, 1}) == Approx(std::sin(arg)).margin(1e-12));
  CHECK(g.at({0, 5}) == Approx(std::cos(arg)).margin(1e-12));
  CHECK_THROWS_WITH(fp(Tensor<double>::from_vector({0.0})), Catch::Contains("non-positive"));

  nn::Embedding<double> emb(4, 3, gen);
  require_gradcheck(
      [&](const auto&) {
        return weighted_sum(emb(Tensor<double>::from_vector({2, 0, 2})));
      },
      with_params({}, emb));
  CHECK_THROWS_WITH(emb(Tensor<double>::from_vector({1.5})), Catch::Contains("whole number"));
}

TEST_CASE("gradient checks of the UNet's ops and modules (double, finite differences)") {
  Generator gen(11);
  SECTION("activations") {
    for (auto act : {"gelu", "mish", "silu", "relu"}) {
      INFO(act);
      Tensor<double> x = gen.randn<double>({17});
      x.data()[0] = 25.0;  // softplus threshold branch of mish
      auto a = nn::activation_from_name(act);
      require_gradcheck([&](const auto& in) { return weighted_sum(nn::apply_activation(a, in[0])); }, {x});
    }
    CHECK(nn::activation_from_name("Swish") == nn::Activation::silu);
    // reference values: torch.nn.functional.gelu / mish in float64 (torch 1.13)
    Tensor<double> x = Tensor<double>::from_vector({-1.5, 0.3, 2.0});
    auto gl = gelu(x), ms = mish(x);
    CHECK(gl.data()[0] == Approx(-0.10021080190328704).epsilon(1e-13));
    CHECK(gl.data()[1] == Approx(0.1853734266566858).epsilon(1e-13));
    CHECK(gl.data()[2] == Approx(1.9544997361036416).epsilon(1e-13));
    CHECK(ms.data()[0] == Approx(-0.29809974216680674).epsilon(1e-13));
    CHECK(ms.data()[1] == Approx(0.20800137234811503).epsilon(1e-13));
    CHECK(ms.data()[2] == Approx(1.9439589595339946).epsilon(1e-13));
  }
  SECTION("per-channel ops and padding") {
    Tensor<double> x = gen.randn<double>({2, 3, 2, 3});
    require_gradcheck([](const auto& in) { return weighted_sum(add_per_channel(in[0], in[1])); },
                      {x, gen.randn<double>({2, 3})});
    require_gradcheck([](const auto& in) { return weighted_sum(scale_shift(in[0], in[1])); },
                      {x, gen.randn<double>({2, 6})});
    require_gradcheck([](const auto& in) { return weighted_sum(nn::functional::pad_bottom_right(in[0])); },
                      {x});
    CHECK_THROWS_WITH(add_per_channel(x, gen.randn<double>({2, 4})), Catch::Contains("[2, 4]"));
  }
  SECTION("multi-head attention, channel-first") {
    // 2 heads of 3 channels over 70 pixels: more than one query tile
    require_gradcheck(
        [](const auto& in) {
          return weighted_sum(nn::functional::multihead_attention_channels_first(in[0], 2, 0.4));
        },
        {gen.randn<double>({1, 18, 70})});
    require_gradcheck(
        [](const auto& in) {
          return weighted_sum(nn::functional::multihead_attention_channels_first(in[0], 1, 0.7));
        },
        {gen.randn<double>({2, 6, 5})});
  }
  SECTION("ResnetBlock2D: default and scale_shift, shortcut, up and down") {
    for (auto [norm, in, out, up, down] : {std::tuple{"default", 4, 6, false, false},
                                           {"scale_shift", 4, 4, false, false},
                                           {"default", 4, 4, true, false},
                                           {"scale_shift", 4, 6, false, true}}) {
      INFO(norm << " " << in << "->" << out << " up " << up << " down " << down);
      nn::ResnetBlock2D<double> block({.in_channels = in,
                                       .out_channels = out,
                                       .temb_channels = 5,
                                       .groups = 2,
                                       .eps = 1e-5,
                                       .non_linearity = "silu",
                                       .time_embedding_norm = norm,
                                       .output_scale_factor = 1.5,
                                       .up = up,
                                       .down = down},
                                      gen);
      Tensor<double> x = gen.randn<double>({2, in, 4, 4}), temb = gen.randn<double>({2, 5});
      require_gradcheck([&](const auto& v) { return weighted_sum(block(v[0], v[1])); },
                        with_params({x, temb}, block));
    }
  }
  SECTION("Attention: heads, group norm, residual, rescale") {
    nn::Attention<double> attn({.query_dim = 4,
                                .heads = 2,
                                .dim_head = 2,
                                .norm_num_groups = 2,
                                .rescale_output_factor = 2.0,
                                .residual_connection = true},
                               gen);
    Tensor<double> x = gen.randn<double>({2, 4, 3, 3});
    require_gradcheck([&](const auto& v) { return weighted_sum(attn(v[0])); }, with_params({x}, attn));
    // inner dim different from the channels, no norm, no residual
    nn::Attention<double> narrow({.query_dim = 5, .heads = 1, .dim_head = 3}, gen);
    Tensor<double> y = gen.randn<double>({1, 5, 2, 3});
    require_gradcheck([&](const auto& v) { return weighted_sum(narrow(v[0])); }, with_params({y}, narrow));
  }
  SECTION("TimestepEmbedding, Downsample2D (padding 0 and 1, pooling), Upsample2D") {
    nn::TimestepEmbedding<double> te(4, 6, "silu", gen);
    require_gradcheck([&](const auto& v) { return weighted_sum(te(v[0])); },
                      with_params({gen.randn<double>({2, 4})}, te));
    for (std::int64_t pad : {0, 1}) {
      nn::Downsample2D<double> d(3, true, 2, pad, gen);
      Tensor<double> x = gen.randn<double>({1, 3, 4, 4});
      CHECK(d(x).shape() == Shape{1, 2, 2, 2});
      require_gradcheck([&](const auto& v) { return weighted_sum(d(v[0])); }, with_params({x}, d));
    }
    nn::Downsample2D<double> pool(3);
    CHECK(pool(gen.randn<double>({1, 3, 4, 4})).shape() == Shape{1, 3, 2, 2});
    nn::Upsample2D<double> u(3, true, 2, gen);
    Tensor<double> x = gen.randn<double>({1, 3, 2, 2});
    CHECK(u(x).shape() == Shape{1, 2, 4, 4});
    require_gradcheck([&](const auto& v) { return weighted_sum(u(v[0])); }, with_params({x}, u));
  }
  SECTION("a whole tiny UNet2DModel (input gradient)") {
    // (without attention: UNet2DModel's attention softmax runs in float32 like diffusers', which
    // finite differences cannot resolve; Attention itself is checked above in full double)
    UNet2DModel<double> unet({.in_channels = 1,
                              .out_channels = 1,
                              .layers_per_block = 1,
                              .block_out_channels = {4, 4},
                              .down_block_types = {"DownBlock2D", "DownBlock2D"},
                              .up_block_types = {"UpBlock2D", "UpBlock2D"},
                              .norm_num_groups = 2,
                              .resnet_time_scale_shift = "scale_shift",
                              .add_attention = false,
                              .num_class_embeds = 2},
                             gen);
    require_gradcheck(
        [&](const auto& v) {
          return weighted_sum(
              unet(v[0], Tensor<double>::from_vector({3, 900}), Tensor<double>::from_vector({1, 0})));
        },
        {gen.randn<double>({2, 1, 4, 4})});
  }
}

TEST_CASE("UNet2DModel trains: Adam steps lower the loss on a fixed batch") {
  Generator gen(7);
  UNet2DModel<float> unet({.in_channels = 1,
                           .out_channels = 1,
                           .layers_per_block = 1,
                           .block_out_channels = {8, 16},
                           .down_block_types = {"DownBlock2D", "AttnDownBlock2D"},
                           .up_block_types = {"AttnUpBlock2D", "UpBlock2D"},
                           .norm_num_groups = 4},
                          gen);
  optim::Adam<float> opt(unet.parameters(), {.lr = 2e-3});
  Tensor<float> x = gen.randn<float>({4, 1, 8, 8}), noise = gen.randn<float>({4, 1, 8, 8});
  Tensor<float> t = Tensor<float>::from_vector({10, 200, 500, 900});
  float first = 0, last = 0;
  for (int step = 0; step < 15; ++step) {
    auto loss = nn::functional::mse_loss(unet(x, t), noise);
    if (step == 0) first = loss.item();
    last = loss.item();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  CHECK(last < 0.7f * first);
}
