/// @file
/// The course's noising figures as image grids: a strip of scheduler.add_noise at several
/// timesteps, and a strip of the from-scratch notebook's corrupt() at several amounts. Row n
/// shows image n; column k the k-th timestep (or amount). Save with viz::save_image/write_png.
///   auto strip = viz::noise_strip(scheduler, images /*[N,C,H,W] in [-1,1]*/, {0, 50, 100, 200, 400, 999},
///   gen); io::write_png("noise_strip.png", strip);
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/models/basic_unet.hpp"
#include "diffuse/schedulers/scheduler.hpp"
#include "diffuse/viz/grid.hpp"

namespace diffuse::viz {

namespace detail {
/// images [N,C,H,W] or one image [C,H,W] -> [N,C,H,W].
template <class T>
Tensor<T> as_batch(const Tensor<T>& images, const char* what) {
  if (!images.defined()) throw Error(std::string(what) + ": the images tensor is undefined");
  if (images.dim() == 3) return images.reshape({1, images.size(0), images.size(1), images.size(2)});
  if (images.dim() != 4 || images.size(0) < 1)
    throw Error(std::string(what) + ": expected images [N,C,H,W] or [C,H,W], got shape " +
                to_string(images.shape()));
  return images;
}
/// Row-major (image, column) batch: entry (n, k) = images[n], for `cols` columns.
template <class T>
Tensor<T> repeat_per_column(const Tensor<T>& x, std::int64_t cols) {
  const std::int64_t n = x.size(0), per = x.numel() / n;
  Shape s = x.shape();
  s[0] = n * cols;
  Tensor<T> out = Tensor<T>::empty(s);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < cols; ++k)
      std::copy(x.data() + i * per, x.data() + (i + 1) * per, out.data() + (i * cols + k) * per);
  return out;
}
}  // namespace detail

/// add_noise(x0, noise, t) for each timestep in `timesteps` (one column each), with the same
/// noise along a row so the columns show one trajectory. Images in [-1,1] (the models' range)
/// by default; `opts.nrow` is set to the number of timesteps.
/// Throws diffuse::Error for no timesteps, images of another shape, or a timestep the
/// scheduler's add_noise refuses.
template <class T>
Tensor<T> noise_strip(const schedulers::Scheduler<T>& scheduler, const Tensor<T>& images,
                      const std::vector<std::int64_t>& timesteps, Generator& gen,
                      GridOptions opts = {.value_range = std::pair<double, double>{-1.0, 1.0}}) {
  const Tensor<T> x = detail::as_batch(images, "noise_strip");
  if (timesteps.empty()) throw Error("noise_strip: no timesteps given");
  const std::int64_t cols = static_cast<std::int64_t>(timesteps.size()), n = x.size(0);
  const Tensor<T> noise = gen.randn<T>(x.shape());
  std::vector<std::int64_t> t;
  for (std::int64_t i = 0; i < n; ++i) t.insert(t.end(), timesteps.begin(), timesteps.end());
  const Tensor<T> noisy =
      scheduler.add_noise(detail::repeat_per_column(x, cols), detail::repeat_per_column(noise, cols), t);
  opts.nrow = cols;
  return make_grid(noisy, opts);
}

/// models::corrupt(x, amount) for each amount in `amounts` (in [0,1], one column each).
/// Images in [0,1] (the from-scratch notebook's range).
/// Throws diffuse::Error for no amounts, an amount outside [0, 1] or images of another shape.
template <class T>
Tensor<T> corruption_strip(const Tensor<T>& images, const std::vector<double>& amounts, Generator& gen,
                           GridOptions opts = {.value_range = std::pair<double, double>{0.0, 1.0}}) {
  const Tensor<T> x = detail::as_batch(images, "corruption_strip");
  if (amounts.empty()) throw Error("corruption_strip: no amounts given");
  for (double a : amounts)
    if (!(a >= 0.0 && a <= 1.0))
      throw Error("corruption_strip: amount " + std::to_string(a) + " is not in [0, 1]");
  const std::int64_t cols = static_cast<std::int64_t>(amounts.size()), n = x.size(0);
  Tensor<T> amount = Tensor<T>::empty({n * cols});
  for (std::int64_t i = 0; i < n * cols; ++i) amount.data()[i] = static_cast<T>(amounts[i % cols]);
  const Tensor<T> noisy = models::corrupt(detail::repeat_per_column(x, cols), amount, gen);
  opts.nrow = cols;
  return make_grid(noisy, opts);
}

}  // namespace diffuse::viz
