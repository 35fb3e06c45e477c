// The precompiled library (core/precompiled.hpp): the training code that is not a template, each
// -inl.hpp of include/diffuse/training/ compiled once, and the checkpoint functions for float and
// double.
#include "diffuse/training/checkpoint-inl.hpp"
#include "diffuse/training/gradient_accumulation-inl.hpp"
#include "diffuse/training/metrics-inl.hpp"
#include "diffuse/training/progress-inl.hpp"
#include "diffuse/training/resumable_loader-inl.hpp"

namespace diffuse::detail {
DIFFUSE_INSTANTIATE_TEMPLATES(DIFFUSE_TRAINING_CHECKPOINT_DETAIL_TEMPLATES)
}  // namespace diffuse::detail

namespace diffuse::training {
DIFFUSE_INSTANTIATE_TEMPLATES(DIFFUSE_TRAINING_CHECKPOINT_TEMPLATES)
}  // namespace diffuse::training
