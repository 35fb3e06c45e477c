// The model of the README's main job (train_unconditional's default, examples/train_unconditional.cpp):
// 1,522,561 parameters, measured by bench_models and bench_distributed.
#pragma once
#include "diffuse/models/unet_2d.hpp"

namespace bench {

inline diffuse::models::UNet2DConfig main_job_model() {
  return {.sample_size = 28,
          .in_channels = 1,
          .out_channels = 1,
          .layers_per_block = 2,
          .block_out_channels = {32, 64, 64},
          .down_block_types = {"DownBlock2D", "DownBlock2D", "DownBlock2D"},
          .up_block_types = {"UpBlock2D", "UpBlock2D", "UpBlock2D"},
          .add_attention = false};
}

}  // namespace bench
