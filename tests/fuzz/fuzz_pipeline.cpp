// Fuzzes DiffusionPipeline::from_pretrained on a pipeline folder: the input is a "%%file" archive
// (fuzz_common.hpp) normally holding model_index.json, unet/config.json,
// unet/diffusion_pytorch_model.safetensors and scheduler/scheduler_config.json. A UNet config
// outside the fuzz budget (fuzz_models.hpp) is only read. A loaded pipeline samples one image
// with 2 steps: at its sample_size when that is at most 16x16 or beyond io::max_image_pixels()
// (which must be refused), else at 8x8.
#include "diffuse/io/image.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/pipelines/diffusion_pipeline.hpp"
#include "fuzz_common.hpp"
#include "fuzz_models.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diffuse;
  const auto dir = fuzz::unpack_archive(data, size).dir;
  fuzz::expect_error_or_success([&] {
    const auto c = models::UNet2DConfig::from_json(io::read_json(dir / "unet" / "config.json"));
    if (!fuzz::unet_within_fuzz_budget(c)) return;
    auto pipe = pipelines::DiffusionPipeline<float>::from_pretrained(dir);
    pipelines::SampleOptions o{.batch_size = 1, .num_inference_steps = 2};
    const auto& ss = pipe.unet().config().sample_size;
    const long double area = ss ? static_cast<long double>(ss->height) * ss->width : 0;
    if (!(ss && ss->height > 0 && ss->width > 0 &&
          (area <= 256 || area > static_cast<long double>(io::max_image_pixels().load()))))
      o.height = 8, o.width = 8;
    if (pipe.num_classes() > 0) o.class_labels = {0};
    Generator gen(0);
    (void)pipe(o, gen);
  });
  return 0;
}
