// The precompiled library (core/precompiled.hpp): the io code that is not a template, each
// -inl.hpp of include/diffuse/io/ compiled once, and the file readers and writers for float and
// double.
#include "diffuse/io/atomic_file-inl.hpp"
#include "diffuse/io/config-inl.hpp"
#include "diffuse/io/image-inl.hpp"
#include "diffuse/io/json-inl.hpp"
#include "diffuse/io/npy-inl.hpp"
#include "diffuse/io/pytorch_bin-inl.hpp"
#include "diffuse/io/safetensors-inl.hpp"

namespace diffuse::io {
DIFFUSE_INSTANTIATE_TEMPLATES(DIFFUSE_IO_IMAGE_TEMPLATES)
DIFFUSE_INSTANTIATE_TEMPLATES(DIFFUSE_IO_NPY_TEMPLATES)
DIFFUSE_INSTANTIATE_TEMPLATES(DIFFUSE_IO_PYTORCH_BIN_TEMPLATES)
DIFFUSE_INSTANTIATE_TEMPLATES(DIFFUSE_IO_SAFETENSORS_TEMPLATES)
}  // namespace diffuse::io
