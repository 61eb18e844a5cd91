#!/usr/bin/env bash
# install_link.sh BUILD_DIR CC...: installs BUILD_DIR into a temporary prefix and builds
# app.c against it the ways README.md documents ("Build and use"), with each compiler given
# (and clang when it is installed): pkg-config shared, ringsock-static, `cc -static`, and the
# CMake package. Checks what each binary needs at run time (readelf) and that it runs; and
# that udp_app.c, plain UDP linked with ringsock-static, holds no wolfSSL or libsrtp2.
# install_link.sh --prefix DIR CC...: the same against a tree installed already (DIR is
# usr/ of the extracted Debian packages: scripts/package).
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$1" = --prefix ]; then
    prefix=$(cd "$2" && pwd)
    shift 2
else
    prefix=$tmp/prefix
    cmake --install "$1" --prefix "$prefix" >/dev/null
    shift
fi
here=$(cd "$(dirname "$0")" && pwd)
compilers=("$@")
command -v clang >/dev/null && [[ " ${compilers[*]} " != *clang* ]] && compilers+=(clang)

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
needed() { readelf -d "$1" | awk '/\(NEEDED\)/ { gsub(/[][]/, "", $5); print $5 }'; }
no_tls() { # BINARY: fails if wolfSSL/wolfCrypt or libsrtp2 came into it
    local found
    found=$(nm "$1" | grep -E ' [A-Za-z] (wolfSSL_|wc_|srtp_)' | head -3) || true
    [ -z "$found" ] || fail "$1 links the TLS/DTLS libraries: $found"
}
runs() { # BINARY [ENV=VALUE...]: prints ok and exits 0
    local bin=$1 out
    shift
    out=$(env "$@" "$bin" 2>&1) || fail "$bin${*:+ with $*} failed: $out"
    [ "$out" = ok ] || fail "$bin printed: $out"
}

pc=$(find "$prefix" -name ringsock.pc)
[ -n "$pc" ] || fail "no ringsock.pc installed"
export PKG_CONFIG_PATH=${pc%/*}
libdir=$(pkg-config --variable=libdir ringsock)
shared_flags=$(pkg-config --cflags --libs ringsock)
static_flags=$(pkg-config --cflags --libs ringsock-static)
full_flags=$(pkg-config --static --cflags --libs ringsock)

# shellcheck disable=SC2086 # the flags are words
for cc in "${compilers[@]}"; do
    echo "== $cc"
    out=$tmp/$(basename "$cc")
    # Shared: libringsock.so.0 is found through the rpath, or LD_LIBRARY_PATH.
    "$cc" -Wall -Wextra -Werror "$here/app.c" $shared_flags -o "$out-shared"
    needed "$out-shared" | grep -qx libringsock.so.0 || fail "shared: no libringsock.so.0 NEEDED"
    # (a temporary prefix is not in ld.so.conf: the checks below would pass for nothing else)
    if "$out-shared" >/dev/null 2>&1; then fail "shared: ran without rpath or LD_LIBRARY_PATH"; fi
    runs "$out-shared" LD_LIBRARY_PATH="$libdir"
    "$cc" -Wall -Wextra -Werror "$here/app.c" $shared_flags \
        -Wl,-rpath,"$libdir" -o "$out-rpath"
    runs "$out-rpath"
    # ringsock-static: ringsock, wolfSSL and libsrtp2 inside; liburing and libc shared.
    "$cc" -Wall -Wextra -Werror "$here/app.c" $static_flags \
        -o "$out-static"
    if needed "$out-static" | grep -q ringsock; then fail "ringsock-static: $(needed "$out-static" | xargs)"; fi
    runs "$out-static"
    # Plain UDP alone links neither wolfSSL nor libsrtp2: only EnableDTLS brings the DTLS layer.
    "$cc" -Wall -Wextra -Werror "$here/udp_app.c" $static_flags -o "$out-udp-static"
    no_tls "$out-udp-static"
    runs "$out-udp-static"
    # All static: the archives --static names, and the system's.
    "$cc" -static -Wall -Wextra -Werror "$here/app.c" $full_flags \
        -o "$out-full" 2>"$tmp/ld.err" || fail "cc -static: $(cat "$tmp/ld.err")"
    [ -z "$(needed "$out-full")" ] || fail "cc -static: needs $(needed "$out-full" | xargs)"
    runs "$out-full"
done

echo "== CMake package"
mkdir "$tmp/cmake"
cat >"$tmp/cmake/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(app C)
find_package(ringsock REQUIRED)
add_executable(app-shared "$here/app.c")
target_link_libraries(app-shared PRIVATE ringsock::ringsock)
add_executable(app-static "$here/app.c")
target_link_libraries(app-static PRIVATE ringsock::ringsock_static)
CMAKE
cmake -S "$tmp/cmake" -B "$tmp/cmake/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="${compilers[0]}" >"$tmp/cmake.log" 2>&1 || fail "find_package: $(cat "$tmp/cmake.log")"
cmake --build "$tmp/cmake/build" >"$tmp/cmake.log" 2>&1 || fail "CMake build: $(cat "$tmp/cmake.log")"
needed "$tmp/cmake/build/app-shared" | grep -qx libringsock.so.0 || fail "ringsock::ringsock is not the shared library"
runs "$tmp/cmake/build/app-shared" # CMake's build-tree rpath
if needed "$tmp/cmake/build/app-static" | grep -q ringsock; then fail "ringsock::ringsock_static needs libringsock"; fi
runs "$tmp/cmake/build/app-static"
echo "ok"
