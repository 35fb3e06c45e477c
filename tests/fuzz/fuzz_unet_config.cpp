// Fuzzes the UNet2DModel config reader: the input is config.json's text. It is parsed
// (io::parse_json, as from_pretrained reads it), read by UNet2DConfig::from_json, and a model
// within the fuzz budget (fuzz_models.hpp) is built, run once and written back to JSON.
#include "diffuse/io/json.hpp"
#include "fuzz_common.hpp"
#include "fuzz_models.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diffuse;
  (void)fuzz::Scratch::get();  // silences warnings
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_error_or_success([&] {
    const models::UNet2DConfig c = models::UNet2DConfig::from_json(io::parse_json(text));
    if (!fuzz::unet_within_fuzz_budget(c)) return;
    Generator gen(0);
    models::UNet2DModel<float> unet(c, gen);
    fuzz::unet_forward_once(unet);
    (void)io::to_pretty_json(unet.config().to_json());
  });
  return 0;
}
