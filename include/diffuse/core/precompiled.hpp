/// @file
/// Precompiled mode: the float and double code of the heavy templates (tensor ops, kernels,
/// modules, models, schedulers, optimizers, pipelines) compiled once into the library
/// `diffuse::precompiled` instead of into every translation unit that uses it.
///
/// Header-only stays the default: nothing changes unless `DIFFUSE_PRECOMPILED` is defined, which
/// linking `diffuse::precompiled` does. Then each header declares its instantiations
/// `extern template` and the compiler leaves them to the library (GCC and Clang still instantiate
/// members defined inside a class, as inline functions, so the heavy entry points are defined
/// outside their class).
///
/// Each header lists what the library holds once, as an X-macro `DIFFUSE_<AREA>_TEMPLATES(X, T)`
/// that applies X to every declaration for the value type T; the library's sources (src/)
/// instantiate the same lists, so the declarations and the definitions cannot drift apart.
#pragma once

/// Declares one instantiation `extern template` (the library defines it).
#define DIFFUSE_EXTERN_TEMPLATE(...) extern template __VA_ARGS__;
/// Defines one instantiation (used by the library's sources).
#define DIFFUSE_INSTANTIATE_TEMPLATE(...) template __VA_ARGS__;

#ifdef DIFFUSE_PRECOMPILED
/// Declares the float and double instantiations of a list `extern template`, in precompiled mode.
#define DIFFUSE_EXTERN_TEMPLATES(list) \
  list(DIFFUSE_EXTERN_TEMPLATE, float) list(DIFFUSE_EXTERN_TEMPLATE, double)
#else
/// Header-only mode: nothing is declared extern.
#define DIFFUSE_EXTERN_TEMPLATES(list)
#endif

/// Defines the float and double instantiations of a list (in the library's sources).
#define DIFFUSE_INSTANTIATE_TEMPLATES(list) \
  list(DIFFUSE_INSTANTIATE_TEMPLATE, float) list(DIFFUSE_INSTANTIATE_TEMPLATE, double)
