/// @file
/// OpenMP helpers: one thread pool (OpenMP's), loops split in a fixed way so results do not
/// depend on the thread count.
#pragma once
#include <omp.h>

#include <cstdint>

namespace diffuse {

/// Threads the parallel loops may use (omp_get_max_threads(); like torch.get_num_threads()).
inline int num_threads() { return omp_get_max_threads(); }
/// Sets the thread count of later parallel loops, at least 1 (like torch.set_num_threads()).
inline void set_num_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }

namespace detail {
/// Below this many elements an elementwise loop is not worth waking the threads for.
inline constexpr std::int64_t kParallelGrain = 1 << 15;

/// Elementwise loop over [0, n); f(i) must not depend on other iterations.
template <class F>
inline void parallel_for(std::int64_t n, F&& f) {
  if (n < kParallelGrain) {
    for (std::int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) f(i);
}

/// Loop over [0, n) of coarse, independent work items (images, channels, rows).
template <class F>
inline void parallel_for_items(std::int64_t n, F&& f) {
#pragma omp parallel for schedule(static) if (n > 1)
  for (std::int64_t i = 0; i < n; ++i) f(i);
}
}  // namespace detail

}  // namespace diffuse
