// The training state the checkpoint harness resumes into, and the corpus maker saves from.
#pragma once
#include <memory>

#include "diffuse/autograd/elementwise.hpp"
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

namespace diffuse::fuzz {

struct CheckpointNet : nn::Module<float> {
  explicit CheckpointNet(Generator& init) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear<float>>(4, 8, true, init));
    norm = register_module("norm", std::make_shared<nn::GroupNorm<float>>(2, 8));
    fc2 = register_module("fc2", std::make_shared<nn::Linear<float>>(8, 4, true, init));
  }
  std::shared_ptr<nn::Linear<float>> fc1, fc2;
  std::shared_ptr<nn::GroupNorm<float>> norm;
};

struct CheckpointFixture {
  Generator init{7}, data_gen{11}, gen{2024};
  Tensor<float> samples = data_gen.randn<float>({10, 4});
  data::TensorDataset<float> dataset{samples};
  data::DataLoader<data::TensorDataset<float>> loader{dataset, {.batch_size = 3, .shuffle = true}, gen};
  training::ResumableLoader<data::DataLoader<data::TensorDataset<float>>> epochs{loader, gen};
  CheckpointNet net{init};
  optim::AdamW<float> opt{optim::weight_decay_groups(net, 0.05), {.lr = 2e-2}};
  optim::LRScheduler<float> sched =
      optim::get_scheduler("cosine", opt, {.num_warmup_steps = 2, .num_training_steps = 6});
  optim::EMAModel<float> ema{net, {.decay = 0.99, .use_ema_warmup = true, .power = 0.75}};
  training::TrainingState<float> state{.model = &net,
                                       .optimizer = &opt,
                                       .lr_scheduler = &sched,
                                       .ema = &ema,
                                       .generators = {{"train", &gen}},
                                       .data_loader = &epochs};
};

}  // namespace diffuse::fuzz
