/// @file
/// The definitions of atomic_file.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/io/atomic_file.hpp"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ios>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include "diffuse/core/error.hpp"

namespace diffuse::io {

namespace detail {
DIFFUSE_COLD DIFFUSE_INLINE std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(rng()));
  return hex;
}

DIFFUSE_COLD DIFFUSE_INLINE std::filesystem::path temp_path_for(const std::filesystem::path& path) {
  return std::filesystem::path(path.string() + ".tmp-" + random_suffix());
}
}  // namespace detail

DIFFUSE_COLD DIFFUSE_INLINE void write_file_atomic(const std::filesystem::path& path,
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

DIFFUSE_COLD DIFFUSE_INLINE void write_file_atomic(const std::filesystem::path& path,
                                                   std::string_view bytes) {
  write_file_atomic(
      path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

DIFFUSE_COLD DIFFUSE_INLINE void fsync_path(const std::filesystem::path& path) {
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

// Not DIFFUSE_COLD: data sets read their image files through it, sample by sample.
DIFFUSE_INLINE std::string read_file_bytes(const std::filesystem::path& path) {
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
