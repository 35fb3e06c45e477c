// File formats: safetensors, JSON, npy, PNG/JPEG, grids and figures. Every hostile-file case
// is a crafted file written into a temporary folder.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "diffuse/core/tensor.hpp"
#include "diffuse/io/atomic_file.hpp"
#include "diffuse/io/half.hpp"
#include "diffuse/io/image.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/io/npy.hpp"
#include "diffuse/io/safetensors.hpp"
#include "diffuse/viz/figure.hpp"
#include "diffuse/viz/grid.hpp"
#include "temp_dir.hpp"

using namespace diffuse;
namespace fs = std::filesystem;
using diffuse::testing::TempDir;
using diffuse::testing::write_bytes;

namespace {

std::string u64le(std::uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

// A safetensors file with the given JSON header and data section.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return u64le(header.size()) + header + data;
}

std::string f32_bytes(std::initializer_list<float> vals) {
  std::string s;
  for (float v : vals) s.append(reinterpret_cast<const char*>(&v), 4);
  return s;
}

// Files in the folder, to check that no temporary is left behind.
std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

// ---------------------------------------------------------------- half / bfloat16

TEST_CASE("float16 and bfloat16 conversions of known values") {
  using namespace io;
  CHECK(float_to_half(1.0f) == 0x3C00);
  CHECK(float_to_half(-2.0f) == 0xC000);
  CHECK(float_to_half(0.5f) == 0x3800);
  CHECK(float_to_half(65504.0f) == 0x7BFF);
  CHECK(float_to_half(65520.0f) == 0x7C00);                      // rounds to inf
  CHECK(float_to_half(0.1f) == 0x2E66);                          // 0.0999755859375
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);         // smallest subnormal
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);         // ties to even -> 0
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // tie -> even mantissa
  CHECK(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);
  CHECK(std::isnan(half_to_float(float_to_half(NAN))));
  CHECK(half_to_float(0x3C00) == 1.0f);
  CHECK(half_to_float(0x2E66) == 0.0999755859375f);
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x8400) == -std::ldexp(1.0f, -14));
  CHECK(std::isinf(half_to_float(0xFC00)));
  // Every finite half round-trips exactly.
  for (std::uint32_t h = 0; h < 0x10000; ++h)
    if (((h >> 10) & 0x1f) != 0x1f) REQUIRE(float_to_half(half_to_float(static_cast<std::uint16_t>(h))) == h);

  CHECK(float_to_bf16(1.0f) == 0x3F80);
  CHECK(float_to_bf16(-2.0f) == 0xC000);
  CHECK(float_to_bf16(0.1f) == 0x3DCD);
  CHECK(bf16_to_float(0x4049) == 3.140625f);
  CHECK(std::isnan(bf16_to_float(float_to_bf16(NAN))));
}

// ---------------------------------------------------------------- safetensors

TEST_CASE("safetensors round trip for every writable dtype") {
  TempDir dir;
  std::map<std::string, Tensor<float>> in;
  in["b.weight"] = Tensor<float>({2, 3}, {1.0f, -2.0f, 0.5f, 0.1f, 3.140625f, 0.0f});
  in["a.bias"] = Tensor<float>({3}, {0.25f, -0.75f, 100.0f});
  in["scalar"] = Tensor<float>::scalar(7.0f);
  in["empty"] = Tensor<float>({0, 4});
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "hello"}};

  for (std::string dtype : {"F32", "F64", "F16", "BF16"}) {
    SECTION(dtype) {
      const auto p = dir / ("t_" + dtype + ".safetensors");
      io::save_safetensors(p, in, meta, dtype);
      CHECK(count_files(dir.path) == 1);  // no temporary left behind

      // Header length is a multiple of 8 and the header names the dtype.
      const std::string bytes = io::read_file_bytes(p);
      std::uint64_t n = 0;
      std::memcpy(&n, bytes.data(), 8);
      CHECK(n % 8 == 0);
      auto header = nlohmann::json::parse(bytes.substr(8, n));
      CHECK(header["b.weight"]["dtype"] == dtype);
      CHECK(header["b.weight"]["shape"] == nlohmann::json::array({2, 3}));

      auto out = io::load_safetensors<float>(p);
      REQUIRE(out.size() == in.size());
      for (auto& [name, t] : in) {
        REQUIRE(out.count(name));
        CHECK(out[name].shape() == t.shape());
        for (std::int64_t i = 0; i < t.numel(); ++i) {
          const float want = dtype == "F16"    ? io::half_to_float(io::float_to_half(t.data()[i]))
                             : dtype == "BF16" ? io::bf16_to_float(io::float_to_bf16(t.data()[i]))
                                               : t.data()[i];
          CHECK(out[name].data()[i] == want);
        }
      }
      CHECK(io::load_safetensors_metadata(p) == meta);
    }
  }
}

TEST_CASE("safetensors F16 and BF16 bits are what the format says") {
  TempDir dir;
  const auto p = dir / "h.safetensors";
  std::map<std::string, Tensor<double>> in{{"x", Tensor<double>({2}, {1.0, -2.0})}};
  io::save_safetensors(p, in, {}, "F16");
  const std::string bytes = io::read_file_bytes(p);
  // Last 4 bytes: 0x3C00, 0xC000 little-endian.
  CHECK(static_cast<unsigned char>(bytes[bytes.size() - 4]) == 0x00);
  CHECK(static_cast<unsigned char>(bytes[bytes.size() - 3]) == 0x3C);
  CHECK(static_cast<unsigned char>(bytes[bytes.size() - 1]) == 0xC0);

  // A hand-made file with F16, BF16, I64, U8 and BOOL tensors loads as double.
  std::string data;
  auto put16 = [&](std::uint16_t v) { data.append(reinterpret_cast<const char*>(&v), 2); };
  put16(0x3C00), put16(0x2E66);  // F16 [0, 4)
  put16(0x3F80), put16(0x4049);  // BF16 [4, 8)
  std::int64_t i64 = -5;
  data.append(reinterpret_cast<const char*>(&i64), 8);  // I64 [8, 16)
  data += '\xff';                                       // U8 [16, 17)
  data += '\x01';                                       // BOOL [17, 18)
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},)"
      R"("i":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"u":{"dtype":"U8","shape":[1],"data_offsets":[16,17]},)"
      R"("z":{"dtype":"BOOL","shape":[],"data_offsets":[17,18]}})";
  const auto q = dir / "mixed.safetensors";
  write_bytes(q, safetensors_bytes(header, data));
  auto t = io::load_safetensors<double>(q);
  CHECK(t["h"].to_vector() == std::vector<double>{1.0, 0.0999755859375});
  CHECK(t["b"].to_vector() == std::vector<double>{1.0, 3.140625});
  CHECK(t["i"].item() == -5.0);
  CHECK(t["u"].item() == 255.0);
  CHECK(t["z"].item() == 1.0);
  CHECK(t["z"].shape().empty());
  CHECK(io::load_safetensors_metadata(q).empty());
}

TEST_CASE("safetensors: every broken or hostile file throws FileError naming file and problem") {
  TempDir dir;
  struct Case {
    std::string name, bytes, expect;
  };
  const std::string ok_data = f32_bytes({1, 2});
  auto st = [](const std::string& h, const std::string& d) { return safetensors_bytes(h, d); };
  const std::vector<Case> cases = {
      {"short", std::string("\x01\x02\x03", 3), "too short"},
      {"past_end", u64le(1000) + "{}", "runs past the end"},
      {"absurd", u64le(std::uint64_t(1) << 40) + "{}", "absurdly large"},
      {"max", u64le(~std::uint64_t(0)) + "{}", "absurdly large"},
      {"invalid_json", st("{not json}", ""), "not valid JSON"},
      {"not_object", st("[1,2]", ""), "not a JSON object"},
      {"deep", st(std::string(100000, '[') + std::string(100000, ']'), ""), "nested more than 256"},
      {"entry_not_object", st(R"({"w":3})", ""), "'w': entry is not an object"},
      {"missing_dtype", st(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", ok_data),
       "'w': missing or non-string 'dtype'"},
      {"missing_shape", st(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", ok_data),
       "'w': missing or non-array 'shape'"},
      {"missing_offsets", st(R"({"w":{"dtype":"F32","shape":[2]}})", ok_data), "'w': missing 'data_offsets'"},
      {"short_offsets", st(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", ok_data),
       "missing 'data_offsets'"},
      {"unknown_dtype", st(R"({"w":{"dtype":"F8","shape":[2],"data_offsets":[0,8]}})", ok_data),
       "unknown dtype 'F8'"},
      {"out_of_range", st(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}})", ok_data),
       "out of range"},
      {"begin_gt_end", st(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", ok_data),
       "begin 8 > end 0"},
      {"negative_offset", st(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", ok_data),
       "negative"},
      {"overlap",
       st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          f32_bytes({1, 2, 3})),
       "'b': data_offsets [4, 12] overlap"},
      {"gap",
       st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
          f32_bytes({1, 2, 3, 4, 5})),
       "not contiguous"},
      {"trailing", st(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f32_bytes({1, 2, 3})),
       "cover only 8"},
      {"byte_count", st(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", ok_data),
       "'w': 8 bytes of data for shape [3] of dtype F32 (expected 12)"},
      {"huge_shape",
       st(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})",
          ok_data),
       "more than the file holds"},
      {"negative_shape", st(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", ok_data),
       "'w': shape entry is negative"},
      {"float_shape", st(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", ok_data),
       "not a non-negative integer"},
      {"metadata_not_strings", st(R"({"__metadata__":{"k":1}})", ""), "'k' is not a string"},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      const auto p = dir / (c.name + ".safetensors");
      write_bytes(p, c.bytes);
      try {
        io::load_safetensors<float>(p);
        FAIL("no exception for " << c.name);
      } catch (const FileError& e) {
        const std::string msg = e.what();
        CHECK_THAT(msg, Catch::Contains(p.string()));
        CHECK_THAT(msg, Catch::Contains(c.expect));
      }
      CHECK_THROWS_AS(io::load_safetensors_metadata(p), FileError);
    }
  }
  SECTION("missing file") {
    CHECK_THROWS_WITH(io::load_safetensors<float>(dir / "nope.safetensors"),
                      Catch::Contains("nope.safetensors") && Catch::Contains("does not exist"));
  }
}

TEST_CASE("save_safetensors rejects bad requests and writes atomically") {
  TempDir dir;
  std::map<std::string, Tensor<float>> in{{"x", Tensor<float>({1}, {1.0f})}};
  CHECK_THROWS_WITH(io::save_safetensors(dir / "a.safetensors", in, {}, "I32"),
                    Catch::Contains("unsupported dtype 'I32'"));
  CHECK_THROWS_WITH(io::save_safetensors(dir / "no_such_dir" / "a.safetensors", in),
                    Catch::Contains("no_such_dir") && Catch::Contains("does not exist"));
  CHECK(count_files(dir.path) == 0);
  // Overwriting an existing file replaces it whole.
  io::save_safetensors(dir / "a.safetensors", in);
  in["x"] = Tensor<float>({2}, {3.0f, 4.0f});
  io::save_safetensors(dir / "a.safetensors", in);
  CHECK(io::load_safetensors(dir / "a.safetensors")["x"].to_vector() == std::vector<float>{3.0f, 4.0f});
  CHECK(count_files(dir.path) == 1);
}

TEST_CASE("safetensors files written by Python (the diffusers fixtures) load and re-save identically") {
  const char* env = std::getenv("DIFFUSE_DIFFUSERS_FIXTURES");
  const fs::path root = env ? fs::path(env) : fs::path(DIFFUSE_FIXTURES_DEFAULT);
  if (!fs::is_directory(root)) return;  // fixtures are optional for this unit test
  TempDir dir;
  int files = 0;
  for (auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().extension() != ".safetensors") continue;
    INFO(e.path().string());
    auto t = io::load_safetensors<double>(e.path());
    auto info = io::load_safetensors_info(e.path());
    REQUIRE(info.size() == t.size());
    // Re-saved in the file's own float dtype, the values survive exactly.
    std::map<std::string, Tensor<double>> same;
    std::string dtype = "F32";
    for (auto& [name, i] : info)
      if (i.dtype == "F64" || i.dtype == "F32" || i.dtype == "F16" || i.dtype == "BF16")
        same[name] = t[name], dtype = i.dtype;
    io::save_safetensors(dir / "copy.safetensors", same, io::load_safetensors_metadata(e.path()), dtype);
    auto back = io::load_safetensors<double>(dir / "copy.safetensors");
    for (auto& [name, v] : same) CHECK(back[name].to_vector() == v.to_vector());
    if (++files == 8) break;  // keep the test fast
  }
  CHECK(files > 0);
}

// ---------------------------------------------------------------- JSON

TEST_CASE("fsync_path syncs a file and a folder; a missing path is a FileError naming it") {
  TempDir dir;
  write_bytes(dir / "a.bin", "abc");
  CHECK_NOTHROW(io::fsync_path(dir / "a.bin"));
  CHECK_NOTHROW(io::fsync_path(dir.path));
  CHECK_THROWS_AS(io::fsync_path(dir / "missing.bin"), FileError);
  CHECK_THROWS_WITH(io::fsync_path(dir / "missing.bin"), Catch::Contains("missing.bin"));
}

TEST_CASE("JSON files: pretty, sorted, atomic; clear errors") {
  TempDir dir;
  io::json j = {{"sample_size", 28}, {"_class_name", "UNet2DModel"}, {"block_out_channels", {32, 64}}};
  io::write_json(dir / "config.json", j);
  const std::string text = io::read_file_bytes(dir / "config.json");
  CHECK(text ==
        "{\n  \"_class_name\": \"UNet2DModel\",\n  \"block_out_channels\": [\n    32,\n    64\n  ],\n"
        "  \"sample_size\": 28\n}\n");
  CHECK(io::read_json(dir / "config.json") == j);
  CHECK(count_files(dir.path) == 1);

  write_bytes(dir / "bad.json", "{\"a\": }");
  CHECK_THROWS_AS(io::read_json(dir / "bad.json"), FileError);
  CHECK_THROWS_WITH(io::read_json(dir / "bad.json"),
                    Catch::Contains("bad.json") && Catch::Contains("invalid JSON"));
  CHECK_THROWS_WITH(io::read_json(dir / "missing.json"),
                    Catch::Contains("missing.json") && Catch::Contains("does not exist"));

  // Nested 100,000 deep (200 KB) once overflowed the stack when a value was dumped, copied or, with
  // Python's NaN in the file, walked; now refused at parsing. Brackets inside strings do not count.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  write_bytes(dir / "deep.json", "{\"a\": NaN, \"b\": " + deep + "}");
  CHECK_THROWS_WITH(io::read_json(dir / "deep.json"),
                    Catch::Contains("deep.json") && Catch::Contains("nested"));
  CHECK_THROWS_WITH(io::parse_json(deep), Catch::Contains("nested more than 256"));
  const std::string ok = std::string(256, '[') + std::string(256, ']');
  CHECK(io::parse_json(ok).is_array());
  CHECK(io::parse_json(ok).dump() == ok);
  CHECK(io::parse_json("{\"s\": \"" + std::string(1000, '[') + "\\\"\"}")["s"].get<std::string>().size() ==
        1001);
}

// ---------------------------------------------------------------- npy

namespace {
// A version 1.0 .npy file with the given header dict and data.
std::string npy_bytes(std::string dict, const std::string& data) {
  dict.append(63 - (10 + dict.size()) % 64, ' ');
  dict += '\n';
  std::string s = "\x93NUMPY\x01";
  s += '\0';
  const auto n = static_cast<std::uint16_t>(dict.size());
  s.append(reinterpret_cast<const char*>(&n), 2);
  return s + dict + data;
}
}  // namespace

TEST_CASE("npy round trip and header layout") {
  TempDir dir;
  Tensor<float> a({2, 3}, {1, 2, 3, 4, 5, -6.5f});
  io::save_npy(dir / "a.npy", a);
  const std::string bytes = io::read_file_bytes(dir / "a.npy");
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  std::uint16_t hl;
  std::memcpy(&hl, bytes.data() + 8, 2);
  CHECK((10 + hl) % 64 == 0);
  CHECK(bytes.substr(10, hl).rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0) == 0);
  CHECK(bytes[10 + hl - 1] == '\n');
  CHECK(bytes.size() == 10u + hl + 24u);
  auto b = io::load_npy<float>(dir / "a.npy");
  CHECK(b.shape() == Shape{2, 3});
  CHECK(b.to_vector() == a.to_vector());

  Tensor<double> v({3}, {0.1, -0.2, 1e300});
  io::save_npy(dir / "v.npy", v);
  CHECK(io::read_file_bytes(dir / "v.npy").find("'descr': '<f8', 'fortran_order': False, 'shape': (3,), }") !=
        std::string::npos);
  CHECK(io::load_npy<double>(dir / "v.npy").to_vector() == v.to_vector());

  io::save_npy(dir / "s.npy", Tensor<float>::scalar(2.5f));
  CHECK(io::read_file_bytes(dir / "s.npy").find("'shape': (), }") != std::string::npos);
  auto s = io::load_npy(dir / "s.npy");
  CHECK(s.shape().empty());
  CHECK(s.item() == 2.5f);
  CHECK(count_files(dir.path) == 3);
}

TEST_CASE("npy loads other dtypes converting to T") {
  TempDir dir;
  std::string d16;
  for (std::uint16_t h : {0x3C00, 0xC000, 0x2E66}) d16.append(reinterpret_cast<const char*>(&h), 2);
  write_bytes(dir / "h.npy", npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", d16));
  CHECK(io::load_npy<double>(dir / "h.npy").to_vector() == std::vector<double>{1.0, -2.0, 0.0999755859375});

  std::string d64;
  for (std::int64_t i : {-3, 7}) d64.append(reinterpret_cast<const char*>(&i), 8);
  write_bytes(dir / "i8.npy", npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 1), }", d64));
  auto i8 = io::load_npy(dir / "i8.npy");
  CHECK(i8.shape() == Shape{2, 1});
  CHECK(i8.to_vector() == std::vector<float>{-3, 7});

  std::string d32;
  for (std::int32_t i : {5, -9}) d32.append(reinterpret_cast<const char*>(&i), 4);
  write_bytes(dir / "i4.npy",
              npy_bytes("{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (2,)}", d32));
  CHECK(io::load_npy(dir / "i4.npy").to_vector() == std::vector<float>{5, -9});

  write_bytes(dir / "u1.npy", npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2, 2), }",
                                        std::string("\x00\x01\x80\xff", 4)));
  CHECK(io::load_npy(dir / "u1.npy").to_vector() == std::vector<float>{0, 1, 128, 255});
}

TEST_CASE("npy: broken files throw FileError naming file and problem") {
  TempDir dir;
  const std::string f8 = f32_bytes({1, 2});
  const std::vector<std::pair<std::string, std::pair<std::string, std::string>>> cases = {
      {"fortran", {npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", f8), "Fortran"}},
      {"big_endian",
       {npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", f8),
        "unsupported dtype '>f4'"}},
      {"unicode",
       {npy_bytes("{'descr': '<U2', 'fortran_order': False, 'shape': (1,), }", f8),
        "unsupported dtype '<U2'"}},
      {"truncated",
       {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f8),
        "needs 12 bytes, the file has 8"}},
      {"trailing",
       {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", f8), "needs 4 bytes"}},
      {"huge",
       {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
                  f8),
        "more bytes than the file holds"}},
      {"negative",
       {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", f8), "not a non-negative"}},
      {"no_shape", {npy_bytes("{'descr': '<f4', 'fortran_order': False, }", f8), "no 'shape' key"}},
      {"bad_magic", {"PK\x03\x04 this is a zip", "bad magic"}},
      {"short", {"\x93NUM", "bad magic"}},
      {"header_past_end", {std::string("\x93NUMPY\x01\x00\xff\x7f{'descr'", 17), "runs past the end"}},
  };
  for (const auto& [name, c] : cases) {
    DYNAMIC_SECTION(name) {
      const auto p = dir / (name + ".npy");
      write_bytes(p, c.first);
      CHECK_THROWS_AS(io::load_npy(p), FileError);
      CHECK_THROWS_WITH(io::load_npy(p), Catch::Contains(p.string()) && Catch::Contains(c.second));
    }
  }
}

// ---------------------------------------------------------------- images

TEST_CASE("PNG write -> read is exact for 8-bit values; gray, RGB, RGBA") {
  TempDir dir;
  for (std::int64_t c : {1, 3, 4}) {
    Tensor<float> img({c, 5, 7});
    for (std::int64_t i = 0; i < img.numel(); ++i)
      img.data()[i] = static_cast<float>((i * 37) % 256) / 255.0f;
    const auto p = dir / ("img" + std::to_string(c) + ".png");
    io::write_png(p, img);
    auto back = io::read_image(p);
    REQUIRE(back.shape() == img.shape());
    CHECK(back.to_vector() == img.to_vector());
  }
  // [H,W] is grayscale; channels = 3 replicates it.
  Tensor<float> gray({2, 3}, {0, 0.2f, 0.4f, 0.6f, 0.8f, 1});
  io::write_png(dir / "g.png", gray);
  auto g = io::read_image(dir / "g.png");
  CHECK(g.shape() == Shape{1, 2, 3});
  auto rgb = io::read_image<double>(dir / "g.png", 3);
  CHECK(rgb.shape() == Shape{3, 2, 3});
  CHECK(rgb.at({2, 1, 2}) == 1.0);
  CHECK(rgb.at({1, 0, 1}) == 51.0 / 255.0);
  CHECK(count_files(dir.path) == 4);
}

TEST_CASE("writing clamps and rounds like torchvision") {
  TempDir dir;
  Tensor<float> img({1, 1, 6}, {-1.0f, 2.0f, 0.5f, 0.499f / 255.0f, 0.501f / 255.0f, NAN});
  io::write_png(dir / "c.png", img);
  auto back = io::read_image(dir / "c.png");
  CHECK(back.to_vector() == std::vector<float>{0, 1, 128 / 255.0f, 0, 1 / 255.0f, 0});
}

TEST_CASE("JPEG write -> read is close") {
  TempDir dir;
  Tensor<float> img({3, 16, 16});
  for (std::int64_t ch = 0; ch < 3; ++ch)
    for (std::int64_t y = 0; y < 16; ++y)
      for (std::int64_t x = 0; x < 16; ++x)
        img.at({ch, y, x}) = static_cast<float>(0.2 + 0.03 * x + 0.02 * y + 0.1 * ch);
  io::write_jpeg(dir / "a.jpg", img);
  auto back = io::read_image(dir / "a.jpg");
  REQUIRE(back.shape() == img.shape());
  double err = 0;
  for (std::int64_t i = 0; i < img.numel(); ++i) err += std::abs(back.data()[i] - img.data()[i]);
  CHECK(err / img.numel() < 0.02);
  CHECK(io::read_file_bytes(dir / "a.jpg").substr(0, 2) == "\xff\xd8");
}

TEST_CASE("image errors name the file and the reason") {
  TempDir dir;
  CHECK_THROWS_WITH(io::read_image(dir / "missing.png"),
                    Catch::Contains("missing.png") && Catch::Contains("does not exist"));
  write_bytes(dir / "junk.png", "this is not an image");
  CHECK_THROWS_AS(io::read_image(dir / "junk.png"), FileError);
  CHECK_THROWS_WITH(io::read_image(dir / "junk.png"),
                    Catch::Contains("junk.png") && Catch::Contains("cannot decode"));
  // A truncated PNG.
  io::write_png(dir / "ok.png", Tensor<float>({3, 8, 8}));
  write_bytes(dir / "cut.png", io::read_file_bytes(dir / "ok.png").substr(0, 40));
  CHECK_THROWS_AS(io::read_image(dir / "cut.png"), FileError);
  CHECK_THROWS_AS(io::read_image(dir / "ok.png", 5), Error);
  CHECK_THROWS_WITH(io::write_png(dir / "x.png", Tensor<float>({5, 2, 2})),
                    Catch::Contains("x.png") && Catch::Contains("channels"));
  CHECK_THROWS_WITH(io::write_png(dir / "x.png", Tensor<float>({2, 3, 2, 2})), Catch::Contains("make_grid"));
  CHECK_THROWS_WITH(io::write_image(dir / "x.gif", Tensor<float>({3, 2, 2})),
                    Catch::Contains("unknown image format"));
  CHECK_THROWS_AS(io::write_png(dir / "nodir" / "x.png", Tensor<float>({3, 2, 2})), FileError);
}

TEST_CASE("hostile images are refused before stb decodes them") {
  TempDir dir;
  // A 35-byte RLE TGA named .png once "decoded" into 4 x 29,545 x 8,293 (41 s, 4.7 GB): only PNG
  // and JPEG are decoded, by their first bytes.
  std::string tga(18, '\0');
  tga[2] = 10;                                 // RLE true-colour
  tga[12] = char(0x69), tga[13] = char(0x73);  // width 29,545
  tga[14] = char(0x65), tga[15] = char(0x20);  // height 8,293
  tga[16] = 32;
  write_bytes(dir / "tga.png", tga + std::string(17, '\xff'));
  CHECK_THROWS_WITH(io::read_image(dir / "tga.png"),
                    Catch::Contains("tga.png") && Catch::Contains("not a PNG or JPEG"));

  // A PNG header declaring 10,000 x 10,000 pixels (10^8, 1.1x the default limit): refused from the
  // header, nothing allocated.
  auto be32 = [](std::uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  };
  const std::string ihdr =
      be32(13) + "IHDR" + be32(10000) + be32(10000) + std::string("\x08\x00\x00\x00\x00", 5) + be32(0);
  write_bytes(dir / "huge.png", std::string("\x89PNG\r\n\x1a\n", 8) + ihdr + be32(0) + "IEND" + be32(0));
  CHECK_THROWS_WITH(io::read_image(dir / "huge.png"), Catch::Contains("huge.png") &&
                                                          Catch::Contains("10000x10000") &&
                                                          Catch::Contains("max_image_pixels"));
  // The limit is adjustable.
  io::write_png(dir / "ok.png", Tensor<float>({3, 8, 8}));
  const auto saved = io::max_image_pixels().exchange(63);
  CHECK_THROWS_WITH(io::read_image(dir / "ok.png"), Catch::Contains("8x8"));
  io::max_image_pixels() = 64;
  CHECK(io::read_image(dir / "ok.png").shape() == Shape{3, 8, 8});
  io::max_image_pixels() = saved;

  // A JPEG whose Huffman table declares 17 x 16 = 272 codes (stb 2.27 writes past its 257-entry
  // table on it): refused before stb sees it. A real JPEG still reads.
  std::string dht = std::string("\x00", 1) + std::string(16, char(17)) + std::string(272, '\x01');
  const std::size_t len = dht.size() + 2;
  write_bytes(dir / "dht.jpg", std::string("\xff\xd8\xff\xc4", 4) + char(len >> 8) + char(len & 0xff) + dht +
                                   std::string("\xff\xd9", 2));
  CHECK_THROWS_WITH(io::read_image(dir / "dht.jpg"),
                    Catch::Contains("dht.jpg") && Catch::Contains("272 codes"));
  io::write_jpeg(dir / "ok.jpg", Tensor<float>::full({3, 16, 16}, 0.5f));
  CHECK(io::read_image(dir / "ok.jpg").shape() == Shape{3, 16, 16});

  // A PNG whose IDAT chunk declares 1.8 GB in a 60-byte file (stb 2.27 allocated the declared size
  // before noticing; found by fuzzing): refused from the chunk lengths. Real PNGs still read, and so
  // does one whose IEND lacks its CRC.
  write_bytes(dir / "idat.png", std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + "IHDR" + be32(5) + be32(6) +
                                    std::string("\x08\x02\x00\x00\x00", 5) + be32(0) + be32(0x6b1c00c3) +
                                    "IDAT" + std::string(20, '\x01'));
  CHECK_THROWS_WITH(io::read_image(dir / "idat.png"),
                    Catch::Contains("idat.png") && Catch::Contains("'IDAT' declares 1796997315 bytes"));
  std::string png = io::encode_png(Tensor<float>::full({1, 3, 3}, 0.5f));
  write_bytes(dir / "no_iend_crc.png", png.substr(0, png.size() - 4));
  CHECK(io::read_image(dir / "no_iend_crc.png").shape() == Shape{1, 3, 3});
}

// ---------------------------------------------------------------- grids

TEST_CASE("make_grid lays out images like torchvision") {
  // 5 gray images 2x3, pixel value 10k + 3y + x; nrow 2, padding 1, pad 0.5.
  const std::int64_t n = 5, h = 2, w = 3;
  Tensor<float> batch({n, 1, h, w});
  for (std::int64_t k = 0; k < n; ++k)
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x) batch.at({k, 0, y, x}) = static_cast<float>(10 * k + 3 * y + x);
  auto g = viz::make_grid(batch, {.nrow = 2, .padding = 1, .pad_value = 0.5});
  // 3 rows of cells 3 high (+1 final pad) and 2 columns 4 wide (+1): [3, 10, 9].
  REQUIRE(g.shape() == Shape{3, 10, 9});
  for (std::int64_t ch = 0; ch < 3; ++ch) {
    CHECK(g.at({ch, 0, 0}) == 0.5f);   // top-left padding
    CHECK(g.at({ch, 1, 1}) == 0.0f);   // image 0 (0,0)
    CHECK(g.at({ch, 2, 3}) == 5.0f);   // image 0 (1,2)
    CHECK(g.at({ch, 1, 4}) == 0.5f);   // padding column between images 0 and 1
    CHECK(g.at({ch, 1, 5}) == 10.0f);  // image 1 (0,0)
    CHECK(g.at({ch, 5, 7}) == 35.0f);  // image 3 (1,2): row 1 starts at y=4, col 1 at x=5
    CHECK(g.at({ch, 3, 1}) == 0.5f);   // padding row between grid rows
    CHECK(g.at({ch, 7, 1}) == 40.0f);  // image 4 (0,0): row 2 starts at y=7
    CHECK(g.at({ch, 8, 3}) == 45.0f);
    CHECK(g.at({ch, 7, 5}) == 0.5f);  // empty slot after the last image
    CHECK(g.at({ch, 9, 8}) == 0.5f);
  }
  // RGB stays RGB; one image comes back unpadded.
  Tensor<float> one({1, 3, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  auto g1 = viz::make_grid(one);
  CHECK(g1.shape() == Shape{3, 2, 2});
  CHECK(g1.to_vector() == one.to_vector());
  // nrow larger than the batch: a single row.
  CHECK(viz::make_grid(Tensor<float>({3, 3, 4, 4}), {.nrow = 8, .padding = 2}).shape() == Shape{3, 8, 20});
  CHECK_THROWS_AS(viz::make_grid(Tensor<float>({0, 3, 4, 4})), Error);
  CHECK_THROWS_AS(viz::make_grid(batch, {.nrow = 0}), Error);
}

TEST_CASE("make_grid normalisation: value_range and min/max") {
  Tensor<float> b({2, 1, 1, 2}, {-1.0f, 0.0f, 1.0f, 3.0f});
  auto g = viz::make_grid(b, {.nrow = 2, .padding = 0, .value_range = std::make_pair(-1.0, 1.0)});
  CHECK(g.shape() == Shape{3, 1, 4});
  CHECK(g[0].to_vector() == std::vector<float>{0.0f, 0.5f, 1.0f, 1.0f});  // 3 is clamped
  auto m = viz::make_grid(b, {.nrow = 2, .padding = 0, .normalize = true});
  CHECK(m[2].to_vector() == std::vector<float>{0.0f, 0.25f, 0.5f, 1.0f});
  CHECK(b.data()[3] == 3.0f);  // the input is untouched
}

TEST_CASE("save_image grids a batch and keeps a single image as is") {
  TempDir dir;
  Tensor<float> batch({4, 1, 3, 3}, std::vector<float>(36, 1.0f));
  viz::save_image(batch, dir / "grid.png", {.nrow = 2});
  auto g = io::read_image(dir / "grid.png");
  CHECK(g.shape() == Shape{3, 12, 12});  // 2 * (3 + 2) + 2
  CHECK(g.at({0, 0, 0}) == 0.0f);
  CHECK(g.at({0, 2, 2}) == 1.0f);
  viz::save_image(Tensor<float>({1, 3, 3}, std::vector<float>(9, -1.0f)), dir / "one.png",
                  {.value_range = std::make_pair(-1.0, 1.0)});
  auto o = io::read_image(dir / "one.png");
  CHECK(o.shape() == Shape{1, 3, 3});
  CHECK(o.at({0, 1, 1}) == 0.0f);
}

TEST_CASE("Figure stacks panels with a gap") {
  TempDir dir;
  viz::Figure fig(3, 1.0);
  fig.add(Tensor<float>({1, 2, 4}, std::vector<float>(8, 0.0f)));  // gray panel 2x4
  fig.add(Tensor<float>({2, 3, 2, 2}, std::vector<float>(24, 0.25f)),
          {.nrow = 2, .padding = 1});  // grid 3x4x7
  auto img = fig.image();
  REQUIRE(img.shape() == Shape{3, 2 + 3 + 4, 7});
  CHECK(img.at({1, 0, 3}) == 0.0f);   // first panel (gray replicated into RGB)
  CHECK(img.at({1, 0, 5}) == 1.0f);   // right of the narrower first panel: background
  CHECK(img.at({0, 3, 0}) == 1.0f);   // the gap
  CHECK(img.at({2, 5, 0}) == 0.0f);   // grid padding
  CHECK(img.at({2, 6, 1}) == 0.25f);  // first grid image
  fig.save(dir / "fig.png");
  CHECK(io::read_image(dir / "fig.png").shape() == Shape{3, 9, 7});
  CHECK_THROWS_AS(viz::Figure().image(), Error);
}
