// Includes core/tensor.hpp alone and uses the members that once lived elsewhere (reshape, slice,
// select, backward): this file links only if the header defines every member it declares.
#include <catch2/catch.hpp>

#include "diffuse/core/tensor.hpp"

TEST_CASE("core/tensor.hpp alone: views and backward link and work") {
  using diffuse::Tensor;
  Tensor<double> x = Tensor<double>::ones({2, 3});
  x.requires_grad_(true);
  const Tensor<double> y = x.reshape({3, 2}).slice(1, 3).select(0).reshape({1, 2});
  CHECK(y.shape() == diffuse::Shape{1, 2});
  y.reshape({2}).backward(Tensor<double>::ones({2}));
  // rows 1..2 of the [3, 2] view, then row 0 of those: elements 2 and 3 of x
  const double expected[] = {0, 0, 1, 1, 0, 0};
  for (int i = 0; i < 6; ++i) CHECK(x.grad().data()[i] == expected[i]);
  CHECK_THROWS_AS(x.reshape({4}), diffuse::Error);
}
