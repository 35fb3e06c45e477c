// Fuzzes io::load_npy: the input is the .npy file (read as float, and as double).
#include "diffuse/io/npy.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = diffuse::fuzz::input_as_file(data, size, "array.npy");
  diffuse::fuzz::expect_error_or_success([&] { (void)diffuse::io::load_npy<float>(path); });
  diffuse::fuzz::expect_error_or_success([&] { (void)diffuse::io::load_npy<double>(path); });
  return 0;
}
