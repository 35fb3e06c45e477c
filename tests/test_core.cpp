// Tensor basics, views, Generator.
#include <catch2/catch.hpp>

#include "diffuse/autograd/backward.hpp"
#include "diffuse/autograd/views.hpp"
#include "diffuse/core/generator.hpp"

using namespace diffuse;

TEST_CASE("Philox 4x32-10 matches the Random123 known-answer vectors") {
  auto r = detail::philox4x32({0, 0, 0, 0}, {0, 0});
  CHECK(r == std::array<std::uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  auto s = detail::philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  CHECK(s == std::array<std::uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
}
