/// @file
/// The definitions of dataloader.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/data/dataloader.hpp"

#include <cstdint>

namespace diffuse::data {

namespace detail {

DIFFUSE_INLINE std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t index) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace detail

}  // namespace diffuse::data
