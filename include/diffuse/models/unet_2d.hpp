/// @file
/// UNet2DModel: diffusers' unconditional (optionally class-conditional) image UNet, with the same
/// config keys, the same parameter names and the same numbers, so checkpoints move both ways:
///
/// @code
///   models::UNet2DModel<float> unet({
///       .sample_size = 28, .in_channels = 1, .out_channels = 1, .block_out_channels = {32, 64, 64},
///       .down_block_types = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"},
///       .up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"}});
///   Tensor<float> noise_pred = unet(noisy_images, timesteps);  // timesteps [N] or one value
///   unet.save_pretrained("my_unet");                            // config.json + safetensors
///   auto again = models::UNet2DModel<float>::from_pretrained("my_unet");
/// @endcode
///
/// Config fields are the keys of diffusers' config.json with diffusers' defaults (declared in the
/// order the course notebooks pass them, so designated initializers read the same).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/precompiled.hpp"
#include "diffuse/io/config.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/io/pytorch_bin.hpp"
#include "diffuse/io/safetensors.hpp"
#include "diffuse/models/unet_2d_blocks.hpp"
#include "diffuse/nn/embeddings.hpp"
#include "diffuse/nn/timestep_embedding.hpp"

namespace diffuse::models {

/// diffusers' sample_size: one number (square images) or [height, width].
struct SampleSize {
  /// Image height and width in pixels.
  std::int64_t height = 0, width = 0;
  /// A square size (implicit, so `.sample_size = 28` reads as in Python).
  SampleSize(std::int64_t size) : height(size), width(size) {}  // NOLINT(google-explicit-constructor)
  /// height x width.
  SampleSize(std::int64_t h, std::int64_t w) : height(h), width(w) {}
  /// Whether height equals width.
  bool square() const { return height == width; }
  /// Same height and width.
  bool operator==(const SampleSize&) const = default;
  /// Whether this is `size` x `size`.
  bool operator==(std::int64_t size) const { return height == size && width == size; }
};

/// UNet2DModel's config: the keys of diffusers' config.json with their defaults (see the file comment).
struct UNet2DConfig {
  std::optional<SampleSize> sample_size =
      std::nullopt;  // informational (pipelines use it for the image size)
  /// Channels of the input sample.
  std::int64_t in_channels = 3;
  /// Channels of the output.
  std::int64_t out_channels = 3;
  /// ResnetBlock2Ds per down block (up blocks have one more).
  std::int64_t layers_per_block = 2;
  /// Output channels of each block, from the highest resolution down; its length is the number of blocks.
  std::vector<std::int64_t> block_out_channels = {224, 448, 672, 896};
  /// "DownBlock2D" or "AttnDownBlock2D" for each block, from the highest resolution down.
  std::vector<std::string> down_block_types = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D",
                                               "AttnDownBlock2D"};
  /// "UpBlock2D" or "AttnUpBlock2D" for each block, from the lowest resolution up.
  std::vector<std::string> up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"};
  /// Maps the sample from [0, 1] to [-1, 1] (2x - 1) first.
  bool center_input_sample = false;
  std::string time_embedding_type = "positional";  ///< "positional" or "fourier"
  /// downscale_freq_shift of the positional time embedding.
  std::int64_t freq_shift = 0;
  /// cos before sin in the positional time embedding.
  bool flip_sin_to_cos = true;
  /// output_scale_factor of the mid block.
  double mid_block_scale_factor = 1.0;
  /// Padding of the down blocks' Downsample2D convolutions.
  std::int64_t downsample_padding = 1;
  std::string downsample_type = "conv";  ///< "conv" or "resnet"
  std::string upsample_type = "conv";    ///< "conv" or "resnet"
  /// Dropout probability of every ResnetBlock2D.
  double dropout = 0.0;
  /// Activation of the ResnetBlock2Ds (the time embedding MLP and the output use SiLU whatever this is).
  std::string act_fn = "silu";
  std::optional<std::int64_t> attention_head_dim = 8;  ///< null: one head over all channels
  std::optional<std::int64_t> norm_num_groups = 32;    ///< null: min(block_out_channels[0] / 4, 32)
  /// Newer diffusers' key (read, never written): diffusers 0.21 has no such key and always uses
  /// norm_num_groups, so a model with another value cannot be saved for it.
  std::optional<std::int64_t> attn_norm_num_groups = std::nullopt;
  /// Epsilon of every GroupNorm.
  double norm_eps = 1e-5;
  std::string resnet_time_scale_shift = "default";  ///< "default" or "scale_shift"
  /// Whether the mid block has attention.
  bool add_attention = true;
  std::optional<std::string> class_embed_type = std::nullopt;  ///< null, "timestep" or "identity"
  /// Number of classes: with class_embed_type null, a class Embedding of that many rows.
  std::optional<std::int64_t> num_class_embeds = std::nullopt;

  /// Calls v(key, field) for every config key, in diffusers' order.
  template <class C, class V>
  static void visit(C& c, V&& v) {
    v("sample_size", c.sample_size);
    v("in_channels", c.in_channels);
    v("out_channels", c.out_channels);
    v("center_input_sample", c.center_input_sample);
    v("time_embedding_type", c.time_embedding_type);
    v("freq_shift", c.freq_shift);
    v("flip_sin_to_cos", c.flip_sin_to_cos);
    v("down_block_types", c.down_block_types);
    v("up_block_types", c.up_block_types);
    v("block_out_channels", c.block_out_channels);
    v("layers_per_block", c.layers_per_block);
    v("mid_block_scale_factor", c.mid_block_scale_factor);
    v("downsample_padding", c.downsample_padding);
    v("downsample_type", c.downsample_type);
    v("upsample_type", c.upsample_type);
    v("dropout", c.dropout);
    v("act_fn", c.act_fn);
    v("attention_head_dim", c.attention_head_dim);
    v("norm_num_groups", c.norm_num_groups);
    v("attn_norm_num_groups", c.attn_norm_num_groups);
    v("norm_eps", c.norm_eps);
    v("resnet_time_scale_shift", c.resnet_time_scale_shift);
    v("add_attention", c.add_attention);
    v("class_embed_type", c.class_embed_type);
    v("num_class_embeds", c.num_class_embeds);
  }

  /// diffusers' config.json contents ("_class_name": "UNet2DModel", "_diffusers_version").
  nlohmann::json to_json() const;
  /// Reads a config.json object. Keys starting with "_" and keys this model does not know are
  /// ignored (as diffusers does); a known key with a value of the wrong type is an Error naming it.
  static UNet2DConfig from_json(const nlohmann::json& j);
};

}  // namespace diffuse::models

namespace diffuse::detail {

inline constexpr const char* kUNet2DClassName = "UNet2DModel";

inline std::string join_names(std::initializer_list<const char*> names) {
  std::string s;
  for (const char* n : names) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

}  // namespace diffuse::detail

namespace diffuse::models {

/// How from_pretrained loads a folder.
struct PretrainedOptions {
  bool check_finite = true;  ///< refuse weights holding NaN or infinity, naming the first such tensor
};

/// sample_size in config.json: an integer, [height, width] or null (found by io's config reader).
inline void read_config_value(const nlohmann::json& v, std::optional<SampleSize>& f) {
  if (v.is_null()) {
    f.reset();
    return;
  }
  constexpr io::ConfigTypeError kExpected{"an integer, [height, width] or null"};
  if (v.is_array() && v.size() != 2) throw kExpected;
  std::int64_t h = 0, w = 0;
  try {
    io::read_config_value(v.is_array() ? v[0] : v, h);
    io::read_config_value(v.is_array() ? v[1] : v, w);
  } catch (const io::ConfigTypeError&) {
    throw kExpected;
  }
  f = SampleSize(h, w);
}
/// sample_size for config.json: an integer when square, else [height, width]; null when unset.
inline nlohmann::json to_config_value(const std::optional<SampleSize>& f) {
  if (!f) return nullptr;
  if (f->square()) return f->height;
  return {f->height, f->width};
}

inline nlohmann::json UNet2DConfig::to_json() const {
  // diffusers 0.21 would compute something else from these (or fail to load them).
  // (0.21's mid-block attention norm: norm_num_groups with the "default" time scale shift, none otherwise.)
  if (attn_norm_num_groups &&
      !(attn_norm_num_groups == norm_num_groups && resnet_time_scale_shift == "default"))
    throw Error(
        "UNet2DModel config: attn_norm_num_groups " + std::to_string(*attn_norm_num_groups) +
        " cannot be saved for diffusers 0.21, which has no such key and would normalise the mid-block "
        "attention otherwise (norm_num_groups with resnet_time_scale_shift \"default\", none else)");
  if (!norm_num_groups)
    throw Error(
        "UNet2DModel config: norm_num_groups null cannot be saved for diffusers 0.21, which fails to "
        "load it; set the number of groups");
  nlohmann::json j = io::config_to_json(*this, diffuse::detail::kUNet2DClassName);
  j.erase("attn_norm_num_groups");  // read from newer diffusers' folders; 0.21 does not accept it
  return j;
}

inline UNet2DConfig UNet2DConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error("UNet2DModel config: expected a JSON object, got " + io::describe_json(j));
  if (j.contains("_class_name") && j["_class_name"] != diffuse::detail::kUNet2DClassName)
    throw Error("UNet2DModel config: _class_name is " + io::describe_json(j["_class_name"]) +
                ", not \"UNet2DModel\"");
  // Newer diffusers' UNet2DModel also takes num_train_timesteps (for a "learned" time embedding,
  // which is refused here anyway): it passes quietly.
  return io::config_from_json<UNet2DConfig>(j, "UNet2DModel", {"num_train_timesteps"});
}

/// diffusers' UNet2DModel (see the file comment).
template <class T = float>
class UNet2DModel : public nn::Module<T> {
 public:
  /// The config type.
  using Config = UNet2DConfig;

  /// Builds the model of `config` with initial weights drawn from `gen`. diffuse::Error naming any
  /// unsupported or inconsistent config value.
  explicit UNet2DModel(const Config& config = {}, Generator& gen = default_generator());

  /// The config the model was built with.
  const Config& config() const { return config_; }

  /// sample [N, in_channels, H, W]; timesteps [N] or a single value (also [] or [1]); class_labels [N]
  /// (whole numbers) when the model has a class embedding ([N, time_embed_dim] for "identity").
  Tensor<T> operator()(const Tensor<T>& sample, const Tensor<T>& timesteps,
                       const Tensor<T>& class_labels = {}) const;

  /// The same with integer timesteps, one per image (or one for all): what randint gives, as in the
  /// course's model(noisy, timesteps) with timesteps = torch.randint(0, 1000, (bs,)).
  Tensor<T> operator()(const Tensor<T>& sample, const std::vector<std::int64_t>& timesteps,
                       const Tensor<T>& class_labels = {}) const {
    return (*this)(sample,
                   Tensor<T>(Shape{static_cast<std::int64_t>(timesteps.size())},
                             std::vector<T>(timesteps.begin(), timesteps.end())),
                   class_labels);
  }

  /// The same with one timestep value for every image.
  Tensor<T> operator()(const Tensor<T>& sample, double timestep, const Tensor<T>& class_labels = {}) const {
    return (*this)(sample, Tensor<T>::from_vector({static_cast<T>(timestep)}), class_labels);
  }

  /// Loads a diffusers folder: config.json and diffusion_pytorch_model.safetensors (F32, F16, BF16
  /// or F64 weights), or diffusion_pytorch_model.bin (torch.save's zip format) when there is no
  /// safetensors file. Strict: missing and unexpected weights are errors naming them. The model is
  /// in eval mode, as diffusers leaves it; call train() to fine-tune.
  /// Every weight is checked to be finite (a NaN or infinity makes every output non-finite); the
  /// first bad tensor is named. PretrainedOptions{.check_finite = false} skips the check.
  static UNet2DModel from_pretrained(const std::filesystem::path& dir, PretrainedOptions options = {}) {
    return UNet2DModel(PretrainedTag{}, dir, options);
  }

  /// Writes config.json and diffusion_pytorch_model.safetensors (dtype "F32" by default, as diffusers
  /// does) into `dir`, creating it if needed. Each file is written to a temporary name and renamed.
  void save_pretrained(const std::filesystem::path& dir, const std::string& dtype = "F32") const;

  /// The 3x3 convolutions at the entry and the exit.
  std::shared_ptr<nn::Conv2d<T>> conv_in, conv_out;
  std::shared_ptr<nn::Timesteps<T>> positional_proj;               ///< "time_proj" (positional)
  std::shared_ptr<nn::GaussianFourierProjection<T>> fourier_proj;  ///< "time_proj" (fourier)
  /// The MLP applied to the time projection.
  std::shared_ptr<nn::TimestepEmbedding<T>> time_embedding;
  std::shared_ptr<nn::Embedding<T>> class_embedding;                   ///< num_class_embeds
  std::shared_ptr<nn::TimestepEmbedding<T>> class_timestep_embedding;  ///< class_embed_type "timestep"
  /// "down_blocks.i".
  std::shared_ptr<nn::ModuleList<DownBlock2D<T>>> down_blocks;
  /// "mid_block".
  std::shared_ptr<UNetMidBlock2D<T>> mid_block;
  /// "up_blocks.i".
  std::shared_ptr<nn::ModuleList<UpBlock2D<T>>> up_blocks;
  /// The normalisation before the final SiLU and conv_out.
  std::shared_ptr<nn::GroupNorm<T>> conv_norm_out;

 private:
  struct PretrainedTag {};
  struct ConfigFileTag {};

  // Builds the model of a config read from `file`: an Error of a module the config sizes
  // (GroupNorm's groups, Downsample2D's padding) names the file, as the config's own errors do.
  UNet2DModel(ConfigFileTag, const Config& config, const std::filesystem::path& file, Generator& gen) try
      : UNet2DModel(config, gen) {
  } catch (const Error&) {
    rethrow_with_prefix("'" + file.string() + "': ");
  }

  static Config read_config(const std::filesystem::path& path);

  // from_pretrained builds the model in place (a Module cannot be moved); the initial values drawn
  // from `gen` are overwritten by the checkpoint.
  UNet2DModel(PretrainedTag, const std::filesystem::path& dir, PretrainedOptions options,
              Generator gen = Generator(0));

  static UNetBlockOptions block_options(const Config& c, std::int64_t temb, std::int64_t groups,
                                        std::int64_t channels);

  // Every unsupported choice is reported with the value and what is accepted.
  static void check_config(const Config& c);

  Config config_;
  bool fourier_ = false;
};

template <class T>
DIFFUSE_COLD UNet2DModel<T>::UNet2DModel(const Config& config, Generator& gen) : config_(config) {
  const Config& c = config_;
  check_config(c);
  fourier_ = c.time_embedding_type == "fourier";
  const std::int64_t ch0 = c.block_out_channels[0], time_embed_dim = ch0 * 4;
  const std::int64_t groups = c.norm_num_groups.value_or(std::min<std::int64_t>(ch0 / 4, 32));
  conv_in = this->register_module(
      "conv_in",
      std::make_shared<nn::Conv2d<T>>(c.in_channels, ch0, 3, nn::Conv2dOptions{.padding = 1}, gen));
  std::int64_t timestep_input_dim = ch0;
  if (fourier_) {
    fourier_proj = this->register_module(
        "time_proj", std::make_shared<nn::GaussianFourierProjection<T>>(ch0, 16.0, true, false, gen));
    timestep_input_dim = 2 * ch0;
  } else {
    positional_proj = this->register_module(
        "time_proj",
        std::make_shared<nn::Timesteps<T>>(ch0, c.flip_sin_to_cos, static_cast<double>(c.freq_shift)));
  }
  time_embedding = this->register_module(
      "time_embedding",
      std::make_shared<nn::TimestepEmbedding<T>>(timestep_input_dim, time_embed_dim, "silu", gen));
  if (!c.class_embed_type && c.num_class_embeds)
    class_embedding = this->register_module(
        "class_embedding", std::make_shared<nn::Embedding<T>>(*c.num_class_embeds, time_embed_dim, gen));
  else if (c.class_embed_type == "timestep")
    class_timestep_embedding = this->register_module(
        "class_embedding",
        std::make_shared<nn::TimestepEmbedding<T>>(timestep_input_dim, time_embed_dim, "silu", gen));

  down_blocks = this->register_module("down_blocks", std::make_shared<nn::ModuleList<DownBlock2D<T>>>());
  const std::size_t nb = c.block_out_channels.size();
  std::int64_t output_channel = ch0;
  for (std::size_t i = 0; i < nb; ++i) {
    const std::int64_t input_channel = output_channel;
    output_channel = c.block_out_channels[i];
    UNetBlockOptions o = block_options(c, time_embed_dim, groups, output_channel);
    o.num_layers = c.layers_per_block;
    o.in_channels = input_channel;
    o.out_channels = output_channel;
    o.attention = c.down_block_types[i] == "AttnDownBlock2D";
    o.add_downsample = i + 1 != nb;
    down_blocks->push_back(std::make_shared<DownBlock2D<T>>(o, gen));
  }
  mid_block = this->register_module(
      "mid_block", std::make_shared<UNetMidBlock2D<T>>(
                       UNetMidBlockOptions{
                           .in_channels = c.block_out_channels.back(),
                           .temb_channels = time_embed_dim,
                           .dropout = c.dropout,
                           .resnet_eps = c.norm_eps,
                           .resnet_time_scale_shift = c.resnet_time_scale_shift,
                           .resnet_act_fn = c.act_fn,
                           .resnet_groups = groups,
                           .attn_groups = c.attn_norm_num_groups,
                           .add_attention = c.add_attention,
                           .attention_head_dim = c.attention_head_dim.value_or(c.block_out_channels.back()),
                           .output_scale_factor = c.mid_block_scale_factor},
                       gen));
  up_blocks = this->register_module("up_blocks", std::make_shared<nn::ModuleList<UpBlock2D<T>>>());
  std::vector<std::int64_t> reversed(c.block_out_channels.rbegin(), c.block_out_channels.rend());
  output_channel = reversed[0];
  for (std::size_t i = 0; i < nb; ++i) {
    const std::int64_t prev_output_channel = output_channel;
    output_channel = reversed[i];
    UNetBlockOptions o = block_options(c, time_embed_dim, groups, output_channel);
    o.num_layers = c.layers_per_block + 1;
    o.in_channels = reversed[std::min(i + 1, nb - 1)];
    o.out_channels = output_channel;
    o.prev_output_channel = prev_output_channel;
    o.attention = c.up_block_types[i] == "AttnUpBlock2D";
    o.add_upsample = i + 1 != nb;
    up_blocks->push_back(std::make_shared<UpBlock2D<T>>(o, gen));
  }
  conv_norm_out =
      this->register_module("conv_norm_out", std::make_shared<nn::GroupNorm<T>>(groups, ch0, c.norm_eps));
  conv_out = this->register_module(
      "conv_out",
      std::make_shared<nn::Conv2d<T>>(ch0, c.out_channels, 3, nn::Conv2dOptions{.padding = 1}, gen));
}

template <class T>
auto UNet2DModel<T>::operator()(const Tensor<T>& sample, const Tensor<T>& timesteps,
                                const Tensor<T>& class_labels) const -> Tensor<T> {
  const Config& c = config_;
  if (sample.dim() != 4 || sample.size(1) != c.in_channels)
    throw Error("UNet2DModel: expected a sample [N, " + std::to_string(c.in_channels) +
                ", H, W], got shape " + to_string(sample.shape()));
  const std::int64_t N = sample.size(0);
  const std::int64_t factor = std::int64_t{1} << (c.block_out_channels.size() - 1);
  if (sample.size(2) % factor != 0 || sample.size(3) % factor != 0)
    throw Error("UNet2DModel: height and width must be multiples of " + std::to_string(factor) + " (" +
                std::to_string(c.block_out_channels.size() - 1) + " downsamplings), got sample shape " +
                to_string(sample.shape()));
  if (!timesteps.defined() || (timesteps.numel() != 1 && timesteps.numel() != N) || timesteps.dim() > 1)
    throw Error("UNet2DModel: timesteps must hold one value or one per batch element (" + std::to_string(N) +
                "), got shape " +
                (timesteps.defined() ? to_string(timesteps.shape()) : std::string("undefined")));
  // 0. center input
  Tensor<T> x = c.center_input_sample ? sample * T(2) - T(1) : sample;
  // 1. time (one timestep per image; not differentiated)
  Tensor<T> t = Tensor<T>::empty({N});
  for (std::int64_t n = 0; n < N; ++n) t.data()[n] = timesteps.data()[timesteps.numel() == 1 ? 0 : n];
  Tensor<T> t_emb = fourier_ ? (*fourier_proj)(t) : (*positional_proj)(t);
  Tensor<T> emb = (*time_embedding)(t_emb);
  if (class_embedding || class_timestep_embedding || c.class_embed_type == "identity") {
    if (!class_labels.defined())
      throw Error("UNet2DModel: class_labels must be given: the model is class-conditional");
    Tensor<T> class_emb;
    if (class_embedding) {
      if (class_labels.dim() != 1 || class_labels.size(0) != N)
        throw Error("UNet2DModel: class_labels must be [" + std::to_string(N) + "], got shape " +
                    to_string(class_labels.shape()));
      class_emb = (*class_embedding)(class_labels);
    } else if (class_timestep_embedding) {
      if (class_labels.dim() != 1 || class_labels.size(0) != N)
        throw Error("UNet2DModel: class_labels must be [" + std::to_string(N) + "], got shape " +
                    to_string(class_labels.shape()));
      class_emb = (*class_timestep_embedding)(fourier_ ? (*fourier_proj)(class_labels)
                                                       : (*positional_proj)(class_labels));
    } else {
      if (class_labels.shape() != emb.shape())
        throw Error("UNet2DModel: identity class embedding must have shape " + to_string(emb.shape()) +
                    ", got " + to_string(class_labels.shape()));
      class_emb = class_labels;
    }
    emb = emb + class_emb;
  }
  // 2. pre-process, 3. down
  std::vector<Tensor<T>> res_samples;
  x = (*conv_in)(x);
  res_samples.push_back(x);
  for (const auto& block : *down_blocks) x = (*block)(x, emb, res_samples);
  // 4. mid
  x = (*mid_block)(x, emb);
  // 5. up
  for (const auto& block : *up_blocks) x = (*block)(x, res_samples, emb);
  // 6. post-process
  x = (*conv_out)(silu((*conv_norm_out)(x)));
  if (fourier_) x = x / t.reshape({N, 1, 1, 1});
  return x;
}

template <class T>
DIFFUSE_COLD void UNet2DModel<T>::save_pretrained(const std::filesystem::path& dir,
                                                  const std::string& dtype) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw FileError("save_pretrained: cannot create folder '" + dir.string() + "'" +
                    (ec ? ": " + ec.message() : std::string()));
  io::save_safetensors(dir / "diffusion_pytorch_model.safetensors", this->state_dict(), {{"format", "pt"}},
                       dtype);
  io::write_json(dir / "config.json", config_.to_json());
}

template <class T>
auto UNet2DModel<T>::read_config(const std::filesystem::path& path) -> Config {
  try {
    const io::ConfigSource source(path.string());
    Config c = Config::from_json(io::read_json(path));
    check_config(c);
    return c;
  } catch (const FileError&) {
    throw;
  } catch (const Error& e) {
    throw Error("'" + path.string() + "': " + e.what());
  }
}

template <class T>
DIFFUSE_COLD UNet2DModel<T>::UNet2DModel(PretrainedTag, const std::filesystem::path& dir,
                                         PretrainedOptions options, Generator gen)
    : UNet2DModel(ConfigFileTag{}, read_config(dir / "config.json"), dir / "config.json", gen) {
  // diffusers prefers safetensors and falls back to PyTorch's .bin (many course-era models).
  auto weights_path = dir / "diffusion_pytorch_model.safetensors";
  std::map<std::string, Tensor<T>> weights;
  if (std::filesystem::exists(weights_path)) {
    weights = io::load_safetensors<T>(weights_path);
  } else if (std::filesystem::exists(dir / "diffusion_pytorch_model.bin")) {
    weights_path = dir / "diffusion_pytorch_model.bin";
    weights = io::load_pytorch_bin<T>(weights_path);
  } else {
    throw FileError("'" + dir.string() + "': no weights (neither diffusion_pytorch_model.safetensors nor " +
                    "diffusion_pytorch_model.bin)");
  }
  if (options.check_finite)
    for (const auto& [name, w] : weights) {  // in name order
      const auto bad = std::find_if(w.begin(), w.end(), [](T v) { return !std::isfinite(v); });
      if (bad != w.end())
        throw FileError("'" + weights_path.string() + "': weight '" + name + "' holds " +
                        std::to_string(static_cast<double>(*bad)) + " at index " +
                        std::to_string(bad - w.begin()) +
                        "; the file is damaged (PretrainedOptions{.check_finite "
                        "= false} loads it anyway)");
    }
  try {
    this->load_state_dict(weights);
  } catch (const Error& e) {
    throw Error("'" + weights_path.string() + "': " + e.what());
  }
  this->eval();  // as diffusers' from_pretrained: a loaded model is for inference until train()
}

template <class T>
auto UNet2DModel<T>::block_options(const Config& c, std::int64_t temb, std::int64_t groups,
                                   std::int64_t channels) -> UNetBlockOptions {
  UNetBlockOptions o;
  o.temb_channels = temb;
  o.dropout = c.dropout;
  o.resnet_eps = c.norm_eps;
  o.resnet_act_fn = c.act_fn;
  o.resnet_groups = groups;
  o.resnet_time_scale_shift = c.resnet_time_scale_shift;
  o.attention_head_dim = c.attention_head_dim.value_or(channels);
  o.downsample_padding = c.downsample_padding;
  o.downsample_type = c.downsample_type;
  o.upsample_type = c.upsample_type;
  return o;
}

template <class T>
DIFFUSE_COLD void UNet2DModel<T>::check_config(const Config& c) {
  using diffuse::detail::join_names;
  auto fail = [](const std::string& what) { return Error("UNet2DModel: " + what); };
  if (c.block_out_channels.empty()) throw fail("block_out_channels must not be empty");
  for (auto ch : c.block_out_channels)
    if (ch < 1) throw fail("block_out_channels must be positive, got " + std::to_string(ch));
  if (c.down_block_types.size() != c.block_out_channels.size() ||
      c.up_block_types.size() != c.block_out_channels.size())
    throw fail("down_block_types (" + std::to_string(c.down_block_types.size()) + "), up_block_types (" +
               std::to_string(c.up_block_types.size()) + ") and block_out_channels (" +
               std::to_string(c.block_out_channels.size()) + ") must have the same length");
  for (const auto& t : c.down_block_types)
    if (t != "DownBlock2D" && t != "AttnDownBlock2D")
      throw fail("unsupported down block type '" + t +
                 "' (accepted: " + join_names({"DownBlock2D", "AttnDownBlock2D"}) + ")");
  for (const auto& t : c.up_block_types)
    if (t != "UpBlock2D" && t != "AttnUpBlock2D")
      throw fail("unsupported up block type '" + t +
                 "' (accepted: " + join_names({"UpBlock2D", "AttnUpBlock2D"}) + ")");
  if (c.in_channels < 1 || c.out_channels < 1)
    throw fail("in_channels and out_channels must be positive, got " + std::to_string(c.in_channels) +
               " and " + std::to_string(c.out_channels));
  if (c.layers_per_block < 1)
    throw fail("layers_per_block must be positive, got " + std::to_string(c.layers_per_block));
  if (c.time_embedding_type != "fourier" && c.time_embedding_type != "positional")
    throw fail("unsupported time_embedding_type '" + c.time_embedding_type +
               "' (accepted: positional, fourier)");
  nn::activation_from_name(c.act_fn);  // throws naming the value
  if (c.resnet_time_scale_shift != "default" && c.resnet_time_scale_shift != "scale_shift")
    throw fail("unsupported resnet_time_scale_shift '" + c.resnet_time_scale_shift +
               "' (accepted: default, scale_shift)");
  if (c.downsample_type != "conv" && c.downsample_type != "resnet")
    throw fail("unsupported downsample_type '" + c.downsample_type + "' (accepted: conv, resnet)");
  if (c.upsample_type != "conv" && c.upsample_type != "resnet")
    throw fail("unsupported upsample_type '" + c.upsample_type + "' (accepted: conv, resnet)");
  if (c.class_embed_type && *c.class_embed_type != "timestep" && *c.class_embed_type != "identity")
    throw fail("unsupported class_embed_type '" + *c.class_embed_type +
               "' (accepted: null, timestep, identity)");
  if (c.num_class_embeds && *c.num_class_embeds < 1)
    throw fail("num_class_embeds must be positive, got " + std::to_string(*c.num_class_embeds));
  if (c.block_out_channels.size() > 30) throw fail("too many blocks");
  if (!(c.norm_eps > 0 && std::isfinite(c.norm_eps)))
    throw fail("norm_eps must be positive and finite, got " + std::to_string(c.norm_eps));
  if (!(c.dropout >= 0 && c.dropout < 1))
    throw fail("dropout must lie in [0, 1), got " + std::to_string(c.dropout));
  // Sizes are checked before anything is allocated: a hostile config.json ("block_out_channels":
  // [100000, 100000], "in_channels": 1e12, "layers_per_block": 1e7) must be an Error here, not
  // std::bad_alloc or minutes of building. The estimate counts every block's convolutions at the
  // larger of its channel counts, so it is above the true count (at most ~2x).
  const long double temb = 4.0L * c.block_out_channels[0];
  long double params = temb * (c.block_out_channels[0] + temb) +
                       9.0L * c.block_out_channels[0] * (c.in_channels + c.out_channels) +
                       (c.num_class_embeds ? static_cast<long double>(*c.num_class_embeds) * temb : 0.0L);
  for (std::size_t i = 0; i < c.block_out_channels.size(); ++i) {
    const long double ch = std::max(c.block_out_channels[i], c.block_out_channels[i ? i - 1 : 0]);
    params += (3.0L * c.layers_per_block + 4) * (2 * 27.0L * ch * ch + temb * ch);
  }
  constexpr long double kMaxParameters = 4294967296.0L;  // 2^32: 16 GiB of float32
  if (params > kMaxParameters) {
    char about[32];
    std::snprintf(about, sizeof about, "%.3g", static_cast<double>(params));
    throw fail(
        "the config describes about " + std::string(about) +
        " parameters (block_out_channels, layers_per_block, in/out_channels, num_class_embeds), more than "
        "the limit of 2^32; is config.json damaged?");
  }
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_MODELS_UNET_2D_TEMPLATES(X, T) X(class UNet2DModel<T>)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_MODELS_UNET_2D_TEMPLATES)

}  // namespace diffuse::models
