# ctest script: install this build into a scratch prefix, then configure, build and run the
# consumer project against it with find_package(diffuse CONFIG REQUIRED).
# Inputs: BUILD_DIR, SOURCE_DIR, WORK_DIR, PRECOMPILED (whether the build has diffuse::precompiled).
file(REMOVE_RECURSE "${WORK_DIR}")
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/build"
    -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer")
# A package built with DIFFUSE_BUILD_PRECOMPILED (the default) must have diffuse::precompiled too.
if(PRECOMPILED)
  if(NOT EXISTS "${WORK_DIR}/build/consumer_precompiled")
    message(FATAL_ERROR "the installed package has no target diffuse::precompiled")
  endif()
  run("${WORK_DIR}/build/consumer_precompiled")
endif()
