// Fuzzes io::read_image (PNG/JPEG through the library's pre-checks, then stb_image): the input is
// the image file, named .png (stb decides by the bytes, which is what the pre-checks guard).
// Debian's libstb.so is not instrumented: ASan sees overflows of our buffers, not stb's own.
#include "diffuse/io/image.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = diffuse::fuzz::input_as_file(data, size, "image.png");
  diffuse::fuzz::expect_error_or_success([&] { (void)diffuse::io::read_image<float>(path); });
  return 0;
}
