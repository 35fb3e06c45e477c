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
///
/// Code that is not a template (file formats, checkpoints, metrics, plots, data files) follows
/// the same rule the other way round: a header declares it, and its definitions live in a
/// `<header>-inl.hpp` beside it, marked DIFFUSE_INLINE. Header-only, the header includes its
/// `-inl.hpp` and DIFFUSE_INLINE is `inline`; precompiled, the header does not, and the library's
/// sources compile each `-inl.hpp` once with DIFFUSE_INLINE empty. (spdlog's `-inl.h` files and
/// Boost.Asio's separate compilation work the same way.) A program never includes a `-inl.hpp`.
#pragma once

#ifdef DIFFUSE_PRECOMPILED
/// Precompiled: the definitions in `-inl.hpp` files are compiled once, into the library.
#define DIFFUSE_INLINE
#else
/// Header-only: the definitions in `-inl.hpp` files are inline, in every program that uses them.
#define DIFFUSE_INLINE inline
#endif

/// Marks code that runs a few times per program, not per step: reading and writing files,
/// checkpoints, configuration, building models and schedules. GCC and Clang then compile it for
/// size and inline little into it, which keeps header-only compiles short, and keep it out of
/// the way of the hot loops.
#if defined(__GNUC__)
#define DIFFUSE_COLD [[gnu::cold]]
#else
#define DIFFUSE_COLD
#endif

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
