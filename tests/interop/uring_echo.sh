#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Smoke test of the raw io_uring baseline server (perf/baselines/uring_echo.c, the upper
# bound scripts/bench measures ringsock against), so that it cannot rot:
#
#   uring_echo.sh PATH/TO/uring-echo PATH/TO/ringsock-load
#
# For each configuration (the default: recv bundles and direct descriptors where the kernel
# has them; --no-bundle --no-direct; a pool of 16 buffers of 512 B, which runs dry all the
# time: ENOBUFS, recvs armed again once buffers come back):
#   1. ringsock-load (every echoed byte checked): 64 B ping-pong on 1, 100 and 1000
#      connections, pipelined depth 16 at 64 B and 3001 B (messages that straddle buffers),
#      bulk 64 KiB and 100000 B (several messages in flight), churn.
#   2. Peers that reset (SO_LINGER 0) with data in flight, and one that half-closes: all of
#      its bytes come back, then EOF; afterwards the server still echoes, and (without direct
#      descriptors) holds no more fds than before.
#   3. Back-pressure (tls_backpressure.py --tcp): a client sends 50 MB without reading; the
#      server must stop reading, its RSS must not grow by more than 8 MiB, and then all of it
#      must come back.
#   4. SIGTERM: exit status 0 within 2 s.
# Exits 77 (skipped) without python3.
set -euo pipefail
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

SERVER=${1:?usage: uring_echo.sh URING_ECHO RINGSOCK_LOAD}
LOAD=${2:?usage: uring_echo.sh URING_ECHO RINGSOCK_LOAD}
SERVER=$(realpath "$SERVER") LOAD=$(realpath "$LOAD")
BACKPRESSURE=$(realpath "$(dirname "$0")/tls_backpressure.py")
T="timeout 60" # every client command runs under this

need_tools "apt-get install python3" python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringsock-uring-echo.XXXXXX")
trap cleanup EXIT
cd "$tmp"
fail() { die "$@"; } # the first failure ends the test
ulimit -n 4096 2> /dev/null || true # 1000 connections on each side

# load NAME ARGS...: ringsock-load must succeed (it fails at the first wrong byte, and when
# a connection completed no message) and complete at least 100 messages in LOAD_SECS (0.3 s;
# more where a starved pool makes each message wait for buffers, as under a busy CI).
LOAD_SECS=0.3
load() {
    local name=$1
    shift
    $T "$LOAD" --port "$PORT" --seconds "$LOAD_SECS" --warmup 0 --quiet "$@" > "$name.load" \
        2> "$name.lerr" || fail "$name: ringsock-load $* failed: $(cat "$name.lerr")"
    awk -v s="$LOAD_SECS" '{ for (i = 1; i <= NF; i++) if ($i ~ /^msgs\/s=/) { sub(/.*=/, "", $i);
        exit !($i * s >= 100) } exit 1 }' "$name.load" ||
        fail "$name: fewer than 100 messages: $(cat "$name.load")"
    echo "$name: ringsock-load $*: $(cut -d' ' -f1,2 "$name.load")"
}

# Resets with data in flight both ways, and a half-close whose echo must arrive in full.
peers() {
    $T python3 - "$PORT" << 'EOF'
import os, socket, struct, sys
port = int(sys.argv[1])
data = os.urandom(1 << 20)
for i in range(20):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data[: 4096 * (i + 1)])
    if i % 2:
        s.recv(100)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
if got != data:
    sys.exit(f"half-close: {len(got)} bytes back of {len(data)}, or not the same")
print(f"20 resets, then a half-close: all {len(data)} bytes back, then EOF")
EOF
}

fds() { find "/proc/$1/fd" -mindepth 1 | wc -l; }

run() { # NAME SERVER_ARGS...
    local name=$1 before
    shift
    step "uring-echo $*"
    start_bg "$name" '^listening on \([0-9]*\)$' "$SERVER" "$@" --port 0
    load "$name-pp1" --conns 1 --size 64
    load "$name-pp100" --conns 100 --size 64
    load "$name-pp1000" --conns 1000 --size 64
    load "$name-pipe" --mode pipelined --conns 100 --size 64 --depth 16
    load "$name-pipe3001" --mode pipelined --conns 10 --size 3001 --depth 16
    load "$name-bulk" --mode bulk --conns 1 --size 65536 --depth 16
    load "$name-bulk100k" --mode bulk --conns 4 --size 100000 --depth 4
    load "$name-churn" --mode churn --conns 16 --size 64
    before=$(fds "$SERVER_PID")
    peers || fail "$name: resetting and half-closing peers"
    load "$name-after" --conns 10 --size 1000 --depth 4
    sleep 0.2 # the last connections' closes
    [ "$(fds "$SERVER_PID")" -le "$before" ] ||
        fail "$name: $(fds "$SERVER_PID") fds open after the peers left, $before before"
    if [ "$name" = default ]; then
        step "back-pressure: a client that does not read"
        $T python3 "$BACKPRESSURE" --tcp "$PORT" "$SERVER_PID" 50 || fail "back-pressure"
    fi
    stop_server "$name" "$SERVER_PID"
}

run default
run plain --no-bundle --no-direct
# 16 buffers for 1000 connections: a message waits ~100 ms for one on an idle machine
LOAD_SECS=3 run starved --bufs 16 --buf-size 512
