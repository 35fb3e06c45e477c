// Fuzzes data::read_idx through zlib's decompression: the input is the *uncompressed* IDX bytes;
// the harness gzips them (level 1) and reads the .gz file, so every mutation reaches the IDX
// parser behind a valid gzip stream (fuzz_idx mutates the compressed bytes themselves).
#include <zlib.h>

#include "diffuse/data/idx.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir = diffuse::fuzz::Scratch::get().fresh();
  const auto path = dir / "labels-idx1-ubyte.gz";
  gzFile gz = gzopen(path.c_str(), "wb1");
  if (!gz) return 0;
  if (size) gzwrite(gz, data, static_cast<unsigned>(size));
  gzclose(gz);
  diffuse::fuzz::expect_error_or_success([&] { (void)diffuse::data::read_idx(path); });
  return 0;
}
