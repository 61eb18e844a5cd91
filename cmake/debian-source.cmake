# The Debian source packages of the libraries ringsock builds itself (wolfssl.cmake,
# libsrtp2.cmake): fetched and unpacked by scripts/fetch-source, and their versions.
include_guard(GLOBAL)

# ringsock_debian_source(PKG OUT HINT): the unpacked tree of Debian's source package PKG,
# cached under RINGSOCK_CACHE_DIR, in OUT. Stops the configure, with HINT (what the user
# can set instead), if it cannot be had.
function(ringsock_debian_source pkg out hint)
  get_filename_component(root "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/.." ABSOLUTE)
  message(STATUS "${pkg}: fetching Debian source package (scripts/fetch-source ${pkg})")
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env "RINGSOCK_CACHE=${RINGSOCK_CACHE_DIR}"
            "${root}/scripts/fetch-source" ${pkg}
    OUTPUT_VARIABLE src
    ERROR_VARIABLE err
    ECHO_ERROR_VARIABLE   # progress of a first download shows as it happens
    RESULT_VARIABLE rc
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0 OR NOT IS_DIRECTORY "${src}")
    message(FATAL_ERROR "scripts/fetch-source ${pkg} failed (${rc}):\n${err}\n${hint}")
  endif()
  set(${out} "${src}" PARENT_SCOPE)
endfunction()

# ringsock_source_version(SRC PROJECT OUT): Debian's version (debian/changelog) if SRC is
# a Debian source package, else upstream's from the `project(PROJECT VERSION ...)` line.
function(ringsock_source_version src project out)
  set(version "")
  if(EXISTS "${src}/debian/changelog")
    file(STRINGS "${src}/debian/changelog" cl LIMIT_COUNT 1)
    string(REGEX MATCH "\\(([^)]+)\\)" m "${cl}")
    set(version "${CMAKE_MATCH_1}")
  endif()
  if(version STREQUAL "")
    file(STRINGS "${src}/CMakeLists.txt" pl REGEX "^project\\(${project} VERSION")
    string(REGEX MATCH "VERSION ([0-9.]+)" m "${pl}")
    set(version "${CMAKE_MATCH_1}")
  endif()
  set(${out} "${version}" PARENT_SCOPE)
endfunction()
