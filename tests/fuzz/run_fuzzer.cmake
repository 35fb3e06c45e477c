# ctest fuzz_<name>: runs a fuzzer once over the large regression inputs (if any), then fuzzes
# for SECONDS over the committed seeds (SECONDS 0: runs each seed once and stops) (new inputs go to WORK, emptied first; a crash, leak,
# timeout or out-of-memory input is written to ARTIFACTS and fails the test).
#   cmake -DFUZZER=... -DSEEDS=... -DLARGE=... -DWORK=... -DARTIFACTS=... -DSECONDS=30 -P run_fuzzer.cmake
set(limits -rss_limit_mb=2048 -timeout=10)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK} ${ARTIFACTS})
if(IS_DIRECTORY ${LARGE})
  file(GLOB large_inputs ${LARGE}/*)
  if(large_inputs)
    # One run each, with more time than a fuzzing input gets: the 1.1 MB gzip file alone takes
    # about 1.5 s of CPU (its 47 MB of described data are decompressed before the excess is seen).
    execute_process(COMMAND ${FUZZER} -rss_limit_mb=2048 -timeout=60 -artifact_prefix=${ARTIFACTS}/ ${large_inputs}
                    RESULT_VARIABLE result)
    if(result)
      message(FATAL_ERROR "${FUZZER} failed on a large regression input (${result}); see above and ${ARTIFACTS}")
    endif()
  endif()
endif()
if(SECONDS EQUAL 0)
  # Replay only: every committed seed and regression input once, the same on every run.
  set(how -runs=0)
else()
  set(how -max_total_time=${SECONDS})
endif()
execute_process(COMMAND ${FUZZER} ${limits} ${how} -print_final_stats=1
                        -artifact_prefix=${ARTIFACTS}/ ${WORK} ${SEEDS}
                RESULT_VARIABLE result)
if(result)
  message(FATAL_ERROR "${FUZZER} found a problem (${result}); the input is in ${ARTIFACTS}")
endif()
