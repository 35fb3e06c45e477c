// Shared pieces of the libFuzzer harnesses: a scratch folder per process, writing the fuzz input
// as one file or as several (the "%%file" archive format below), and the rule every harness
// follows: a diffuse::Error (or subclass) is the expected outcome of a bad file; anything else
// (another exception, a crash, undefined behaviour, a leak, too much memory or time) is a finding.
//
// Multi-file inputs (image folder, UNet folder, pipeline, checkpoint) are a tiny text-friendly
// archive, so seeds can be written by hand and the fuzzer can mutate names and contents alike:
//
//   <preamble: optional bytes that a harness may use for options>
//   %%file <relative/path>
//   <the file's bytes>
//   %%file <another/path>
//   <its bytes>
//
// A marker is the 7 bytes "%%file " at the start of the input or right after a '\n'; the name
// runs to the next '\n'; the contents run to the '\n' before the next marker (that newline belongs
// to the marker, so a file cannot end with "\n%%file "; nothing else is escaped). Names are paths
// relative to the scratch folder: letters, digits, '.', '_', '-' and '/', at most 4 components,
// none of them "." or "..", at most 100 characters; other names are dropped (the harness never
// writes outside its folder). At most 32 files; a later file of the same name replaces the earlier.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <system_error>

#include "diffuse/core/error.hpp"
#include "diffuse/core/warning.hpp"

namespace diffuse::fuzz {

// One scratch folder per fuzzing process (in /dev/shm when it is there: no disk I/O), removed at exit.
class Scratch {
 public:
  static Scratch& get() {
    static Scratch s;
    return s;
  }
  const std::filesystem::path& root() const { return root_; }
  // An empty folder for one input (what the previous input left is removed first).
  std::filesystem::path fresh(const std::string& name = "in") {
    const std::filesystem::path p = root_ / name;
    std::error_code ec;
    std::filesystem::remove_all(p, ec);
    std::filesystem::create_directories(p, ec);
    return p;
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

 private:
  Scratch() {
    std::error_code ec;
    std::filesystem::path base = "/dev/shm";
    if (!std::filesystem::is_directory(base, ec) || access(base.c_str(), W_OK) != 0)
      base = std::filesystem::temp_directory_path();
    std::string tmpl = (base / "diffuse_fuzz_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) std::abort();
    root_ = tmpl;
    // Warnings (ignored config keys, ...) are expected and would flood the fuzzer's output.
    set_warning_handler([](const std::string&) {});
  }
  std::filesystem::path root_;
};

inline void write_file(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The fuzz input as a single file `name` in a fresh scratch folder; returns its path.
inline std::filesystem::path input_as_file(const std::uint8_t* data, std::size_t size,
                                           const std::string& name) {
  const std::filesystem::path dir = Scratch::get().fresh();
  const std::filesystem::path p = dir / name;
  write_file(p, std::string_view(reinterpret_cast<const char*>(data), size));
  return p;
}

struct Archive {
  std::string_view preamble;
  std::map<std::string, std::string_view> files;  // sanitized relative path -> contents
};

inline bool safe_name(std::string_view name) {
  if (name.empty() || name.size() > 100 || name.front() == '/' || name.back() == '/') return false;
  int components = 0;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == ".." || ++components > 4) return false;
    for (char c : part)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
            c == '_' || c == '-'))
        return false;
    start = end + 1;
  }
  return true;
}

// Splits the input (see the format above).
inline Archive split_archive(const std::uint8_t* data, std::size_t size) {
  constexpr std::string_view kMarker = "%%file ";
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  Archive a;
  // Positions of the markers.
  auto next_marker = [&](std::size_t from) -> std::size_t {
    for (std::size_t p = from; p < in.size(); ++p) {
      p = in.find(kMarker, p);
      if (p == std::string_view::npos) return in.size();
      if (p == 0 || in[p - 1] == '\n') return p;
    }
    return in.size();
  };
  std::size_t m = next_marker(0);
  a.preamble = m == in.size() ? in : in.substr(0, m == 0 ? 0 : m - 1);
  int count = 0;
  while (m < in.size()) {
    const std::size_t name_begin = m + kMarker.size();
    std::size_t name_end = in.find('\n', name_begin);
    if (name_end == std::string_view::npos) name_end = in.size();
    const std::size_t body = std::min(name_end + 1, in.size());
    const std::size_t next = next_marker(body);
    const std::size_t body_end = next == in.size() ? in.size() : next - 1;  // the '\n' before a marker
    const std::string_view name = in.substr(name_begin, name_end - name_begin);
    if (safe_name(name) && ++count <= 32)
      a.files[std::string(name)] = in.substr(body, body_end - std::min(body, body_end));
    m = next;
  }
  return a;
}

// Writes the archive's files under `dir` (creating subfolders).
inline void write_archive(const Archive& a, const std::filesystem::path& dir) {
  for (const auto& [name, bytes] : a.files) {
    const std::filesystem::path p = dir / name;
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    if (std::filesystem::is_directory(p, ec)) continue;  // "a" and "a/b" in one input: keep the folder
    write_file(p, bytes);
  }
}

// The input's archive, written into a fresh scratch folder `dir` (what every folder harness does
// first). `archive` views the input's bytes: it lives as long as the call of the harness.
struct UnpackedArchive {
  Archive archive;
  std::filesystem::path dir;
};
inline UnpackedArchive unpack_archive(const std::uint8_t* data, std::size_t size) {
  UnpackedArchive u{split_archive(data, size), Scratch::get().fresh()};
  write_archive(u.archive, u.dir);
  return u;
}

// Runs f; a diffuse::Error is the expected way to refuse a bad file. Any other exception escapes
// to libFuzzer, which reports it as a crash.
template <class F>
void expect_error_or_success(F&& f) {
  try {
    f();
  } catch (const diffuse::Error&) {
  }
}

}  // namespace diffuse::fuzz
