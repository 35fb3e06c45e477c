// Fuzzes training checkpoints (training/checkpoint.hpp): the input is a "%%file" archive
// (fuzz_common.hpp) of a training output folder, normally checkpoint-<step>/ with
// trainer_state.json, model.safetensors, optimizer.safetensors and ema.safetensors. The harness
// lists the checkpoints (CheckpointManager::list, which a "--resume latest" does first), resumes
// the latest into a fixed training state (a small MLP, AdamW over two groups, a cosine LR
// schedule with warmup, EMA, a generator and a resumable data loader: the same objects the seed
// corpus was saved from) and, when that succeeds, draws one batch from the restored loader
// position and steps the LR schedule.
#include "diffuse/data/dataloader.hpp"
#include "diffuse/data/tensor_dataset.hpp"
#include "diffuse/nn/group_norm.hpp"
#include "diffuse/nn/linear.hpp"
#include "diffuse/optim/adamw.hpp"
#include "diffuse/optim/ema.hpp"
#include "diffuse/optim/lr_scheduler.hpp"
#include "diffuse/optim/param_groups.hpp"
#include "diffuse/training/checkpoint.hpp"
#include "diffuse/training/resumable_loader.hpp"
#include "fuzz_checkpoint_state.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diffuse;
  const auto dir = fuzz::unpack_archive(data, size).dir;
  fuzz::expect_error_or_success([&] {
    fuzz::CheckpointFixture f;
    training::CheckpointManager checkpoints(dir);
    (void)checkpoints.list();
    if (!checkpoints.resume("latest", f.state)) return;
    for (auto& batch : f.epochs) {
      (void)batch;
      break;
    }
    f.sched.step();
  });
  return 0;
}
