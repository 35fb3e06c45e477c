// IDX files (crafted, plain and gzipped, plus the real Fashion-MNIST), the in-memory datasets
// and the DataLoader.
#include <zlib.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>

#include "diffuse/data/dataloader.hpp"
#include "diffuse/data/distributed_sampler.hpp"
#include "diffuse/data/fashion_mnist.hpp"  // before dataloader.hpp on purpose: data::detail must not hide diffuse::detail
#include "diffuse/data/idx.hpp"
#include "diffuse/data/image_folder.hpp"
#include "diffuse/data/mnist.hpp"
#include "diffuse/data/tensor_dataset.hpp"
#include "diffuse/io/image.hpp"
#include "temp_dir.hpp"

using namespace diffuse;
namespace fs = std::filesystem;
using diffuse::testing::TempDir;
using diffuse::testing::write_bytes;

namespace {

void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  REQUIRE(f);
  if (!bytes.empty())
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == int(bytes.size()));
  gzclose(f);
}

std::string be32(std::uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

// An IDX file: magic bytes (0, 0, type, ndim), dims, data.
std::string idx_bytes(int type, std::vector<std::uint32_t> dims, const std::string& data) {
  std::string s{'\0', '\0', char(type), char(dims.size())};
  for (auto d : dims) s += be32(d);
  return s + data;
}

const fs::path kFashion = data::FashionMNIST::default_root();
bool have_fashion() {
  return fs::exists(kFashion / "train-labels-idx1-ubyte.gz") ||
         fs::exists(kFashion / "train-labels-idx1-ubyte");
}

// Loaded once for all tests that need it.
const data::FashionMNIST& fashion_train() {
  static const data::FashionMNIST d = data::FashionMNIST::train();
  return d;
}

}  // namespace

// ---------------------------------------------------------------- IDX

TEST_CASE("read_idx reads plain and gzipped files") {
  TempDir dir;
  const std::string bytes = idx_bytes(0x08, {2, 2, 3}, "abcdefghijkl");
  for (bool gz : {false, true}) {
    const auto p = dir / (gz ? "x.gz" : "x");
    gz ? write_gz(p, bytes) : write_bytes(p, bytes);
    auto a = data::read_idx(p);
    CHECK(a.shape == std::vector<std::int64_t>{2, 2, 3});
    CHECK(std::string(a.data.begin(), a.data.end()) == "abcdefghijkl");
  }
  // Zero-sized dimension: an empty but valid array.
  write_bytes(dir / "empty", idx_bytes(0x08, {0, 28, 28}, ""));
  CHECK(data::read_idx(dir / "empty").data.empty());
}

TEST_CASE("read_idx: broken files throw FileError naming file and problem") {
  TempDir dir;
  struct Case {
    std::string name, bytes, expect;
  };
  const std::vector<Case> cases = {
      {"empty", "", "too short for the 4-byte magic"},
      {"bad_magic", "\x12\x34\x56\x78rest", "bad magic number 0x12345678"},
      {"float_type", idx_bytes(0x0D, {2}, "12345678"), "float32 (code 0d) is not supported"},
      {"unknown_type", idx_bytes(0x07, {2}, "ab"), "unknown data type code 0x07"},
      {"no_dims", idx_bytes(0x08, {}, "ab"), "absurd number of dimensions 0"},
      {"many_dims", idx_bytes(0x08, std::vector<std::uint32_t>(20, 1), ""), "absurd number of dimensions 20"},
      {"truncated_header", idx_bytes(0x08, {2, 3}, "").substr(0, 9), "truncated header"},
      {"truncated_data", idx_bytes(0x08, {2, 4}, "abcde"), "expected 8 bytes for the shape, got 5"},
      {"absurd", idx_bytes(0x08, {0xffffffffu, 0xffffffffu, 0xffffffffu}, "ab"), "absurd dimensions"},
      {"trailing", idx_bytes(0x08, {2}, "abc"), "more data than the header"},
      // 4 GiB described (a small gzip file can expand to that): refused from the header.
      {"too_large", idx_bytes(0x08, {65536, 65536}, "ab"), "more than the limit of 1073741824"},
  };
  for (const auto& c : cases)
    for (bool gz : {false, true}) {
      DYNAMIC_SECTION(c.name << (gz ? " (gzipped)" : "")) {
        const auto p = dir / (c.name + (gz ? ".gz" : ""));
        gz ? write_gz(p, c.bytes) : write_bytes(p, c.bytes);
        CHECK_THROWS_AS(data::read_idx(p), FileError);
        CHECK_THROWS_WITH(data::read_idx(p), Catch::Contains(p.string()) && Catch::Contains(c.expect));
      }
    }
  SECTION("the size limit is adjustable") {
    write_bytes(dir / "small", idx_bytes(0x08, {2, 4}, "abcdefgh"));
    const auto saved = data::max_idx_bytes().exchange(7);
    CHECK_THROWS_WITH(data::read_idx(dir / "small"), Catch::Contains("max_idx_bytes"));
    data::max_idx_bytes() = 8;
    CHECK(data::read_idx(dir / "small").data.size() == 8);
    data::max_idx_bytes() = saved;
  }
  SECTION("corrupt gzip stream") {
    write_gz(dir / "c.gz", idx_bytes(0x08, {4096}, std::string(4096, 'x')));
    std::string b;
    {
      std::ifstream in(dir / "c.gz", std::ios::binary);
      b.assign(std::istreambuf_iterator<char>(in), {});
    }
    for (std::size_t i = 12; i < b.size() - 8; ++i) b[i] = char(b[i] ^ 0x5a);
    write_bytes(dir / "c.gz", b);
    CHECK_THROWS_AS(data::read_idx(dir / "c.gz"), FileError);
  }
  SECTION("missing file, with the package hint for the default folder") {
    CHECK_THROWS_WITH(data::read_idx(dir / "nope-idx3-ubyte.gz"),
                      Catch::Contains("nope-idx3-ubyte.gz") && Catch::Contains("does not exist"));
    CHECK_THROWS_WITH(data::FashionMNIST::train(dir / "nowhere"),
                      Catch::Contains("train-images-idx3-ubyte") && Catch::Contains("does not exist"));
    CHECK_THROWS_WITH(data::FashionMNIST::train("/usr/share/datasets/fashion-mnist/not-here"),
                      Catch::Contains("apt-get install dataset-fashion-mnist"));
  }
}

TEST_CASE("MNIST-style folders: counts must match, labels must be classes") {
  TempDir dir;
  std::string pixels(3 * 2 * 2, '\0');
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = char(i * 20);
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_bytes(0x08, {3, 2, 2}, pixels));
  write_bytes(dir / "train-labels-idx1-ubyte", idx_bytes(0x08, {3}, std::string("\x07\x00\x09", 3)));
  auto m = data::MNIST::train(dir.path);
  CHECK(m.size() == 3);
  CHECK(m.sample_shape() == Shape{1, 2, 2});
  CHECK(m.label(2) == 9);
  auto [img, label] = m.get(1);
  CHECK(label == 0);
  CHECK(img.to_vector() == std::vector<float>{80 / 255.0f, 100 / 255.0f, 120 / 255.0f, 140 / 255.0f});
  CHECK_THROWS_AS(m.get(3), Error);
  CHECK_THROWS_AS(m.label(-1), Error);
  auto all = m.images();
  CHECK(all.shape() == Shape{3, 1, 2, 2});
  CHECK(all.data()[11] == 220 / 255.0f);

  write_bytes(dir / "t10k-images-idx3-ubyte", idx_bytes(0x08, {3, 2, 2}, pixels));
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(0x08, {2}, "\x01\x02"));
  CHECK_THROWS_WITH(data::MNIST::test(dir.path), Catch::Contains("3 images") && Catch::Contains("2 labels"));
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(0x08, {3}, "\x01\x02\x0a"));
  CHECK_THROWS_WITH(data::MNIST::test(dir.path), Catch::Contains("label 10 of sample 2"));
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(0x08, {3, 1}, "\x01\x02\x03"));
  CHECK_THROWS_WITH(data::MNIST::test(dir.path), Catch::Contains("should hold labels [N]"));
}

TEST_CASE("the real Fashion-MNIST") {
  if (!have_fashion()) {
    WARN("Fashion-MNIST not installed at " << kFashion << "; skipped");
    return;
  }
  auto raw = data::read_idx(kFashion / "train-images-idx3-ubyte.gz");
  CHECK(raw.shape == std::vector<std::int64_t>{60000, 28, 28});
  const auto& train = fashion_train();
  REQUIRE(train.size() == 60000);
  CHECK(train.sample_shape() == Shape{1, 28, 28});
  CHECK(train.label(0) == 9);
  CHECK(train.class_names()[train.label(0)] == "Ankle boot");
  CHECK(train.class_names().size() == 10);
  CHECK(train.class_names()[0] == "T-shirt/top");
  // Fashion-MNIST is balanced: 6000 training images per class.
  std::vector<int> count(10);
  for (std::int64_t i = 0; i < train.size(); ++i) {
    REQUIRE(train.label(i) >= 0);
    REQUIRE(train.label(i) <= 9);
    ++count[train.label(i)];
  }
  CHECK(count == std::vector<int>(10, 6000));
  auto s = train.get(0);
  CHECK(s.image.shape() == Shape{1, 28, 28});
  CHECK(*std::min_element(s.image.begin(), s.image.end()) == 0.0f);
  CHECK(*std::max_element(s.image.begin(), s.image.end()) == 1.0f);
  for (int k = 0; k < 784; ++k) REQUIRE(s.image.data()[k] == static_cast<float>(raw.data[k]) / 255.0f);

  auto test = data::FashionMNIST::test();
  CHECK(test.size() == 10000);
  CHECK(test.label(0) == 9);  // the first test image is also an ankle boot
}

// ---------------------------------------------------------------- DataLoader

namespace {
// 10 samples [2] holding (i, -i), label i % 3.
data::TensorDataset<float> small_dataset() {
  Tensor<float> x({10, 2});
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 10; ++i) x.at({i, 0}) = float(i), x.at({i, 1}) = float(-i), labels.push_back(i % 3);
  return data::TensorDataset<float>(x, labels);
}
}  // namespace

TEST_CASE("TensorDataset checks every index, with or without labels") {
  const data::TensorDataset<float> labelled = small_dataset(), unlabelled(Tensor<float>::zeros({4, 2}));
  CHECK(labelled.label(4) == 1);
  CHECK(unlabelled.label(3) == 0);
  CHECK_THROWS_AS(labelled.label(10), Error);
  CHECK_THROWS_AS(unlabelled.label(4), Error);  // was 0, for any index
  CHECK_THROWS_AS(unlabelled.label(-1), Error);
}

TEST_CASE("DataLoader covers every index exactly once per epoch; shuffle differs by epoch and is seeded") {
  auto ds = small_dataset();
  Generator gen(7);
  data::DataLoader loader(ds, {.batch_size = 3, .shuffle = true}, gen);
  static_assert(std::is_same_v<decltype(loader), data::DataLoader<data::TensorDataset<float>, float>>);
  CHECK(loader.size() == 4);
  std::vector<std::vector<std::int64_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    std::vector<std::int64_t> seen, sizes;
    for (auto& batch : loader) {
      REQUIRE(batch.images.shape() == Shape{batch.size(), 2});
      sizes.push_back(batch.size());
      for (std::int64_t k = 0; k < batch.size(); ++k) {
        const auto i = static_cast<std::int64_t>(batch.images.at({k, 0}));
        CHECK(batch.images.at({k, 1}) == -float(i));
        CHECK(batch.indices[k] == i);
        CHECK(batch.label_ids[k] == i % 3);
        CHECK(batch.labels.data()[k] == float(i % 3));
        seen.push_back(i);
      }
    }
    CHECK(sizes == std::vector<std::int64_t>{3, 3, 3, 1});
    epochs.push_back(seen);
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  }
  CHECK(epochs[0] != epochs[1]);  // a new permutation each epoch
  CHECK(epochs[1] != epochs[2]);

  // Same seed, same orders.
  Generator gen2(7);
  data::DataLoader again(ds, {.batch_size = 3, .shuffle = true}, gen2);
  for (int e = 0; e < 3; ++e) {
    std::vector<std::int64_t> seen;
    for (auto& batch : again) seen.insert(seen.end(), batch.indices.begin(), batch.indices.end());
    CHECK(seen == epochs[e]);
  }
}

TEST_CASE("DataLoader without shuffle, with drop_last, and its errors") {
  auto ds = small_dataset();
  data::DataLoader loader(ds, {.batch_size = 4});
  std::vector<std::int64_t> order;
  for (auto& b : loader) order.insert(order.end(), b.indices.begin(), b.indices.end());
  CHECK(order == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});

  Generator gen(1);
  data::DataLoader dropping(ds, {.batch_size = 4, .shuffle = true, .drop_last = true}, gen);
  CHECK(dropping.size() == 2);
  std::int64_t batches = 0;
  std::set<std::int64_t> seen;
  for (auto& b : dropping) {
    CHECK(b.size() == 4);
    seen.insert(b.indices.begin(), b.indices.end());
    ++batches;
  }
  CHECK(batches == 2);
  CHECK(seen.size() == 8);  // distinct samples

  CHECK(data::DataLoader(ds, {.batch_size = 20}).size() == 1);
  CHECK(data::DataLoader(ds, {.batch_size = 20, .drop_last = true}).size() == 0);
  CHECK_THROWS_WITH(data::DataLoader(ds, {.batch_size = 0}), Catch::Contains("batch_size"));
  CHECK_THROWS_WITH(data::DataLoader(ds, {.shuffle = true}), Catch::Contains("Generator"));
  CHECK_THROWS_AS(loader.make_batch({0, 10}), Error);
}

TEST_CASE("DataLoader over Fashion-MNIST: an epoch of batches of 128 covers every image once") {
  if (!have_fashion()) return;
  const auto& train = fashion_train();
  Generator gen(0);
  data::DataLoader loader(train, {.batch_size = 128, .shuffle = true}, gen);
  CHECK(loader.size() == 469);
  std::int64_t n = 0, batches = 0;
  std::vector<char> seen(60000, 0);
  for (auto& batch : loader) {
    REQUIRE(batch.images.shape()[1] == 1);
    REQUIRE(batch.images.shape()[2] == 28);
    for (auto i : batch.indices) seen[i]++;
    n += batch.size();
    ++batches;
  }
  CHECK(n == 60000);
  CHECK(batches == 469);
  CHECK(std::all_of(seen.begin(), seen.end(), [](char c) { return c == 1; }));
  // A batch holds the same values as get(i).
  auto it = loader.begin();
  auto& b = *it;
  auto s = train.get(b.indices[5]);
  CHECK(std::equal(s.image.begin(), s.image.end(), b.images.data() + 5 * 784));
  CHECK(b.label_ids[5] == s.label);
}

// ---------------------------------------------------------------- ImageFolder

TEST_CASE("ImageFolder: subfolders are classes, images resized, errors name the file") {
  TempDir dir;
  fs::create_directories(dir / "dog");
  fs::create_directories(dir / "cat");
  io::write_png(dir / "dog" / "a.png", Tensor<float>::full({3, 4, 4}, 1.0f));
  io::write_png(dir / "cat" / "b.png", Tensor<float>::full({1, 8, 6}, 0.0f));  // gray, other size
  io::write_png(dir / "cat" / "c.png", Tensor<float>::full({3, 4, 4}, 0.2f));
  write_bytes(dir / "cat" / "notes.txt", "not an image");

  data::ImageFolder f(dir.path, {.size = 4, .channels = 3});
  REQUIRE(f.size() == 3);
  CHECK(f.class_names() == std::vector<std::string>{"cat", "dog"});
  CHECK(f.sample_shape() == Shape{3, 4, 4});
  CHECK(f.label(0) == 0);
  CHECK(f.label(2) == 1);
  CHECK(f.files()[2].filename() == "a.png");
  auto b = f.get(0).image;  // the gray 8x6 image, resized and replicated to RGB
  CHECK(*std::max_element(b.begin(), b.end()) == 0.0f);
  CHECK(f.get(1).image.at({1, 2, 2}) == 51 / 255.0f);
  CHECK(f.get(2).image.at({2, 3, 3}) == 1.0f);
  data::DataLoader loader(f, {.batch_size = 2});
  CHECK((*loader.begin()).images.shape() == Shape{2, 3, 4, 4});

  CHECK_THROWS_WITH(data::ImageFolder(dir.path),
                    Catch::Contains("c.png") && Catch::Contains("is 4x4 but earlier images are 6x8"));
  write_bytes(dir / "dog" / "broken.png", "garbage");
  CHECK_THROWS_WITH(data::ImageFolder(dir.path, {.size = 4, .on_bad_file = data::OnBadFile::error}),
                    Catch::Contains("broken.png"));
  data::ImageFolder skipping(dir.path, {.size = 4});  // the default: skip it, and say so
  CHECK(skipping.size() == 3);
  REQUIRE(skipping.skipped().size() == 1);
  CHECK(skipping.skipped()[0].path.filename() == "broken.png");
  CHECK_THROWS_AS(data::ImageFolder(dir / "missing"), FileError);
  fs::create_directories(dir / "empty");
  CHECK_THROWS_WITH(data::ImageFolder(dir / "empty"), Catch::Contains("no images"));
}

TEST_CASE("DistributedSampler: PyTorch's shards, padding and epochs") {
  using data::DistributedSampler;
  auto all_ranks = [](std::int64_t size, data::DistributedSamplerOptions o) {
    std::vector<std::vector<std::int64_t>> out;
    for (int r = 0; r < o.num_replicas; ++r) {
      o.rank = r;
      out.push_back(DistributedSampler(size, o).indices());
    }
    return out;
  };
  SECTION("the shards of an epoch cover the dataset exactly once") {
    for (std::uint64_t epoch : {0, 1}) {
      std::vector<std::int64_t> seen;
      for (int r = 0; r < 4; ++r) {
        DistributedSampler s(100, {.num_replicas = 4, .rank = r, .seed = 3});
        s.set_epoch(static_cast<std::int64_t>(epoch));
        const auto mine = s.indices();
        CHECK(static_cast<std::int64_t>(mine.size()) == s.size());
        seen.insert(seen.end(), mine.begin(), mine.end());
      }
      std::sort(seen.begin(), seen.end());
      std::vector<std::int64_t> expected(100);
      for (std::int64_t i = 0; i < 100; ++i) expected[i] = i;
      CHECK(seen == expected);
    }
  }
  SECTION("rank r takes every num_replicas-th index; padding repeats the first ones (as PyTorch)") {
    // torch: list(DistributedSampler(range(10), num_replicas=4, rank=r, shuffle=False))
    const auto shards = all_ranks(10, {.num_replicas = 4, .shuffle = false});
    CHECK(shards[0] == std::vector<std::int64_t>{0, 4, 8});
    CHECK(shards[1] == std::vector<std::int64_t>{1, 5, 9});
    CHECK(shards[2] == std::vector<std::int64_t>{2, 6, 0});
    CHECK(shards[3] == std::vector<std::int64_t>{3, 7, 1});
    // more padding than data: [0, 1] padded to 5 replicas -> 0 1 0 1 0
    const auto tiny = all_ranks(2, {.num_replicas = 5, .shuffle = false});
    CHECK(tiny[2] == std::vector<std::int64_t>{0});
    CHECK(tiny[3] == std::vector<std::int64_t>{1});
    CHECK(tiny[4] == std::vector<std::int64_t>{0});
  }
  SECTION("drop_last drops the uneven tail (len = ceil((n - replicas) / replicas))") {
    const auto shards = all_ranks(10, {.num_replicas = 4, .shuffle = false, .drop_last = true});
    CHECK(shards[0] == std::vector<std::int64_t>{0, 4});
    CHECK(shards[3] == std::vector<std::int64_t>{3, 7});
    CHECK(DistributedSampler(3, {.num_replicas = 4, .drop_last = true}).size() == 0);
    CHECK(DistributedSampler(8, {.num_replicas = 4, .drop_last = true}).size() == 2);
  }
  SECTION("all ranks draw the same permutation; each epoch another") {
    DistributedSampler a(50, {.num_replicas = 2, .rank = 0, .seed = 9}),
        b(50, {.num_replicas = 2, .rank = 1, .seed = 9});
    const auto a0 = a.indices(), b0 = b.indices();
    std::set<std::int64_t> both(a0.begin(), a0.end());
    both.insert(b0.begin(), b0.end());
    CHECK(both.size() == 50);
    a.set_epoch(1);
    CHECK(a.indices() != a0);
    a.set_epoch(0);
    CHECK(a.indices() == a0);  // the order depends on seed and epoch alone
    CHECK(DistributedSampler(50, {.num_replicas = 2, .rank = 0, .seed = 10}).indices() != a0);
  }
  SECTION("bad arguments") {
    CHECK_THROWS_WITH(DistributedSampler(10, {.num_replicas = 0}),
                      Catch::Contains("num_replicas must be at least 1"));
    CHECK_THROWS_WITH(DistributedSampler(10, {.num_replicas = 2, .rank = 2}),
                      Catch::Contains("invalid rank 2"));
    CHECK_THROWS_WITH(DistributedSampler(-1), Catch::Contains("negative dataset size"));
  }
}

TEST_CASE("DataLoader with num_replicas: N ranks x batch B read the batches of 1 x batch N*B") {
  Generator data_gen(4);
  const data::TensorDataset<float> dataset(data_gen.randn<float>({21, 3}));
  auto epoch_batches = [&](int replicas, int rank, std::int64_t batch_size) {
    Generator gen(8);  // the same seed on every rank
    data::DataLoader loader(
        dataset, {.batch_size = batch_size, .shuffle = true, .num_replicas = replicas, .rank = rank}, gen);
    std::vector<std::vector<std::vector<std::int64_t>>> epochs;
    for (int e = 0; e < 2; ++e) {
      epochs.emplace_back();
      for (auto& b : loader) epochs.back().push_back(b.indices);
    }
    return epochs;
  };
  const auto single = epoch_batches(1, 0, 6), r0 = epoch_batches(2, 0, 3), r1 = epoch_batches(2, 1, 3);
  REQUIRE(single[0].size() == 4);  // 21 samples in batches of 6
  REQUIRE(r0[0].size() == 4);      // 11 per rank (21 padded to 22) in batches of 3
  for (int e = 0; e < 2; ++e)
    for (std::size_t k = 0; k < 3; ++k) {  // the full batches; the last differs by the padding
      std::vector<std::int64_t> both = r0[e][k];
      both.insert(both.end(), r1[e][k].begin(), r1[e][k].end());
      std::sort(both.begin(), both.end());
      auto expected = single[e][k];
      std::sort(expected.begin(), expected.end());
      CHECK(both == expected);
    }
  CHECK(r0[0] != r0[1]);  // a new order each epoch
  // Sample i of rank r's batch sits at global_batch_positions(3, 2, r)[i] = r + 2i of the global one.
  for (int r = 0; r < 2; ++r) {
    const auto where = data::global_batch_positions(3, 2, r);
    CHECK(where == std::vector<std::int64_t>{r, r + 2, r + 4});
    for (int e = 0; e < 2; ++e)
      for (std::size_t k = 0; k < 3; ++k)
        for (std::size_t i = 0; i < 3; ++i)
          CHECK((r == 0 ? r0 : r1)[e][k][i] == single[e][k][static_cast<std::size_t>(where[i])]);
  }
  CHECK(data::global_batch_positions(4, 1, 0) == std::vector<std::int64_t>{0, 1, 2, 3});
  CHECK_THROWS_WITH(data::global_batch_positions(3, 2, 2), Catch::Contains("rank 2 is not in [0, 2)"));
  CHECK_THROWS_WITH(data::global_batch_positions(-1, 1, 0), Catch::Contains("negative batch size"));
  CHECK_THROWS_WITH(data::DataLoader(dataset, {.num_replicas = 2, .rank = 2}),
                    Catch::Contains("rank 2 is not in [0, 1]"));
  CHECK_THROWS_WITH(data::DataLoader(dataset, {.num_replicas = 0}),
                    Catch::Contains("num_replicas must be at least 1"));
}
