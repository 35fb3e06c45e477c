// compare_weights A.safetensors B.safetensors TOLERANCE: prints the largest relative difference
// ||a - b|| / ||b|| over the tensors of two weight files and exits 1 when it exceeds TOLERANCE, or
// when the files hold other names or shapes (2 for a usage or file error). The mpi tests use it
// to compare models trained on different numbers of processes.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <diffuse/io/safetensors.hpp>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: compare_weights A.safetensors B.safetensors TOLERANCE\n");
    return 2;
  }
  try {
    const auto a = diffuse::io::load_safetensors<double>(argv[1]);
    const auto b = diffuse::io::load_safetensors<double>(argv[2]);
    const double tolerance = std::stod(argv[3]);
    if (a.size() != b.size()) {
      std::printf("%zu tensors against %zu\n", a.size(), b.size());
      return 1;
    }
    double largest = 0;
    std::string where;
    for (const auto& [name, ta] : a) {
      const auto it = b.find(name);
      if (it == b.end() || it->second.shape() != ta.shape()) {
        std::printf("'%s' is missing from %s or has another shape\n", name.c_str(), argv[2]);
        return 1;
      }
      double diff = 0, norm = 0;
      for (std::int64_t i = 0; i < ta.numel(); ++i) {
        const double x = ta.data()[i], y = it->second.data()[i];
        diff += (x - y) * (x - y);
        norm += y * y;
      }
      const double relative = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
      if (!(relative <= largest)) {  // NaN counts as the largest
        largest = relative;
        where = name;
      }
    }
    std::printf("largest relative difference %.3g (%s) over %zu tensors\n", largest, where.c_str(), a.size());
    return largest <= tolerance ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compare_weights: %s\n", e.what());
    return 2;
  }
}
