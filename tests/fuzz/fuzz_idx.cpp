// Fuzzes data::read_idx on the input as the file itself: a raw IDX file, or a gzip file (zlib
// reads both). The committed corpus has raw and gzipped MNIST-like files and gzip bombs.
// Note: deflate expands at most ~1032:1, so an input of libFuzzer's default size (4 KB) cannot
// decompress past a few MB; the bombs therefore test the header-first refusal (a header that
// describes more than data::max_idx_bytes()) and the "more data than the header says" check.
#include "diffuse/data/idx.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = diffuse::fuzz::input_as_file(data, size, "images-idx3-ubyte.gz");
  diffuse::fuzz::expect_error_or_success([&] { (void)diffuse::data::read_idx(path); });
  return 0;
}
