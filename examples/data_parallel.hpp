// DataParallel: what train_unconditional needs to train under `mpirun -np N` (docs/distributed.md).
// Started by mpirun (and built with MPI), the process is one rank of N: the ranks start from rank
// 0's weights and average their gradients every optimizer step. Started alone, it is one process
// that makes no MPI call at all, so the tool runs anywhere without a launcher.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <diffuse/core/error.hpp>
#include <diffuse/core/generator.hpp>
#include <diffuse/nn/module.hpp>
#ifdef DIFFUSE_WITH_MPI
#include <diffuse/distributed/broadcast.hpp>
#include <diffuse/distributed/gradient_reducer.hpp>
#include <diffuse/distributed/mpi.hpp>
#endif

namespace tools {

class DataParallel {
 public:
  // Joins the MPI job when a launcher started this process. Error when one started it as a rank
  // of several but the tool was built without MPI (each rank would train alone).
  DataParallel(int& argc, char**& argv) {
#ifdef DIFFUSE_WITH_MPI
    if (diffuse::distributed::launched_by_mpirun()) {
      env_ = std::make_unique<diffuse::distributed::Environment>(argc, argv);
      rank_ = diffuse::distributed::rank();
      size_ = diffuse::distributed::world_size();
    }
#else
    (void)argc;
    (void)argv;
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
      if (const char* n = std::getenv(name); n && std::atoi(n) > 1)
        throw diffuse::Error("started as one of " + std::string(n) +
                             " processes, but this build has no MPI (install libopenmpi-dev and rebuild, "
                             "docs/distributed.md)");
#endif
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Rank 0 alone logs, samples and writes files.
  bool is_main() const { return rank_ == 0; }

  // Every rank takes rank 0's weights, and from now on averages the gradients of `model`.
  void share(const diffuse::nn::Module<float>& model) {
#ifdef DIFFUSE_WITH_MPI
    if (size_ == 1) return;
    diffuse::distributed::broadcast_parameters(model);
    reducer_ = std::make_unique<diffuse::distributed::GradientReducer<float>>(model.parameters());
#else
    (void)model;
#endif
  }
  // Before each backward(): whether it is the last micro-batch of the step (the one reduced).
  void before_backward(bool last_micro_batch) {
#ifdef DIFFUSE_WITH_MPI
    if (reducer_) reducer_->set_sync(last_micro_batch);
#else
    (void)last_micro_batch;
#endif
  }
  // After the last micro-batch's backward(): every gradient is the average over the ranks.
  void average_gradients() {
#ifdef DIFFUSE_WITH_MPI
    if (reducer_) reducer_->synchronize();
#endif
  }

  // The step's loss averaged over the ranks, and whether any rank asks to stop: one collective per
  // step, so every rank stops after the same step.
  std::pair<double, bool> mean_loss_and_any_stop(double loss, bool stop) const {
    std::vector<double> v{loss, stop ? 1.0 : 0.0};
#ifdef DIFFUSE_WITH_MPI
    diffuse::distributed::sum_over_ranks(v);
#endif
    return {v[0] / size_, v[1] > 0};
  }

  // Rank 0's `text` on every rank.
  std::string from_main(const std::string& text) const {
#ifdef DIFFUSE_WITH_MPI
    return diffuse::distributed::broadcast_string(text);
#else
    return text;
#endif
  }
  // Whether `text` is the same on every rank (every rank gets the same answer).
  bool same_on_all(const std::string& text) const {
#ifdef DIFFUSE_WITH_MPI
    return diffuse::distributed::same_on_all_ranks(text);
#else
    (void)text;
    return true;
#endif
  }

  // The rank a launcher gave this process, read before MPI starts (0 without a launcher), so that
  // only one rank reports a wrong flag.
  static int launcher_rank() {
    for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"})
      if (const char* r = std::getenv(name)) return std::atoi(r);
    return 0;
  }

  // The state of every rank's `gen` on rank 0 (rank 0's first); empty on the other ranks.
  std::vector<diffuse::GeneratorState> gather_states(const diffuse::Generator& gen) const {
    std::vector<std::uint64_t> mine{gen.state().seed, gen.state().offset};
#ifdef DIFFUSE_WITH_MPI
    mine = diffuse::distributed::gather_to_root(mine);
#endif
    std::vector<diffuse::GeneratorState> states;
    for (std::size_t k = 0; k + 1 < mine.size(); k += 2) states.push_back({mine[k], mine[k + 1]});
    return states;
  }

  // Stops every rank after a failure on this one that the others cannot see (they would wait in
  // the next collective for ever).
  void abort_all(int code) const {
#ifdef DIFFUSE_WITH_MPI
    diffuse::distributed::abort_all(code);
#else
    (void)code;
#endif
  }

  // Seconds spent in the gradient all-reduce that backward() did not hide.
  double seconds_in_allreduce() const {
#ifdef DIFFUSE_WITH_MPI
    return reducer_ ? reducer_->seconds_in_allreduce() : 0.0;
#else
    return 0.0;
#endif
  }

 private:
#ifdef DIFFUSE_WITH_MPI
  std::unique_ptr<diffuse::distributed::Environment> env_;
  std::unique_ptr<diffuse::distributed::GradientReducer<float>> reducer_;
#endif
  int rank_ = 0, size_ = 1;
};

}  // namespace tools
