// Fuzzes data::ImageFolder: the input is a "%%file" archive (fuzz_common.hpp) of the folder's
// files, e.g. "%%file cats/a.png\n<png bytes>\n%%file dogs/b.jpg\n<jpeg bytes>". The preamble's
// first three bytes (when present) choose the options: size = {0, 8, 13}[b0 % 3], channels =
// {1, 3, 4}[b1 % 3], on_bad_file = b2 odd ? error : skip.
#include "diffuse/data/image_folder.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diffuse;
  const fuzz::UnpackedArchive input = fuzz::unpack_archive(data, size);
  const fuzz::Archive& archive = input.archive;
  const std::filesystem::path& root = input.dir;
  auto option = [&](std::size_t i) -> unsigned {
    return i < archive.preamble.size() ? static_cast<unsigned char>(archive.preamble[i]) : 0u;
  };
  data::ImageFolderOptions o;
  constexpr std::int64_t sizes[] = {0, 8, 13};
  constexpr int channels[] = {1, 3, 4};
  o.size = sizes[option(0) % 3];
  o.channels = channels[option(1) % 3];
  o.on_bad_file = option(2) % 2 ? data::OnBadFile::error : data::OnBadFile::skip;
  fuzz::expect_error_or_success([&] {
    data::ImageFolder folder(root, o);
    (void)folder.summary();
    if (folder.size() > 0) (void)folder.get(0);
  });
  return 0;
}
