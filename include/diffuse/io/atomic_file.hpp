/// @file
/// Atomic file writes and whole-file reads. Every writer in diffuse writes to
/// "<path>.tmp-<random>" in the same folder and renames it into place, so a crash or a full
/// disk never leaves a half-written file under the real name. fsync_path flushes a file or a
/// folder to the disk, for writers that must also survive a power loss (checkpoints).
#pragma once
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ios>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include "diffuse/core/error.hpp"

namespace diffuse::io {

namespace detail {
/// A temporary name next to `path` (same folder, so the rename stays on one file system).
inline std::filesystem::path temp_path_for(const std::filesystem::path& path) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream os;
  os << std::hex << rng();
  return std::filesystem::path(path.string() + ".tmp-" + os.str());
}
}  // namespace detail

/// Writes through `write(stream)` into a temporary file, then renames it to `path`.
/// Throws FileError naming the path if the file cannot be created, written or renamed; the
/// temporary is removed on failure. An exception thrown by `write` propagates unchanged.
inline void write_file_atomic(const std::filesystem::path& path,
                              const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  const fs::path tmp = detail::temp_path_for(path);
  auto cleanup = [&] {
    std::error_code ec;
    fs::remove(tmp, ec);
  };
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
      throw FileError("cannot write '" + path.string() + "': " +
                      (fs::is_directory(dir) ? std::string("cannot create a file in '") + dir.string() + "'"
                                             : std::string("folder '") + dir.string() + "' does not exist"));
    }
    try {
      write(out);
      out.flush();
    } catch (...) {
      out.close();
      cleanup();
      throw;
    }
    if (!out) {
      out.close();
      cleanup();
      throw FileError("cannot write '" + path.string() + "': write failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    cleanup();
    throw FileError("cannot write '" + path.string() + "': rename from temporary failed: " + ec.message());
  }
}

/// Writes `bytes` to `path` atomically.
inline void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  write_file_atomic(
      path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

/// Flushes the file or folder `path` to the disk (POSIX fsync). A rename is durable only once the
/// renamed files and the folder holding the new name are synced. Throws FileError naming the
/// path; a file system that cannot sync a folder (EINVAL) is not an error.
inline void fsync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw FileError("cannot sync '" + path.string() + "' to disk: " + std::generic_category().message(errno));
  int rc = 0;
  do rc = ::fsync(fd);
  while (rc != 0 && errno == EINTR);
  const int err = rc != 0 ? errno : 0;
  ::close(fd);
  if (err != 0 && err != EINVAL)
    throw FileError("cannot sync '" + path.string() + "' to disk: " + std::generic_category().message(err));
}

/// Reads a whole file into a string; FileError naming the path if missing or unreadable.
inline std::string read_file_bytes(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw FileError("cannot read '" + path.string() + "': file does not exist");
  if (fs::is_directory(path, ec))
    throw FileError("cannot read '" + path.string() + "': it is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError("cannot read '" + path.string() + "': cannot open the file");
  std::string bytes;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw FileError("cannot read '" + path.string() + "': cannot determine its size");
  in.seekg(0, std::ios::beg);
  bytes.resize(static_cast<std::size_t>(size));
  in.read(bytes.data(), size);
  if (in.gcount() != size) throw FileError("cannot read '" + path.string() + "': read failed");
  return bytes;
}

}  // namespace diffuse::io
