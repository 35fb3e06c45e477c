/// @file
/// The definitions of gradient_accumulation.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/training/gradient_accumulation.hpp"

#include <cstdint>
#include <string>

#include "diffuse/core/error.hpp"

namespace diffuse::training {

DIFFUSE_INLINE GradientAccumulation::GradientAccumulation(std::int64_t steps) : steps_(steps) {
  if (steps < 1) throw Error("GradientAccumulation: steps must be at least 1, got " + std::to_string(steps));
}

DIFFUSE_INLINE void GradientAccumulation::set_micro_step(std::int64_t n) {
  if (n < 0) throw Error("GradientAccumulation: micro_step must be non-negative, got " + std::to_string(n));
  micro_step_ = n;
}

}  // namespace diffuse::training
