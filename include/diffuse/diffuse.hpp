/// @file
/// diffuse: diffusion models on CPUs. This umbrella header includes every public header but two
/// optional ones: core/interop.hpp (views as Eigen and xtensor objects; xtensor alone costs half a
/// second of every compile) and distributed/ (needs MPI). Include single headers instead to keep
/// compile times down.
#pragma once

// core: tensors (with the autograd graph), random numbers, threads, errors and warnings
#include "diffuse/core/allocator.hpp"
#include "diffuse/core/autograd_graph.hpp"
#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/grad_mode.hpp"
#include "diffuse/core/parallel.hpp"
#include "diffuse/core/shape.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/core/warning.hpp"

// autograd: differentiable tensor operations
#include "diffuse/autograd/activations.hpp"
#include "diffuse/autograd/channel_ops.hpp"
#include "diffuse/autograd/elementwise.hpp"
#include "diffuse/autograd/gradcheck.hpp"
#include "diffuse/autograd/linalg.hpp"
#include "diffuse/autograd/reduce.hpp"
#include "diffuse/autograd/shape_ops.hpp"

// nn: layers and functional ops
#include "diffuse/nn/activation.hpp"
#include "diffuse/nn/attention.hpp"
#include "diffuse/nn/conv2d.hpp"
#include "diffuse/nn/embeddings.hpp"
#include "diffuse/nn/functional.hpp"
#include "diffuse/nn/group_norm.hpp"
#include "diffuse/nn/init.hpp"
#include "diffuse/nn/linear.hpp"
#include "diffuse/nn/module.hpp"
#include "diffuse/nn/resample.hpp"
#include "diffuse/nn/resnet.hpp"
#include "diffuse/nn/timestep_embedding.hpp"

// models
#include "diffuse/models/basic_unet.hpp"
#include "diffuse/models/mlp_denoiser.hpp"
#include "diffuse/models/unet_2d.hpp"

// pipelines: sampling with any scheduler, diffusers folder layout
#include "diffuse/pipelines/diffusion_pipeline.hpp"

// noise schedulers (diffusers semantics); factory.hpp includes every scheduler
#include "diffuse/schedulers/factory.hpp"

// optimizers
#include "diffuse/optim/adam.hpp"
#include "diffuse/optim/adamw.hpp"
#include "diffuse/optim/clip_grad.hpp"
#include "diffuse/optim/ema.hpp"
#include "diffuse/optim/lr_scheduler.hpp"
#include "diffuse/optim/param_groups.hpp"
#include "diffuse/optim/sgd.hpp"

// training: checkpoints, resumable loading, progress, metrics, loss weighting
#include "diffuse/training/checkpoint.hpp"
#include "diffuse/training/gradient_accumulation.hpp"
#include "diffuse/training/metrics.hpp"
#include "diffuse/training/min_snr.hpp"
#include "diffuse/training/progress.hpp"
#include "diffuse/training/resumable_loader.hpp"
#include "diffuse/training/sample_streams.hpp"

// data and files
#include "diffuse/data/dataloader.hpp"
#include "diffuse/data/fashion_mnist.hpp"
#include "diffuse/data/idx.hpp"
#include "diffuse/data/image_folder.hpp"
#include "diffuse/data/mnist.hpp"
#include "diffuse/data/tensor_dataset.hpp"
#include "diffuse/data/transformed_dataset.hpp"
#include "diffuse/data/transforms.hpp"
#include "diffuse/io/atomic_file.hpp"
#include "diffuse/io/config.hpp"
#include "diffuse/io/image.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/io/npy.hpp"
#include "diffuse/io/pytorch_bin.hpp"
#include "diffuse/io/safetensors.hpp"

// viz: image grids, noise strips, plots and figures
#include "diffuse/viz/figure.hpp"
#include "diffuse/viz/grid.hpp"
#include "diffuse/viz/plots.hpp"
#include "diffuse/viz/scatter.hpp"
#include "diffuse/viz/strips.hpp"
#include "diffuse/viz/svg_plot.hpp"
