# shellcheck shell=bash disable=SC2034,SC2154 # T, tmp: from the sourcing script; RC...: for it
# SPDX-License-Identifier: MIT
# Helpers shared by the interop scripts; sourced with . "$(dirname "$0")/lib.sh".
#
# The sourcing script sets T (the timeout prefix of client commands) and tmp (its temporary
# directory) before using them, and defines fail MESSAGE: the scripts differ there on
# purpose (echo_interop.sh and tls_interop.sh stop at the first failure, dtls_interop.sh
# counts failures and goes on). die is for what no script can go on after.
# The helpers that take a NAME keep their files (NAME.out, NAME.err...) in the current
# directory.

pids=() # background processes, stopped by cleanup

die() {
    echo "FAIL: $*" >&2
    exit 1
}

step() {
    echo "--- $*"
}

# need_tools HINT TOOL...: exits 77 (skipped) unless every TOOL is installed.
need_tools() {
    local hint=$1 tool
    shift
    for tool in "$@"; do
        if ! command -v "$tool" > /dev/null; then
            echo "SKIP: $tool is not installed ($hint)"
            exit 77
        fi
    done
}

# cleanup: the EXIT trap: SIGTERM, then SIGKILL, to what is left in pids; removes $tmp.
cleanup() {
    local pid
    for pid in "${pids[@]+"${pids[@]}"}"; do
        kill -TERM "$pid" 2> /dev/null || true
    done
    sleep 0.1
    for pid in "${pids[@]+"${pids[@]}"}"; do
        kill -KILL "$pid" 2> /dev/null || true
    done
    rm -rf "$tmp"
}

forget_pid() {
    local keep=() p
    for p in "${pids[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    pids=("${keep[@]+"${keep[@]}"}")
}

# start_bg NAME PATTERN CMD...: runs CMD in the background (stdin $BG_STDIN, /dev/null unless
# set; stdout NAME.out, stderr NAME.err) until its stdout has a line matching the sed
# PATTERN, whose \1 is the port; sets SERVER_PID and PORT.
start_bg() {
    local name=$1 pattern=$2 i
    shift 2
    # Created here: the background child may open them only after the first look below.
    : > "$name.out"
    : > "$name.err"
    "$@" < "${BG_STDIN:-/dev/null}" > "$name.out" 2> "$name.err" &
    SERVER_PID=$!
    pids+=("$SERVER_PID")
    PORT=
    for ((i = 0; i < 200; i++)); do
        PORT=$(sed -n "s/$pattern/\\1/p" "$name.out" | head -1 || true)
        [ -n "$PORT" ] && break
        kill -0 "$SERVER_PID" 2> /dev/null ||
            die "$name: $* exited before listening: $(cat "$name.err")"
        sleep 0.05
    done
    [ -n "$PORT" ] || die "$name: $* printed no port within 10 s"
    echo "$name: listening on $PORT (pid $SERVER_PID)"
}

# stop_server NAME PID: SIGTERM; a ringsock server must be gone within 2 s, with status 0,
# else fail. Says so unless QUIET_STOP is set.
stop_server() {
    local name=$1 pid=$2 i rc=0
    if ! kill -0 "$pid" 2> /dev/null; then
        fail "$name: server died early: $(cat "$name.err")"
        forget_pid "$pid"
        return 0
    fi
    kill -TERM "$pid"
    for ((i = 0; i < 40; i++)); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2> /dev/null && fail "$name: still running 2 s after SIGTERM"
    wait "$pid" || rc=$?
    forget_pid "$pid"
    if [ "$rc" -ne 0 ]; then
        fail "$name: exited with status $rc after SIGTERM: $(cat "$name.err")"
    elif [ -z "${QUIET_STOP:-}" ]; then
        echo "$name: SIGTERM -> exit status 0"
    fi
}

stop_peer() { # PID: a tool's server; its status does not matter
    kill -TERM "$1" 2> /dev/null || true
    wait "$1" 2> /dev/null || true
    forget_pid "$1"
}

# feed FILE OUT DONE: writes FILE, then keeps the client's stdin open until OUT holds as
# many bytes (not for an empty FILE), the file DONE exists (the client has exited) or 15 s
# have passed, so that the client's end of input (close_notify, exit) comes after the whole
# echo.
feed() {
    cat "$1" 2> /dev/null || return 0 # the client is gone
    local want i
    want=$(stat -c %s "$1")
    for ((i = 0; i < 300; i++)); do
        [ -e "$3" ] && return 0
        # (an empty FILE: wait for the client to finish on its own)
        [ "$want" -gt 0 ] && [ "$(stat -c %s "$2" 2> /dev/null || echo 0)" -ge "$want" ] && return 0
        sleep 0.05
    done
}

# run_fed NAME FILE CMD...: runs CMD with FILE on its stdin (see feed), its stdout in
# NAME.echo, its stderr in NAME.cerr; sets RC to its exit status.
run_fed() {
    local name=$1 file=$2
    shift 2
    rm -f "$name.done"
    : > "$name.echo"
    feed "$file" "$name.echo" "$name.done" | {
        local rc=0
        "$@" > "$name.echo" 2> "$name.cerr" || rc=$?
        echo "$rc" > "$name.done"
    }
    RC=$(cat "$name.done")
}

# s_client_echo NAME PORT ARGS...: payload.bin (PAYLOAD_SIZE bytes) through openssl s_client
# ARGS to 127.0.0.1:PORT must come back exactly.
s_client_echo() {
    local name=$1 port=$2
    shift 2
    run_fed "$name" payload.bin \
        $T openssl s_client -connect "127.0.0.1:$port" -quiet -no_ign_eof -nocommands "$@"
    [ "$RC" -eq 0 ] || fail "$name: openssl s_client $* exited $RC: $(cat "$name.cerr")"
    cmp payload.bin "$name.echo" ||
        fail "$name: echo differs ($(stat -c %s "$name.echo") of $PAYLOAD_SIZE bytes back)"
    echo "$name: openssl s_client $*: $PAYLOAD_SIZE bytes echoed exactly"
}

# fingerprint CERT: SHA-256 of the certificate, uppercase hex with colons (as in SDP).
fingerprint() {
    $T openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//'
}

lower_hex() { # AA:BB.. or AABB.. -> aabb..
    tr -d ':\n' | tr A-F a-f
}
