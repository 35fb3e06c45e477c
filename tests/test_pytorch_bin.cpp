// PyTorch .bin checkpoints: files torch.save wrote (tests/fixtures/torch, made by
// make_torch_fixtures.py) load with the right values, a diffusers UNet2DModel folder with only a
// .bin computes diffusers' numbers, and damaged or hostile files are refused with a FileError.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "diffuse/io/pytorch_bin.hpp"
#include "diffuse/io/safetensors.hpp"
#include "diffuse/models/unet_2d.hpp"
#include "temp_dir.hpp"

using namespace diffuse;
using namespace std::string_literals;
using testing::TempDir;
namespace fs = std::filesystem;

namespace {
const fs::path torch_dir = fs::path(DIFFUSE_TORCH_FIXTURES);

std::string bytes_of(const fs::path& p) { return io::read_file_bytes(p); }

// Element k of the formula tensors is k / 4.
template <class T>
void check_formula(const Tensor<T>& t, std::int64_t offset = 0) {
  for (std::int64_t k = 0; k < t.numel(); ++k) CHECK(t.data()[k] == static_cast<T>((k + offset) / 4.0));
}

io::detail::PickleValue unpickle(const std::string& bytes) {
  return io::detail::RestrictedUnpickler(bytes, "test pickle").load();
}
}  // namespace

TEST_CASE("load_pytorch_bin reads every storage type torch.save writes, with views and offsets") {
  const auto sd = io::load_pytorch_bin<double>(torch_dir / "state_dict.bin");
  REQUIRE(sd.size() == 11);
  CHECK(sd.at("f32").shape() == Shape{2, 3});
  check_formula(sd.at("f32"));
  check_formula(sd.at("f64"));
  check_formula(sd.at("f16"));
  CHECK(sd.at("bf16").shape() == Shape{2, 2});
  check_formula(sd.at("bf16"));
  CHECK(sd.at("i64").to_vector() == std::vector<double>{0, 7, 14});
  CHECK(sd.at("u8").to_vector() == std::vector<double>{0, 1, 2, 3, 4});
  // The transpose of [[0, .25, .5], [.75, 1, 1.25]] (strides (1, 3) into the same storage).
  CHECK(sd.at("transposed").shape() == Shape{3, 2});
  CHECK(sd.at("transposed").to_vector() == std::vector<double>{0, 0.75, 0.25, 1, 0.5, 1.25});
  CHECK(sd.at("base").numel() == 8);
  CHECK(sd.at("tail").shape() == Shape{3});
  check_formula(sd.at("tail"), 5);
  CHECK(sd.at("scalar").dim() == 0);
  CHECK(sd.at("scalar").item() == 2.5);
  CHECK(sd.at("empty").shape() == Shape{0, 3});
}

TEST_CASE("A diffusers UNet2DModel folder with only diffusion_pytorch_model.bin computes diffusers' output") {
  const fs::path bin_dir = torch_dir / "unet_fourier_bin";
  const fs::path ref_file = fs::path(DIFFUSE_FIXTURES_DEFAULT) / "unet_fourier.safetensors";
  auto unet = models::UNet2DModel<float>::from_pretrained(bin_dir);
  const auto ref = io::load_safetensors<float>(ref_file);
  Tensor<float> out = unet(ref.at("input"), ref.at("timesteps"));
  const Tensor<float>& expected = ref.at("output.f32");
  REQUIRE(out.shape() == expected.shape());
  double worst = 0, scale = 0;
  for (std::int64_t i = 0; i < out.numel(); ++i) {
    worst = std::max(worst, std::abs(double(out.data()[i]) - expected.data()[i]));
    scale = std::max(scale, std::abs(double(expected.data()[i])));
  }
  INFO("largest difference " << worst << " against max |ref| " << scale);
  CHECK(worst <= 1e-4 * scale);
}

TEST_CASE("A UNet folder with neither weights file names both") {
  TempDir dir;
  fs::copy_file(torch_dir / "unet_fourier_bin" / "config.json", dir / "config.json");
  CHECK_THROWS_WITH(models::UNet2DModel<float>::from_pretrained(dir.path),
                    Catch::Contains("diffusion_pytorch_model.safetensors") &&
                        Catch::Contains("diffusion_pytorch_model.bin"));
}

TEST_CASE("Hostile pickles are refused and never run") {
  CHECK_THROWS_WITH(io::load_pytorch_bin<float>(torch_dir / "evil_os_system.bin"),
                    Catch::Contains("posix.system") || Catch::Contains("os.system"));
  CHECK_THROWS_AS(io::load_pytorch_bin<float>(torch_dir / "evil_os_system.bin"), FileError);
  CHECK_THROWS_WITH(io::load_pytorch_bin<float>(torch_dir / "view_past_storage.bin"),
                    Catch::Contains("storage of 4"));
  // Other globals, unknown opcodes, stack tricks, nesting and cycles.
  CHECK_THROWS_WITH(unpickle("\x80\x02"
                             "cbuiltins\neval\n"
                             "."),
                    Catch::Contains("builtins.eval"));
  CHECK_THROWS_WITH(unpickle("\x80\x02"
                             "i__main__\nX\n"
                             "."),
                    Catch::Contains("not allowed"));
  CHECK_THROWS_WITH(unpickle("\x80\x02"
                             "R."),
                    Catch::Contains("underflow"));
  CHECK_THROWS_WITH(unpickle("\x80\x02"
                             "h\x05."),
                    Catch::Contains("never stored"));
  CHECK_THROWS_WITH(unpickle("\x80\x02"
                             "X\xff\xff\xff\x7f"
                             "abc"),
                    Catch::Contains("cut off"));
  CHECK_THROWS_WITH(unpickle("\x80\x02"
                             "}"),
                    Catch::Contains("without STOP"));
  CHECK_THROWS_WITH(unpickle("\x80\x02]q\x00h\x00"
                             "a."s),
                    Catch::Contains("itself"));
  std::string deep = "\x80\x02)";
  deep += std::string(100000, '\x85');  // a tuple in a tuple in a tuple ...
  CHECK_THROWS_WITH(unpickle(deep + "."), Catch::Contains("nest deeper"));
  // A plain value is not a state dict.
  TempDir dir;
  CHECK_THROWS_WITH(io::load_pytorch_bin<float>(dir / "missing.bin"), Catch::Contains("does not exist"));
}

TEST_CASE("Damaged .bin archives are refused with a FileError that names the file") {
  TempDir dir;
  const std::string good = bytes_of(torch_dir / "state_dict.bin");
  auto write = [&](const std::string& name, const std::string& bytes) {
    testing::write_bytes(dir / name, bytes);
    return dir / name;
  };
  CHECK_THROWS_WITH(io::load_pytorch_bin<float>(write("short.bin", "PK")), Catch::Contains("too short"));
  CHECK_THROWS_WITH(io::load_pytorch_bin<float>(write("text.bin", std::string(100, 'x'))),
                    Catch::Contains("not a zip"));
  CHECK_THROWS_WITH(io::load_pytorch_bin<float>(
                        write("legacy.bin", std::string("\x80\x02\x8a\x0a", 4) + std::string(40, '\0'))),
                    Catch::Contains("legacy"));
  // Every truncation is an error, never a crash or a read past the buffer.
  for (std::size_t cut : {good.size() / 4, good.size() / 2, good.size() - 30, good.size() - 1}) {
    INFO("cut at " << cut);
    CHECK_THROWS_AS(io::load_pytorch_bin<float>(write("cut.bin", good.substr(0, cut))), FileError);
  }
  // Flipped bytes inside the data: the CRC catches them.
  std::string flipped = good;
  flipped[flipped.find("PK\x03\x04"s) + 100] ^= 0x55;
  CHECK_THROWS_AS(io::load_pytorch_bin<float>(write("flipped.bin", flipped)), FileError);
  // Every single-byte change in the directory and headers: error or success, never a crash.
  for (std::size_t i = good.size() - 300; i < good.size(); i += 7) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0xff);
    try {
      io::load_pytorch_bin<float>(write("mutated.bin", bad));
    } catch (const FileError&) {
    }
  }
}
