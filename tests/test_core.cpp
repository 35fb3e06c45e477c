// Tensor basics, views, Generator.
#include <catch2/catch.hpp>

#include "diffuse/core/generator.hpp"
#include "diffuse/core/tensor.hpp"

#include <cmath>
#include <limits>
#include <sstream>

using namespace diffuse;

TEST_CASE("Philox 4x32-10 matches the Random123 known-answer vectors") {
  auto r = detail::philox4x32({0, 0, 0, 0}, {0, 0});
  CHECK(r == std::array<std::uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  auto s =
      detail::philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  CHECK(s == std::array<std::uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
}

TEST_CASE("tensor creation") {
  CHECK(Tensor<float>::zeros({2, 3}).to_vector() == std::vector<float>(6, 0.f));
  CHECK(Tensor<double>::full({2}, 1.5).to_vector() == std::vector<double>{1.5, 1.5});
  CHECK(Tensor<double>::arange(0, 1, 0.25).to_vector() == std::vector<double>{0, 0.25, 0.5, 0.75});
  CHECK(Tensor<float>::arange(3, 0, -1).to_vector() == std::vector<float>{3, 2, 1});
  CHECK(Tensor<double>::linspace(-1, 1, 5).to_vector() == std::vector<double>{-1, -0.5, 0, 0.5, 1});
  CHECK(Tensor<double>::scalar(2).dim() == 0);
  CHECK(Tensor<double>::scalar(2).item() == 2);
  Tensor<float> t({2, 2}, {1, 2, 3, 4});
  CHECK(t.at({1, 0}) == 3);
  CHECK(t.size(-1) == 2);
  CHECK(t.to<double>().to_vector() == std::vector<double>{1, 2, 3, 4});
  CHECK_THROWS_WITH(t.at({2, 0}), Catch::Contains("out of bounds"));
  CHECK_THROWS_WITH(t.item(), Catch::Contains("4 elements"));
  CHECK_THROWS_AS(Tensor<float>().shape(), Error);
}

TEST_CASE("views share storage; clone copies") {
  Tensor<float> t = Tensor<float>::arange(0, 12).reshape({3, 4});
  Tensor<float> row = t[1];
  CHECK(row.to_vector() == std::vector<float>{4, 5, 6, 7});
  row.fill_(0);
  CHECK(t.at({1, 2}) == 0);
  Tensor<float> c = t.clone();
  c.fill_(9);
  CHECK(t.at({0, 0}) == 0);
  CHECK(t.slice(1, 3).shape() == Shape{2, 4});
  CHECK(t.reshape({-1}).shape() == Shape{12});
  CHECK(t.unsqueeze(0).shape() == Shape{1, 3, 4});
  CHECK(t.unsqueeze(-1).squeeze(-1).shape() == Shape{3, 4});
  CHECK_THROWS_WITH(t.slice(2, 5), Catch::Contains("out of range"));
}

TEST_CASE("printing") {
  std::ostringstream os;
  os << Tensor<float>({2, 2}, {1, 2, 3, 4});
  CHECK(os.str() == "Tensor([[1, 2], [3, 4]], shape=[2, 2])");
  std::ostringstream long_row;
  long_row << Tensor<float>::arange(0, 10);
  CHECK(long_row.str() == "Tensor([0, 1, 2, ..., 7, 8, 9], shape=[10])");
}

TEST_CASE("Generator: reproducible, thread-count independent, restorable") {
  const int threads = num_threads();
  Generator a(7);
  set_num_threads(1);
  auto x1 = a.randn<float>({100000});
  set_num_threads(std::max(2, threads));
  Generator b(7);
  auto x2 = b.randn<float>({100000});
  set_num_threads(threads);
  CHECK(x1.to_vector() == x2.to_vector());

  Generator g(3);
  g.randn<float>({5});
  GeneratorState s = g.state();
  auto next = g.rand<double>({7});
  g.set_state(s);
  CHECK(g.rand<double>({7}).to_vector() == next.to_vector());
  CHECK(Generator(1).randn<float>({4}).to_vector() != Generator(2).randn<float>({4}).to_vector());
}

TEST_CASE("Generator: distributions") {
  Generator g(11);
  auto n = g.randn<double>({200000});
  double m = 0, v = 0;
  for (double x : n) m += x;
  m /= n.numel();
  for (double x : n) v += (x - m) * (x - m);
  v /= n.numel();
  CHECK(std::abs(m) < 0.01);
  CHECK(v == Approx(1.0).margin(0.01));
  auto u = g.rand<float>({100000});
  for (float x : u) REQUIRE((x >= 0.f && x < 1.f));
  auto ints = g.randint_list(3, 8, 10000);
  std::vector<int> counts(8, 0);
  for (auto k : ints) {
    REQUIRE((k >= 3 && k < 8));
    ++counts[k];
  }
  for (int k = 3; k < 8; ++k) CHECK(counts[k] == Approx(2000).margin(200));
  auto perm = g.randperm(50);
  std::sort(perm.begin(), perm.end());
  for (int i = 0; i < 50; ++i) CHECK(perm[i] == i);
  CHECK_THROWS_WITH(g.randint_list(5, 5, 1), Catch::Contains("empty range"));
}

TEST_CASE("absurd sizes are refused, not allocated") {
  CHECK_THROWS_WITH(Tensor<float>::zeros({std::int64_t{1} << 62}), Catch::Contains("cannot allocate"));
  CHECK_THROWS_WITH(Tensor<float>::empty({std::int64_t{1} << 32, std::int64_t{1} << 32, 2}),
                    Catch::Contains("too many elements"));
  CHECK(Tensor<float>::empty({0, std::int64_t{1} << 62, 8}).numel() ==
        0);  // empty, whatever the other extents
  CHECK_THROWS_AS(Tensor<double>::arange(0, std::numeric_limits<double>::infinity()), Error);
  CHECK_THROWS_AS(Tensor<double>::arange(0, std::nan("")), Error);
  CHECK_THROWS_WITH(Generator(0).randint_list(0, 5, -1), Catch::Contains("negative"));
  // the full int64 range is a valid range
  for (auto v : Generator(0).randint_list(std::numeric_limits<std::int64_t>::min(),
                                          std::numeric_limits<std::int64_t>::max(), 100))
    CHECK(v < std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("caching allocator: a loop's blocks are reused, bounded, and given back") {
  using diffuse::allocator_stats;
  diffuse::release_cached_memory();
  const std::int64_t n = 1 << 18;  // 1 MiB of floats: cached
  const float* first = nullptr;
  {
    Tensor<float> a = Tensor<float>::empty({n});
    first = a.data();
  }
  CHECK(allocator_stats().cached_bytes >= std::size_t(n) * sizeof(float));
  const auto hits = allocator_stats().hits;
  {
    Tensor<float> b = Tensor<float>::full({n}, 2.0f);  // same size: the same block, and its own values
    CHECK(b.data() == first);
    CHECK(b.data()[n - 1] == 2.0f);
    CHECK(allocator_stats().hits == hits + 1);
  }
  {
    Tensor<float> c = Tensor<float>::empty({n / 4});  // less than half the cached block: not that one
    CHECK(c.data() != first);
  }
  {
    Tensor<float> d = Tensor<float>::empty({n / 2 + 16});  // more than half: shares the cached block
    CHECK(d.data() == first);
  }
  // Many sizes, as in sampling: the cache never holds more than twice the peak in use.
  for (int round = 0; round < 3; ++round)
    for (std::int64_t k = 1; k <= 40; ++k) {
      Tensor<float> t = Tensor<float>::empty({(std::int64_t(1) << 15) * k});
      const auto s = allocator_stats();
      CHECK(s.in_use_bytes + s.cached_bytes <= 2 * s.peak_bytes);
    }
  // Just below the cached size before rounding, at it after: in and out by the same path, so the
  // count in use comes back (it wrapped to 1.8e19 when allocate and deallocate disagreed).
  for (std::int64_t floats : {16369, 16383, 16384}) {
    const auto in_use = allocator_stats().in_use_bytes;
    { Tensor<float> t = Tensor<float>::empty({floats}); }
    CHECK(allocator_stats().in_use_bytes == in_use);
  }
  // Small tensors bypass the cache.
  const auto before = allocator_stats();
  { Tensor<float> small = Tensor<float>::empty({100}); }
  CHECK(allocator_stats().hits == before.hits);
  CHECK(allocator_stats().misses == before.misses);
  diffuse::release_cached_memory();
  CHECK(allocator_stats().cached_bytes == 0);
}
