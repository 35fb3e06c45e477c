/// @file
/// Atomic file writes and whole-file reads. Every writer in diffuse writes to
/// "<path>.tmp-<random>" in the same folder and renames it into place, so a crash or a full
/// disk never leaves a half-written file under the real name. fsync_path flushes a file or a
/// folder to the disk, for writers that must also survive a power loss (checkpoints).
#pragma once
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"

namespace diffuse::io {

namespace detail {
/// A temporary name next to `path` (same folder, so the rename stays on one file system).
/// 16 hex digits from a per-thread random generator, for names of temporary files and folders.
std::string random_suffix();
std::filesystem::path temp_path_for(const std::filesystem::path& path);
}  // namespace detail

/// Writes through `write(stream)` into a temporary file, then renames it to `path`.
/// Throws FileError naming the path if the file cannot be created, written or renamed; the
/// temporary is removed on failure. An exception thrown by `write` propagates unchanged.
void write_file_atomic(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

/// Writes `bytes` to `path` atomically.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

/// Flushes the file or folder `path` to the disk (POSIX fsync). A rename is durable only once the
/// renamed files and the folder holding the new name are synced. Throws FileError naming the
/// path; a file system that cannot sync a folder (EINVAL) is not an error.
void fsync_path(const std::filesystem::path& path);

/// Reads a whole file into a string; FileError naming the path if missing or unreadable.
std::string read_file_bytes(const std::filesystem::path& path);

}  // namespace diffuse::io

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/io/atomic_file-inl.hpp"
#endif
