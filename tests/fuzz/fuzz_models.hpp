// What the model harnesses build and run. The library accepts any UNet up to 2^32 parameters
// (16 GiB): a real, large model is not a finding, but it is far above the fuzzers' 2 GB RSS
// limit and would make every input slow. So a harness builds only configs within these bounds
// (and still parses and checks every config it is given); the library's own size refusal is
// covered by tests/test_unet.cpp and by regression inputs whose sizes are absurd, which it
// refuses while reading the config, before this check.
#pragma once
#include <cstdint>

#include "diffuse/models/unet_2d.hpp"

namespace diffuse::fuzz {

inline bool unet_within_fuzz_budget(const models::UNet2DConfig& c) {
  if (c.block_out_channels.empty() || c.block_out_channels.size() > 4) return false;
  for (auto ch : c.block_out_channels)
    if (ch > 32) return false;
  return c.layers_per_block <= 2 && c.in_channels <= 8 && c.out_channels <= 8 &&
         c.num_class_embeds.value_or(0) <= 64;
}

// One forward pass on an 8x8 batch of one (enough for up to 4 blocks), with class labels when
// the model needs them.
inline void unet_forward_once(const models::UNet2DModel<float>& unet) {
  const auto& c = unet.config();
  Tensor<float> x = Tensor<float>::zeros({1, c.in_channels, 8, 8});
  Tensor<float> labels;
  if (c.class_embed_type == "identity")
    labels = Tensor<float>::zeros({1, 4 * c.block_out_channels[0]});
  else if (c.class_embed_type || c.num_class_embeds)
    labels = Tensor<float>::zeros({1});
  (void)unet(x, 10.0, labels);
}

}  // namespace diffuse::fuzz
