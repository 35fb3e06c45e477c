/// @file
/// MPI for data-parallel training (compiled only when MPI is found: link diffuse::distributed,
/// which defines DIFFUSE_WITH_MPI). One process per machine or socket, each using its cores with
/// OpenMP; only the main thread calls MPI (MPI_THREAD_FUNNELED).
///   int main(int argc, char** argv) {
///     return distributed::run(argc, argv, [&] {   // MPI_Init ... MPI_Finalize
///       if (distributed::rank() == 0) std::printf("%d processes\n", distributed::world_size());
///       ...
///     });
///   }
/// Errors are collective: an exception that leaves run() on any rank prints "rank r: message" and
/// stops every rank (MPI_Abort), so a failure on one machine never leaves the others waiting in a
/// collective. agree() turns a local failure into an Error on every rank where all ranks can
/// meet, such as after loading the data.
#pragma once
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1  // the C API only: no libmpi_cxx
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <type_traits>
#include <vector>

#include "diffuse/core/error.hpp"

namespace diffuse::distributed {

/// Throws diffuse::Error naming `what` and MPI's message when `rc` is not MPI_SUCCESS.
inline void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw Error(std::string(what) + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}

/// Whether MPI_Init has run (and MPI_Finalize not yet).
inline bool initialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

/// This process's rank in MPI_COMM_WORLD; 0 when MPI is not initialised (a single process).
inline int rank() {
  if (!initialized()) return 0;
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

/// The number of processes in MPI_COMM_WORLD; 1 when MPI is not initialised.
inline int world_size() {
  if (!initialized()) return 1;
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

/// Waits for every rank.
inline void barrier() {
  if (initialized()) check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

/// The MPI datatype of float, double or std::uint64_t.
template <class T>
MPI_Datatype mpi_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::uint64_t>,
                "float, double or std::uint64_t");
  if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
  if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
  return MPI_UINT64_T;
}

/// Whether a launcher started this process as a rank of an MPI job: mpirun or mpiexec of Open MPI
/// (OMPI_COMM_WORLD_SIZE) or of MPICH (PMI_SIZE), or a PMIx launcher such as srun (PMIX_RANK).
/// A program can then call MPI_Init only when launched, and run as a plain process otherwise.
inline bool launched_by_mpirun() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(name)) return true;
  return false;
}

/// Initialises MPI (MPI_THREAD_FUNNELED) for its lifetime and finalises it at the end, unless
/// MPI was initialised already (then it leaves both to the owner).
class Environment {
 public:
  Environment(int& argc, char**& argv) {
    if (initialized()) return;
    int provided = 0;
    check_mpi(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owner_ = true;
    if (provided < MPI_THREAD_FUNNELED) {
      MPI_Finalize();
      throw Error("MPI provides no MPI_THREAD_FUNNELED support (OpenMP threads next to MPI need it)");
    }
  }
  ~Environment() {
    if (owner_ && initialized()) MPI_Finalize();
  }
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

 private:
  bool owner_ = false;
};

/// Rank `root`'s `text` on every rank (MPI_Bcast of its length, then its bytes). A collective
/// call; without MPI, `text` itself.
inline std::string broadcast_string(std::string text, int root = 0) {
  if (!initialized() || world_size() == 1) return text;
  int length = rank() == root ? static_cast<int>(text.size()) : 0;
  check_mpi(MPI_Bcast(&length, 1, MPI_INT, root, MPI_COMM_WORLD), "MPI_Bcast");
  text.resize(static_cast<std::size_t>(length));
  check_mpi(MPI_Bcast(text.data(), length, MPI_CHAR, root, MPI_COMM_WORLD), "MPI_Bcast");
  return text;
}

/// Every rank learns whether all succeeded: when `ok` is false on some rank, every rank throws
/// diffuse::Error with the message of the lowest failing rank ("rank r: message"). A collective
/// call: every rank must make it.
inline void agree(bool ok, const std::string& message = {}) {
  if (!initialized()) {
    if (!ok) throw Error(message);
    return;
  }
  const int me = rank();
  int failing = ok ? world_size() : me, first = 0;
  check_mpi(MPI_Allreduce(&failing, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  if (first == world_size()) return;
  throw Error("rank " + std::to_string(first) + ": " + broadcast_string(message, first));
}

/// Whether `text` is the same on every rank (compared by a 64-bit FNV-1a digest); true without
/// MPI. A collective call: every rank gets the same answer, so all can throw together.
inline bool same_on_all_ranks(const std::string& text) {
  if (!initialized() || world_size() == 1) return true;
  std::uint64_t digest = 1469598103934665603ull, low = 0, high = 0;
  for (unsigned char c : text) digest = (digest ^ c) * 1099511628211ull;
  check_mpi(MPI_Allreduce(&digest, &low, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  check_mpi(MPI_Allreduce(&digest, &high, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  return low == high;
}

/// Replaces `values` on every rank by their elementwise sum over the ranks (MPI_Allreduce).
/// A collective call; without MPI the values stay as they are.
template <class T>
void sum_over_ranks(std::vector<T>& values) {
  if (!initialized() || world_size() == 1 || values.empty()) return;
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), mpi_type<T>(),
                          MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
}

/// Rank `root` receives every rank's `values` (all of the same length), rank 0's first; the other
/// ranks receive an empty vector (MPI_Gather). A collective call; without MPI, `values` itself.
template <class T>
std::vector<T> gather_to_root(const std::vector<T>& values, int root = 0) {
  if (!initialized() || world_size() == 1) return values;
  const int n = static_cast<int>(values.size());
  if (!same_on_all_ranks(std::to_string(n)))
    throw Error("gather_to_root: the ranks pass different numbers of values");
  std::vector<T> all(rank() == root ? values.size() * static_cast<std::size_t>(world_size()) : 0);
  check_mpi(MPI_Gather(values.data(), n, mpi_type<T>(), all.data(), n, mpi_type<T>(), root, MPI_COMM_WORLD),
            "MPI_Gather");
  return all;
}

/// Stops every rank of the job with exit code `code` (MPI_Abort): for a failure on one rank that
/// the others, waiting in a collective, would never learn of. Returns without MPI.
inline void abort_all(int code) {
  if (initialized() && world_size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

/// Runs `body` on every rank between MPI_Init and MPI_Finalize and returns the exit code:
/// 0, or 1 after an exception. An exception on one rank of several prints "rank r: message"
/// to stderr and aborts all ranks (MPI_Abort), so none is left waiting in a collective.
template <class F>
int run(int& argc, char**& argv, F&& body) {
  try {
    Environment env(argc, argv);
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s\n", rank(), e.what());
      std::fflush(stderr);
      abort_all(1);
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {  // MPI itself did not start
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

}  // namespace diffuse::distributed
