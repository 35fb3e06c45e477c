# ctest fuzz_build: configures and builds tests/fuzz with clang, then writes the large
# regression inputs. cmake -DSOURCE_DIR=... -DBINARY_DIR=... -DCXX=... -DGENERATOR=... -P build_fuzzers.cmake
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BINARY_DIR} -G ${GENERATOR}
                        -DCMAKE_CXX_COMPILER=${CXX}
                RESULT_VARIABLE result)
if(result)
  message(FATAL_ERROR "configuring the fuzzers failed (${result})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY_DIR} -j 2 RESULT_VARIABLE result)
if(result)
  message(FATAL_ERROR "building the fuzzers failed (${result})")
endif()
file(REMOVE_RECURSE ${BINARY_DIR}/large)
execute_process(COMMAND ${BINARY_DIR}/make_fuzz_corpus large ${BINARY_DIR}/large RESULT_VARIABLE result)
if(result)
  message(FATAL_ERROR "making the large regression inputs failed (${result})")
endif()
