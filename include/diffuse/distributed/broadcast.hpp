/// @file
/// broadcast_parameters: every rank starts from the same weights, rank 0's (as DDP does when it
/// wraps a model), so that averaged gradients keep the ranks' models identical.
///   models::UNet2DModel<float> unet(config, gen);   // each rank initialises its own copy
///   distributed::broadcast_parameters(unet);        // now every copy holds rank 0's values
/// The modules here keep no buffers (no running statistics: a module's state_dict() is its
/// parameters), so this copies the whole model state.
#pragma once
#include <climits>
#include <cstdint>
#include <string>

#include "diffuse/core/error.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/distributed/mpi.hpp"
#include "diffuse/nn/module.hpp"

namespace diffuse::distributed {

/// Copies `root`'s values of `t` into `t` on every rank (MPI_Bcast). A collective call.
template <class T>
void broadcast(Tensor<T>& t, int root = 0) {
  if (!initialized() || world_size() == 1) return;
  if (t.numel() > INT_MAX)
    throw Error("broadcast: a tensor of " + std::to_string(t.numel()) + " values is too large for MPI");
  check_mpi(MPI_Bcast(t.data(), static_cast<int>(t.numel()), mpi_type<T>(), root, MPI_COMM_WORLD),
            "MPI_Bcast");
}

/// Copies rank `root`'s parameter values into `module` on every rank. Every rank must hold the
/// same architecture: the names and shapes are checked first, collectively (a mismatch is an
/// Error on every rank).
template <class T>
void broadcast_parameters(const nn::Module<T>& module, int root = 0) {
  if (!initialized() || world_size() == 1) return;
  std::string layout;
  for (const auto& [name, p] : module.named_parameters()) layout += name + to_string(p.shape()) + ";";
  if (!same_on_all_ranks(layout))
    throw Error(
        "broadcast_parameters: the ranks' models have other parameter names or shapes than one "
        "another; every rank must build the same model");
  for (auto p : module.parameters()) broadcast(p, root);
}

}  // namespace diffuse::distributed
