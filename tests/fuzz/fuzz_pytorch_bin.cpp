// Fuzzes io::load_pytorch_bin (the zip reader and the restricted unpickler): the input is the
// torch.save file (diffusion_pytorch_model.bin).
#include "diffuse/io/pytorch_bin.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = diffuse::fuzz::input_as_file(data, size, "diffusion_pytorch_model.bin");
  diffuse::fuzz::expect_error_or_success([&] { (void)diffuse::io::load_pytorch_bin<float>(path); });
  return 0;
}
