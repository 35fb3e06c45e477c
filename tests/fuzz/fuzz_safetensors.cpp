// Fuzzes io::load_safetensors (and the header parser behind load_safetensors_info/_metadata):
// the input is the .safetensors file.
#include "diffuse/io/safetensors.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = diffuse::fuzz::input_as_file(data, size, "model.safetensors");
  diffuse::fuzz::expect_error_or_success([&] {
    auto tensors = diffuse::io::load_safetensors<float>(path);
    (void)diffuse::io::load_safetensors_metadata(path);
  });
  return 0;
}
