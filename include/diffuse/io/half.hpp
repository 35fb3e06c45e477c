/// @file
/// IEEE float16 and bfloat16 <-> float conversions (bit-exact, round-to-nearest-even), used by
/// the safetensors and npy readers and writers. Values are carried as raw uint16_t bits.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace diffuse::io {

/// float16 bits -> float (exact: every half is a float).
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

/// float -> float16 bits, rounding to nearest even; overflow gives inf, NaN stays NaN.
inline std::uint16_t float_to_half(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  std::uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);  // NaN / inf
  if (a >= 0x477ff000u) return sign | 0x7c00u;                                // >= 65520 rounds to inf
  if (a < 0x38800000u) {                                                      // below 2^-14: subnormal
    // mant = round(|f| * 2^24); exact in float, and nearbyint rounds half to even.
    const float m = std::nearbyint(std::bit_cast<float>(a) * 16777216.0f);
    return sign | static_cast<std::uint16_t>(m);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to even.
  a += 0xc8000fffu + ((a >> 13) & 1u);
  return sign | static_cast<std::uint16_t>(a >> 13);
}

/// bfloat16 bits -> float (exact).
inline float bf16_to_float(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

/// float -> bfloat16 bits, rounding to nearest even; NaN stays a (quiet) NaN.
inline std::uint16_t float_to_bf16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace diffuse::io
