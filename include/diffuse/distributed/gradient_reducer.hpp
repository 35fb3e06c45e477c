/// @file
/// GradientReducer: averages the parameters' gradients over all ranks after each backward(), as
/// PyTorch's DistributedDataParallel does, so that N processes with local batches of B train like
/// one process with a batch of N x B.
///   distributed::broadcast_parameters(model);                // every rank starts from rank 0's weights
///   distributed::GradientReducer<float> reducer(model.parameters());
///   loss.backward();                                          // buckets start reducing meanwhile
///   reducer.synchronize();                                    // every gradient is now the average
///   opt.step();
///
/// The gradients are packed into flat buckets (last parameters first, the order backward()
/// completes them; 1 MiB for the first, 25 MiB for the others, as DDP). With overlap on (the
/// default), a bucket starts its all-reduce (MPI_Iallreduce) as soon as backward() has completed
/// every gradient in it and in the buckets before it, while backward() goes on with the rest;
/// with overlap off, all buckets start in synchronize(). Either way the buckets, their order and
/// the MPI calls are the same, so the result does not depend on the timing (nor on the mode).
///
/// Gradient accumulation: set_sync(false) for the micro-batches whose gradients are only summed
/// locally (DDP's no_sync()), set_sync(true) before the last one.
///
/// A parameter without a gradient on a rank counts as zeros there; after synchronize() every
/// parameter has a gradient. With one rank (or without MPI_Init) the reducer does nothing: the
/// gradients are already the average, and the run is the same as one without a reducer.
#pragma once
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/distributed/mpi.hpp"

namespace diffuse::distributed {

/// Options of a GradientReducer.
struct ReducerOptions {
  /// The largest bucket, in bytes (DDP's bucket_cap_mb = 25). A larger parameter gets its own.
  std::int64_t bucket_cap_bytes = 25 << 20;
  /// The largest first bucket (the last layers, whose gradients come first), in bytes: small, as
  /// DDP's 1 MiB, so that the first all-reduce starts early in backward().
  std::int64_t first_bucket_cap_bytes = 1 << 20;
  /// Start each bucket's all-reduce while backward() still runs (false: all in synchronize()).
  bool overlap = true;
};

/// Averages gradients across the ranks of MPI_COMM_WORLD (see the top of this file).
template <class T>
class GradientReducer {
 public:
  /// Takes the parameters (as module.parameters() lists them) and, with overlap, registers a
  /// post-accumulate hook on each. Every rank must pass the same list of shapes: checked here,
  /// collectively (a mismatch is an Error on every rank).
  explicit GradientReducer(std::vector<Tensor<T>> parameters, ReducerOptions options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// Whether the next backward() is reduced (true) or only accumulated locally (false, DDP's
  /// no_sync()); synchronize() does nothing while it is false.
  void set_sync(bool on) { sync_ = on; }
  bool sync() const { return sync_; }

  /// After backward(): starts what has not started, waits for every bucket, and writes the
  /// average over the ranks into each parameter's gradient.
  void synchronize();

  /// The number of buckets.
  std::size_t num_buckets() const { return buckets_.size(); }
  /// How many buckets have started their all-reduce since the last synchronize() (with overlap,
  /// after a backward() that reached every parameter: all of them).
  std::size_t buckets_started() const { return next_bucket_; }
  /// Seconds spent in MPI (starting, progressing and waiting for all-reduces) since construction:
  /// with overlap, the part of the all-reduce that backward() did not hide.
  double seconds_in_allreduce() const { return seconds_; }

 private:
  struct Bucket {
    std::vector<std::size_t> params;  // indices into params_
    std::vector<std::int64_t> offsets;
    std::vector<T> buffer;
    std::size_t ready = 0;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  void on_grad_ready(std::size_t param);
  void start_ready_buckets(bool all);
  void start(Bucket& b);
  void progress();

  std::vector<Tensor<T>> params_;
  std::vector<std::size_t> bucket_of_;
  std::vector<char> param_ready_;
  std::vector<Bucket> buckets_;
  std::size_t next_bucket_ = 0;  // buckets start in index order on every rank
  ReducerOptions options_;
  bool sync_ = true;
  bool active_ = world_size() > 1;  // one rank: nothing to average
  double seconds_ = 0;
};

template <class T>
GradientReducer<T>::GradientReducer(std::vector<Tensor<T>> parameters, ReducerOptions options)
    : params_(std::move(parameters)), options_(options) {
  if (options_.bucket_cap_bytes <= 0 || options_.first_bucket_cap_bytes <= 0)
    throw Error("GradientReducer: bucket_cap_bytes and first_bucket_cap_bytes must be positive, got " +
                std::to_string(options_.bucket_cap_bytes) + " and " +
                std::to_string(options_.first_bucket_cap_bytes));
  // Every rank must reduce the same buckets: compare the parameter count and sizes.
  std::string layout = std::to_string(params_.size()) + ":";
  for (const auto& p : params_) layout += std::to_string(p.numel()) + ",";
  if (!same_on_all_ranks(layout))
    throw Error(
        "GradientReducer: the ranks pass different parameters (counts or sizes differ); every rank "
        "must build the same model");
  // Buckets in reverse order of the parameters: backward() completes the last layers first.
  bucket_of_.assign(params_.size(), 0);
  param_ready_.assign(params_.size(), 0);
  std::int64_t bytes = 0;
  for (std::size_t k = params_.size(); k-- > 0;) {
    const std::int64_t size = params_[k].numel() * static_cast<std::int64_t>(sizeof(T));
    const std::int64_t cap =
        buckets_.size() == 1 ? options_.first_bucket_cap_bytes : options_.bucket_cap_bytes;
    if (buckets_.empty() || (bytes > 0 && bytes + size > cap)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& b = buckets_.back();
    b.offsets.push_back(static_cast<std::int64_t>(b.buffer.size()));
    b.params.push_back(k);
    b.buffer.resize(b.buffer.size() + static_cast<std::size_t>(params_[k].numel()));
    bucket_of_[k] = buckets_.size() - 1;
    bytes += size;
  }
  for (const auto& b : buckets_)
    if (b.buffer.size() > static_cast<std::size_t>(INT_MAX))
      throw Error("GradientReducer: a parameter of " + std::to_string(b.buffer.size()) +
                  " values is too large for one MPI call");
  if (options_.overlap && active_)
    for (std::size_t k = 0; k < params_.size(); ++k)
      params_[k].register_post_accumulate_grad_hook([this, k] { on_grad_ready(k); });
}

template <class T>
GradientReducer<T>::~GradientReducer() {
  if (options_.overlap && active_)
    for (auto& p : params_) p.clear_post_accumulate_grad_hooks();
  // A reduction still in flight (backward() threw before synchronize()): finish it, so that MPI
  // does not write into freed buffers.
  if (initialized())
    for (auto& b : buckets_)
      if (b.request != MPI_REQUEST_NULL) MPI_Wait(&b.request, MPI_STATUS_IGNORE);
}

template <class T>
void GradientReducer<T>::on_grad_ready(std::size_t param) {
  if (!sync_ || param_ready_[param]) return;
  param_ready_[param] = 1;
  ++buckets_[bucket_of_[param]].ready;
  start_ready_buckets(false);
  progress();
}

template <class T>
void GradientReducer<T>::start_ready_buckets(bool all) {
  while (next_bucket_ < buckets_.size() &&
         (all || buckets_[next_bucket_].ready == buckets_[next_bucket_].params.size()))
    start(buckets_[next_bucket_++]);
}

template <class T>
void GradientReducer<T>::start(Bucket& b) {
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t j = 0; j < b.params.size(); ++j) {
    const Tensor<T> g = params_[b.params[j]].grad();
    T* dst = b.buffer.data() + b.offsets[j];
    if (g.defined())
      std::memcpy(dst, g.data(), static_cast<std::size_t>(g.numel()) * sizeof(T));
    else
      std::fill(dst, dst + params_[b.params[j]].numel(), T(0));
  }
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, b.buffer.data(), static_cast<int>(b.buffer.size()), mpi_type<T>(),
                           MPI_SUM, MPI_COMM_WORLD, &b.request),
            "MPI_Iallreduce");
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class T>
void GradientReducer<T>::progress() {
  // Open MPI moves non-blocking collectives on only inside MPI calls: test the ones in flight.
  if (!initialized()) return;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t k = 0; k < next_bucket_; ++k)
    if (buckets_[k].request != MPI_REQUEST_NULL) {
      int done = 0;
      check_mpi(MPI_Test(&buckets_[k].request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class T>
void GradientReducer<T>::synchronize() {
  if (!sync_ || !active_) return;
  start_ready_buckets(true);
  const auto t0 = std::chrono::steady_clock::now();
  const int n = world_size();
  for (auto& b : buckets_) {
    if (b.request != MPI_REQUEST_NULL) check_mpi(MPI_Wait(&b.request, MPI_STATUS_IGNORE), "MPI_Wait");
    const T scale = T(1) / static_cast<T>(n);
    for (std::size_t j = 0; j < b.params.size(); ++j) {
      Tensor<T>& p = params_[b.params[j]];
      Tensor<T> g = p.grad();
      if (!g.defined()) {
        g = Tensor<T>::zeros(p.shape());
        p.set_grad(g);
      }
      const T* src = b.buffer.data() + b.offsets[j];
      T* dst = g.data();
      for (std::int64_t i = 0; i < g.numel(); ++i) dst[i] = src[i] * scale;  // exact for n = 1 and 2
    }
    b.ready = 0;
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fill(param_ready_.begin(), param_ready_.end(), 0);
  next_bucket_ = 0;
}

}  // namespace diffuse::distributed
