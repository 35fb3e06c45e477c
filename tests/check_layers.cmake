# Layers point one way (the project design): a header may include its own folder and the folders
# below it, never one above it or beside it at the same level. Bottom to top:
#   core -> io (formats), kernels -> autograd -> nn -> models, schedulers
#        -> pipelines, optim, data -> viz, training, distributed
# Run as: cmake -DINCLUDE_DIR=<repo>/include -P check_layers.cmake
set(levels core=0 io=1 kernels=1 autograd=2 nn=3 models=4 schedulers=4 pipelines=5 optim=5 data=5
           viz=6 training=6 distributed=6)
foreach(entry ${levels})
  string(REPLACE "=" ";" pair ${entry})
  list(GET pair 0 name)
  list(GET pair 1 level)
  set(level_${name} ${level})
endforeach()

file(GLOB headers RELATIVE ${INCLUDE_DIR}/diffuse ${INCLUDE_DIR}/diffuse/*/*.hpp)
set(violations "")
foreach(header ${headers})
  string(REGEX MATCH "^[^/]+" folder ${header})
  if(NOT DEFINED level_${folder})
    string(APPEND violations "\n  ${header}: folder '${folder}' has no place in the layer order")
    continue()
  endif()
  file(STRINGS ${INCLUDE_DIR}/diffuse/${header} includes REGEX "^[ \t]*#[ \t]*include[ \t]+[\"<]diffuse/[^/]+/")
  foreach(line ${includes})
    string(REGEX REPLACE ".*diffuse/([^/]+)/.*" "\\1" target "${line}")
    if(target STREQUAL folder)
      continue()
    endif()
    if(NOT DEFINED level_${target} OR NOT level_${target} LESS level_${folder})
      string(STRIP "${line}" line)
      string(APPEND violations "\n  ${header} (${folder}, level ${level_${folder}}): ${line}")
    endif()
  endforeach()
endforeach()
list(LENGTH headers count)
if(violations)
  message(FATAL_ERROR "includes that point up or sideways across layers:${violations}")
endif()
message(STATUS "layers: ${count} headers, every include points down or within its folder")
