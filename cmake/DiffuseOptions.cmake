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
  # GCC 12 reports false "maybe-uninitialized" inside its own AVX-512 intrinsics when Eigen
  # inlines them (-march=native on AVX-512 machines); the warning is not about our code.
  -Wno-maybe-uninitialized
  $<$<CONFIG:Release>:-O3 -march=native>
  $<$<CONFIG:RelWithDebInfo>:-O2 -march=native>)
target_compile_definitions(diffuse_options INTERFACE $<$<CONFIG:Release>:NDEBUG>)
