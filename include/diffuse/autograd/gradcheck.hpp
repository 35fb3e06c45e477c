/// @file
/// Finite-difference gradient checking (in double): compares the gradients backward() gives
/// with central differences of a scalar function of some input tensors.
#pragma once
#include <functional>
#include <sstream>

#include "diffuse/core/tensor.hpp"

namespace diffuse {

/// What gradcheck() found.
struct GradcheckResult {
  /// Whether every element passed.
  bool ok = true;
  double max_abs_error = 0;  ///< over all inputs and elements
  std::string message;       ///< where the worst mismatch is, when !ok
};

/// f maps the inputs to a scalar. Each input must be a double leaf; requires_grad is set where missing.
/// An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
/// Like torch.autograd.gradcheck. The inputs share memory with the caller's tensors, whose
/// grad() is replaced. Throws diffuse::Error unless f returns one element.
inline GradcheckResult gradcheck(const std::function<Tensor<double>(const std::vector<Tensor<double>>&)>& f,
                                 std::vector<Tensor<double>> inputs, double eps = 1e-6, double atol = 1e-7,
                                 double rtol = 1e-5) {
  for (auto& x : inputs) {
    if (!x.requires_grad()) x.requires_grad_(true);
    x.zero_grad();
  }
  Tensor<double> y = f(inputs);
  if (y.numel() != 1)
    throw Error("gradcheck: the function must return a scalar, got shape " + to_string(y.shape()));
  y.backward();
  GradcheckResult result;
  NoGradGuard no_grad;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    Tensor<double> analytic = inputs[k].grad();
    double* p = inputs[k].data();
    for (std::int64_t i = 0; i < inputs[k].numel(); ++i) {
      const double saved = p[i];
      p[i] = saved + eps;
      const double up = f(inputs).item();
      p[i] = saved - eps;
      const double down = f(inputs).item();
      p[i] = saved;
      const double numeric = (up - down) / (2 * eps);
      const double a = analytic.defined() ? analytic.data()[i] : 0.0;
      const double err = std::abs(a - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (err > atol + rtol * std::abs(numeric) && result.ok) {
        result.ok = false;
        std::ostringstream os;
        os << "input " << k << " element " << i << ": analytic " << a << ", numeric " << numeric;
        result.message = os.str();
      }
    }
  }
  return result;
}

}  // namespace diffuse
