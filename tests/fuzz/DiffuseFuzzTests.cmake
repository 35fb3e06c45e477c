# The ctest label "fuzz" (included by tests/CMakeLists.txt): test fuzz_build configures and builds
# tests/fuzz with clang in <build>/tests/fuzz (a project of its own: libFuzzer needs clang, the
# main build uses g++) and makes the large regression inputs; then each fuzz_<name> test runs
# those once and fuzzes for DIFFUSE_FUZZ_SECONDS over the committed seeds. Added only when clang
# with libFuzzer is found (scripts/setup.sh installs clang-16 and libfuzzer-16-dev); the default
# test preset leaves the label out, `ctest --preset fuzz` runs it.
include(${CMAKE_CURRENT_LIST_DIR}/fuzzers.cmake)
find_program(DIFFUSE_FUZZ_CXX NAMES clang++-16 DOC "clang with libFuzzer, for the fuzz tests")
# 0 (the test preset's, so CI gives the same answer every time): replay the corpus only. A
# number of seconds fuzzes that long after the replay (e.g. -DDIFFUSE_FUZZ_SECONDS=30).
set(DIFFUSE_FUZZ_SECONDS 30 CACHE STRING "Seconds each fuzzer runs in its ctest (0: replay the corpus only)")

set(_fuzz_ok FALSE)
if(DIFFUSE_FUZZ_CXX)
  # libFuzzer is there when a program with LLVMFuzzerTestOneInput links with -fsanitize=fuzzer.
  set(_probe_dir ${CMAKE_CURRENT_BINARY_DIR}/fuzz_probe)
  file(WRITE ${_probe_dir}/probe.cpp
       "#include <cstddef>\n#include <cstdint>\nextern \"C\" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }\n")
  execute_process(COMMAND ${DIFFUSE_FUZZ_CXX} -fsanitize=fuzzer,address,undefined probe.cpp -o probe
                  WORKING_DIRECTORY ${_probe_dir} RESULT_VARIABLE _probe_result OUTPUT_QUIET ERROR_QUIET)
  if(_probe_result EQUAL 0)
    set(_fuzz_ok TRUE)
  endif()
endif()

if(NOT _fuzz_ok)
  message(STATUS "fuzz tests: not added (no clang++-16 with libFuzzer; scripts/setup.sh installs clang-16 and libfuzzer-16-dev)")
  return()
endif()
message(STATUS "fuzz tests: ${DIFFUSE_FUZZ_CXX}, ${DIFFUSE_FUZZ_SECONDS} s per fuzzer")

set(_fuzz_bin ${CMAKE_CURRENT_BINARY_DIR}/fuzz)
add_test(NAME fuzz_build
         COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${CMAKE_CURRENT_LIST_DIR} -DBINARY_DIR=${_fuzz_bin}
                 -DCXX=${DIFFUSE_FUZZ_CXX} -DGENERATOR=${CMAKE_GENERATOR} -P ${CMAKE_CURRENT_LIST_DIR}/build_fuzzers.cmake)
set_tests_properties(fuzz_build PROPERTIES LABELS fuzz FIXTURES_SETUP diffuse_fuzzers TIMEOUT 3600)
foreach(name ${DIFFUSE_FUZZERS})
  add_test(NAME fuzz_${name}
           COMMAND ${CMAKE_COMMAND} -DFUZZER=${_fuzz_bin}/fuzz_${name} -DSEEDS=${CMAKE_CURRENT_LIST_DIR}/corpus/${name}
                   -DLARGE=${_fuzz_bin}/large/${name} -DWORK=${_fuzz_bin}/work/${name}
                   -DARTIFACTS=${_fuzz_bin}/artifacts/${name} -DSECONDS=${DIFFUSE_FUZZ_SECONDS}
                   -P ${CMAKE_CURRENT_LIST_DIR}/run_fuzzer.cmake)
  set_tests_properties(fuzz_${name} PROPERTIES LABELS fuzz FIXTURES_REQUIRED diffuse_fuzzers
                       ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 600)
endforeach()
