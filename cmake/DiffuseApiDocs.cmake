# Target `doxygen` (when Doxygen is found; Debian package doxygen): the API reference from the
# headers' /// comments and the guides of docs/, as HTML in <build>/doxygen/html/index.html.
# Not part of `all`: `cmake --build --preset release --target doxygen`.
find_package(Doxygen QUIET)
if(NOT DOXYGEN_FOUND)
  return()
endif()
set(DOXYGEN_PROJECT_NAME diffuse)
set(DOXYGEN_PROJECT_BRIEF "${PROJECT_DESCRIPTION}")
set(DOXYGEN_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/doxygen)
set(DOXYGEN_USE_MDFILE_AS_MAINPAGE ${CMAKE_CURRENT_SOURCE_DIR}/README.md)
set(DOXYGEN_STRIP_FROM_PATH ${CMAKE_CURRENT_SOURCE_DIR})
set(DOXYGEN_STRIP_FROM_INC_PATH ${CMAKE_CURRENT_SOURCE_DIR}/include)
set(DOXYGEN_EXCLUDE_SYMBOLS "detail" "*::detail" "*::detail::*")
set(DOXYGEN_EXTRACT_ALL NO)          # what has no /// comment is not public API to document
set(DOXYGEN_WARN_IF_UNDOCUMENTED NO)
set(DOXYGEN_GENERATE_TREEVIEW YES)
set(DOXYGEN_QUIET YES)
doxygen_add_docs(doxygen ${CMAKE_CURRENT_SOURCE_DIR}/include/diffuse ${CMAKE_CURRENT_SOURCE_DIR}/docs
                 ${CMAKE_CURRENT_SOURCE_DIR}/README.md
                 WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}
                 COMMENT "API reference: ${CMAKE_CURRENT_BINARY_DIR}/doxygen/html/index.html")
