/// @file
/// Generator: a seeded, counter-based random source (Philox 4x32-10). The value drawn for
/// element i of a request depends only on (seed, offset, i), so draws are the same whatever
/// the number of OpenMP threads. state()/set_state() save and restore it.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "diffuse/core/parallel.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse {

namespace detail {
/// One Philox 4x32 block: 10 rounds over a 128-bit counter with a 64-bit key.
inline std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> ctr,
                                               std::array<std::uint32_t, 2> key) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kM0) * ctr[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(kM1) * ctr[2];
    ctr = {static_cast<std::uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<std::uint32_t>(p1),
           static_cast<std::uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<std::uint32_t>(p0)};
    key[0] += kW0;
    key[1] += kW1;
  }
  return ctr;
}
}  // namespace detail

/// The complete state of a Generator: its seed and how many Philox blocks it has used.
struct GeneratorState {
  /// The seed it was created or last seeded with.
  std::uint64_t seed = 0;
  /// Philox blocks used since then (one block gives 4 values).
  std::uint64_t offset = 0;
  bool operator==(const GeneratorState&) const = default;
};

/// A seeded random source for noise, timesteps and initialisation (like torch.Generator).
class Generator {
 public:
  /// A generator seeded with `seed`.
  explicit Generator(std::uint64_t seed = 0) : state_{seed, 0} {}

  /// Starts over from `seed` (like torch.Generator.manual_seed).
  void manual_seed(std::uint64_t seed) { state_ = {seed, 0}; }
  /// The seed (like torch.Generator.initial_seed).
  std::uint64_t initial_seed() const { return state_.seed; }
  /// The current state (like torch.Generator.get_state).
  GeneratorState state() const { return state_; }
  /// Restores a state from state(): the draws made after it was saved come again.
  void set_state(const GeneratorState& s) { state_ = s; }

  /// Standard normal samples (Box-Muller on Philox output).
  /// Like torch.randn(shape, generator=gen).
  template <class T = float>
  Tensor<T> randn(const Shape& shape) {
    Tensor<T> t = Tensor<T>::empty(shape);
    fill_blocks(t.numel(), [&](std::int64_t block, const std::array<std::uint32_t, 4>& r) {
      const double u1 = to_open_unit(r[0]), u2 = to_open_unit(r[1]);
      const double u3 = to_open_unit(r[2]), u4 = to_open_unit(r[3]);
      const double ra = std::sqrt(-2.0 * std::log(u1)), rb = std::sqrt(-2.0 * std::log(u3));
      const double z[4] = {ra * std::cos(2 * std::numbers::pi * u2), ra * std::sin(2 * std::numbers::pi * u2),
                           rb * std::cos(2 * std::numbers::pi * u4),
                           rb * std::sin(2 * std::numbers::pi * u4)};
      store(t, block, z);
    });
    return t;
  }

  /// Uniform samples in [0, 1).
  /// Like torch.rand(shape, generator=gen).
  template <class T = float>
  Tensor<T> rand(const Shape& shape) {
    Tensor<T> t = Tensor<T>::empty(shape);
    fill_blocks(t.numel(), [&](std::int64_t block, const std::array<std::uint32_t, 4>& r) {
      double z[4];
      // 24 random bits for float (so the value stays below 1 after rounding), 32 for double.
      for (int k = 0; k < 4; ++k)
        z[k] = std::is_same_v<T, float> ? (r[k] >> 8) * 0x1.0p-24 : r[k] * 0x1.0p-32;
      store(t, block, z);
    });
    return t;
  }

  /// Integers uniform in [low, high) as values of T (gen.randint<float>(0, 10, {4, 4})); without a
  /// T, randint(low, high, n) below gives the integers themselves.
  template <class T>
  Tensor<T> randint(std::int64_t low, std::int64_t high, const Shape& shape) {
    auto ints = randint_list(low, high, numel_of(shape));
    return Tensor<T>(shape, std::vector<T>(ints.begin(), ints.end()));
  }

  /// n integers uniform in [low, high): timesteps as the course draws them
  /// (torch.randint(0, 1000, (bs,))), taken by the models, add_noise and get_velocity.
  std::vector<std::int64_t> randint(std::int64_t low, std::int64_t high, std::int64_t n) {
    return randint_list(low, high, n);
  }

  /// Integers uniform in [low, high).
  /// Throws diffuse::Error when high <= low or n < 0.
  std::vector<std::int64_t> randint_list(std::int64_t low, std::int64_t high, std::int64_t n) {
    if (high <= low)
      throw Error("randint: empty range [" + std::to_string(low) + ", " + std::to_string(high) + ")");
    if (n < 0) throw Error("randint: negative count " + std::to_string(n));
    const std::uint64_t range = static_cast<std::uint64_t>(high) - static_cast<std::uint64_t>(low);
    std::vector<std::int64_t> out(static_cast<std::size_t>(n));
    // Two draws per Philox block, each from its own 64 random bits, scaled to the range
    // (bias below 2^-32 for any realistic range).
    fill_blocks((n + 1) / 2 * 4, [&](std::int64_t block, const std::array<std::uint32_t, 4>& r) {
      for (int k = 0; k < 2; ++k) {
        const std::int64_t i = block * 2 + k;
        if (i >= n) break;
        const std::uint64_t bits = (static_cast<std::uint64_t>(r[2 * k]) << 32) | r[2 * k + 1];
        const auto scaled = static_cast<std::uint64_t>(static_cast<unsigned __int128>(bits) * range >> 64);
        out[i] = static_cast<std::int64_t>(static_cast<std::uint64_t>(low) + scaled);
      }
    });
    return out;
  }

  /// A random permutation of 0..n-1 (Fisher-Yates).
  std::vector<std::int64_t> randperm(std::int64_t n) {
    std::vector<std::int64_t> p(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) p[i] = i;
    for (std::int64_t i = n - 1; i > 0; --i) {
      const std::int64_t j = randint_list(0, i + 1, 1)[0];
      std::swap(p[i], p[j]);
    }
    return p;
  }

 private:
  static double to_open_unit(std::uint32_t x) { return (x + 0.5) * 0x1.0p-32; }

  template <class T>
  static void store(Tensor<T>& t, std::int64_t block, const double (&z)[4]) {
    const std::int64_t n = t.numel();
    T* d = t.data();
    for (int k = 0; k < 4 && block * 4 + k < n; ++k) d[block * 4 + k] = static_cast<T>(z[k]);
  }

  // Calls f(block, random_words) for every block of 4 elements of an n-element request and
  // advances the offset past them.
  template <class F>
  void fill_blocks(std::int64_t n, F&& f) {
    const std::int64_t blocks = (n + 3) / 4;
    const std::array<std::uint32_t, 2> key{static_cast<std::uint32_t>(state_.seed),
                                           static_cast<std::uint32_t>(state_.seed >> 32)};
    const std::uint64_t base = state_.offset;
    detail::parallel_for(blocks, [&](std::int64_t b) {
      const std::uint64_t c = base + static_cast<std::uint64_t>(b);
      f(b, detail::philox4x32({static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(c >> 32), 0u, 0u},
                              key));
    });
    state_.offset += static_cast<std::uint64_t>(blocks);
  }

  GeneratorState state_;
};

}  // namespace diffuse

namespace diffuse {

/// The generator used where none is passed (parameter initialisation); seed it with manual_seed.
inline Generator& default_generator() {
  static Generator gen(0);
  return gen;
}
/// Seeds default_generator() (like torch.manual_seed).
inline void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace diffuse
