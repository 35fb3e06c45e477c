// Fuzzes UNet2DModel::from_pretrained on a model folder: the input is a "%%file" archive
// (fuzz_common.hpp) normally holding config.json and diffusion_pytorch_model.safetensors (or
// diffusion_pytorch_model.bin). A config outside the fuzz budget (fuzz_models.hpp) is only read,
// not built. A loaded model runs one forward pass.
#include "diffuse/io/json.hpp"
#include "fuzz_common.hpp"
#include "fuzz_models.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diffuse;
  const auto dir = fuzz::unpack_archive(data, size).dir;
  fuzz::expect_error_or_success([&] {
    // The same reading from_pretrained does first; the budget check needs the values.
    const auto c = models::UNet2DConfig::from_json(io::read_json(dir / "config.json"));
    if (!fuzz::unet_within_fuzz_budget(c)) return;
    const auto unet = models::UNet2DModel<float>::from_pretrained(dir);
    fuzz::unet_forward_once(unet);
  });
  return 0;
}
