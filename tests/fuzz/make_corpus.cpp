// Writes the fuzzers' seed inputs with the library's own writers, plus hand-made hostile files
// (the regression inputs of issue 11).
//   make_fuzz_corpus seeds <dir>      the small committed seeds (tests/fuzz/corpus/<fuzzer>/)
//   make_fuzz_corpus large <dir>      inputs too large to commit, made at build time and run once
//                                     by the fuzz_<name>_regressions tests: JSON nested 100,000
//                                     deep for every JSON reader, an IDX gzip bomb of > 1 GiB
// Seeds are deterministic (fixed seeds, no time stamps), so re-running it changes no file.
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "diffuse/io/image.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/io/npy.hpp"
#include "diffuse/io/safetensors.hpp"
#include "diffuse/models/unet_2d.hpp"
#include "diffuse/pipelines/diffusion_pipeline.hpp"
#include "diffuse/schedulers/factory.hpp"
#include "fuzz_checkpoint_state.hpp"

namespace fs = std::filesystem;
using namespace diffuse;

namespace {

fs::path out_root;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void put(const std::string& fuzzer, const std::string& name, const std::string& bytes) {
  const fs::path dir = out_root / fuzzer;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The "%%file" archive of every regular file under `dir` (see fuzz_common.hpp), sorted by name.
std::string archive_of(const fs::path& dir, const std::string& preamble = "") {
  std::vector<fs::path> files;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::string out = preamble;
  for (auto& f : files) {
    if (!out.empty()) out += '\n';
    out += "%%file " + fs::relative(f, dir).generic_string() + "\n" + read_bytes(f);
  }
  return out;
}

std::string archive(const std::vector<std::pair<std::string, std::string>>& files,
                    const std::string& preamble = "") {
  std::string out = preamble;
  for (auto& [name, bytes] : files) {
    if (!out.empty()) out += '\n';
    out += "%%file " + name + "\n" + bytes;
  }
  return out;
}

std::string gzip(const std::string& raw, int level = 9) {
  z_stream z{};
  deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, raw.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// An IDX header: magic 0x000008<ndim>, big-endian dims.
std::string idx_header(const std::vector<std::uint32_t>& dims) {
  std::string h = {'\0', '\0', '\x08', static_cast<char>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) h += static_cast<char>((d >> s) & 0xFF);
  return h;
}

std::string nested(int depth, const std::string& open, const std::string& close,
                   const std::string& inner = "1") {
  std::string s;
  s.reserve(depth * (open.size() + close.size()) + inner.size());
  for (int i = 0; i < depth; ++i) s += open;
  s += inner;
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

models::UNet2DConfig tiny_unet() {
  return {.sample_size = 8,
          .in_channels = 1,
          .out_channels = 1,
          .layers_per_block = 1,
          .block_out_channels = {2, 4},
          .down_block_types = {"DownBlock2D", "AttnDownBlock2D"},
          .up_block_types = {"AttnUpBlock2D", "UpBlock2D"},
          .attention_head_dim = 2,
          .norm_num_groups = 2};
}

fs::path scratch(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("diffuse_make_corpus_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void seeds() {
  // ---- safetensors ----
  {
    const fs::path d = scratch("st");
    Generator gen(1);
    std::map<std::string, Tensor<float>> t = {{"a.weight", gen.randn<float>({2, 3})},
                                              {"b.bias", gen.randn<float>({4})},
                                              {"scalar", Tensor<float>::full({}, 2.f)},
                                              {"empty", Tensor<float>::zeros({0, 3})}};
    for (const char* dtype : {"F32", "F16", "BF16", "F64"}) {
      io::save_safetensors(d / "x.safetensors", t, {{"format", "pt"}}, dtype);
      put("safetensors", std::string("valid_") + dtype + ".safetensors", read_bytes(d / "x.safetensors"));
    }
    std::string h =
        R"({"__metadata__":{"format":"pt"},"x":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"y":{"dtype":"U8","shape":[3],"data_offsets":[16,19]},"z":{"dtype":"BOOL","shape":[1],"data_offsets":[19,20]}})";
    std::string len(8, '\0');
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((h.size() >> (8 * i)) & 0xFF);
    put("safetensors", "int_dtypes.safetensors", len + h + std::string(16, '\x01') + "\x02\x03\x04\x01");
    // Regressions: nesting (1,000 deep here; 100,000 in the large set), absurd header length,
    // overlapping and out-of-range offsets, huge shapes.
    auto with_header = [](const std::string& json, const std::string& data) {
      std::string len(8, '\0');
      for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((json.size() >> (8 * i)) & 0xFF);
      return len + json + data;
    };
    put("safetensors", "nested_1000.safetensors",
        with_header(R"({"__metadata__":)" + nested(1000, "[", "]") + "}", ""));
    put("safetensors", "header_len_huge.safetensors", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));
    put("safetensors", "overlap.safetensors",
        with_header(
            R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
            std::string(8, '\0')));
    put("safetensors", "shape_overflow.safetensors",
        with_header(
            R"({"a":{"dtype":"F64","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})",
            std::string(8, '\0')));
    put("safetensors", "nan_weights.safetensors",
        with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                    std::string("\x00\x00\xc0\x7f\x00\x00\x80\x7f", 8)));
  }
  // ---- npy ----
  {
    const fs::path d = scratch("npy");
    Generator gen(2);
    io::save_npy(d / "a.npy", gen.randn<float>({2, 3}));
    put("npy", "f4.npy", read_bytes(d / "a.npy"));
    io::save_npy(d / "b.npy", gen.randn<double>({3}));
    put("npy", "f8.npy", read_bytes(d / "b.npy"));
    auto npy = [](const std::string& header, const std::string& data, char major = 1) {
      std::string h = header;
      h.append(63 - (10 + h.size()) % 64, ' ');
      h += '\n';
      std::string b = "\x93NUMPY";
      b += major;
      b += '\0';
      b += static_cast<char>(h.size() & 0xFF);
      b += static_cast<char>(h.size() >> 8);
      if (major != 1) b += std::string(2, '\0');
      return b + h + data;
    };
    put("npy", "u1.npy",
        npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", "\x01\x02\x03\x04"));
    put("npy", "f2_v2.npy",
        npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", "\x00\x3c\x00\xc0", 2));
    put("npy", "i8_scalar.npy",
        npy("{'descr': '<i8', 'fortran_order': False, 'shape': (), }", std::string(8, '\x07')));
    put("npy", "shape_huge.npy",
        npy("{'descr': '<f8', 'fortran_order': False, 'shape': (9223372036854775807, 9223372036854775807), }",
            "12345678"));
    put("npy", "fortran.npy", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", "abcd"));
  }
  // ---- IDX: raw, gzipped, bombs (the > 1 GiB one is in the large set) ----
  {
    std::string images = idx_header({3, 4, 4});
    for (int i = 0; i < 48; ++i) images += static_cast<char>(i * 5);
    const std::string labels = idx_header({3}) + std::string("\x01\x07\x09", 3);
    put("idx", "images_raw", images);
    put("idx", "labels_raw", labels);
    put("idx", "images.gz", gzip(images));
    put("idx", "labels.gz", gzip(labels));
    // 4 GiB described, 4 MB of zeros in a 4 KB gz: refused from the header, before decompressing.
    put("idx", "bomb_header_4GiB.gz", gzip(idx_header({65536, 256, 256}) + std::string(4 << 20, '\0')));
    // 16 bytes described, 4 MB follow: refused after 17 bytes of decompressed data.
    put("idx", "bomb_trailing.gz", gzip(idx_header({16}) + std::string(4 << 20, '\0')));
    put("idx", "dims_overflow", idx_header({0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}));
    put("idx", "truncated.gz", gzip(images).substr(0, 30));
    put("idx_gz", "images", images);
    put("idx_gz", "labels", labels);
    put("idx_gz", "header_4GiB", idx_header({65536, 256, 256}) + std::string(64, '\0'));
    put("idx_gz", "trailing", idx_header({2}) + "abcdef");
  }
  // ---- images ----
  std::string png_rgb, png_gray, jpeg_rgb;
  {
    Generator gen(3);
    const Tensor<float> rgb = gen.rand<float>({3, 6, 5});
    png_rgb = io::encode_png(rgb);
    png_gray = io::encode_png(gen.rand<float>({1, 4, 4}));
    jpeg_rgb = io::encode_jpeg(rgb, 80);
    put("image", "rgb.png", png_rgb);
    put("image", "gray.png", png_gray);
    put("image", "rgba.png", io::encode_png(gen.rand<float>({4, 3, 3})));
    put("image", "gray_alpha.png", io::encode_png(gen.rand<float>({2, 2, 3})));
    put("image", "rgb.jpg", jpeg_rgb);
    put("image", "gray.jpg", io::encode_jpeg(gen.rand<float>({1, 8, 8}), 50));
    // Regression: a 35-byte RLE TGA named .png (4 x 29,545 x 8,293 pixels).
    std::string tga = {'\0', '\0', '\x0a', '\0',   '\0',   '\0',   '\0',   '\0',   '\0',
                       '\0', '\0', '\0',   '\x69', '\x73', '\x65', '\x20', '\x20', '\x08'};
    tga += std::string("\xff\x01\x02\x03\x04\xff\x05\x06\x07\x08\xff\x09\x0a\x0b\x0c\xff\x00", 17);
    put("image", "tga_as_png_35B.png", tga);
    // Regression: a JPEG whose DHT segment declares 400 codes (stb 2.27 writes out of bounds).
    std::string dht = "\xff\xd8\xff\xc4";
    const std::size_t len = 2 + 17 + 400;
    dht += static_cast<char>(len >> 8);
    dht += static_cast<char>(len & 0xFF);
    dht += '\0';
    for (int k = 1; k <= 16; ++k) dht += static_cast<char>(k == 8 || k == 9 ? 200 : 0);
    dht += std::string(400, '\x01');
    dht += jpeg_rgb.substr(2);
    put("image", "jpeg_dht_400_codes.jpg", dht);
    // A PNG header claiming 100,000 x 100,000 pixels (more than max_image_pixels()).
    std::string big = png_gray;
    const unsigned char dims[8] = {0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0};
    for (int i = 0; i < 8; ++i) big[16 + i] = static_cast<char>(dims[i]);
    put("image", "png_100000x100000.png", big);
    put("image", "empty.png", "");
    // Found by fuzzing: an IDAT chunk declaring 1.8 GB in a 60-byte file (stb allocated it).
    {
      auto be32 = [](std::uint32_t v) {
        return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
      };
      put("image", "png_idat_1.8GB.png",
          std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + "IHDR" + be32(5) + be32(6) +
              std::string("\x08\x02\x00\x00\x00", 5) + be32(0) + be32(0x6b1c00c3) + "IDAT" +
              std::string(20, '\x01'));
    }
  }
  // ---- image folder (archives of folders) ----
  {
    put("image_folder", "two_classes",
        archive({{"cats/a.png", png_rgb},
                 {"cats/b.jpg", jpeg_rgb},
                 {"dogs/c.png", png_rgb},
                 {"dogs/notes.txt", "not an image"}},
                std::string("\x01\x01\x00", 3)));
    put("image_folder", "flat_mixed_sizes",
        archive({{"a.png", png_rgb}, {"b.png", png_gray}}, std::string("\x00\x02\x00", 3)));
    put("image_folder", "bad_files_error",
        archive({{"x/a.png", png_rgb}, {"x/bad.png", "\x89PNG\r\n\x1a\ngarbage"}, {"x/empty.jpg", ""}},
                std::string("\x02\x00\x01", 3)));
  }
  // ---- UNet config, from_pretrained, pipeline ----
  {
    const fs::path d = scratch("unet");
    Generator gen(4);
    models::UNet2DModel<float> unet(tiny_unet(), gen);
    unet.save_pretrained(d / "unet", "F16");
    put("unet_config", "tiny.json", read_bytes(d / "unet" / "config.json"));
    put("unet_pretrained", "tiny_f16", archive_of(d / "unet"));
    // A pipeline folder as DiffusionPipeline::save_pretrained writes it, with F16 weights (smaller seeds).
    auto sched = schedulers::make_scheduler<float>("DDIMScheduler", io::json::object());
    pipelines::DiffusionPipeline<float> pipe(unet, *sched);
    pipe.save_pretrained(d / "pipe");
    unet.save_pretrained(d / "pipe" / "unet", "F16");
    put("pipeline", "tiny_ddim", archive_of(d / "pipe"));
    // Class-conditional variant, F32.
    models::UNet2DConfig cc = tiny_unet();
    cc.num_class_embeds = 3;
    cc.time_embedding_type = "fourier";
    models::UNet2DModel<float> cond(cc, gen);
    cond.save_pretrained(d / "cond", "BF16");
    put("unet_config", "class_fourier.json", read_bytes(d / "cond" / "config.json"));
    put("unet_pretrained", "class_fourier_bf16", archive_of(d / "cond"));
    // NaN weights (refused by the finite check).
    {
      auto sd = unet.state_dict();
      sd.begin()->second.data()[0] = std::numeric_limits<float>::quiet_NaN();
      fs::create_directories(d / "nan");
      io::save_safetensors(d / "nan" / "diffusion_pytorch_model.safetensors", sd, {{"format", "pt"}}, "F16");
      fs::copy_file(d / "unet" / "config.json", d / "nan" / "config.json");
      put("unet_pretrained", "nan_weight", archive_of(d / "nan"));
    }
    // A .bin model (the fixture from torch.save) whose weights do not fit the config.
    put("unet_pretrained", "bin_wrong_model",
        archive({{"config.json", read_bytes(d / "unet" / "config.json")},
                 {"diffusion_pytorch_model.bin",
                  read_bytes(fs::path(DIFFUSE_TORCH_FIXTURES) / "state_dict.bin")}}));
    // Config regressions.
    const std::string base = read_bytes(d / "unet" / "config.json");
    auto with = [&](const std::string& key, const std::string& value) {
      io::json j = io::json::parse(base);
      j[key] = io::json::parse(value);
      return io::to_pretty_json(j);
    };
    put("unet_config", "block_out_channels_100000.json", with("block_out_channels", "[100000, 100000]"));
    put("unet_config", "in_channels_1e12.json", with("in_channels", "1e12"));
    put("unet_config", "num_class_embeds_1e12.json", with("num_class_embeds", "1e12"));
    // Found by fuzzing: a padding that grows the image (13 s per forward under ASan).
    put("unet_config", "downsample_padding_8885.json", with("downsample_padding", "8885"));
    put("unet_config", "layers_per_block_1e7.json", with("layers_per_block", "1e7"));
    put("unet_config", "norm_eps_-1.json", with("norm_eps", "-1"));
    put("unet_config", "dropout_1.5.json", with("dropout", "1.5"));
    put("unet_config", "in_channels_1e300.json", with("in_channels", "1e300"));
    put("unet_config", "sample_size_pair.json", with("sample_size", "[8, 16]"));
    put("unet_config", "norm_eps_nan.json",
        "{\"norm_eps\": NaN, \"block_out_channels\": [4, 8], \"norm_num_groups\": 2}");
    put("unet_config", "nested_1000.json", "{\"x\": " + nested(1000, "{\"a\":", "}") + "}");
    // Pipelines with a damaged part.
    auto pipe_with = [&](const std::string& part, const std::string& bytes) {
      std::vector<std::pair<std::string, std::string>> files;
      for (auto& e : fs::recursive_directory_iterator(d / "pipe"))
        if (e.is_regular_file()) {
          const std::string name = fs::relative(e.path(), d / "pipe").generic_string();
          files.emplace_back(name, name == part ? bytes : read_bytes(e.path()));
        }
      std::sort(files.begin(), files.end());
      return archive(files);
    };
    io::json cfg = io::json::parse(base);
    cfg["sample_size"] = 100000;
    put("pipeline", "sample_size_1e5", pipe_with("unet/config.json", io::to_pretty_json(cfg)));
    put("pipeline", "scheduler_timesteps_1e12",
        pipe_with("scheduler/scheduler_config.json",
                  R"({"_class_name": "DDIMScheduler", "num_train_timesteps": 1e12})"));
    // Refused from model_index.json: no weights needed.
    fs::remove(d / "pipe" / "unet" / "diffusion_pytorch_model.safetensors");
    put("pipeline", "index_vae",
        pipe_with(
            "model_index.json",
            R"({"_class_name": "LDMPipeline", "unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers", "DDIMScheduler"], "vqvae": ["diffusers", "VQModel"]})"));
    put("pipeline", "index_nan",
        pipe_with("model_index.json",
                  R"({"_class_name": NaN, "unet": [Infinity], "scheduler": [-Infinity]})"));
  }
  // ---- schedulers ----
  {
    for (const auto& name : schedulers::scheduler_names()) {
      auto s = schedulers::make_scheduler<float>(name, io::json::object());
      put("scheduler_config", name + ".json", io::to_pretty_json(s->to_json()));
    }
    put("scheduler_config", "ddpm_timesteps_1e12.json",
        R"({"_class_name": "DDPMScheduler", "num_train_timesteps": 1e12})");
    put("scheduler_config", "ddim_timesteps_1e300.json",
        R"({"_class_name": "DDIMScheduler", "num_train_timesteps": 1e300})");
    put("scheduler_config", "euler_beta_end_2.json",
        R"({"_class_name": "EulerDiscreteScheduler", "beta_end": 2.0})");
    put("scheduler_config", "pndm_beta_start_-1.json",
        R"({"_class_name": "PNDMScheduler", "beta_start": -1})");
    put("scheduler_config", "unipc_trained_betas_nan.json",
        R"({"_class_name": "UniPCMultistepScheduler", "num_train_timesteps": 3, "trained_betas": [0.1, NaN, 0.3]})");
    put("scheduler_config", "dpm_lambda_min_-inf.json",
        R"({"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity, "use_karras_sigmas": true, "solver_order": 3})");
    put("scheduler_config", "heun_karras.json",
        R"({"_class_name": "HeunDiscreteScheduler", "use_karras_sigmas": true, "num_train_timesteps": 20})");
    put("scheduler_config", "steps_offset_huge.json",
        R"({"_class_name": "DDIMScheduler", "steps_offset": 9000000000000000000, "timestep_spacing": "leading"})");
    // Found by fuzzing: Karras sigmas over one training timestep read log_sigmas[-1].
    put("scheduler_config", "unipc_karras_one_timestep.json",
        R"({"_class_name": "UniPCMultistepScheduler", "use_karras_sigmas": true, "num_train_timesteps": 1})");
    // Found by fuzzing: 9,999,999 training timesteps took 30 s to build under ASan (now over the
    // limit); the limit itself, in the slowest scheduler, must build within the fuzzers' timeout.
    put("scheduler_config", "dpm_timesteps_9999999.json",
        R"({"_class_name": "DPMSolverMultistepScheduler", "num_train_timesteps": 9999999})");
    put("scheduler_config", "heun_timesteps_1000000.json",
        R"({"_class_name": "HeunDiscreteScheduler", "num_train_timesteps": 1000000})");
    put("scheduler_config", "no_class.json",
        R"({"num_train_timesteps": 10, "beta_schedule": "squaredcos_cap_v2"})");
    put("scheduler_config", "nested_1000.json",
        "{\"_class_name\": \"DDPMScheduler\", \"x\": " + nested(1000, "[", "]") + "}");
  }
  // ---- PyTorch .bin: the committed torch fixtures ----
  for (const char* f : {"state_dict.bin", "evil_os_system.bin", "view_past_storage.bin"})
    put("pytorch_bin", f, read_bytes(fs::path(DIFFUSE_TORCH_FIXTURES) / f));
  // ---- checkpoints ----
  {
    const fs::path d = scratch("ckpt");
    fuzz::CheckpointFixture f;
    f.state.global_step = 3;
    f.state.epoch = 1;
    for (auto& batch : f.epochs) {  // move the loader and generator off their start
      (void)batch;
      break;
    }
    f.opt.step();
    f.sched.step();
    training::CheckpointManager m(d / "out");
    m.save(f.state);
    put("checkpoint", "step3", archive_of(d / "out"));
    const std::string state = read_bytes(d / "out" / "checkpoint-3" / "trainer_state.json");
    auto with_state = [&](const std::string& s) {
      std::vector<std::pair<std::string, std::string>> files;
      for (auto& e : fs::directory_iterator(d / "out" / "checkpoint-3"))
        files.emplace_back("checkpoint-3/" + e.path().filename().string(),
                           e.path().filename() == "trainer_state.json" ? s : read_bytes(e.path()));
      std::sort(files.begin(), files.end());
      return archive(files);
    };
    auto edited = [&](const std::string& json_pointer, const std::string& value) {
      io::json j = io::parse_json(state);
      j[io::json::json_pointer(json_pointer)] = io::parse_json(value);
      return with_state(io::dump_json(j));
    };
    put("checkpoint", "global_step_1e300", edited("/global_step", "1e300"));
    put("checkpoint", "loader_batch_huge", edited("/data_loader/batch", "9223372036854775807"));
    put("checkpoint", "generator_seed_nan", edited("/generators/train/seed", "NaN"));
    put("checkpoint", "lr_nan", edited("/optimizer", "NaN"));
    put("checkpoint", "nested_1000",
        with_state("{\"format\": \"diffuse-checkpoint\", \"x\": " + nested(1000, "[", "]", "NaN") + "}"));
    put("checkpoint", "two_checkpoints_one_broken",
        archive_of(d / "out") +
            "\n%%file checkpoint-7/trainer_state.json\n{\"format\": \"diffuse-checkpoint\", \"version\": 1, "
            "\"files\": {\"model.safetensors\": 12}}");
  }
}

// Inputs too large to commit: made at build time, each run once.
void large() {
  const std::string deep_array = nested(100000, "[", "]", "NaN");  // NaN: restore_non_finite's path too
  std::string st_header = "{\"__metadata__\": " + deep_array + "}";
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((st_header.size() >> (8 * i)) & 0xFF);
  put("safetensors", "nested_100000.safetensors", len + st_header);
  put("unet_config", "nested_100000.json", "{\"block_out_channels\": " + deep_array + "}");
  put("scheduler_config", "nested_100000.json",
      "{\"_class_name\": \"DDPMScheduler\", \"trained_betas\": " + deep_array + "}");
  put("pipeline", "nested_100000", archive({{"model_index.json", "{\"unet\": " + deep_array + "}"}}));
  put("unet_pretrained", "nested_100000", archive({{"config.json", "{\"x\": " + deep_array + "}"}}));
  put("checkpoint", "nested_100000",
      archive({{"checkpoint-1/trainer_state.json",
                "{\"format\": \"diffuse-checkpoint\", \"x\": " + deep_array + "}"}}));
  // IDX gzip bomb: a header describing 60000 x 28 x 28 bytes (47 MB), then 1.1 GiB of zeros
  // (about 1.1 MB compressed): must stop after the described size, not decompress it all.
  {
    z_stream z{};
    deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
    std::string out;
    std::string chunk = idx_header({60000, 28, 28});
    const std::string zeros(1 << 20, '\0');
    char buf[1 << 16];
    for (int i = 0; i <= 1126; ++i) {
      const std::string& in = i == 0 ? chunk : zeros;
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
      z.avail_in = static_cast<uInt>(in.size());
      const int flush = i == 1126 ? Z_FINISH : Z_NO_FLUSH;
      do {
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof buf;
        deflate(&z, flush);
        out.append(buf, sizeof buf - z.avail_out);
      } while (z.avail_out == 0);
    }
    deflateEnd(&z);
    put("idx", "bomb_1.1GiB.gz", out);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "seeds" && std::string(argv[1]) != "large")) {
    std::cerr << "usage: make_fuzz_corpus seeds|large <dir>\n";
    return 2;
  }
  out_root = argv[2];
  try {
    if (std::string(argv[1]) == "seeds")
      seeds();
    else
      large();
  } catch (const std::exception& e) {
    std::cerr << "make_fuzz_corpus: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
