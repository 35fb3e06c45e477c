/// @file
/// Min-SNR-γ loss weighting (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting
/// Strategy", 2023), as diffusers' training scripts apply it with --snr_gamma:
///   SNR(t) = alphas_cumprod[t] / (1 - alphas_cumprod[t])
///   weight = min(SNR, γ) / SNR        for epsilon prediction
///            min(SNR, γ) / (SNR + 1)  for v-prediction
///            min(SNR, γ)              for sample (x0) prediction
/// Multiply each sample's mean squared error by its weight, then average:
///   auto w = training::min_snr_weights(scheduler.alphas_cumprod(), t, 5.0);          // [B]
///   auto loss = mean(mean(square(pred - noise), {1, 2, 3}) * w);
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse::detail {
template <class T>
std::int64_t snr_timestep_index(const Tensor<T>& alphas_cumprod, T t, const char* what) {
  const std::int64_t n = alphas_cumprod.numel();
  const double v = static_cast<double>(t);
  if (!(v >= 0 && v < static_cast<double>(n)) || v != std::floor(v))
    throw Error(std::string(what) + ": timestep " + std::to_string(v) + " is not an integer in [0, " +
                std::to_string(n) + ")");
  return static_cast<std::int64_t>(v);
}
template <class T>
Tensor<T> timesteps_tensor(const std::vector<std::int64_t>& timesteps) {
  return Tensor<T>(Shape{static_cast<std::int64_t>(timesteps.size())},
                   std::vector<T>(timesteps.begin(), timesteps.end()));
}
template <class T>
void snr_check_schedule(const Tensor<T>& alphas_cumprod, const Tensor<T>& timesteps, const char* what) {
  if (!alphas_cumprod.defined() || alphas_cumprod.dim() != 1 || alphas_cumprod.numel() == 0)
    throw Error(std::string(what) + ": alphas_cumprod must be a non-empty 1-D tensor");
  if (!timesteps.defined() || timesteps.dim() != 1)
    throw Error(std::string(what) + ": timesteps must be a 1-D tensor [B]");
}
}  // namespace diffuse::detail

namespace diffuse::training {

/// The signal-to-noise ratio alphas_cumprod[t] / (1 - alphas_cumprod[t]) of each timestep
/// (diffusers' compute_snr), [B].
/// Throws diffuse::Error unless alphas_cumprod is 1-D and non-empty, timesteps is 1-D, and
/// every timestep is an integer in [0, alphas_cumprod.numel()).
template <class T>
Tensor<T> compute_snr(const Tensor<T>& alphas_cumprod, const Tensor<T>& timesteps) {
  diffuse::detail::snr_check_schedule(alphas_cumprod, timesteps, "compute_snr");
  Tensor<T> out = Tensor<T>::empty(timesteps.shape());
  for (std::int64_t b = 0; b < timesteps.numel(); ++b) {
    const double ac =
        alphas_cumprod
            .data()[diffuse::detail::snr_timestep_index(alphas_cumprod, timesteps.data()[b], "compute_snr")];
    const double alpha = std::sqrt(ac), sigma = std::sqrt(1.0 - ac);
    out.data()[b] = static_cast<T>((alpha / sigma) * (alpha / sigma));
  }
  return out;
}

/// Min-SNR-γ weights, [B]; prediction_type "epsilon", "v_prediction" or "sample".
/// Throws diffuse::Error for gamma <= 0, another prediction_type, or timesteps compute_snr
/// refuses.
template <class T>
Tensor<T> min_snr_weights(const Tensor<T>& alphas_cumprod, const Tensor<T>& timesteps, double gamma,
                          const std::string& prediction_type = "epsilon") {
  if (!(gamma > 0)) throw Error("min_snr_weights: gamma must be positive, got " + std::to_string(gamma));
  if (prediction_type != "epsilon" && prediction_type != "v_prediction" && prediction_type != "sample")
    throw Error("min_snr_weights: unknown prediction_type '" + prediction_type +
                "'; accepted: epsilon, v_prediction, sample");
  Tensor<T> snr = compute_snr(alphas_cumprod, timesteps);
  Tensor<T> w = Tensor<T>::empty(snr.shape());
  for (std::int64_t b = 0; b < snr.numel(); ++b) {
    const double s = snr.data()[b], clipped = std::min(s, gamma);
    w.data()[b] = static_cast<T>(prediction_type == "epsilon"        ? clipped / s
                                 : prediction_type == "v_prediction" ? clipped / (s + 1.0)
                                                                     : clipped);
  }
  return w;
}

/// compute_snr for integer timesteps (what randint gives, as the model and add_noise take them).
template <class T>
Tensor<T> compute_snr(const Tensor<T>& alphas_cumprod, const std::vector<std::int64_t>& timesteps) {
  return compute_snr(alphas_cumprod, diffuse::detail::timesteps_tensor<T>(timesteps));
}
/// min_snr_weights for integer timesteps.
template <class T>
Tensor<T> min_snr_weights(const Tensor<T>& alphas_cumprod, const std::vector<std::int64_t>& timesteps,
                          double gamma, const std::string& prediction_type = "epsilon") {
  return min_snr_weights(alphas_cumprod, diffuse::detail::timesteps_tensor<T>(timesteps), gamma,
                         prediction_type);
}

}  // namespace diffuse::training
