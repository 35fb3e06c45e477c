// Transforms (data/transforms.hpp), TransformedDataset, the DataLoader's prefetch, resume and
// error paths, ImageFolder's handling of bad input, and the loader's cost per batch.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "diffuse/data/dataloader.hpp"
#include "diffuse/data/fashion_mnist.hpp"
#include "diffuse/data/image_folder.hpp"
#include "diffuse/data/tensor_dataset.hpp"
#include "diffuse/data/transformed_dataset.hpp"
#include "diffuse/data/transforms.hpp"
#include "diffuse/io/image.hpp"
#include "temp_dir.hpp"

using namespace diffuse;
namespace fs = std::filesystem;
using Catch::Contains;
using diffuse::testing::TempDir;
using diffuse::testing::write_bytes;

namespace {

// [C,H,W] with value c*100 + y*10 + x, to see where every pixel went.
Tensor<float> coded(std::int64_t c, std::int64_t h, std::int64_t w) {
  Tensor<float> t({c, h, w});
  for (std::int64_t k = 0; k < c; ++k)
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x) t.at({k, y, x}) = float(k * 100 + y * 10 + x);
  return t;
}

}  // namespace

// ---------------------------------------------------------------- transforms

TEST_CASE("Resize: exact and shorter-side sizes; constant images stay constant; linear ramps stay linear") {
  Tensor<float> flat = Tensor<float>::full({3, 10, 20}, 0.25f);
  auto r = data::Resize(5)(flat);
  CHECK(r.shape() == Shape{3, 5, 10});  // shorter side 10 -> 5, aspect kept
  for (float v : r) CHECK(v == Approx(0.25f).margin(1e-6));
  CHECK(data::Resize(7, 3)(flat).shape() == Shape{3, 7, 3});
  CHECK(data::Resize(4)(Tensor<float>::zeros({1, 9, 3})).shape() == Shape{1, 12, 4});  // int(4 * 9 / 3)

  // Upsampling a horizontal ramp 2x bilinearly: interior output pixels interpolate linearly
  // between the input samples at centre-aligned positions (x_in = (x_out + 0.5) / 2 - 0.5).
  Tensor<float> ramp({1, 1, 8});
  for (int x = 0; x < 8; ++x) ramp.data()[x] = float(x);
  auto up = data::Resize(1, 16)(ramp);
  for (int x = 2; x < 14; ++x) CHECK(up.data()[x] == Approx((x + 0.5) / 2 - 0.5).margin(1e-4));
  // Bicubic (Catmull-Rom) reproduces a linear ramp too, and differs from bilinear on a step.
  auto upc = data::Resize(1, 16, data::Interpolation::bicubic)(ramp);
  for (int x = 4; x < 12; ++x) CHECK(upc.data()[x] == Approx((x + 0.5) / 2 - 0.5).margin(1e-4));
  Tensor<float> step({1, 1, 8}, {0, 0, 0, 0, 1, 1, 1, 1});
  auto bl = data::Resize(1, 32)(step), bc = data::Resize(1, 32, data::Interpolation::bicubic)(step);
  CHECK(*std::min_element(bl.begin(), bl.end()) >= -1e-6f);
  CHECK(*std::min_element(bc.begin(), bc.end()) < -0.01f);  // cubic overshoot (ringing) at the edge

  // Downsampling 2x averages pixel pairs (triangle filter, antialiased).
  auto down = data::Resize(1, 4)(ramp);
  for (int x = 1; x < 3; ++x) CHECK(down.data()[x] == Approx(2 * x + 0.5).margin(0.05));

  CHECK_THROWS_WITH(data::Resize(0), Contains("Resize") && Contains("size"));
  CHECK_THROWS_WITH(data::Resize(4)(Tensor<float>::zeros({4, 4})), Contains("[C,H,W]"));
  CHECK_THROWS_WITH(data::Resize(4)(Tensor<float>::zeros({1, 0, 4})), Contains("empty image"));
  CHECK_THROWS_WITH(data::Resize(64)(Tensor<float>::zeros({1, 1, 1000})),
                    Contains("1x1000") && Contains("64x64000") && Contains("32768 pixels on a side"));
}

TEST_CASE("CenterCrop takes the middle, pads when small; RandomCrop is seeded and covers every offset") {
  auto img = coded(2, 6, 7);
  auto c = data::CenterCrop(2, 3)(img);
  REQUIRE(c.shape() == Shape{2, 2, 3});
  CHECK(c.at({0, 0, 0}) == 22);  // top = round(4/2) = 2, left = round(4/2) = 2
  CHECK(c.at({1, 1, 2}) == 134);
  auto padded = data::CenterCrop(8)(coded(1, 6, 6));  // 1 pixel of zeros all around
  CHECK(padded.at({0, 0, 0}) == 0);
  CHECK(padded.at({0, 1, 1}) == 0);  // the original (0,0), which is also 0
  CHECK(padded.at({0, 2, 3}) == 12);
  CHECK(padded.at({0, 7, 7}) == 0);

  Generator g1(5), g2(5);
  std::set<std::pair<int, int>> offsets;
  for (int i = 0; i < 400; ++i) {
    auto a = data::RandomCrop(4)(img, g1), b = data::RandomCrop(4)(img, g2);
    REQUIRE(a.shape() == Shape{2, 4, 4});
    CHECK(std::equal(a.begin(), a.end(), b.begin()));  // same seed, same crops
    const int v = int(a.at({0, 0, 0}));
    offsets.insert({v / 10, v % 10});
    CHECK(a.at({1, 3, 3}) == 100 + (v / 10 + 3) * 10 + v % 10 + 3);  // a window, both channels alike
  }
  CHECK(offsets.size() == 3 * 4);  // (6-4+1) x (7-4+1) positions, all drawn

  auto p = data::RandomCrop(6, 6, 2)(coded(1, 4, 4), g1);  // padding 2 -> 8x8 canvas
  CHECK(p.shape() == Shape{1, 6, 6});
  CHECK_THROWS_WITH(data::RandomCrop(8)(img, g1), Contains("6x7") && Contains("smaller than the crop 8x8"));
  CHECK_THROWS_WITH(data::RandomCrop(8, 8, std::int64_t{1} << 40),
                    Contains("padding must be within 0..32768"));
}

TEST_CASE("RandomHorizontalFlip mirrors with probability p, reproducibly") {
  auto img = coded(3, 2, 5);
  Generator g(1);
  auto always = data::RandomHorizontalFlip(1.0)(img, g);
  CHECK(always.at({2, 1, 0}) == 214);
  CHECK(always.at({2, 1, 4}) == 210);
  auto never = data::RandomHorizontalFlip(0.0)(img, g);
  CHECK(std::equal(never.begin(), never.end(), img.begin()));
  int flipped = 0;
  Generator a(9);
  std::vector<int> seq;
  for (int i = 0; i < 2000; ++i) {
    const bool f = data::RandomHorizontalFlip()(img, a).at({0, 0, 0}) == 4;
    flipped += f, seq.push_back(f);
  }
  CHECK(flipped > 900);
  CHECK(flipped < 1100);
  Generator b(9);
  for (int i = 0; i < 2000; ++i)
    CHECK((data::RandomHorizontalFlip()(img, b).at({0, 0, 0}) == 4) == bool(seq[i]));
  CHECK_THROWS_WITH(data::RandomHorizontalFlip(1.5), Contains("p must be in [0, 1]"));
}

TEST_CASE("ToTensor and Normalize: [0,255] bytes -> [0,1] -> [-1,1]; per-channel statistics") {
  io::ImageU8 px{2, 1, 3, {0, 128, 255, 10, 20, 30}};  // 2 pixels RGB, channels last
  auto t = data::ToTensor()(px);
  REQUIRE(t.shape() == Shape{3, 1, 2});
  CHECK(t.at({0, 0, 0}) == 0.0f);
  CHECK(t.at({1, 0, 0}) == 128 / 255.0f);
  CHECK(t.at({2, 0, 1}) == 30 / 255.0f);
  CHECK(data::ToTensor()(Tensor<float>::zeros({4, 5})).shape() == Shape{1, 4, 5});
  CHECK_THROWS_WITH(data::ToTensor()(io::ImageU8{2, 2, 3, {1, 2}}), Contains("malformed"));

  auto n = data::Normalize({0.5}, {0.5})(Tensor<float>({1, 1, 3}, {0.0f, 0.5f, 1.0f}));
  CHECK(n.to_vector() == std::vector<float>{-1.0f, 0.0f, 1.0f});
  auto m = data::Normalize({0.0, 1.0}, {1.0, 2.0})(Tensor<float>::ones({2, 1, 1}));
  CHECK(m.to_vector() == std::vector<float>{1.0f, 0.0f});
  CHECK_THROWS_WITH(data::Normalize({0.5, 0.5}, {0.5})(t), Contains("same number"));
  CHECK_THROWS_WITH(data::Normalize({0.5}, {0.0}), Contains("non-zero"));
  CHECK_THROWS_WITH(data::Normalize({0.5, 0.5}, {1, 1})(t), Contains("2 means") && Contains("3 channels"));
}

TEST_CASE("Compose chains transforms in order and accepts lambdas") {
  data::Compose pipeline({data::CenterCrop(4), data::ToTensor(), data::Normalize({0.5}, {0.5}),
                          [](const Tensor<float>& x, Generator&) { return x.clone().fill_(x.data()[0]); }});
  Generator g(0);
  auto out = pipeline(Tensor<float>::ones({1, 6, 6}), g);
  CHECK(out.shape() == Shape{1, 4, 4});
  CHECK(out.at({0, 3, 3}) == 1.0f);
  CHECK(pipeline.size() == 4);
  CHECK_THROWS_WITH(data::Compose({data::Transform()}), Contains("empty transform"));
}

// ---------------------------------------------------------------- TransformedDataset + DataLoader

namespace {
// 12 images [1,4,4]: image i holds i / 100 at every pixel but 1 at its left column.
data::TensorDataset<float> marked_images() {
  Tensor<float> x({12, 1, 4, 4});
  for (int i = 0; i < 12; ++i)
    for (int y = 0; y < 4; ++y)
      for (int c = 0; c < 4; ++c) x.at({i, 0, y, c}) = c == 0 ? 1.0f : float(i) / 100.0f;
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 12; ++i) labels.push_back(i % 4);
  return data::TensorDataset<float>(x, labels);
}
bool is_flipped(const Tensor<float>& images, std::int64_t k) { return images.at({k, 0, 0, 3}) == 1.0f; }

std::vector<std::vector<std::int64_t>> epoch_orders(
    data::DataLoader<data::TransformedDataset<data::TensorDataset<float>>>& l, int epochs,
    std::vector<int>* flips = nullptr) {
  std::vector<std::vector<std::int64_t>> out;
  for (int e = 0; e < epochs; ++e) {
    std::vector<std::int64_t> order;
    for (auto& b : l) {
      order.insert(order.end(), b.indices.begin(), b.indices.end());
      for (std::int64_t k = 0; k < b.size(); ++k) {
        if (flips) flips->push_back(is_flipped(b.images, k));
        CHECK(b.images.at({k, 0, 1, 1}) == Approx(b.indices[k] / 100.0f));
      }
    }
    out.push_back(order);
  }
  return out;
}
}  // namespace

TEST_CASE(
    "TransformedDataset: the loader applies random transforms per sample, reproducibly at any prefetch") {
  auto ds = data::with_transform(marked_images(), data::RandomHorizontalFlip());
  CHECK(ds.sample_shape() == Shape{1, 4, 4});
  CHECK(ds.size() == 12);
  CHECK(ds.label(5) == 1);

  std::vector<int> flips0, flips1, flips2;
  Generator g0(3), g1(3), g2(3);
  data::DataLoader l0(ds, {.batch_size = 5, .shuffle = true, .prefetch = 0}, g0);
  data::DataLoader l1(ds, {.batch_size = 5, .shuffle = true}, g1);
  data::DataLoader l2(ds, {.batch_size = 5, .shuffle = true, .prefetch = 3}, g2);
  const auto o0 = epoch_orders(l0, 4, &flips0), o1 = epoch_orders(l1, 4, &flips1),
             o2 = epoch_orders(l2, 4, &flips2);
  CHECK(o0 == o1);
  CHECK(o0 == o2);
  CHECK(flips0 == flips1);
  CHECK(flips0 == flips2);
  const auto n_flipped = std::count(flips0.begin(), flips0.end(), 1);
  CHECK(n_flipped > 8);  // 48 draws at p = 0.5
  CHECK(n_flipped < 40);
  CHECK(g0.state() ==
        g1.state());  // one epoch-seed draw per epoch from the caller's generator, whatever the prefetch

  // A sample flips in some epochs and not in others (the draws depend on the epoch).
  std::vector<int> first_sample_flips;
  Generator g3(11);
  data::DataLoader l3(ds, {.batch_size = 12}, g3);
  for (int e = 0; e < 16; ++e)
    for (auto& b : l3) first_sample_flips.push_back(is_flipped(b.images, 0));
  const auto f = std::count(first_sample_flips.begin(), first_sample_flips.end(), 1);
  CHECK(f > 0);
  CHECK(f < 16);

  // A transform whose output shape varies is refused, naming the sample.
  auto varying = data::with_transform(marked_images(), [](const Tensor<float>& x, Generator& g) {
    return g.rand<double>({1}).item() < 0.5 ? x : data::CenterCrop(2)(x);
  });
  data::DataLoader lv(varying, {.batch_size = 12});
  CHECK_THROWS_WITH(
      [&] {
        for (auto& b : lv) (void)b;
      }(),
      Contains("sample") && Contains("transforms to shape"));
}

TEST_CASE("DataLoader state: resuming mid-epoch continues with the same order and transforms") {
  auto ds = data::with_transform(marked_images(), data::RandomHorizontalFlip());
  // The reference: 3 epochs straight through, recording every batch.
  Generator g(21);
  data::DataLoader ref(ds, {.batch_size = 5, .shuffle = true}, g);
  std::vector<std::vector<std::int64_t>> batches;
  std::vector<std::vector<float>> pixels;
  for (int e = 0; e < 3; ++e)
    for (auto& b : ref) batches.push_back(b.indices), pixels.push_back(b.images.to_vector());
  REQUIRE(batches.size() == 9);

  // Stop inside epoch 1 after its batch 0 (batch 4 overall), save, resume in a new loader.
  Generator ga(21);
  data::DataLoader a(ds, {.batch_size = 5, .shuffle = true}, ga);
  for (auto& b : a) (void)b;
  data::LoaderState saved;
  GeneratorState gen_saved;
  for (auto& b : a) {
    CHECK(b.indices == batches[3]);
    saved = a.state(), gen_saved = ga.state();
    break;
  }
  CHECK(saved.epoch == 1);
  CHECK(saved.batch == 1);
  CHECK(saved.started);

  Generator gb(999);
  gb.set_state(gen_saved);
  data::DataLoader b(ds, {.batch_size = 5, .shuffle = true, .prefetch = 2}, gb);
  CHECK(b.state() == data::LoaderState{});
  b.set_state(saved);
  std::size_t k = 4;
  for (int e = 0; e < 2; ++e)
    for (auto& batch : b) {
      REQUIRE(k < batches.size());
      CHECK(batch.indices == batches[k]);
      CHECK(batch.images.to_vector() == pixels[k]);
      ++k;
    }
  CHECK(k == 9);
  CHECK(b.state().epoch == 2);
  CHECK(b.state().batch == 3);

  // An epoch that had ended: the next begin() starts the following one.
  data::LoaderState ended = saved;
  ended.batch = 3;
  b.set_state(ended);
  for (auto& batch : b) {
    CHECK(b.epoch() == 2);
    CHECK(b.batch_index() == 1);
    (void)batch;
    break;
  }
  // Breaking out early and looping again starts a new epoch (PyTorch's behaviour).
  for (auto& batch : b) {
    (void)batch;
    break;
  }
  CHECK(b.epoch() == 3);

  CHECK_THROWS_WITH(b.set_state({.epoch = 0, .batch = 4, .seed = 0, .started = true}), Contains("batch 4"));
  CHECK_THROWS_WITH(b.set_state({.epoch = 2, .batch = 0}), Contains("started = false"));
  CHECK_THROWS_WITH(data::DataLoader(ds, {.prefetch = -1}), Contains("prefetch"));
}

namespace {
// A dataset whose sample 7 cannot be read.
struct Flaky {
  std::int64_t size() const { return 10; }
  Shape sample_shape() const { return {2}; }
  std::int64_t label(std::int64_t) const { return 0; }
  template <class T>
  void get_into(std::int64_t i, T* dst) const {
    if (i == 7) throw FileError("sample 7: 'cat.png' is corrupt");
    if (i == 8) throw std::runtime_error("not a diffuse error");
    dst[0] = T(i), dst[1] = T(-i);
  }
};
}  // namespace

TEST_CASE("DataLoader: an error on the worker thread surfaces in the caller's loop as diffuse::Error") {
  Flaky ds;
  for (int prefetch : {0, 1, 4}) {
    data::DataLoader loader(ds, {.batch_size = 3, .prefetch = prefetch});
    std::vector<std::int64_t> seen;
    try {
      for (auto& b : loader) seen.insert(seen.end(), b.indices.begin(), b.indices.end());
      FAIL("no error");
    } catch (const FileError& e) {
      CHECK_THAT(e.what(), Contains("batch 2 of epoch 0") && Contains("cat.png"));
    }
    CHECK(seen == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});  // the good batches came first
    CHECK(loader.state().batch == 2);
    // Exceptions of other types arrive as diffuse::Error.
    data::DataLoader other(ds, {.batch_size = 1, .prefetch = prefetch});
    other.set_state({.epoch = 0, .batch = 8, .seed = 0, .started = true});
    CHECK_THROWS_WITH(
        [&] {
          for (auto& b : other) (void)b;
        }(),
        Contains("batch 8") && Contains("not a diffuse error"));
  }
  // Leaving the loop while batches are in flight is safe.
  data::DataLoader loader(ds, {.batch_size = 1, .prefetch = 4});
  for (auto& b : loader) {
    CHECK(b.indices[0] == 0);
    break;
  }
}

// ---------------------------------------------------------------- ImageFolder: bad input

TEST_CASE(
    "ImageFolder: corrupt, empty, zero-size and unreadable files are skipped with reasons (or an error)") {
  TempDir dir;
  fs::create_directories(dir / "a" / "deeper");
  io::write_png(dir / "a" / "rgb.png", Tensor<float>::full({3, 6, 6}, 0.5f));
  io::write_png(dir / "a" / "deeper" / "gray.png", Tensor<float>::full({1, 6, 6}, 1.0f));  // recursive, gray
  io::write_jpeg(dir / "a" / "photo.JPG", Tensor<float>::full({3, 6, 6}, 0.2f));
  write_bytes(dir / "a" / "corrupt.png", std::string("\x89PNG\r\n\x1a\n garbage", 17));
  write_bytes(dir / "a" / "empty.jpg", "");
  // A BMP header declaring a 0x4 image, named .png: refused by its first bytes. A real .bmp is not
  // an image here (PNG and JPEG only): ignored like README.txt.
  std::string bmp = "BM" + std::string(52, '\0');
  bmp[10] = 54, bmp[14] = 40, bmp[22] = 4, bmp[26] = 1, bmp[28] = 24;
  write_bytes(dir / "a" / "zero.png", bmp);
  write_bytes(dir / "a" / "other.bmp", bmp);
  write_bytes(dir / "a" / "README.txt", "hello");

  data::ImageFolder f(dir.path, {.size = 4, .channels = 3});
  CHECK(f.size() == 3);
  CHECK(f.skipped().size() == 3);
  std::string reasons;
  for (const auto& s : f.skipped()) reasons += s.path.filename().string() + ": " + s.reason + "\n";
  INFO(reasons);
  CHECK_THAT(reasons, Contains("corrupt.png: ") && Contains("empty.jpg: ") && Contains("empty (0 bytes)") &&
                          Contains("zero.png: ") && Contains("not a PNG or JPEG"));
  CHECK(f.converted_count() == 1);              // the gray PNG, replicated to RGB
  CHECK(f.ignored_count() == 2);                // README.txt, other.bmp
  CHECK(f.get(0).image.at({2, 3, 3}) == 1.0f);  // a/deeper/gray.png sorts first
  const std::string summary = f.summary();
  CHECK_THAT(summary, Contains("3 images") && Contains("3 skipped") && Contains("1 converted to RGB") &&
                          Contains("corrupt.png"));

  CHECK_THROWS_WITH(data::ImageFolder(dir.path, {.size = 4, .on_bad_file = data::OnBadFile::error}),
                    Contains("corrupt.png") && Contains("on_bad_file"));
  data::ImageFolder gray(dir.path, {.size = 4, .channels = 1});
  CHECK(gray.sample_shape() == Shape{1, 4, 4});
  CHECK(gray.converted_count() == 2);  // the two RGB files

  // A folder of nothing but bad files, an empty folder, a file instead of a folder.
  TempDir bad;
  write_bytes(bad / "x.png", "nope");
  CHECK_THROWS_WITH(data::ImageFolder(bad.path), Contains("none of the 1 image files") && Contains("x.png"));
  TempDir none;
  write_bytes(none / "notes.md", "no pictures");
  CHECK_THROWS_WITH(data::ImageFolder(none.path), Contains("no images") && Contains("1 other files ignored"));
  CHECK_THROWS_WITH(data::ImageFolder(none / "notes.md"), Contains("is not a folder"));
  CHECK_THROWS_WITH(data::ImageFolder(none / "missing"), Contains("does not exist"));
}

TEST_CASE("ImageFolder + transforms through the loader, as in the course") {
  TempDir dir;
  for (int i = 0; i < 6; ++i) {
    Tensor<float> img({3, 12, 16});
    for (std::int64_t k = 0; k < img.numel(); ++k) img.data()[k] = float((k * 7 + i * 13) % 256) / 255.0f;
    io::write_png(dir / ("img" + std::to_string(i) + ".png"), img);
  }
  auto train =
      data::with_transform(data::ImageFolder(dir.path),
                           data::Compose({data::Resize(8), data::CenterCrop(8), data::RandomHorizontalFlip(),
                                          data::ToTensor(), data::Normalize({0.5}, {0.5})}));
  CHECK(train.sample_shape() == Shape{3, 8, 8});
  Generator gen(0);
  data::DataLoader loader(train, {.batch_size = 4, .shuffle = true}, gen);
  std::int64_t n = 0;
  for (auto& b : loader) {
    CHECK(b.images.shape()[1] == 3);
    for (float v : b.images) REQUIRE((v >= -1.0001f && v <= 1.0001f));
    n += b.size();
  }
  CHECK(n == 6);
}
