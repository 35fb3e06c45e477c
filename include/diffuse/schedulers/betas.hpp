/// @file
/// Shared numerics of the noise schedulers: beta schedules, the cumulative product of alphas,
/// timestep spacings, Karras sigmas and dynamic thresholding, computed the way diffusers 0.21
/// computes them (schedule constants in float32, NumPy/PyTorch rounding rules), so that the
/// schedules here match diffusers' number for number.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <numbers>
#include <string>
#include <string_view>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse::schedulers::detail {

/// numpy.round / torch.round: round half to even.
inline double round_half_even(double x) { return std::nearbyint(x); }

/// numpy.linspace(start, stop, num) in float64 (the last value is exactly `stop`).
inline std::vector<double> np_linspace(double start, double stop, std::int64_t num) {
  std::vector<double> y(static_cast<std::size_t>(std::max<std::int64_t>(num, 0)));
  if (num <= 0) return y;
  const double div = num > 1 ? static_cast<double>(num - 1) : 1.0;
  const double step = (stop - start) / div;
  for (std::int64_t i = 0; i < num; ++i) y[i] = static_cast<double>(i) * step + start;
  if (num > 1) y[num - 1] = stop;
  return y;
}

/// numpy.arange(start, stop, step) for a float step: values start + i * delta, where delta is
/// recomputed as (start + step) - start like NumPy's fill.
inline std::vector<double> np_arange(double start, double stop, double step) {
  const auto n = static_cast<std::int64_t>(std::ceil((stop - start) / step));
  std::vector<double> y(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
  if (y.empty()) return y;
  y[0] = start;
  if (y.size() > 1) {
    const double delta = (start + step) - start;
    for (std::size_t i = 1; i < y.size(); ++i) y[i] = start + static_cast<double>(i) * delta;
  }
  return y;
}

/// torch.linspace(start, end, steps, dtype=float32) as PyTorch's CPU kernel evaluates it: the first
/// half counts up from `start`, the second half down from `end`.
inline std::vector<float> torch_linspace_f32(double start_d, double end_d, std::int64_t steps) {
  std::vector<float> y(static_cast<std::size_t>(std::max<std::int64_t>(steps, 0)));
  if (steps <= 0) return y;
  if (steps == 1) {
    y[0] = static_cast<float>(start_d);
    return y;
  }
  const float start = static_cast<float>(start_d), end = static_cast<float>(end_d);
  const float step = (end - start) / static_cast<float>(steps - 1);
  const std::int64_t halfway = steps / 2;
  for (std::int64_t i = 0; i < steps; ++i)
    y[i] =
        i < halfway ? start + step * static_cast<float>(i) : end - step * static_cast<float>(steps - i - 1);
  return y;
}

/// diffusers' betas_for_alpha_bar: betas of a schedule given by its alpha_bar(t) on [0, 1].
inline std::vector<float> betas_for_alpha_bar(std::int64_t n, const std::string& transform,
                                              double max_beta = 0.999) {
  auto alpha_bar = [&](double t) {
    if (transform == "cosine") {
      const double c = std::cos((t + 0.008) / 1.008 * std::numbers::pi / 2);
      return c * c;
    }
    return std::exp(t * -12.0);
  };
  std::vector<float> betas(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const double t1 = static_cast<double>(i) / n, t2 = static_cast<double>(i + 1) / n;
    betas[i] = static_cast<float>(std::min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta));
  }
  return betas;
}

/// Throws diffuse::Error naming `key`, the class and the accepted values unless `value` is one of them.
template <class Names>
void check_one_of_names(std::string_view cls, std::string_view key, std::string_view value,
                        const Names& accepted) {
  for (std::string_view a : accepted)
    if (a == value) return;
  std::string list;
  for (std::string_view a : accepted) ((list += list.empty() ? "'" : ", '") += a) += "'";
  throw Error(std::string(cls) + ": unknown " + std::string(key) + " '" + std::string(value) +
              "'; accepted: " + list);
}
// Literal lists stay string_views: no std::string is built per accepted name at each call.
inline void check_one_of(std::string_view cls, std::string_view key, std::string_view value,
                         std::initializer_list<std::string_view> accepted) {
  check_one_of_names(cls, key, value, accepted);
}
inline void check_one_of(std::string_view cls, std::string_view key, std::string_view value,
                         const std::vector<std::string>& accepted) {
  check_one_of_names(cls, key, value, accepted);
}

/// make_betas without the range check of the result.
inline std::vector<float> make_betas_unchecked(const std::string& cls, const std::string& schedule,
                                               std::int64_t n, double beta_start, double beta_end,
                                               const std::vector<double>& trained, bool allow_exp) {
  // Checked before anything is allocated: "num_train_timesteps": 1e12 in a hostile config must be
  // an Error, not std::bad_alloc. diffusers' models use 1000; a million is far beyond any, and
  // builds in a fraction of a second (10 million took seconds, 30 s under the fuzzers' ASan).
  constexpr std::int64_t kMaxTrainTimesteps = 1'000'000;
  if (n > kMaxTrainTimesteps)
    throw Error(cls + ": num_train_timesteps " + std::to_string(n) + " is more than the limit of " +
                std::to_string(kMaxTrainTimesteps));
  if (!trained.empty()) {
    std::vector<float> b(trained.begin(), trained.end());
    if (static_cast<std::int64_t>(b.size()) != n)
      throw Error(cls + ": trained_betas has " + std::to_string(b.size()) +
                  " values but num_train_timesteps is " + std::to_string(n));
    return b;
  }
  if (n < 1) throw Error(cls + ": num_train_timesteps must be positive, got " + std::to_string(n));
  if (allow_exp)
    check_one_of(cls, "beta_schedule", schedule,
                 {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "exp"});
  else
    check_one_of(cls, "beta_schedule", schedule, {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"});
  if (schedule == "linear") return torch_linspace_f32(beta_start, beta_end, n);
  if (schedule == "scaled_linear") {
    auto b = torch_linspace_f32(std::sqrt(beta_start), std::sqrt(beta_end), n);
    for (auto& v : b) v = v * v;
    return b;
  }
  if (schedule == "squaredcos_cap_v2") return betas_for_alpha_bar(n, "cosine");
  if (schedule == "exp") return betas_for_alpha_bar(n, "exp");
  // sigmoid: sigmoid(linspace(-6, 6)) * (beta_end - beta_start) + beta_start, all in float32
  auto x = torch_linspace_f32(-6.0, 6.0, n);
  const float range = static_cast<float>(beta_end - beta_start), start = static_cast<float>(beta_start);
  for (auto& v : x) v = (1.0f / (1.0f + std::exp(-v))) * range + start;
  return x;
}

/// The betas of a schedule in float32, as diffusers builds them. `trained` (when non-empty)
/// overrides the named schedule. Every beta must lie in (0, 1): beta_end 2.0, beta_start -1 or a
/// NaN in trained_betas gave NaN samples in every scheduler; they are errors instead.
inline std::vector<float> make_betas(const std::string& cls, const std::string& schedule, std::int64_t n,
                                     double beta_start, double beta_end, const std::vector<double>& trained,
                                     bool allow_exp = false) {
  std::vector<float> b = make_betas_unchecked(cls, schedule, n, beta_start, beta_end, trained, allow_exp);
  for (std::size_t i = 0; i < b.size(); ++i)
    if (!(b[i] > 0.0f && b[i] < 1.0f))
      throw Error(cls + ": beta " + std::to_string(i) + " of the " +
                  (trained.empty()
                       ? "\"" + schedule + "\" schedule (beta_start " + std::to_string(beta_start) +
                             ", beta_end " + std::to_string(beta_end) + ")"
                       : std::string("trained_betas")) +
                  " is " + std::to_string(b[i]) + "; every beta must lie in (0, 1)");
  return b;
}

/// torch.cumprod over float32 on the CPU: the product is carried in double and stored as float.
inline std::vector<float> cumprod_f32(const std::vector<float>& a) {
  std::vector<float> out(a.size());
  double acc = 1.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    acc *= a[i];
    out[i] = static_cast<float>(acc);
  }
  return out;
}

inline std::vector<float> alphas_from_betas(const std::vector<float>& betas) {
  std::vector<float> a(betas.size());
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = 1.0f - betas[i];
  return a;
}

/// Rescales betas to zero terminal SNR (Lin et al. 2023, "Common Diffusion Noise Schedules and
/// Sample Steps are Flawed"), in float32 like diffusers.
inline std::vector<float> rescale_zero_terminal_snr(const std::vector<float>& betas) {
  auto ac = cumprod_f32(alphas_from_betas(betas));
  std::vector<float> s(ac.size());
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = std::sqrt(ac[i]);
  const float s0 = s.front(), sT = s.back();
  const float scale = s0 / (s0 - sT);
  for (auto& v : s) v = (v - sT) * scale;
  std::vector<float> bar(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) bar[i] = s[i] * s[i];
  std::vector<float> out(s.size());
  out[0] = 1.0f - bar[0];
  for (std::size_t i = 1; i < s.size(); ++i) out[i] = 1.0f - bar[i] / bar[i - 1];
  return out;
}

/// sigma(t) = sqrt((1 - alphas_cumprod) / alphas_cumprod) in float32, one per training timestep.
inline std::vector<float> train_sigmas(const std::vector<float>& alphas_cumprod) {
  std::vector<float> s(alphas_cumprod.size());
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = std::sqrt((1.0f - alphas_cumprod[i]) / alphas_cumprod[i]);
  return s;
}

/// Inference timesteps of DDPM/DDIM-style schedulers (descending) for a timestep_spacing.
inline std::vector<double> spaced_timesteps(const std::string& cls, const std::string& spacing,
                                            std::int64_t n_train, std::int64_t n, std::int64_t steps_offset) {
  check_one_of(cls, "timestep_spacing", spacing, {"linspace", "leading", "trailing"});
  std::vector<double> ts;
  if (spacing == "linspace") {
    for (double v : np_linspace(0, static_cast<double>(n_train - 1), n)) ts.push_back(round_half_even(v));
    std::reverse(ts.begin(), ts.end());
  } else if (spacing == "leading") {
    const std::int64_t ratio = n_train / n;
    for (std::int64_t i = n - 1; i >= 0; --i) ts.push_back(static_cast<double>(i * ratio + steps_offset));
  } else {
    for (double v : np_arange(static_cast<double>(n_train), 0, -static_cast<double>(n_train) / n))
      ts.push_back(round_half_even(v) - 1);
  }
  return ts;
}

/// numpy.interp(x, [0, 1, ..., n-1], fp).
inline double interp_index(double x, const std::vector<float>& fp) {
  const auto n = static_cast<std::int64_t>(fp.size());
  if (x <= 0) return fp.front();
  if (x >= static_cast<double>(n - 1)) return fp.back();
  const auto j = static_cast<std::int64_t>(std::floor(x));
  if (x == static_cast<double>(j)) return fp[j];
  const double slope = static_cast<double>(fp[j + 1]) - static_cast<double>(fp[j]);
  return slope * (x - static_cast<double>(j)) + fp[j];
}

/// Karras et al. (2022) noise levels: n values from in_first to in_last, evenly spaced in
/// sigma^(1/rho) with rho = 7.
inline std::vector<double> karras_sigmas(double in_first, double in_last, std::int64_t n) {
  const double rho = 7.0;
  const double first_inv = std::pow(in_first, 1 / rho), last_inv = std::pow(in_last, 1 / rho);
  std::vector<double> out;
  for (double r : np_linspace(0, 1, n)) out.push_back(std::pow(first_inv + r * (last_inv - first_inv), rho));
  return out;
}

/// diffusers' _sigma_to_t: the (fractional) training timestep of noise level sigma, by linear
/// interpolation in log sigma. As in diffusers under NumPy 1.x, the float64 log sigma meets the
/// float32 log_sigmas array in float32 (value-based casting), so the distances and the weight are
/// float32; only the final (1 - w) * low + w * high is float64.
/// With a single training timestep there is nothing to interpolate: every sigma is timestep 0
/// (indexing log_sigmas[-1] there was found by tests/fuzz/fuzz_scheduler_config).
inline double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  const auto log_sigma = static_cast<float>(std::log(sigma));
  const auto n = static_cast<std::int64_t>(log_sigmas.size());
  if (n < 2) return 0.0;
  std::int64_t low = 0;
  for (std::int64_t i = 0; i < n; ++i)
    if (log_sigma - log_sigmas[i] >= 0.0f) low = i;
  low = std::min(low, n - 2);
  const float lo = log_sigmas[low], hi = log_sigmas[low + 1];
  const float w = std::clamp((lo - log_sigma) / (lo - hi), 0.0f, 1.0f);
  return static_cast<double>(1.0f - w) * static_cast<double>(low) +
         static_cast<double>(w) * static_cast<double>(low + 1);
}

/// torch.quantile(values, q) with linear interpolation; sorts `v` in place.
inline double quantile(std::vector<double>& v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

/// Dynamic thresholding (Imagen): per batch element, s = quantile(|x|, ratio) clamped to
/// [1, max_value] (max wins, as in torch.clamp); x is clamped to [-s, s] and divided by s.
template <class T>
Tensor<T> threshold_sample(const Tensor<T>& x, double ratio, double max_value) {
  if (x.dim() < 1 || x.numel() == 0) return x.clone();
  Tensor<T> out = Tensor<T>::empty(x.shape());
  const std::int64_t b = x.size(0), per = x.numel() / b;
  const T* src = x.data();
  T* dst = out.data();
  for (std::int64_t i = 0; i < b; ++i) {
    std::vector<double> a(static_cast<std::size_t>(per));
    for (std::int64_t k = 0; k < per; ++k) a[k] = std::abs(static_cast<double>(src[i * per + k]));
    const double s = std::min(std::max(quantile(a, ratio), 1.0), max_value);  // torch.clamp(min=1, max=...)
    for (std::int64_t k = 0; k < per; ++k)
      dst[i * per + k] = static_cast<T>(std::clamp(static_cast<double>(src[i * per + k]), -s, s) / s);
  }
  return out;
}

/// Inference timesteps of the multistep solvers (DPM-Solver, UniPC), descending and without
/// repeats. `last` is the number of usable training timesteps (DPM-Solver's lambda_min_clipped
/// can shorten it). With Karras sigmas the timesteps are those of the Karras noise levels;
/// `karras_out` receives the levels (ascending, as diffusers 0.21 stores them).
inline std::vector<double> multistep_timesteps(const std::string& cls, const std::string& spacing,
                                               std::int64_t n_train, std::int64_t last, std::int64_t n,
                                               std::int64_t steps_offset, bool karras,
                                               const std::vector<float>& train_sigmas,
                                               std::vector<double>* karras_out = nullptr) {
  check_one_of(cls, "timestep_spacing", spacing, {"linspace", "leading", "trailing"});
  std::vector<double> ts;
  if (spacing == "linspace") {
    auto v = np_linspace(0, static_cast<double>(last - 1), n + 1);
    for (std::int64_t i = n; i >= 1; --i) ts.push_back(round_half_even(v[i]));
  } else if (spacing == "leading") {
    const std::int64_t ratio = last / (n + 1);
    for (std::int64_t i = n; i >= 1; --i) ts.push_back(static_cast<double>(i * ratio + steps_offset));
  } else {
    for (double v : np_arange(static_cast<double>(last), 0, -static_cast<double>(n_train) / n))
      ts.push_back(round_half_even(v) - 1);
  }
  if (karras) {
    std::vector<float> log_sigmas;
    for (float s : train_sigmas) log_sigmas.push_back(std::log(s));
    auto ks = karras_sigmas(train_sigmas.front(), train_sigmas.back(), n);
    ts.clear();
    for (auto it = ks.rbegin(); it != ks.rend(); ++it)
      ts.push_back(round_half_even(sigma_to_t(*it, log_sigmas)));
    if (karras_out) *karras_out = ks;
  }
  std::vector<double> unique;  // first occurrences, in order
  for (double t : ts)
    if (std::find(unique.begin(), unique.end(), t) == unique.end()) unique.push_back(t);
  return unique;
}

}  // namespace diffuse::schedulers::detail
