#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ringsock-echo under a real seccomp filter that blocks io_uring as Docker's default profile
# does (EPERM) and as older profiles do (ENOSYS): it must say once why it uses epoll, then
# serve TCP, TLS, UDP and a local socket with every byte echoed (ringsock-load checks them;
# the load generator itself runs unfiltered), and stop cleanly on SIGTERM.
#
#   fallback.sh PATH/TO/seccomp-run PATH/TO/ringsock-echo PATH/TO/ringsock-load
set -euo pipefail
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/../interop/lib.sh"

RUN=$(realpath "${1:?usage: fallback.sh SECCOMP_RUN RINGSOCK_ECHO RINGSOCK_LOAD}")
ECHO=$(realpath "${2:?}") LOAD=$(realpath "${3:?}")
T="timeout 20"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringsock-seccomp.XXXXXX")
trap cleanup EXIT
cd "$tmp"
fail() { die "$@"; }
unset RINGSOCK_BACKEND # the fallback is what is tested

# pingpong NAME ARGS...: ringsock-load must succeed (exit 1 at the first wrong byte).
pingpong() {
    local name=$1
    shift
    $T "$LOAD" "$@" > "$name.pp" 2> "$name.pp.err" ||
        fail "$name: ringsock-load $* failed: $(cat "$name.pp.err")"
    grep -q '^msgs/s=' "$name.pp" || fail "$name: no summary from ringsock-load $*"
    echo "$name: ringsock-load $*: $(cut -d' ' -f1-4 "$name.pp")"
}

# serve NAME ERRNO ECHO_ARGS -- LOAD_ARGS: ringsock-echo under the filter, one load run
# against it, then SIGTERM. Its stderr must give the reason and name epoll, once.
serve() {
    local name=$1 err=$2 echo_args=() load_args=()
    shift 2
    while [ "$1" != -- ]; do echo_args+=("$1"); shift; done
    shift
    load_args=("$@")
    start_bg "$name" '^listening on \(.*\)$' "$RUN" "$err" "$ECHO" "${echo_args[@]}"
    local pid=$SERVER_PID target=$PORT
    if [[ $target == [0-9]* ]]; then
        pingpong "$name" --port "$target" "${load_args[@]}"
    else
        pingpong "$name" --local "$target" "${load_args[@]}"
    fi
    stop_server "$name" "$pid"
    local said
    said=$(grep -c 'using the epoll backend' "$name.err" || true)
    [ "$said" = 1 ] || fail "$name: stderr should say once that it uses epoll: $(cat "$name.err")"
    local why="Operation not permitted"
    [ "$err" = ENOSYS ] && why="Function not implemented"
    grep -q "io_uring_setup failed: $why" "$name.err" ||
        fail "$name: stderr does not give the reason ($why): $(cat "$name.err")"
    echo "$name: $(grep 'using the epoll backend' "$name.err")"
}

step "Docker's profile (EPERM)"
serve tcp EPERM --port 0 -- --conns 20 --depth 4 --size 1000 --seconds 1 --warmup 0
serve tls EPERM --tls --port 0 -- --tls --conns 10 --size 1000 --seconds 1 --warmup 0
serve udp EPERM --udp --port 0 -- --udp --conns 10 --seconds 1 --warmup 0
serve local EPERM --local "@ringsock-seccomp-$$" -- --conns 10 --seconds 1 --warmup 0

step "a profile without io_uring (ENOSYS)"
serve tcp-enosys ENOSYS --port 0 -- --conns 100 --seconds 1 --warmup 0
echo "PASS"
