#!/usr/bin/env bash
# sdk_install.sh BUILD_DIR CXX: installs BUILD_DIR into a temporary prefix, builds
# sdk_app.cpp against it with `pkg-config --cflags --libs ringsock-sdk` (as
# docs/sdk-cxx.md says), with CXX and clang++ when it is installed, as C++11 and C++17,
# and runs it; and checks that the C library still needs no C++ runtime.
set -euo pipefail
build=$(cd "$1" && pwd)
compilers=("$2")
command -v clang++ >/dev/null && [[ "$2" != *clang* ]] && compilers+=(clang++)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(find "$tmp/prefix" -name ringsock-sdk.pc)
[ -n "$pc" ] || fail "no ringsock-sdk.pc installed"
export PKG_CONFIG_PATH=${pc%/*}
libdir=$(pkg-config --variable=libdir ringsock-sdk)
[ -f "$(pkg-config --variable=includedir ringsock-sdk)/ringsock-sdk/common/interface/socket.h" ] ||
    fail "common/interface/socket.h not installed"
for cxx in "${compilers[@]}"; do
    for std in c++11 c++17; do
        echo "== $cxx -std=$std"
        # shellcheck disable=SC2046 # the flags are words
        "$cxx" -std=$std -Wall -Wextra -Werror "$here/sdk_app.cpp" \
            $(pkg-config --cflags --libs ringsock-sdk) -Wl,-rpath,"$libdir" -o "$tmp/sdk_app"
        out=$("$tmp/sdk_app" 2>&1) || fail "sdk_app failed: $out"
        [ "$out" = ok ] || fail "sdk_app printed: $out"
    done
done
# C programs get no C++ runtime from ringsock.
if readelf -d "$libdir/libringsock.so" | grep -q 'libstdc++'; then
    fail "libringsock.so needs libstdc++"
fi
echo "ok"
