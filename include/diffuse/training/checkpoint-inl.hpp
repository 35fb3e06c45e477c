/// @file
/// The definitions of checkpoint.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/training/checkpoint.hpp"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/warning.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::detail {

DIFFUSE_COLD DIFFUSE_INLINE void checkpoint_remove_all_quietly(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove_all(p, ec);
}

/// Whether trainer_state.json `s` holds a "version" this library reads: an integer in
/// [1, kCheckpointVersion], compared without a conversion that could wrap (2^32 + 1 is not 1).
DIFFUSE_COLD DIFFUSE_INLINE bool checkpoint_version_is_readable(const nlohmann::json& s) {
  if (!s.contains("version")) return false;
  const nlohmann::json& v = s["version"];
  if (v.is_number_unsigned())
    return v.get<std::uint64_t>() >= 1 && v.get<std::uint64_t>() <= training::kCheckpointVersion;
  return v.is_number_integer() && v.get<std::int64_t>() >= 1 &&
         v.get<std::int64_t>() <= training::kCheckpointVersion;
}

DIFFUSE_COLD DIFFUSE_INLINE nlohmann::json checkpoint_read_trainer_state(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const std::string where = "checkpoint '" + dir.string() + "': ";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw FileError(where + "no such folder");
  const fs::path state_path = dir / training::kTrainerStateFile;
  if (!fs::exists(state_path, ec))
    throw FileError(where + "missing " + training::kTrainerStateFile +
                    " (not a checkpoint, or an interrupted save)");
  nlohmann::json s = io::read_json(state_path);
  if (!s.is_object() || !s.contains("format") || !s["format"].is_string())
    throw FileError(where + training::kTrainerStateFile + " has no format name; not a diffuse checkpoint");
  if (s["format"].get<std::string>() != training::kCheckpointFormat)
    throw FileError(where + "format '" + s["format"].get<std::string>() + "' is not '" +
                    training::kCheckpointFormat + "'");
  if (!checkpoint_version_is_readable(s))
    throw FileError(where + "unsupported format version " +
                    (s.contains("version") ? io::describe_json(s["version"]) : "(none)") +
                    " (this library reads version " + std::to_string(training::kCheckpointVersion) + ")");
  if (!s.contains("files") || !s["files"].is_object())
    throw FileError(where + training::kTrainerStateFile + " lists no files");
  for (auto it = s["files"].begin(); it != s["files"].end(); ++it) {
    const fs::path f = dir / it.key();
    if (!it.value().is_number_unsigned()) throw FileError(where + "bad size recorded for '" + it.key() + "'");
    if (!fs::is_regular_file(f, ec)) throw FileError(where + "missing file '" + it.key() + "'");
    const auto size = fs::file_size(f, ec);
    if (ec) throw FileError(where + "cannot read the size of '" + it.key() + "'");
    if (size != it.value().get<std::uint64_t>())
      throw FileError(where + "file '" + it.key() + "' is " + std::to_string(size) +
                      " bytes, the checkpoint recorded " + std::to_string(it.value().get<std::uint64_t>()) +
                      " (truncated or replaced?)");
  }
  return s;
}

/// Whether `dir`, not a complete checkpoint, is what an interrupted save or prune of this library
/// left: it holds only checkpoint files (or their temporaries), and its trainer_state.json, if still
/// there, is of this format and a version this library reads. Another tool's "checkpoint-N" (e.g.
/// accelerate's) or a newer format's is not.
DIFFUSE_COLD DIFFUSE_INLINE bool checkpoint_is_own_leftover(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const std::string_view own[] = {"model.safetensors", "optimizer.safetensors", "ema.safetensors",
                                  training::kTrainerStateFile};
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::string_view base = std::string_view(name).substr(0, name.find(".tmp-"));
    if (!it->is_regular_file(ec) || std::find(std::begin(own), std::end(own), base) == std::end(own))
      return false;
  }
  if (ec) return false;
  if (!fs::exists(dir / training::kTrainerStateFile, ec)) return true;
  try {
    const nlohmann::json s = io::read_json(dir / training::kTrainerStateFile);
    return s.is_object() && s.value("format", "") == training::kCheckpointFormat &&
           checkpoint_version_is_readable(s);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace diffuse::detail

namespace diffuse::training {

DIFFUSE_COLD DIFFUSE_INLINE CheckpointManager::CheckpointManager(std::filesystem::path output_dir,
                                                                 CheckpointOptions options)
    : dir_(std::move(output_dir)), options_(std::move(options)) {
  if (options_.checkpoints_total_limit && *options_.checkpoints_total_limit < 1)
    throw Error("CheckpointManager: checkpoints_total_limit must be at least 1, got " +
                std::to_string(*options_.checkpoints_total_limit));
  if (options_.prefix.empty() || options_.prefix.find('/') != std::string::npos)
    throw Error("CheckpointManager: prefix must be a non-empty folder name, got '" + options_.prefix + "'");
}

DIFFUSE_COLD DIFFUSE_INLINE std::filesystem::path CheckpointManager::path_for(
    std::int64_t global_step) const {
  // "checkpoint--5" would be a folder that list() and prune() never see.
  if (global_step < 0)
    throw Error("CheckpointManager: global_step must be non-negative, got " + std::to_string(global_step));
  return dir_ / (options_.prefix + "-" + std::to_string(global_step));
}

DIFFUSE_COLD DIFFUSE_INLINE std::vector<std::filesystem::path> CheckpointManager::list() const {
  std::vector<std::filesystem::path> out;
  for (auto& c : scan())
    if (c.problem.empty()) out.push_back(c.path);
  return out;
}

DIFFUSE_COLD DIFFUSE_INLINE std::optional<std::filesystem::path> CheckpointManager::latest() const {
  auto all = list();
  if (all.empty()) return std::nullopt;
  return all.back();
}

DIFFUSE_COLD DIFFUSE_INLINE std::optional<std::filesystem::path> CheckpointManager::resolve(
    const std::string& from) const {
  if (from != "latest") return std::filesystem::path(from);
  const auto all = scan();
  auto chosen = std::find_if(all.rbegin(), all.rend(), [](const Candidate& c) { return c.problem.empty(); });
  for (auto it = all.rbegin(); it != chosen; ++it)
    warn("skipping '" + it->path.string() + "': " + it->problem);
  if (chosen == all.rend()) return std::nullopt;
  return chosen->path;
}

DIFFUSE_COLD DIFFUSE_INLINE void CheckpointManager::prune() const {
  std::vector<std::filesystem::path> complete;
  for (auto& c : scan()) {
    if (c.problem.empty()) {
      complete.push_back(c.path);
    } else if (diffuse::detail::checkpoint_is_own_leftover(c.path)) {
      warn("removing incomplete checkpoint '" + c.path.string() + "': " + c.problem +
           "; an interrupted save or prune left it");
      retire(c.path);
    }
  }
  if (!options_.checkpoints_total_limit) return;
  const auto limit = static_cast<std::size_t>(*options_.checkpoints_total_limit);
  for (std::size_t i = 0; i + limit < complete.size(); ++i) retire(complete[i]);
}

DIFFUSE_COLD DIFFUSE_INLINE std::vector<CheckpointManager::Candidate> CheckpointManager::scan() const {
  namespace fs = std::filesystem;
  std::vector<Candidate> out;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return out;
  recover_moved_aside();
  const std::string head = options_.prefix + "-";
  for (auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= head.size() || name.compare(0, head.size(), head) != 0) continue;
    const std::string digits = name.substr(head.size());
    if (digits.size() > 18 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    if (!entry.is_directory(ec)) continue;
    // Kept in step order as they come: a handful of folders needs no sort.
    const std::int64_t step = std::stoll(digits);
    auto later = std::find_if(out.begin(), out.end(), [&](const Candidate& c) { return c.step > step; });
    out.insert(later, Candidate{step, entry.path(), ""});
  }
  for (auto& c : out) {
    try {
      diffuse::detail::checkpoint_read_trainer_state(c.path);
    } catch (const Error& e) {
      c.problem = e.what();
      if (c.problem.rfind("checkpoint '", 0) == 0) c.problem = c.problem.substr(c.problem.find("': ") + 3);
    }
  }
  return out;
}

DIFFUSE_COLD DIFFUSE_INLINE void CheckpointManager::recover_moved_aside() const {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> aside, pruned;
  for (auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(options_.prefix + "-", 0) == 0 && name.find(".old-") != std::string::npos)
      aside.push_back(entry.path());
    else if (name.rfind(".old-" + options_.prefix + "-", 0) == 0)
      pruned.push_back(entry.path());
  }
  for (auto& p : aside) {
    const std::string name = p.filename().string();
    const fs::path original = p.parent_path() / name.substr(0, name.find(".old-"));
    if (!fs::exists(original, ec))
      fs::rename(p, original, ec);
    else
      diffuse::detail::checkpoint_remove_all_quietly(p);
  }
  for (auto& p : pruned) diffuse::detail::checkpoint_remove_all_quietly(p);
}

DIFFUSE_COLD DIFFUSE_INLINE void CheckpointManager::remove_leftovers() const {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return;
  std::vector<fs::path> stale;
  for (auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(options_.prefix + "-", 0) == 0 && name.find(".tmp-") != std::string::npos)
      stale.push_back(entry.path());
  }
  for (auto& p : stale) diffuse::detail::checkpoint_remove_all_quietly(p);
}

DIFFUSE_COLD DIFFUSE_INLINE void CheckpointManager::retire(const std::filesystem::path& p) {
  const std::filesystem::path hidden =
      p.parent_path() / (".old-" + p.filename().string() + "-" + io::detail::random_suffix());
  std::error_code ec;
  std::filesystem::rename(p, hidden, ec);
  if (ec) {
    warn("cannot remove checkpoint '" + p.string() + "': " + ec.message());
    return;
  }
  diffuse::detail::checkpoint_remove_all_quietly(hidden);
}

}  // namespace diffuse::training
