# libsrtp2.cmake: the SRTP library behind ringsock's DTLS-SRTP sockets, as the
# target ringsock::srtp (include <srtp2/srtp.h>).
#
#   include(cmake/libsrtp2.cmake)
#   target_link_libraries(foo PRIVATE ringsock::srtp)
#
# Why not Debian's libsrtp2-1: it is built with --enable-nss, and NSS makes
# every protect/unprotect go through PK11 contexts (mutexes, malloc/free per
# call): about half of a DTLS-SRTP socket's CPU time (perf/results/srtp.md).
# So by default libsrtp2 is built here from Debian's source package with its
# OpenSSL crypto backend (EVP, AES-NI), static and position-independent.
#
# Cache variables:
#   RINGSOCK_SRTP_FROM_SOURCE  ON (default): build it as above; OFF: use the
#                              system libsrtp2 through pkg-config
#                              (Debian: libsrtp2-dev), NSS and all.
#   RINGSOCK_SRTP_SOURCE       unpacked libsrtp2 source tree; empty (default):
#                              run scripts/fetch-source libsrtp2 (apt-get
#                              source) at configure time and use what it prints.
#
# Sets RINGSOCK_SRTP_PREFIX (the install prefix holding lib/libsrtp2.a; empty
# with the system library) and RINGSOCK_SRTP_VERSION.
#
# Unlike wolfSSL (cmake/wolfssl.cmake), the built library is not cached across
# build trees: it takes a few seconds to build, less than a cache would save
# in code to keep right. The fetched source is cached (by fetch-source).

include_guard(GLOBAL)

option(RINGSOCK_SRTP_FROM_SOURCE
  "Build libsrtp2 from Debian's source package with OpenSSL crypto (OFF: system libsrtp2)" ON)

if(NOT RINGSOCK_SRTP_FROM_SOURCE)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(SRTP REQUIRED IMPORTED_TARGET GLOBAL libsrtp2)
  add_library(ringsock::srtp INTERFACE IMPORTED GLOBAL)
  set_target_properties(ringsock::srtp PROPERTIES INTERFACE_LINK_LIBRARIES PkgConfig::SRTP)
  set(RINGSOCK_SRTP_PREFIX "")
  set(RINGSOCK_SRTP_VERSION "${SRTP_VERSION}")
  message(STATUS "libsrtp2 ${SRTP_VERSION}: system library (pkg-config)")
  return()
endif()

include(ExternalProject)
include(${CMAKE_CURRENT_LIST_DIR}/debian-source.cmake)
# libsrtp2 2.5 wants OpenSSL >= 1.1.0. Found here so that the library and its
# users agree on one libcrypto: its paths are handed to the inner build.
find_package(OpenSSL 1.1.0 REQUIRED COMPONENTS Crypto)

set(RINGSOCK_SRTP_SOURCE "" CACHE PATH
  "Unpacked libsrtp2 source tree (empty: fetch Debian's source package with scripts/fetch-source)")
if(NOT DEFINED RINGSOCK_CACHE_DIR) # normally set by cmake/wolfssl.cmake
  if(DEFINED ENV{RINGSOCK_CACHE} AND NOT "$ENV{RINGSOCK_CACHE}" STREQUAL "")
    set(RINGSOCK_CACHE_DIR "$ENV{RINGSOCK_CACHE}")
  else()
    set(RINGSOCK_CACHE_DIR "$ENV{HOME}/.cache/ringsock")
  endif()
endif()

if(RINGSOCK_SRTP_SOURCE)
  set(_srtp_src "${RINGSOCK_SRTP_SOURCE}")
else()
  ringsock_debian_source(libsrtp2 _srtp_src
    "Instead, -DRINGSOCK_SRTP_SOURCE=DIR can name an unpacked libsrtp2 tree, or -DRINGSOCK_SRTP_FROM_SOURCE=OFF take the system libsrtp2.")
endif()
if(NOT EXISTS "${_srtp_src}/CMakeLists.txt" OR NOT EXISTS "${_srtp_src}/srtp/srtp.c")
  message(FATAL_ERROR "RINGSOCK_SRTP_SOURCE=${_srtp_src} is not a libsrtp2 source tree")
endif()

ringsock_source_version("${_srtp_src}" libsrtp2 RINGSOCK_SRTP_VERSION)
message(STATUS "libsrtp2 ${RINGSOCK_SRTP_VERSION}: building from ${_srtp_src} (OpenSSL ${OPENSSL_VERSION})")

set(RINGSOCK_SRTP_PREFIX "${CMAKE_BINARY_DIR}/_deps/libsrtp2-install")
set(_srtp_toolchain_args "-DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}")
if(CMAKE_TOOLCHAIN_FILE)
  list(APPEND _srtp_toolchain_args "-DCMAKE_TOOLCHAIN_FILE=${CMAKE_TOOLCHAIN_FILE}")
endif()

# A separate CMake run that sees only these arguments: our -Werror and
# sanitizer flags do not leak in, and CMAKE_C_FLAGS is set so that an
# environment CFLAGS does not either. libsrtp2's CMake build (not the
# autotools one Debian uses) because it has ENABLE_OPENSSL and installs just
# the static library and the four public headers. With OpenSSL, its GCM
# profiles (AEAD_AES_128/256_GCM) are built too, as they were with NSS.
ExternalProject_Add(ringsock_srtp_ep
  SOURCE_DIR "${_srtp_src}"
  BINARY_DIR "${CMAKE_BINARY_DIR}/_deps/libsrtp2-build"
  PREFIX "${CMAKE_BINARY_DIR}/_deps/libsrtp2-ep"
  INSTALL_DIR "${RINGSOCK_SRTP_PREFIX}"
  DOWNLOAD_COMMAND ""
  UPDATE_COMMAND ""
  CMAKE_ARGS
    ${_srtp_toolchain_args}
    -DCMAKE_BUILD_TYPE=Release
    "-DCMAKE_C_FLAGS="
    -DBUILD_SHARED_LIBS=OFF
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON  # it goes into libringsock.so
    -DENABLE_OPENSSL=ON
    "-DOPENSSL_INCLUDE_DIR=${OPENSSL_INCLUDE_DIR}"
    "-DOPENSSL_CRYPTO_LIBRARY=${OPENSSL_CRYPTO_LIBRARY}"
    -DTEST_APPS=OFF
    # It adds -Wall -pedantic -Wextra -Werror otherwise: a new compiler's (or
    # OpenSSL 3's deprecation) warning in a dependency must not break our build.
    -DBUILD_WITH_WARNINGS=OFF
    -DENABLE_DEBUG_LOGGING=OFF           # as Debian's --disable-debug
    "-DCMAKE_INSTALL_PREFIX=${RINGSOCK_SRTP_PREFIX}"
  BUILD_BYPRODUCTS "${RINGSOCK_SRTP_PREFIX}/lib/libsrtp2.a"
  LOG_CONFIGURE TRUE
  LOG_BUILD TRUE
  LOG_INSTALL TRUE
  LOG_OUTPUT_ON_FAILURE TRUE)
# The imported target's include dir must exist at generate time.
file(MAKE_DIRECTORY "${RINGSOCK_SRTP_PREFIX}/include")

add_library(ringsock::srtp STATIC IMPORTED GLOBAL)
set_target_properties(ringsock::srtp PROPERTIES
  IMPORTED_LOCATION "${RINGSOCK_SRTP_PREFIX}/lib/libsrtp2.a"
  INTERFACE_INCLUDE_DIRECTORIES "${RINGSOCK_SRTP_PREFIX}/include"
  INTERFACE_LINK_LIBRARIES OpenSSL::Crypto
  # libringsock.so keeps libsrtp2's symbols to itself, so they can neither
  # clash with nor be interposed by another libsrtp2 (Debian's, with NSS)
  # loaded in the same process.
  INTERFACE_LINK_OPTIONS "LINKER:--exclude-libs,libsrtp2.a")
add_dependencies(ringsock::srtp ringsock_srtp_ep)
