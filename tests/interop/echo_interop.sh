#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop tests of ringsock-echo with real peers (socat, sockperf) and ringsock-load.
#
#   echo_interop.sh PATH/TO/ringsock-echo PATH/TO/ringsock-load
#
# Starts ringsock-echo over TCP, UDP, a Unix socket path and an abstract Unix name (port 0 /
# a fresh path, reading back "listening on ..."), and with --threads (TCP, TLS, UDP: several
# loops on one port), checks that each echoes byte for byte, runs load through it, and stops it with SIGTERM: it must exit with status 0 within 2 s.
# Exits 77 (skipped) when socat or sockperf is not installed.
set -euo pipefail
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

ECHO=${1:?usage: echo_interop.sh RINGSOCK_ECHO RINGSOCK_LOAD}
LOAD=${2:?usage: echo_interop.sh RINGSOCK_ECHO RINGSOCK_LOAD}
T="timeout 20" # every command that talks to a server runs under this
ECHO=$(realpath "$ECHO") LOAD=$(realpath "$LOAD")
need_tools "apt-get install socat sockperf" socat sockperf

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringsock-interop.XXXXXX")
trap cleanup EXIT
cd "$tmp" # lib.sh's helpers keep their files in the current directory

fail() { die "$@"; } # the first failure ends the test

# start_server NAME ARGS...: runs ringsock-echo ARGS in the background and waits for its
# "listening on X" line; sets SERVER_PID and LISTEN (the port or the path).
start_server() {
    local name=$1
    shift
    # Created here: the background child may open them only after the first look below.
    : > "$tmp/$name.out"
    : > "$tmp/$name.err"
    "$ECHO" "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" &
    SERVER_PID=$!
    pids+=("$SERVER_PID")
    LISTEN=
    local i
    for ((i = 0; i < 200; i++)); do
        LISTEN=$(sed -n 's/^listening on //p' "$tmp/$name.out" || true)
        [ -n "$LISTEN" ] && break
        kill -0 "$SERVER_PID" 2> /dev/null ||
            fail "$name: ringsock-echo $* exited before listening: $(cat "$tmp/$name.err")"
        sleep 0.05
    done
    [ -n "$LISTEN" ] || fail "$name: ringsock-echo $* printed no 'listening on' within 10 s"
    echo "$name: ringsock-echo $* listening on $LISTEN (pid $SERVER_PID)"
}

# Multi-line text payload of ~300 KB: numbered lines of varying length, so a lost, duplicated
# or reordered chunk shows up in cmp.
make_payload() {
    local i pad=""
    for ((i = 0; i < 60; i++)); do pad+="0123456789"; done
    for ((i = 0; i < 3000; i++)); do
        printf 'line %05d: the quick brown fox jumps over the lazy dog %s\n' "$i" \
            "${pad:0:$((i % 97))}"
    done > "$tmp/payload.txt"
}

# stream_echo NAME SOCAT_ADDRESS: sends the payload through socat, which half-closes after
# the last byte and exits when the server closes; the echo must equal the payload.
stream_echo() {
    local name=$1 addr=$2
    $T socat -t 5 - "$addr" < "$tmp/payload.txt" > "$tmp/$name.echo" ||
        fail "$name: socat - $addr failed"
    cmp "$tmp/payload.txt" "$tmp/$name.echo" ||
        fail "$name: echo via socat $addr differs ($(stat -c %s "$tmp/$name.echo") of" \
            "$(stat -c %s "$tmp/payload.txt") bytes back)"
    echo "$name: socat $addr: $(stat -c %s "$tmp/payload.txt") bytes echoed exactly"
}

# pingpong NAME ARGS...: ringsock-load must succeed (it exits 1 at the first byte that
# differs) and complete messages; prints its summary line.
pingpong() {
    local name=$1
    shift
    $T "$LOAD" "$@" > "$tmp/$name.pp" 2> "$tmp/$name.pp.err" ||
        fail "$name: ringsock-load $* failed: $(cat "$tmp/$name.pp.err")"
    grep -q 'mismatch' "$tmp/$name.pp.err" && fail "$name: $(cat "$tmp/$name.pp.err")"
    grep -q '^msgs/s=' "$tmp/$name.pp" || fail "$name: no summary from ringsock-load $*"
    echo "$name: ringsock-load $*: $(cat "$tmp/$name.pp")"
}

make_payload

# ---- TCP ----
step "TCP"
start_server tcp --port 0
tcp_pid=$SERVER_PID tcp_port=$LISTEN
stream_echo tcp "TCP:127.0.0.1:$tcp_port"
stream_echo tcp2 "TCP:127.0.0.1:$tcp_port" # the server keeps serving after a client leaves
pingpong tcp --port "$tcp_port" --conns 10 --depth 4 --size 1000 --seconds 1 --warmup 0
# Two load threads: each drives its half of the connections; the summary merges both.
pingpong tcp-threads --port "$tcp_port" --conns 10 --depth 4 --size 1000 --seconds 1 --warmup 0 \
    --threads 2
grep -q ' conns=10 .* threads=2 ' "$tmp/tcp-threads.pp" || fail "tcp-threads: $(cat "$tmp/tcp-threads.pp")"
pingpong tcp-threads-epoll --port "$tcp_port" --conns 10 --seconds 1 --warmup 0 --threads 2 --epoll
pingpong tcp-churn-threads --port "$tcp_port" --mode churn --conns 4 --seconds 1 --warmup 0 \
    --threads 2
stop_server tcp "$tcp_pid"

# ---- ringsock-load's check of the echo ----
# A server that inverts byte 1000 of every connection's stream (message 15, byte 40 at 64 B a
# message): ringsock-load must stop with exit status 1 and name that byte, whichever of its
# threads and back ends sees it.
step "ringsock-load catches a corrupted echo"
if ! command -v python3 > /dev/null; then
    echo "corrupt: skipped: the corrupting server needs python3 (apt-get install python3)"
else
cat > "$tmp/corrupt.py" << 'PY'
import socket, threading
def serve(c):
    seen = 0
    try:
        while data := c.recv(65536):
            b = bytearray(data)
            if seen <= 1000 < seen + len(b):
                b[1000 - seen] ^= 0xFF
            seen += len(b)
            c.sendall(b)
    except OSError:
        pass  # the client hangs up once it has seen the bad byte
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print("listening on", s.getsockname()[1], flush=True)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
PY
start_bg corrupt '^listening on \([0-9]*\)$' python3 "$tmp/corrupt.py"
corrupt_pid=$SERVER_PID
for args in "--threads 1" "--threads 2" "--threads 2 --epoll" "--threads 2 --depth 4"; do
    # shellcheck disable=SC2086 # args: several options
    if $T "$LOAD" --port "$PORT" --conns 4 --seconds 2 --warmup 0 --quiet $args \
        > "$tmp/corrupt.load" 2> "$tmp/corrupt.lerr"; then
        fail "corrupt $args: ringsock-load accepted a corrupted echo: $(cat "$tmp/corrupt.load")"
    fi
    got=$(cat "$tmp/corrupt.lerr")
    bytes=$(sed -n 's/^ringsock-load: echo mismatch: conn [0-3] msg 15 byte 40: sent 0x\(..\), got 0x\(..\)$/\1 \2/p' <<< "$got")
    # shellcheck disable=SC2086 # bytes: two words
    if ! { [ "$(wc -l <<< "$got")" = 1 ] && [ -n "$bytes" ] &&
        (($(printf '0x%s ^ 0x%s' $bytes) == 255)); }; then
        fail "corrupt $args: $got"
    fi
    echo "corrupt $args: $got"
done
kill "$corrupt_pid"
wait "$corrupt_pid" 2> /dev/null || true
forget_pid "$corrupt_pid"
fi

# ---- UDP ----
step "UDP"
start_server udp --udp --port 0
udp_pid=$SERVER_PID udp_port=$LISTEN

# udp_echo NAME BLOCK FILE LENGTHS...: socat sends FILE in datagrams of up to BLOCK bytes; the
# bytes must come back unchanged, in datagrams of exactly LENGTHS (from socat -x's log).
udp_echo() {
    local name=$1 block=$2 file=$3
    shift 3
    $T socat -x -b "$block" -t 1 - "UDP:127.0.0.1:$udp_port" < "$file" > "$tmp/$name.echo" \
        2> "$tmp/$name.log" || fail "$name: socat UDP:127.0.0.1:$udp_port failed"
    cmp "$file" "$tmp/$name.echo" || fail "$name: UDP echo differs"
    local got
    got=$(sed -n 's/^< .*length=\([0-9]*\).*/\1/p' "$tmp/$name.log" | tr '\n' ' ')
    [ "$got" = "$* " ] || fail "$name: echoed datagram lengths '$got', sent '$* '"
    echo "$name: datagrams of $* bytes echoed exactly"
}
head -c 4321 /dev/urandom > "$tmp/udp1.bin"
udp_echo udp-small 1000 "$tmp/udp1.bin" 1000 1000 1000 1000 321
head -c 65507 /dev/urandom > "$tmp/udp2.bin"
udp_echo udp-max 65536 "$tmp/udp2.bin" 65507
printf 'x' > "$tmp/udp3.bin"
udp_echo udp-one 16 "$tmp/udp3.bin" 1

# sockperf's ping-pong client counts a reply only with the CLIENT flag of its header
# cleared, as `sockperf server` answers: ringsock-echo --udp --sockperf does the same.
start_server udp-sockperf --udp --sockperf --port 0
sp_pid=$SERVER_PID sp_port=$LISTEN
$T sockperf pp -i 127.0.0.1 -p "$sp_port" -t 2 > "$tmp/sp-pp.out" 2>&1 ||
    fail "sockperf pp failed: $(cat "$tmp/sp-pp.out")"
sent=$(sed -n '/SentMessages=/{s/.*SentMessages=\([0-9]*\).*/\1/p;q}' "$tmp/sp-pp.out")
rcvd=$(sed -n '/ReceivedMessages=/{s/.*ReceivedMessages=\([0-9]*\).*/\1/p;q}' "$tmp/sp-pp.out")
if ! { [ -n "$sent" ] && [ -n "$rcvd" ] && [ "$sent" -gt 100 ] &&
       [ $((sent - rcvd)) -le 1 ] && [ $((rcvd - sent)) -le 1 ]; }; then
    fail "sockperf pp: SentMessages=$sent ReceivedMessages=$rcvd: $(cat "$tmp/sp-pp.out")"
fi
echo "sockperf pp: SentMessages=$sent ReceivedMessages=$rcvd"
stop_server udp-sockperf "$sp_pid"

# sockperf as a load generator: throughput (no replies wanted) and under-load.
$T sockperf tp -i 127.0.0.1 -p "$udp_port" -t 2 -m 1472 > "$tmp/sp-tp.out" 2>&1 ||
    fail "sockperf tp failed: $(cat "$tmp/sp-tp.out")"
tp_sent=$(sed -n 's/.*Total of \([0-9]*\) messages sent.*/\1/p' "$tmp/sp-tp.out")
if ! { [ -n "$tp_sent" ] && [ "$tp_sent" -gt 0 ]; }; then
    fail "sockperf tp: $(cat "$tmp/sp-tp.out")"
fi
echo "sockperf tp: $tp_sent datagrams of 1472 bytes sent in 2 s"
$T sockperf ul -i 127.0.0.1 -p "$udp_port" -t 2 --mps 20000 > "$tmp/sp-ul.out" 2>&1 ||
    fail "sockperf ul failed: $(cat "$tmp/sp-ul.out")"
grep -q 'Test ended' "$tmp/sp-ul.out" || fail "sockperf ul: $(cat "$tmp/sp-ul.out")"
echo "sockperf ul: 2 s at 20000 msg/s done"

# After the floods the server must still answer every datagram, exactly.
# --timeout 1000: on a busy machine a server can stall for longer than the default 50 ms; a
# datagram still unanswered after 1 s is lost for sure.
pingpong udp --udp --port "$udp_port" --conns 10 --depth 4 --seconds 1 --warmup 0.2 --timeout 1000
grep -q ' lost=0$' "$tmp/udp.pp" || fail "udp: datagrams lost: $(cat "$tmp/udp.pp")"
pingpong udp-threads --udp --port "$udp_port" --conns 10 --depth 4 --seconds 1 --warmup 0.2 \
    --timeout 1000 --threads 2
grep -q ' lost=0$' "$tmp/udp-threads.pp" || fail "udp-threads: $(cat "$tmp/udp-threads.pp")"
udp_echo udp-after 1000 "$tmp/udp1.bin" 1000 1000 1000 1000 321
stop_server udp "$udp_pid"

# ringsock-load --udp against sockperf's own server: the client speaks sockperf's header.
step "ringsock-load --udp against sockperf server"
sp_ok=
for ((try = 0; try < 10; try++)); do
    sp_port=$((20000 + (RANDOM % 40000)))
    : > "$tmp/sp-sr.out"
    sockperf sr -i 127.0.0.1 -p "$sp_port" > "$tmp/sp-sr.out" 2>&1 &
    sp_pid=$!
    pids+=("$sp_pid")
    for ((i = 0; i < 40; i++)); do
        grep -q 'ERROR' "$tmp/sp-sr.out" && break
        grep -q 'PORT = *'"$sp_port" "$tmp/sp-sr.out" && break
        sleep 0.05
    done
    sleep 0.2
    if kill -0 "$sp_pid" 2> /dev/null && ! grep -q 'ERROR' "$tmp/sp-sr.out"; then
        sp_ok=1
        break
    fi
    kill -KILL "$sp_pid" 2> /dev/null || true
    wait "$sp_pid" 2> /dev/null || true
    forget_pid "$sp_pid"
done
[ -n "$sp_ok" ] || fail "sockperf sr: could not start: $(cat "$tmp/sp-sr.out")"
pingpong sockperf-sr --udp --port "$sp_port" --conns 10 --depth 4 --seconds 1 --warmup 0.2 \
    --timeout 1000
grep -q ' lost=0$' "$tmp/sockperf-sr.pp" || fail "sockperf-sr: $(cat "$tmp/sockperf-sr.pp")"
kill -TERM "$sp_pid"
wait "$sp_pid" 2> /dev/null || true
forget_pid "$sp_pid"

# ---- Several loops: --threads, one listener each on the same port (SO_REUSEPORT) ----
# loops_server NAME ARGS...: start_server, and only the first loop says where it listens.
loops_server() {
    start_server "$@"
    [ "$(grep -c '^listening on' "$tmp/$1.out")" -eq 1 ] ||
        fail "$1: 'listening on' printed more than once: $(cat "$tmp/$1.out")"
}
step "Several loops"
loops_server loops --port 0 --threads 3 --pin
loops_pid=$SERVER_PID loops_port=$LISTEN
stream_echo loops "TCP:127.0.0.1:$loops_port"
pingpong loops --port "$loops_port" --conns 12 --depth 4 --size 1000 --seconds 1 --warmup 0 \
    --threads 3
stop_server loops "$loops_pid" # one SIGTERM ends every loop
loops_server loops-tls --tls --port 0 --threads 2
loops_pid=$SERVER_PID
pingpong loops-tls --tls --port "$LISTEN" --conns 8 --depth 2 --size 5000 --seconds 1 \
    --warmup 0 --threads 2
stop_server loops-tls "$loops_pid"
loops_server loops-udp --udp --port 0 --threads 2
loops_pid=$SERVER_PID
pingpong loops-udp --udp --port "$LISTEN" --conns 8 --size 500 --seconds 1 --warmup 0 --threads 2
stop_server loops-udp "$loops_pid"

# ---- Unix stream sockets: a path and an abstract name ----
step "Unix socket path"
start_server local --local "$tmp/echo.sock"
local_pid=$SERVER_PID
[ "$LISTEN" = "$tmp/echo.sock" ] || fail "local: listening on '$LISTEN', want $tmp/echo.sock"
[ -S "$tmp/echo.sock" ] || fail "local: $tmp/echo.sock is not a socket"
stream_echo local "UNIX-CONNECT:$tmp/echo.sock"
pingpong local --local "$tmp/echo.sock" --conns 10 --depth 4 --size 1000 --seconds 1 --warmup 0
pingpong local-threads --local "$tmp/echo.sock" --conns 10 --depth 4 --size 1000 --seconds 1 \
    --warmup 0 --threads 2
stop_server local "$local_pid"

step "Unix abstract name"
abstract="ringsock-interop-$$-$RANDOM"
start_server abstract --local "@$abstract"
abstract_pid=$SERVER_PID
[ "$LISTEN" = "@$abstract" ] || fail "abstract: listening on '$LISTEN', want @$abstract"
stream_echo abstract "ABSTRACT-CONNECT:$abstract"
pingpong abstract --local "@$abstract" --conns 10 --depth 4 --size 1000 --seconds 1 --warmup 0
stop_server abstract "$abstract_pid"

echo "PASS"
