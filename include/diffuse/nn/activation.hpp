/// @file
/// Activations chosen by name, as diffusers' get_activation does for act_fn / non_linearity:
/// "silu" and "swish" (SiLU), "mish", "gelu", "relu" (case-insensitive).
#pragma once
#include <algorithm>
#include <cctype>
#include <string>

#include "diffuse/autograd/activations.hpp"
#include "diffuse/autograd/elementwise.hpp"

namespace diffuse::nn {

/// The activation functions that can be chosen by name.
enum class Activation { silu, mish, gelu, relu };

/// The accepted names, as error messages list them.
inline constexpr const char* kAcceptedActivations = "silu, swish, mish, gelu, relu";

/// Parses an activation name; diffuse::Error naming the value and the accepted names otherwise.
inline Activation activation_from_name(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (n == "silu" || n == "swish") return Activation::silu;
  if (n == "mish") return Activation::mish;
  if (n == "gelu") return Activation::gelu;
  if (n == "relu") return Activation::relu;
  throw Error("unsupported activation function '" + name + "' (accepted: " + kAcceptedActivations + ")");
}

/// The name of `a` ("silu" for SiLU / swish).
inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::silu: return "silu";
    case Activation::mish: return "mish";
    case Activation::gelu: return "gelu";
    case Activation::relu: return "relu";
  }
  return "silu";
}

/// Applies `a` elementwise (differentiable).
template <class T>
Tensor<T> apply_activation(Activation a, const Tensor<T>& x) {
  switch (a) {
    case Activation::silu: return silu(x);
    case Activation::mish: return mish(x);
    case Activation::gelu: return gelu(x);
    case Activation::relu: return relu(x);
  }
  return silu(x);
}

}  // namespace diffuse::nn
