// Test helpers for files: a scratch folder that cleans up after itself, and raw byte writing
// (for crafted, broken or hostile files).
#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <system_error>

namespace diffuse::testing {

// A fresh folder under the system temp dir, removed when the object goes out of scope.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "diffuse_test_") {
    path = std::filesystem::temp_directory_path() / (prefix + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

inline void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace diffuse::testing
