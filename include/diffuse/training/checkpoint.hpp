/// @file
/// Training checkpoints: everything needed to continue a run exactly where it stopped, in one
/// folder `checkpoint-<global_step>/`:
///   model.safetensors       the model's parameters (state_dict names, F32 / F64 like T)
///   optimizer.safetensors   the optimizer's buffers (moments, momentum), "<param index>.<buffer>"
///   ema.safetensors         the EMA shadow parameters
///   trainer_state.json      format name and version, global step, epoch, optimizer step counts /
///                           options / per-group learning rates, LR schedule, EMA counters,
///                           Generator states, data-loader position, the byte size of every file
/// A folder is written under a temporary name, synced to disk (fsync) and renamed into place, so
/// an interrupted save (or a power loss) never leaves a half-written checkpoint under a real name,
/// and "latest" keeps pointing to the last complete one. Pruning renames a folder to a hidden
/// ".old-" name before deleting it, for the same reason. Loading checks the format, every file and every name
/// and shape before it changes anything; on any error it throws and the objects are as before.
///
///   training::CheckpointManager checkpoints("output", {.checkpoints_total_limit = 3});
///   training::TrainingState<float> state{.model = &unet, .optimizer = &opt, .lr_scheduler = &sched,
///                                        .ema = &ema, .generators = {{"train", &gen}}, .data_loader =
///                                        &epochs};
///   checkpoints.resume("latest", state);            // false (and nothing changes) when there is none
///   ... ++state.global_step; if (state.global_step % 500 == 0) checkpoints.save(state);
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/generator.hpp"
#include "diffuse/core/precompiled.hpp"
#include "diffuse/core/warning.hpp"
#include "diffuse/io/atomic_file.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/io/safetensors.hpp"
#include "diffuse/nn/module.hpp"
#include "diffuse/optim/ema.hpp"
#include "diffuse/optim/lr_scheduler.hpp"
#include "diffuse/optim/optimizer.hpp"
#include "diffuse/training/resumable_loader.hpp"

namespace diffuse::training {

/// The "format" name in trainer_state.json.
inline constexpr const char* kCheckpointFormat = "diffuse-checkpoint";
/// The format version this library writes, and the newest it reads.
inline constexpr int kCheckpointVersion = 1;
/// The file of a checkpoint that holds its state and file list; written last.
inline constexpr const char* kTrainerStateFile = "trainer_state.json";

/// What a checkpoint holds. Null pointers (and an empty generator map) are left out of a save;
/// on load, every object given must be in the checkpoint.
template <class T = float>
struct TrainingState {
  /// The model: its parameters go to model.safetensors.
  nn::Module<T>* model = nullptr;
  /// The optimizer: its buffers go to optimizer.safetensors, its step counts and options to
  /// trainer_state.json.
  optim::Optimizer<T>* optimizer = nullptr;
  /// The learning-rate schedule.
  optim::LRScheduler<T>* lr_scheduler = nullptr;
  /// The EMA model: shadow parameters (ema.safetensors) and counters.
  optim::EMAModel<T>* ema = nullptr;
  /// Generators by name; their states are saved and restored.
  std::map<std::string, Generator*>
      generators{};  // e.g. {{"train", &gen}, {"default", &default_generator()}}
  /// The data-loader position (e.g. a ResumableLoader), to resume in the middle of an epoch.
  ResumablePosition* data_loader = nullptr;
  /// Optimizer steps taken; CheckpointManager names the folder after it.
  std::int64_t global_step = 0;
  /// The epoch, saved and restored as it is.
  std::int64_t epoch = 0;
  /// Any JSON, saved and restored as it is.
  nlohmann::json extra = nlohmann::json::object();  // anything else the training script wants back
};

}  // namespace diffuse::training

// Internals (in diffuse::detail, so training:: code keeps resolving detail:: there).
namespace diffuse::detail {

/// A random hex string, for the names of temporary and retired folders.
template <class T>
constexpr const char* checkpoint_dtype() {
  return std::is_same_v<T, double> ? "F64" : "F32";
}

/// Removes `p` and everything in it, ignoring errors.
void checkpoint_remove_all_quietly(const std::filesystem::path& p);

/// Reads and checks trainer_state.json and the sizes of the files it lists. Throws FileError
/// naming the checkpoint and the problem.
nlohmann::json checkpoint_read_trainer_state(const std::filesystem::path& dir);

template <class T>
DIFFUSE_COLD std::map<std::string, Tensor<T>> checkpoint_load_listed(const std::filesystem::path& dir,
                                                                     const nlohmann::json& s,
                                                                     const std::string& file,
                                                                     const std::string& what) {
  if (!s["files"].contains(file))
    throw FileError("checkpoint '" + dir.string() + "': holds no " + what + " ('" + file + "' is not in it)");
  return io::load_safetensors<T>(dir / file);
}

/// Names and shapes of `got` against `want`; "" if they agree.
template <class T>
DIFFUSE_COLD std::string checkpoint_compare_tensors(const std::vector<std::pair<std::string, Shape>>& want,
                                                    const std::map<std::string, Tensor<T>>& got) {
  std::string missing, wrong, unexpected;
  auto add = [](std::string& list, const std::string& item) { list += (list.empty() ? "" : ", ") + item; };
  for (auto& [name, shape] : want) {
    auto it = got.find(name);
    if (it == got.end())
      add(missing, name);
    else if (it->second.shape() != shape)
      add(wrong,
          name + " (checkpoint " + to_string(it->second.shape()) + ", model " + to_string(shape) + ")");
  }
  for (const auto& entry : got) {
    const std::string& name = entry.first;  // not a structured binding: Clang's OpenMP cannot capture one
    if (std::none_of(want.begin(), want.end(), [&](const auto& w) { return w.first == name; }))
      add(unexpected, name);
  }
  std::string out;
  if (!missing.empty()) out += "missing " + missing;
  if (!wrong.empty()) out += (out.empty() ? "" : "; ") + std::string("shape mismatch ") + wrong;
  if (!unexpected.empty()) out += (out.empty() ? "" : "; ") + std::string("unexpected ") + unexpected;
  return out;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_TRAINING_CHECKPOINT_DETAIL_TEMPLATES(X, T)                                            \
  X(std::string checkpoint_compare_tensors<T>(const std::vector<std::pair<std::string, Shape>>& want, \
                                              const std::map<std::string, Tensor<T>>& got))
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_TRAINING_CHECKPOINT_DETAIL_TEMPLATES)

}  // namespace diffuse::detail

namespace diffuse::training {

/// Writes `state` into the folder `dir` (replacing a previous checkpoint there) atomically:
/// everything goes to "<dir>.tmp-<random>" first, which is renamed to `dir` when complete.
/// Throws diffuse::FileError (or diffuse::Error) on failure, and leaves no temporary folder.
template <class T>
DIFFUSE_COLD void save_checkpoint(const std::filesystem::path& dir, const TrainingState<T>& state) {
  namespace fs = std::filesystem;
  using nlohmann::json;
  if (dir.empty()) throw Error("save_checkpoint: empty folder name");
  const fs::path target = dir.has_filename() ? dir : dir.parent_path();
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  if (ec)
    throw FileError("save_checkpoint: cannot create '" + target.parent_path().string() +
                    "': " + ec.message());
  const fs::path tmp = target.string() + ".tmp-" + io::detail::random_suffix();
  if (!fs::create_directory(tmp, ec))
    throw FileError("save_checkpoint: cannot create '" + tmp.string() + "': " + ec.message());
  try {
    const char* dtype = diffuse::detail::checkpoint_dtype<T>();
    json s = {{"format", kCheckpointFormat},
              {"version", kCheckpointVersion},
              {"global_step", state.global_step},
              {"epoch", state.epoch},
              {"dtype", dtype},
              {"extra", state.extra}};
    std::vector<std::string> files;
    if (state.model) {
      io::save_safetensors(tmp / "model.safetensors", state.model->state_dict(), {{"format", "pt"}}, dtype);
      files.push_back("model.safetensors");
    }
    if (state.optimizer) {
      optim::OptimizerState<T> os = state.optimizer->state_dict();
      io::save_safetensors(tmp / "optimizer.safetensors", os.tensors, {}, dtype);
      files.push_back("optimizer.safetensors");
      s["optimizer"] = os.meta;
    }
    if (state.lr_scheduler) s["lr_scheduler"] = state.lr_scheduler->state_dict();
    if (state.ema) {
      io::save_safetensors(tmp / "ema.safetensors", state.ema->shadow_state(), {}, dtype);
      files.push_back("ema.safetensors");
      s["ema"] = state.ema->state_json();
    }
    json gens = json::object();
    for (auto& [name, g] : state.generators) {
      if (!g) throw Error("save_checkpoint: generator '" + name + "' is a null pointer");
      gens[name] = {{"seed", g->state().seed}, {"offset", g->state().offset}};
    }
    s["generators"] = gens;
    if (state.data_loader) s["data_loader"] = state.data_loader->position().to_json();
    s["files"] = json::object();
    for (auto& f : files) s["files"][f] = fs::file_size(tmp / f);
    io::write_json(tmp / kTrainerStateFile, s);  // last: its presence marks a complete folder
    // On disk before the rename publishes them, so a power loss cannot leave a named folder of
    // empty files.
    files.push_back(kTrainerStateFile);
    for (auto& f : files) io::fsync_path(tmp / f);
    io::fsync_path(tmp);

    // Into place. A previous folder of the same name is moved aside first and removed after.
    fs::path old;
    if (fs::exists(target, ec)) {
      old = target.string() + ".old-" + io::detail::random_suffix();
      fs::rename(target, old, ec);
      if (ec) throw FileError("save_checkpoint: cannot replace '" + target.string() + "': " + ec.message());
    }
    fs::rename(tmp, target, ec);
    if (ec) {
      std::error_code ec2;
      if (!old.empty()) fs::rename(old, target, ec2);
      throw FileError("save_checkpoint: cannot rename '" + tmp.string() + "' to '" + target.string() +
                      "': " + ec.message());
    }
    io::fsync_path(target.has_parent_path() ? target.parent_path() : fs::path("."));  // the rename itself
    if (!old.empty()) diffuse::detail::checkpoint_remove_all_quietly(old);
  } catch (...) {
    diffuse::detail::checkpoint_remove_all_quietly(tmp);
    throw;
  }
}

/// The checked trainer_state.json of the checkpoint folder `dir` (global_step, epoch, extra, ...),
/// read without loading anything: to look at a checkpoint before resuming from it. FileError
/// naming the folder if it is not a complete checkpoint.
inline nlohmann::json read_checkpoint_info(const std::filesystem::path& dir) {
  return diffuse::detail::checkpoint_read_trainer_state(dir);
}

/// Restores `state` from the checkpoint folder `dir` and sets state.global_step / epoch / extra.
/// Every object in `state` must be in the checkpoint with matching names and shapes; all is
/// checked before anything changes, and if restoring still fails midway, the objects are put
/// back as they were.
/// Throws diffuse::FileError for a missing or damaged checkpoint, diffuse::Error for one that
/// does not fit `state`.
template <class T>
DIFFUSE_COLD void load_checkpoint(const std::filesystem::path& dir, TrainingState<T>& state) {
  using nlohmann::json;
  const std::string where = "checkpoint '" + dir.string() + "': ";
  const json s = diffuse::detail::checkpoint_read_trainer_state(dir);
  try {
    // ---- read and check everything ----
    std::map<std::string, Tensor<T>> model_tensors, opt_tensors, ema_tensors;
    if (state.model) {
      model_tensors = diffuse::detail::checkpoint_load_listed<T>(dir, s, "model.safetensors", "model");
      std::vector<std::pair<std::string, Shape>> want;
      for (auto& [name, p] : state.model->named_parameters()) want.emplace_back(name, p.shape());
      const std::string problems = diffuse::detail::checkpoint_compare_tensors(want, model_tensors);
      if (!problems.empty()) throw Error("model.safetensors does not fit the model: " + problems);
    }
    if (state.optimizer) {
      opt_tensors =
          diffuse::detail::checkpoint_load_listed<T>(dir, s, "optimizer.safetensors", "optimizer state");
      if (!s.contains("optimizer"))
        throw Error("holds no optimizer state in " + std::string(kTrainerStateFile));
    }
    if (state.lr_scheduler && !s.contains("lr_scheduler")) throw Error("holds no LR schedule state");
    if (state.ema) {
      ema_tensors = diffuse::detail::checkpoint_load_listed<T>(dir, s, "ema.safetensors", "EMA weights");
      if (!s.contains("ema")) throw Error("holds no EMA state in " + std::string(kTrainerStateFile));
    }
    std::vector<GeneratorState> gens;  // in the order of state.generators
    for (auto& [name, g] : state.generators) {
      if (!g) throw Error("generator '" + name + "' is a null pointer");
      if (!s.contains("generators") || !s["generators"].contains(name))
        throw Error("holds no state of generator '" + name + "'");
      const json& j = s["generators"][name];
      gens.push_back({io::json_integer<std::uint64_t>(j.at("seed"), "generator '" + name + "' seed"),
                      io::json_integer<std::uint64_t>(j.at("offset"), "generator '" + name + "' offset")});
    }
    std::optional<LoaderPosition> position;
    if (state.data_loader) {
      if (!s.contains("data_loader")) throw Error("holds no data-loader position");
      position = LoaderPosition::from_json(s["data_loader"]);
    }
    const auto global_step = io::json_integer<std::int64_t>(s.at("global_step"), "global_step");
    const auto epoch = io::json_integer<std::int64_t>(s.at("epoch"), "epoch");

    // ---- restore, keeping what was there to put back on failure ----
    std::map<std::string, Tensor<T>> model_before;
    std::optional<optim::OptimizerState<T>> opt_before;
    std::optional<json> sched_before;
    std::optional<std::pair<std::map<std::string, Tensor<T>>, json>> ema_before;
    std::vector<std::pair<Generator*, GeneratorState>> gens_before;
    std::optional<LoaderPosition> pos_before;
    try {
      if (state.model) {
        for (auto& [name, t] : state.model->state_dict()) model_before.emplace(name, t.clone());
        state.model->load_state_dict(model_tensors);
      }
      if (state.optimizer) {
        opt_before = state.optimizer->state_dict();
        state.optimizer->load_state_dict({opt_tensors, s["optimizer"]});
      }
      if (state.lr_scheduler) {
        sched_before = state.lr_scheduler->state_dict();
        state.lr_scheduler->load_state_dict(s["lr_scheduler"]);
      }
      if (state.ema) {
        ema_before.emplace(state.ema->shadow_state(), state.ema->state_json());
        state.ema->load_state(ema_tensors, s["ema"]);
      }
      std::size_t k = 0;
      for (auto& [name, g] : state.generators) {
        gens_before.emplace_back(g, g->state());
        g->set_state(gens[k++]);
      }
      if (state.data_loader) {
        pos_before = state.data_loader->position();
        state.data_loader->set_position(*position);
      }
    } catch (...) {
      if (!model_before.empty()) state.model->load_state_dict(model_before);
      if (opt_before) state.optimizer->load_state_dict(*opt_before);
      if (sched_before) state.lr_scheduler->load_state_dict(*sched_before);
      if (ema_before) state.ema->load_state(ema_before->first, ema_before->second);
      for (auto& [g, gs] : gens_before) g->set_state(gs);
      if (pos_before) state.data_loader->set_position(*pos_before);
      throw;
    }
    state.global_step = global_step;
    state.epoch = epoch;
    state.extra = s.value("extra", json::object());
  } catch (const nlohmann::json::exception& e) {
    throw FileError(where + "malformed " + kTrainerStateFile + ": " + e.what());
  } catch (const FileError&) {
    throw;
  } catch (const Error& e) {
    throw Error(where + e.what());
  }
}

/// Options of a CheckpointManager.
struct CheckpointOptions {
  /// Keep at most this many checkpoints (the oldest are removed after a save); unset keeps all.
  std::optional<std::int64_t> checkpoints_total_limit{};
  /// The start of the folder names.
  std::string prefix = "checkpoint";  // folders are "<prefix>-<global_step>"
};

/// The checkpoints of one training run in `output_dir`: save with pruning, list, find the latest
/// complete one, resume from a path or "latest".
///
/// What an interrupted run leaves is cleaned up: temporary folders of unfinished saves
/// ("<prefix>-N.tmp-*", on save), folders of unfinished prunes (".old-<prefix>-N-*", on save and
/// list), and "<prefix>-N" folders missing files that this library wrote (an older version's
/// interrupted prune, a truncated copy): never resumable, they are skipped with a warning on a
/// resume from "latest" and removed with a warning by the next save. A "<prefix>-N" folder of
/// another tool or a newer format is never touched.
class CheckpointManager {
 public:
  /// The checkpoints in `output_dir` (created by the first save). Throws diffuse::Error for a
  /// checkpoints_total_limit below 1 or a prefix that is empty or holds a '/'.
  explicit CheckpointManager(std::filesystem::path output_dir, CheckpointOptions options = {});

  /// The folder given to the constructor.
  const std::filesystem::path& output_dir() const { return dir_; }
  /// The folder of the checkpoint at `global_step`: "<output_dir>/<prefix>-<global_step>".
  std::filesystem::path path_for(std::int64_t global_step) const;

  /// Saves to "<output_dir>/<prefix>-<global_step>", removes what interrupted saves and prunes
  /// left, then prunes to checkpoints_total_limit. Returns the folder.
  template <class T>
  std::filesystem::path save(const TrainingState<T>& state) {
    remove_leftovers();
    const std::filesystem::path p = path_for(state.global_step);
    save_checkpoint(p, state);
    prune();
    return p;
  }

  /// Complete checkpoints (trainer_state.json valid, every file of the recorded size), oldest
  /// (smallest step) first. Folders being written, or left half-written, are not listed.
  std::vector<std::filesystem::path> list() const;

  /// The newest complete checkpoint, if any.
  std::optional<std::filesystem::path> latest() const;

  /// Removes the incomplete checkpoints this library left (with a warning each) and the oldest
  /// complete ones beyond checkpoints_total_limit. Each folder is renamed to a hidden name before
  /// it is deleted, so a prune cut short never leaves a broken folder under a real name.
  void prune() const;

  /// The folder resume(from) loads: `from` itself, or for "latest" the newest complete checkpoint
  /// (newer folders that are incomplete are skipped with a warning that says why; none when there
  /// is no checkpoint yet). A data-parallel run lets one rank choose, so all load the same one.
  std::optional<std::filesystem::path> resolve(const std::string& from) const;

  /// Loads from a checkpoint folder, or from the newest complete one with "latest" (see
  /// resolve()). Returns false (and changes nothing) for "latest" when there is no checkpoint
  /// yet; a given path must exist. Throws as load_checkpoint does.
  template <class T>
  bool resume(const std::string& from, TrainingState<T>& state) const;

 private:
  struct Candidate {
    std::int64_t step;
    std::filesystem::path path;
    std::string problem;  // why it is not a complete checkpoint; empty if it is
  };

  // Folders named exactly "<prefix>-<digits>", by step, each checked.
  std::vector<Candidate> scan() const;
  // A save that replaces a folder of the same step moves the old one to "<name>.old-*" first; if
  // it stopped before the new folder took its place, put the old one back (else it is stale).
  // A prune renames a folder to ".old-<name>-*" before deleting it: what is left of one goes.
  void recover_moved_aside() const;
  // "<prefix>-<digits>.tmp-*" folders of saves that never finished.
  void remove_leftovers() const;
  // Renames `p` to ".old-<name>-<random>", then deletes it.
  static void retire(const std::filesystem::path& p);

  std::filesystem::path dir_;
  CheckpointOptions options_;
};

template <class T>
bool CheckpointManager::resume(const std::string& from, TrainingState<T>& state) const {
  const std::optional<std::filesystem::path> chosen = resolve(from);
  if (!chosen) return false;
  load_checkpoint(*chosen, state);
  return true;
}

/// What the precompiled library holds (core/precompiled.hpp).
#define DIFFUSE_TRAINING_CHECKPOINT_TEMPLATES(X, T)                                           \
  X(void save_checkpoint<T>(const std::filesystem::path& dir, const TrainingState<T>& state)) \
  X(void load_checkpoint<T>(const std::filesystem::path& dir, TrainingState<T>& state))       \
  X(bool CheckpointManager::resume<T>(const std::string& from, TrainingState<T>& state) const)
DIFFUSE_EXTERN_TEMPLATES(DIFFUSE_TRAINING_CHECKPOINT_TEMPLATES)

}  // namespace diffuse::training

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/training/checkpoint-inl.hpp"
#endif
