# Flags for this project's own targets (tests, examples, benchmarks). The exported
# diffuse::diffuse target does not carry them: users choose their own.
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

find_program(DIFFUSE_CCACHE ccache)
if(DIFFUSE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${DIFFUSE_CCACHE})
endif()

add_library(diffuse_options INTERFACE)
target_compile_options(diffuse_options INTERFACE
  -Wall -Wextra
  # GCC 12 reports false "maybe-uninitialized" inside its own AVX-512 intrinsics, both where
  # Eigen inlines them and where -O3 vectorises plain loops (the optimizers' updates): about
  # 2,000 such lines on an AVX-512 machine, none about our code. The kernel headers also silence
  # it locally, for users who build them with their own flags.
  -Wno-maybe-uninitialized
  $<$<CONFIG:Release>:-O3 -march=native>
  # RelWithDebInfo keeps its level from CMAKE_CXX_FLAGS_RELWITHDEBINFO (the sanitize preset sets it).
  $<$<CONFIG:RelWithDebInfo>:-march=native>)
target_compile_definitions(diffuse_options INTERFACE $<$<CONFIG:Release>:NDEBUG>)
