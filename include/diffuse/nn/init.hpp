/// @file
/// Parameter initialisation with PyTorch's defaults, drawn from a Generator.
#pragma once
#include <cmath>

#include "diffuse/core/generator.hpp"

namespace diffuse::nn::init {

/// Uniform in [-bound, bound].
template <class T>
Tensor<T> uniform(const Shape& shape, double bound, Generator& gen) {
  Tensor<T> t = gen.rand<T>(shape);
  for (T& v : t) v = static_cast<T>((2.0 * v - 1.0) * bound);
  return t;
}

/// PyTorch's default for Linear and Conv2d weights (kaiming_uniform with a = sqrt(5)) and
/// biases: both reduce to uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)).
template <class T>
Tensor<T> default_uniform(const Shape& shape, std::int64_t fan_in, Generator& gen) {
  return uniform<T>(shape, fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0, gen);
}

}  // namespace diffuse::nn::init
