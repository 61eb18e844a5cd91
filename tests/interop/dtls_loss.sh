#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# DTLS-SRTP handshakes through a lossy link: two network namespaces joined by a veth pair
# with netem dropping 20% of the packets on both ends; ringsock-echo --dtls --srtp in one,
# ringsock-dtls-client --srtp in the other. Every handshake must complete (retransmission
# does its work); prints how long each took.
#
#   dtls_loss.sh PATH/TO/ringsock-echo PATH/TO/ringsock-dtls-client [HANDSHAKES] [LOSS%]
#
# Exits 77 (skipped) unless root with ip netns, veth and tc netem (sch_netem).
set -euo pipefail

ECHO=$(realpath "${1:?usage: dtls_loss.sh RINGSOCK_ECHO RINGSOCK_DTLS_CLIENT [N] [LOSS]}")
CLIENT=$(realpath "${2:?usage: dtls_loss.sh RINGSOCK_ECHO RINGSOCK_DTLS_CLIENT [N] [LOSS]}")
N=${3:-5}
LOSS=${4:-20}
export RINGSOCK_DTLS_HANDSHAKE_TIMEOUT_MS=${RINGSOCK_DTLS_HANDSHAKE_TIMEOUT_MS:-60000}

skip() {
    echo "SKIP: $*"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, tc)"
command -v ip > /dev/null && command -v tc > /dev/null || skip "ip or tc is not installed"

# Unique per run: names and a /30 of 198.18.0.0/15 from the process id.
tag=$$
ns_s=rsdtls-s$tag ns_c=rsdtls-c$tag
veth_s=rsds$tag veth_c=rsdc$tag
net=$((tag % 16384))
ip_s=198.$((18 + net / 8192)).$(((net % 8192) / 64)).$(((net % 64) * 4 + 1))
ip_c=198.$((18 + net / 8192)).$(((net % 8192) / 64)).$(((net % 64) * 4 + 2))
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringsock-dtls-loss.XXXXXX")
server_pid=

cleanup() {
    [ -n "$server_pid" ] && kill -TERM "$server_pid" 2> /dev/null || true
    ip netns del "$ns_s" 2> /dev/null || true
    ip netns del "$ns_c" 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$ns_s" 2> /dev/null || skip "ip netns add failed"
ip netns add "$ns_c" || skip "ip netns add failed"
ip link add "$veth_s" netns "$ns_s" type veth peer name "$veth_c" netns "$ns_c" 2> /dev/null ||
    skip "no veth"
ip -n "$ns_s" addr add "$ip_s/30" dev "$veth_s"
ip -n "$ns_c" addr add "$ip_c/30" dev "$veth_c"
for ns in "$ns_s" "$ns_c"; do
    ip -n "$ns" link set lo up
done
ip -n "$ns_s" link set "$veth_s" up
ip -n "$ns_c" link set "$veth_c" up
ip netns exec "$ns_s" tc qdisc add dev "$veth_s" root netem loss "$LOSS%" 2> /dev/null ||
    skip "tc netem is not available (kernel without sch_netem)"
ip netns exec "$ns_c" tc qdisc add dev "$veth_c" root netem loss "$LOSS%"
echo "link: $ns_s $ip_s <-> $ns_c $ip_c, netem loss $LOSS% each way;" \
    "handshake timeout ${RINGSOCK_DTLS_HANDSHAKE_TIMEOUT_MS} ms"

ip netns exec "$ns_s" "$ECHO" --dtls --srtp --addr "$ip_s" --port 0 > "$tmp/server.out" \
    2> "$tmp/server.err" &
server_pid=$!
port=
for ((i = 0; i < 200; i++)); do
    port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$tmp/server.out")
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2> /dev/null || {
        echo "FAIL: ringsock-echo exited: $(cat "$tmp/server.err")"
        exit 1
    }
    sleep 0.05
done
[ -n "$port" ] || {
    echo "FAIL: ringsock-echo printed no port"
    exit 1
}

failed=0 total=0 worst=0
for ((k = 1; k <= N; k++)); do
    rc=0
    start=$(date +%s%N)
    ip netns exec "$ns_c" "$CLIENT" --connect "$ip_s:$port" --srtp --count 0 \
        --timeout $((RINGSOCK_DTLS_HANDSHAKE_TIMEOUT_MS + 10000)) > "$tmp/c$k.out" \
        2> "$tmp/c$k.err" || rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    hs=$(sed -n 's/^handshake_ms=//p' "$tmp/c$k.out")
    if [ "$rc" -eq 0 ] && grep -q '^keymat=' "$tmp/c$k.out"; then
        echo "PASS: handshake $k: ${hs} ms ($(sed -n 's/^profile=//p' "$tmp/c$k.out"); run $ms ms)"
        total=$((total + ms))
        [ "$ms" -gt "$worst" ] && worst=$ms
    else
        echo "FAIL: handshake $k: status $rc after $ms ms: $(cat "$tmp/c$k.err")"
        failed=$((failed + 1))
    fi
done
kill -0 "$server_pid" 2> /dev/null || {
    echo "FAIL: ringsock-echo died: $(cat "$tmp/server.err")"
    exit 1
}
accepted=$(grep -c '^srtp profile=' "$tmp/server.out" || true)
echo "server: $accepted associations completed; $(grep -c 'HANDSHAKE_FAILED' "$tmp/server.err" || true) failed"
if [ "$failed" -gt 0 ]; then
    echo "FAIL: $failed of $N handshakes failed"
    exit 1
fi
echo "PASS: $N handshakes through $LOSS% loss each way, mean $((total / N)) ms, worst $worst ms"
