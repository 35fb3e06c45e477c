/// @file
/// Gradient accumulation: train with an effective batch of k micro-batches when one big batch
/// does not fit. Divide each micro-batch's loss by k, call backward() on it (gradients add up in
/// param.grad()), and step the optimizer every k-th micro-batch:
///   training::GradientAccumulation accum(4);
///   for (auto& batch : loader) {
///     auto loss = accum.scale(nn::functional::mse_loss(model(x), y));   // loss / 4
///     loss.backward();
///     if (accum.sync()) { optim::clip_grad_norm_(params, 1.0); opt.step(); lr_scheduler.step();
///     opt.zero_grad(); }
///   }
/// The summed gradient of k mean losses / k equals the gradient of the mean loss over all k
/// micro-batches together (equal micro-batch sizes), as in accelerate's accumulate().
#pragma once
#include <cstdint>

#include "diffuse/autograd/elementwise.hpp"
#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/tensor.hpp"

namespace diffuse::training {

/// Scales micro-batch losses and says when to step the optimizer (see the file comment).
class GradientAccumulation {
 public:
  /// Accumulates `steps` micro-batches per optimizer step; throws diffuse::Error if steps < 1.
  explicit GradientAccumulation(std::int64_t steps);

  /// The loss to back-propagate for one micro-batch: loss / steps.
  template <class T>
  Tensor<T> scale(const Tensor<T>& loss) const {
    return steps_ == 1 ? loss : loss / static_cast<T>(steps_);
  }

  /// Counts one micro-batch (call after its backward()); true when `steps` have been
  /// accumulated and it is time to step the optimizer and zero the gradients.
  bool sync() { return ++micro_step_ % steps_ == 0; }

  /// The number of micro-batches per optimizer step.
  std::int64_t steps() const { return steps_; }
  /// Micro-batches counted so far (save it in checkpoints taken between optimizer steps).
  std::int64_t micro_step() const { return micro_step_; }
  /// Restores the count (from a checkpoint); throws diffuse::Error if n is negative.
  void set_micro_step(std::int64_t n);

 private:
  std::int64_t steps_;
  std::int64_t micro_step_ = 0;
};

}  // namespace diffuse::training

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/training/gradient_accumulation-inl.hpp"
#endif
