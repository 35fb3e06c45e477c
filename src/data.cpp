// The precompiled library (core/precompiled.hpp): the data code that is not a template, each
// -inl.hpp of include/diffuse/data/ compiled once.
#include "diffuse/data/dataloader-inl.hpp"
#include "diffuse/data/fashion_mnist-inl.hpp"
#include "diffuse/data/idx-inl.hpp"
#include "diffuse/data/idx_dataset-inl.hpp"
#include "diffuse/data/image_dataset-inl.hpp"
#include "diffuse/data/image_folder-inl.hpp"
#include "diffuse/data/mnist-inl.hpp"
#include "diffuse/data/transforms-inl.hpp"
