# wolfssl.cmake: build wolfSSL from Debian's source package, as a static,
# position-independent library with the features ringsock's TLS and
# DTLS-SRTP sockets need, and export it as the IMPORTED target
# ringsock::wolfssl.
#
#   include(cmake/wolfssl.cmake)
#   target_link_libraries(foo PRIVATE ringsock::wolfssl)
#
# Consumers should #include <wolfssl/options.h> before any other wolfSSL
# header. The target also defines EXTERNAL_OPTS_OPENVPN, which makes
# wolfssl/wolfcrypt/settings.h include options.h itself, so a forgotten
# include cannot silently give a struct layout that differs from the library.
#
# Cache variables:
#   RINGSOCK_WOLFSSL_SOURCE   unpacked wolfSSL source tree; empty (default):
#                             run scripts/fetch-source wolfssl (apt-get source) at
#                             configure time and use what it prints.
#   RINGSOCK_WOLFSSL_CACHE    ON (default): keep the built library in
#                             ${RINGSOCK_CACHE_DIR}/wolfssl-build/<ver>-<hash>
#                             and reuse it across build trees; OFF: always
#                             build inside this build tree.
#   RINGSOCK_CACHE_DIR        default $ENV{RINGSOCK_CACHE}, else
#                             $ENV{HOME}/.cache/ringsock.
#
# How the cache works: the key hashes everything that changes the library:
# the source tree's path and Debian version, the wolfSSL CMake options and
# extra defines below, the build type, and the C compiler's path, id and
# version. On a hit (the cache dir holds .ringsock-complete) the imported
# target points straight at it and no ExternalProject is created at all. On
# a miss, the ExternalProject builds and installs into
# ${CMAKE_BINARY_DIR}/_deps/wolfssl-install, which the target uses for this
# build tree, and a final step copies that prefix into the cache (to a temp
# dir, then an atomic rename, so parallel build trees cannot publish a half
# tree). The next clean configure with the same key then skips the build.
#
# This file is also run in script mode (cmake -P) for that publish step.

# ---------------------------------------------------------------------------
# Script mode: publish a finished install prefix into the cache.
# ---------------------------------------------------------------------------
if(CMAKE_SCRIPT_MODE_FILE AND DEFINED RINGSOCK_WOLFSSL_PUBLISH_FROM)
  set(_from "${RINGSOCK_WOLFSSL_PUBLISH_FROM}")
  set(_to "${RINGSOCK_WOLFSSL_PUBLISH_TO}")
  if(EXISTS "${_to}/.ringsock-complete")
    return()
  endif()
  string(RANDOM LENGTH 8 _rnd)
  set(_tmp "${_to}.tmp-${_rnd}")
  get_filename_component(_parent "${_to}" DIRECTORY)
  file(MAKE_DIRECTORY "${_parent}")
  file(REMOVE_RECURSE "${_tmp}")
  file(COPY "${_from}/" DESTINATION "${_tmp}")
  file(WRITE "${_tmp}/.ringsock-complete" "${RINGSOCK_WOLFSSL_PUBLISH_KEY}\n")
  # rename(2) of a directory onto an existing non-empty one fails, so this
  # is atomic and never replaces. (NO_REPLACE does not work on directories:
  # CMake implements it with link(2), which gives EPERM.)
  file(RENAME "${_tmp}" "${_to}" RESULT _rc)
  if(NOT _rc EQUAL 0)
    # Another build tree published the same key first; keep theirs.
    file(REMOVE_RECURSE "${_tmp}")
  endif()
  return()
endif()

include_guard(GLOBAL)
include(ExternalProject)
include(${CMAKE_CURRENT_LIST_DIR}/debian-source.cmake)
find_package(Threads REQUIRED)

set(RINGSOCK_WOLFSSL_SOURCE "" CACHE PATH
  "Unpacked wolfSSL source tree (empty: fetch Debian's source package with scripts/fetch-source)")
option(RINGSOCK_WOLFSSL_CACHE "Reuse a wolfSSL build cached under RINGSOCK_CACHE_DIR" ON)
if(DEFINED ENV{RINGSOCK_CACHE} AND NOT "$ENV{RINGSOCK_CACHE}" STREQUAL "")
  set(_ringsock_cache_default "$ENV{RINGSOCK_CACHE}")
else()
  set(_ringsock_cache_default "$ENV{HOME}/.cache/ringsock")
endif()
set(RINGSOCK_CACHE_DIR "${_ringsock_cache_default}" CACHE PATH
  "Cache for downloaded and built third-party code")
set(RINGSOCK_WOLFSSL_BUILD_TYPE "Release" CACHE STRING
  "CMAKE_BUILD_TYPE for the wolfSSL build (independent of ringsock's)")

# ---------------------------------------------------------------------------
# Source
# ---------------------------------------------------------------------------
if(RINGSOCK_WOLFSSL_SOURCE)
  set(_wolfssl_src "${RINGSOCK_WOLFSSL_SOURCE}")
else()
  ringsock_debian_source(wolfssl _wolfssl_src
    "Instead, -DRINGSOCK_WOLFSSL_SOURCE=DIR can name an unpacked wolfSSL tree.")
endif()
if(NOT EXISTS "${_wolfssl_src}/CMakeLists.txt" OR NOT EXISTS "${_wolfssl_src}/src/ssl.c")
  message(FATAL_ERROR "RINGSOCK_WOLFSSL_SOURCE=${_wolfssl_src} is not a wolfSSL source tree")
endif()

# Our patches (cmake/wolfssl-patches/*.patch, each says why) go onto a copy of the
# source in the cache, named by the patches' hash: the fetched tree stays as Debian
# ships it. The copy is made once, to a temp dir and renamed, like the build cache.
file(GLOB _wolfssl_patches "${CMAKE_CURRENT_LIST_DIR}/wolfssl-patches/*.patch")
list(SORT _wolfssl_patches)
if(_wolfssl_patches)
  set(_patch_text "")
  foreach(_p ${_wolfssl_patches})
    file(READ "${_p}" _t)
    string(APPEND _patch_text "${_t}")
  endforeach()
  string(SHA256 _patch_hash "${_wolfssl_src}\n${_patch_text}")
  string(SUBSTRING "${_patch_hash}" 0 16 _patch_hash)
  get_filename_component(_src_name "${_wolfssl_src}" NAME)
  set(_patched "${RINGSOCK_CACHE_DIR}/wolfssl-patched/${_src_name}-${_patch_hash}")
  if(NOT EXISTS "${_patched}/.ringsock-complete")
    find_program(RINGSOCK_PATCH patch REQUIRED)
    string(RANDOM LENGTH 8 _rnd)
    set(_tmp "${_patched}.tmp-${_rnd}")
    file(REMOVE_RECURSE "${_tmp}")
    file(MAKE_DIRECTORY "${_tmp}")
    file(COPY "${_wolfssl_src}/" DESTINATION "${_tmp}")
    foreach(_p ${_wolfssl_patches})
      execute_process(COMMAND ${RINGSOCK_PATCH} -p1 --forward --input "${_p}"
                      WORKING_DIRECTORY "${_tmp}" RESULT_VARIABLE _rc OUTPUT_VARIABLE _out
                      ERROR_VARIABLE _out)
      if(NOT _rc EQUAL 0)
        file(REMOVE_RECURSE "${_tmp}")
        message(FATAL_ERROR "wolfSSL: ${_p} does not apply to ${_wolfssl_src}:\n${_out}")
      endif()
    endforeach()
    file(WRITE "${_tmp}/.ringsock-complete" "${_patch_hash}\n")
    file(RENAME "${_tmp}" "${_patched}" RESULT _rc)
    if(NOT _rc EQUAL 0)
      file(REMOVE_RECURSE "${_tmp}") # another build tree made it first
    endif()
  endif()
  message(STATUS "wolfSSL: patched source ${_patched}")
  set(_wolfssl_src "${_patched}")
endif()

ringsock_source_version("${_wolfssl_src}" wolfssl _wolfssl_version)
string(REGEX REPLACE "[^A-Za-z0-9.+~-]" "_" _wolfssl_version_tag "${_wolfssl_version}")

# ---------------------------------------------------------------------------
# Options. wolfSSL 5.5.4's CMake build has no switch for SRTP, ALPN, the
# secret callback, the keying-material exporter or DTLS MTU, so those go in
# as -D flags in CMAKE_C_FLAGS: its CMakeLists writes every -D of
# CMAKE_C_FLAGS into the generated wolfssl/options.h, so consumers see them.
# ---------------------------------------------------------------------------
set(_wolfssl_extra_defines
  -DWOLFSSL_SRTP                     # DTLS use_srtp (RFC 5764)
  -DHAVE_ALPN
  -DHAVE_SECRET_CALLBACK             # wolfSSL_set_tls13_secret_cb & co
  -DHAVE_KEYING_MATERIAL             # wolfSSL_export_keying_material (RFC 5705)
  -DWOLFSSL_DTLS_MTU                 # wolfSSL_dtls_set_mtu
  -DHAVE_SERVER_RENEGOTIATION_INFO   # autotools' default: send renegotiation_info
  -DKEEP_PEER_CERT                   # the peer certificate's DER, for its fingerprint
  -DWOLFSSL_EXTRA_ALERTS             # tell the peer why a handshake failed (bad_certificate...)
  # The client checks the server's name itself (tls/verify.c): its verify callback must
  # also run when the chain is good, and the certificate's IP SANs must be decoded.
  -DWOLFSSL_ALWAYS_VERIFY_CB
  -DWOLFSSL_IP_ALT_NAME
  # The record keys, IVs and sequence numbers after the handshake (wolfSSL_GetClientWriteKey
  # & co), which kernel TLS takes over (tls/ktls.c).
  -DATOMIC_USER
)

# wolfSSL's CMake build puts platform facts (HAVE___UINT128_T, SIZEOF_LONG,
# ...) into a private config.h that consumers never see, but some of them
# change public struct layouts: HAVE___UINT128_T picks SP_WORD_SIZE 64 over
# 32 in sp_int.h, so a consumer without it disagrees with the library about
# the size of mp_int, ecc_key, RsaKey, WC_RNG users... and crashes. So its
# config.h is turned off (WOLFSSL_CONFIG_H=no) and the same facts are probed
# here and passed as -D flags, which land in options.h: the library and its
# users then see one and the same configuration.
include(CheckTypeSize)
include(CheckIncludeFile)
include(CheckSymbolExists)
check_type_size("__uint128_t" RINGSOCK_WOLFSSL_UINT128)
check_type_size("long" RINGSOCK_WOLFSSL_SIZEOF_LONG)
check_type_size("long long" RINGSOCK_WOLFSSL_SIZEOF_LONG_LONG)
check_type_size("time_t" RINGSOCK_WOLFSSL_SIZEOF_TIME_T)
if(HAVE_RINGSOCK_WOLFSSL_UINT128)
  list(APPEND _wolfssl_extra_defines -DHAVE___UINT128_T=1)
endif()
foreach(_t LONG LONG_LONG TIME_T)
  if(HAVE_RINGSOCK_WOLFSSL_SIZEOF_${_t})
    list(APPEND _wolfssl_extra_defines "-DSIZEOF_${_t}=${RINGSOCK_WOLFSSL_SIZEOF_${_t}}")
  endif()
endforeach()
foreach(_h arpa/inet.h sys/socket.h errno.h limits.h strings.h string.h sys/time.h)
  string(TOUPPER "HAVE_${_h}" _v)
  string(REGEX REPLACE "[/.]" "_" _v "${_v}")
  check_include_file("${_h}" RINGSOCK_WOLFSSL_${_v})
  if(RINGSOCK_WOLFSSL_${_v})
    list(APPEND _wolfssl_extra_defines "-D${_v}=1")
  endif()
endforeach()
check_symbol_exists(gmtime_r "time.h" RINGSOCK_WOLFSSL_HAVE_GMTIME_R)
check_symbol_exists(getaddrinfo "netdb.h" RINGSOCK_WOLFSSL_HAVE_GETADDRINFO)
check_symbol_exists(strftime "time.h" RINGSOCK_WOLFSSL_HAVE_STRFTIME)
foreach(_v HAVE_GMTIME_R HAVE_GETADDRINFO HAVE_STRFTIME)
  if(RINGSOCK_WOLFSSL_${_v})
    list(APPEND _wolfssl_extra_defines "-D${_v}=1")
  endif()
endforeach()
if(CMAKE_C_BYTE_ORDER STREQUAL "BIG_ENDIAN")
  list(APPEND _wolfssl_extra_defines -DWORDS_BIGENDIAN=1)
endif()

# AES-NI: constant-time, fast AES/GCM via wolfSSL's x86_64 assembly (used
# only when CPUID says the CPU has it). 5.5.4's CMake has the source list for
# it (WOLFSSL_AESNI) but not the flags, so those go in here as autotools'
# --enable-aesni would set them.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(_wolfssl_aesni_default ON)
else()
  set(_wolfssl_aesni_default OFF)
endif()
option(RINGSOCK_WOLFSSL_AESNI "Build wolfSSL with AES-NI (x86_64)" ${_wolfssl_aesni_default})
set(_wolfssl_aesni_options -DWOLFSSL_AESNI=no)
if(RINGSOCK_WOLFSSL_AESNI)
  list(APPEND _wolfssl_extra_defines -DWOLFSSL_AESNI -maes)
  set(_wolfssl_aesni_options -DWOLFSSL_AESNI=yes)
endif()
# AVX1/AVX2 code paths (AES-GCM, and the SP P-256 code's MULX/ADX one), chosen at run time
# by CPUID, so a CPU without them takes the AES-NI ones: autotools' --enable-intelasm has
# them, but 5.5.4's CMake tests BUILD_INTELASM while setting BUILD_INTEL_ASM, so it never
# does. Only these two macros: USE_INTEL_SPEEDUP would also want assembly for SHA-2 and
# Poly1305 that this CMake does not build.
set(_wolfssl_avx_defines "")
if(RINGSOCK_WOLFSSL_AESNI)
  set(_wolfssl_avx_defines -DHAVE_INTEL_AVX1 -DHAVE_INTEL_AVX2)
  list(APPEND _wolfssl_extra_defines ${_wolfssl_avx_defines})
endif()

# P-256 (and RSA) in wolfSSL's single-precision x86_64 assembly: about ten times the
# portable code's ECDH and ECDSA speed, so handshakes per core go up as much. 5.5.4's
# CMake compiles the sources (WOLFSSL_SP*) but sets none of the macros, so they go in
# here, for the C files (and options.h) and for the assembly alike, as autotools'
# --enable-sp --enable-sp-asm would.
option(RINGSOCK_WOLFSSL_SP_ASM "Build wolfSSL's x86_64 SP assembly for P-256/RSA"
       ${_wolfssl_aesni_default})
set(_wolfssl_sp_options -DWOLFSSL_SP=no)
set(_wolfssl_asm_flags "")
if(RINGSOCK_WOLFSSL_SP_ASM)
  set(_wolfssl_sp_defines -DWOLFSSL_HAVE_SP_ECC -DWOLFSSL_HAVE_SP_RSA -DWOLFSSL_SP_ASM
      -DWOLFSSL_SP_X86_64_ASM -DWOLFSSL_SP_X86_64 -DWOLFSSL_X86_64_BUILD)
  list(APPEND _wolfssl_extra_defines ${_wolfssl_sp_defines})
  string(REPLACE ";" " " _wolfssl_asm_flags "${_wolfssl_sp_defines};${_wolfssl_avx_defines}")
  set(_wolfssl_sp_options -DWOLFSSL_SP=yes -DWOLFSSL_SP_ASM=yes -DWOLFSSL_SP_X86_64_ASM=yes)
endif()

string(REPLACE ";" " " _wolfssl_c_flags "${_wolfssl_extra_defines}")

set(_wolfssl_options
  -DBUILD_SHARED_LIBS=OFF
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON
  "-DCMAKE_BUILD_TYPE=${RINGSOCK_WOLFSSL_BUILD_TYPE}"
  # wolfSSL prepends -Wall -Wextra -Wno-unused -Werror unless this is set:
  # a new compiler's warning in a dependency must not break our build.
  "-DWARNING_C_FLAGS="
  # options.h goes into the build dir, not the shared (cached) source tree.
  -DWOLFSSL_BUILD_OUT_OF_TREE=yes
  -DWOLFSSL_CONFIG_H=no              # see the platform probes above
  -DWOLFSSL_EXAMPLES=no
  -DWOLFSSL_CRYPT_TESTS=no
  # protocols
  -DWOLFSSL_TLS13=yes
  -DWOLFSSL_TLSV12=yes
  -DWOLFSSL_OLD_TLS=no
  -DWOLFSSL_DTLS=yes
  # DTLS 1.2 only: DTLS 1.3 would add about 1 KB to every WOLFSSL object, TLS
  # ones included. 5.5.4's CMake compiles src/dtls.c (DTLS 1.2 stateless
  # cookies) only with DTLS 1.3 connection IDs; wolfssl-patches/0002 fixes that.
  -DWOLFSSL_DTLS13=no
  -DWOLFSSL_DTLS_CID=no
  -DWOLFSSL_HRR_COOKIE=yes           # TLS 1.3 servers: a stateless HelloRetryRequest
  -DWOLFSSL_SNI=yes
  -DWOLFSSL_SESSION_TICKET=yes
  -DWOLFSSL_SUPPORTED_CURVES=yes
  -DWOLFSSL_EXTENDED_MASTER=yes
  -DWOLFSSL_SYS_CA_CERTS=yes
  # public key: ECC (P-256 and friends) for our certificates; RSA (+PSS,
  # which TLS 1.3 requires) to verify the servers' chains; X25519 key exchange;
  # no DH, DSA, Ed25519/448
  -DWOLFSSL_ECC=yes
  -DWOLFSSL_RSA=yes
  -DWOLFSSL_RSA_PSS=yes
  -DWOLFSSL_OAEP=no
  -DWOLFSSL_DH=no
  -DWOLFSSL_DSA=no
  -DWOLFSSL_CURVE25519=yes           # X25519: most peers' first TLS 1.3 key share
  -DWOLFSSL_ED25519=no
  # certificate generation
  -DWOLFSSL_KEYGEN=yes
  -DWOLFSSL_CERTGEN=yes
  # symmetric: AES-GCM/CBC, AES-CTR (SRTP AES_CM), ChaCha20-Poly1305
  -DWOLFSSL_AESGCM=yes
  -DWOLFSSL_AESCBC=yes
  -DWOLFSSL_AESCTR=yes
  -DWOLFSSL_CHACHA=yes
  -DWOLFSSL_POLY1305=yes
  -DWOLFSSL_SHA3=no
  -DWOLFSSL_DES3=no
  -DWOLFSSL_ARC4=no
  -DWOLFSSL_PKCS12=no
  -DWOLFSSL_OPENSSLEXTRA=no
  -DWOLFSSL_HARDEN=yes
  ${_wolfssl_aesni_options}
  ${_wolfssl_sp_options}
)

# The compiler must be the same one ringsock uses.
set(_wolfssl_toolchain_args "-DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}")
if(CMAKE_TOOLCHAIN_FILE)
  list(APPEND _wolfssl_toolchain_args "-DCMAKE_TOOLCHAIN_FILE=${CMAKE_TOOLCHAIN_FILE}")
endif()

# Bump this when the way the library is built changes in a way the key does
# not otherwise capture.
set(_wolfssl_recipe 2)
string(JOIN "\n" _wolfssl_key_text
  "recipe=${_wolfssl_recipe}"
  "src=${_wolfssl_src}"
  "version=${_wolfssl_version}"
  "options=${_wolfssl_options}"
  "cflags=${_wolfssl_c_flags}"
  "cc=${CMAKE_C_COMPILER};${CMAKE_C_COMPILER_ID};${CMAKE_C_COMPILER_VERSION}"
  "toolchain=${CMAKE_TOOLCHAIN_FILE}"
  "system=${CMAKE_SYSTEM_NAME};${CMAKE_SYSTEM_PROCESSOR}")
string(SHA256 _wolfssl_hash "${_wolfssl_key_text}")
string(SUBSTRING "${_wolfssl_hash}" 0 16 _wolfssl_hash)
set(_wolfssl_key "${_wolfssl_version_tag}-${_wolfssl_hash}")

set(_wolfssl_cached_prefix "${RINGSOCK_CACHE_DIR}/wolfssl-build/${_wolfssl_key}")
set(_wolfssl_local_prefix "${CMAKE_BINARY_DIR}/_deps/wolfssl-install")

if(RINGSOCK_WOLFSSL_CACHE
   AND EXISTS "${_wolfssl_cached_prefix}/.ringsock-complete"
   AND EXISTS "${_wolfssl_cached_prefix}/lib/libwolfssl.a"
   AND EXISTS "${_wolfssl_cached_prefix}/include/wolfssl/options.h")
  set(RINGSOCK_WOLFSSL_PREFIX "${_wolfssl_cached_prefix}")
  set(_wolfssl_build FALSE)
  message(STATUS "wolfSSL ${_wolfssl_version}: cached build ${RINGSOCK_WOLFSSL_PREFIX}")
  # If the cache entry is deleted later, re-run CMake (which then builds it
  # again) rather than fail on a missing libwolfssl.a.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
    "${_wolfssl_cached_prefix}/.ringsock-complete")
else()
  set(RINGSOCK_WOLFSSL_PREFIX "${_wolfssl_local_prefix}")
  set(_wolfssl_build TRUE)
  message(STATUS "wolfSSL ${_wolfssl_version}: building from ${_wolfssl_src}")
endif()
set(RINGSOCK_WOLFSSL_VERSION "${_wolfssl_version}")

if(_wolfssl_build)
  # A build dir configured from another source tree (the patches changed, so did the
  # patched copy) makes CMake refuse to configure there: start it afresh.
  set(_wolfssl_bin "${CMAKE_BINARY_DIR}/_deps/wolfssl-build")
  if(EXISTS "${_wolfssl_bin}/CMakeCache.txt")
    file(STRINGS "${_wolfssl_bin}/CMakeCache.txt" _home REGEX "^CMAKE_HOME_DIRECTORY:")
    if(NOT _home STREQUAL "CMAKE_HOME_DIRECTORY:INTERNAL=${_wolfssl_src}")
      file(REMOVE_RECURSE "${_wolfssl_bin}" "${CMAKE_BINARY_DIR}/_deps/wolfssl-ep")
    endif()
  endif()
  # An ExternalProject is a separate CMake run that sees only these
  # arguments: nothing of ours (the top-level add_compile_options -Wall
  # -Wextra -Werror, sanitizer flags) leaks in. CMAKE_C_FLAGS is set
  # explicitly, so an environment CFLAGS does not leak in either.
  ExternalProject_Add(ringsock_wolfssl_ep
    SOURCE_DIR "${_wolfssl_src}"
    BINARY_DIR "${_wolfssl_bin}"
    PREFIX "${CMAKE_BINARY_DIR}/_deps/wolfssl-ep"
    INSTALL_DIR "${_wolfssl_local_prefix}"
    DOWNLOAD_COMMAND ""
    UPDATE_COMMAND ""
    CMAKE_ARGS
      ${_wolfssl_toolchain_args}
      ${_wolfssl_options}
      "-DCMAKE_C_FLAGS=${_wolfssl_c_flags}"
      "-DCMAKE_ASM_FLAGS=${_wolfssl_asm_flags}"
      "-DCMAKE_INSTALL_PREFIX=${_wolfssl_local_prefix}"
      -DCMAKE_INSTALL_LIBDIR=lib
      -DCMAKE_INSTALL_INCLUDEDIR=include
    BUILD_BYPRODUCTS "${_wolfssl_local_prefix}/lib/libwolfssl.a"
    LOG_CONFIGURE TRUE
    LOG_BUILD TRUE
    LOG_INSTALL TRUE
    LOG_OUTPUT_ON_FAILURE TRUE)
  if(RINGSOCK_WOLFSSL_CACHE)
    ExternalProject_Add_Step(ringsock_wolfssl_ep publish
      COMMENT "Publishing wolfSSL build to ${_wolfssl_cached_prefix}"
      COMMAND ${CMAKE_COMMAND}
        "-DRINGSOCK_WOLFSSL_PUBLISH_FROM=${_wolfssl_local_prefix}"
        "-DRINGSOCK_WOLFSSL_PUBLISH_TO=${_wolfssl_cached_prefix}"
        "-DRINGSOCK_WOLFSSL_PUBLISH_KEY=${_wolfssl_key}"
        -P "${CMAKE_CURRENT_LIST_FILE}"
      DEPENDEES install)
  endif()
  # The imported target's include dir must exist at generate time. The key
  # text goes along into the cache, to tell what a cached build was made of.
  file(MAKE_DIRECTORY "${_wolfssl_local_prefix}/include")
  file(WRITE "${_wolfssl_local_prefix}/ringsock-wolfssl-key.txt" "${_wolfssl_key_text}\n")
endif()

if(NOT TARGET ringsock::wolfssl)
  add_library(ringsock::wolfssl STATIC IMPORTED GLOBAL)
endif()
set_target_properties(ringsock::wolfssl PROPERTIES
  IMPORTED_LOCATION "${RINGSOCK_WOLFSSL_PREFIX}/lib/libwolfssl.a"
  INTERFACE_INCLUDE_DIRECTORIES "${RINGSOCK_WOLFSSL_PREFIX}/include"
  # settings.h includes wolfssl/options.h when this is defined (only
  # wolfSSL's own internal.c rejects it), so every consumer sees the same
  # configuration as the library even without #include <wolfssl/options.h>.
  INTERFACE_COMPILE_DEFINITIONS "EXTERNAL_OPTS_OPENVPN"
  INTERFACE_LINK_LIBRARIES "m;Threads::Threads"
  # A shared library that links this keeps wolfSSL's symbols to itself: they
  # are not exported, so they can neither clash with nor be interposed by
  # another libwolfssl (e.g. Debian's, built with other options) loaded in
  # the same process.
  INTERFACE_LINK_OPTIONS "LINKER:--exclude-libs,libwolfssl.a")
if(_wolfssl_build)
  add_dependencies(ringsock::wolfssl ringsock_wolfssl_ep)
endif()
