#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Smoke test of the TLS baseline server (perf/baselines/openssl_tls_echo.c, what
# scripts/bench-tls measures ringsock against), so that it cannot rot:
#
#   openssl_tls_echo.sh PATH/TO/openssl-tls-echo PATH/TO/ringsock-load
#
#   1. The generated certificate is a self-signed ECDSA P-256 one (as ringsock-echo's);
#      openssl s_client with TLS 1.3 and TLS 1.2 echoes 256 KiB of random bytes exactly.
#   2. --cert PEM (chain, then key): s_client verifies that certificate.
#   3. ringsock-load --tls and --tls12 (every echoed byte checked): 16 KiB messages, 4 in
#      flight on 4 connections; 1 KiB ping-pong on 20 connections while 16 KiB messages run
#      on 4 others (the mix); 100000-byte messages, which span records.
#   4. Back-pressure (tls_backpressure.py): a client sends 50 MB without reading; the server
#      must stop reading, its RSS must not grow by more than 8 MiB, and then all of it must
#      come back.
#   5. SIGTERM: exit status 0 within 2 s.
# Exits 77 (skipped) when openssl or python3 is not installed.
set -euo pipefail
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

SERVER=${1:?usage: openssl_tls_echo.sh OPENSSL_TLS_ECHO RINGSOCK_LOAD}
LOAD=${2:?usage: openssl_tls_echo.sh OPENSSL_TLS_ECHO RINGSOCK_LOAD}
SERVER=$(realpath "$SERVER") LOAD=$(realpath "$LOAD")
BACKPRESSURE=$(realpath "$(dirname "$0")/tls_backpressure.py")
T="timeout 60" # every client command runs under this

need_tools "apt-get install openssl python3" openssl python3
case $("$LOAD" --help 2>&1 || true) in
*"has no TLS"*)
    echo "SKIP: ringsock-load was built without OpenSSL"
    exit 77
    ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringsock-openssl-tls-echo.XXXXXX")
trap cleanup EXIT
cd "$tmp"

fail() { die "$@"; } # the first failure ends the test

head -c 262144 /dev/urandom > payload.bin
PAYLOAD_SIZE=262144

# Under AddressSanitizer a small quarantine: freed memory held back would count as growth in
# the back-pressure check (other builds ignore ASAN_OPTIONS).
start_server() { # NAME ARGS...
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1 \
        start_bg "$1" '^listening on \([0-9]*\)$' "$SERVER" "${@:2}" --port 0
}

# load NAME ARGS...: ringsock-load must succeed (it fails at the first wrong byte) and
# complete at least 100 messages; runs in the background with BG=1 (then: wait_load NAME).
load() {
    local name=$1
    shift
    $T "$LOAD" --port "$port" --seconds 0.5 --warmup 0 --quiet "$@" > "$name.load" \
        2> "$name.lerr" || fail "$name: ringsock-load $* failed: $(cat "$name.lerr")"
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^msgs\/s=/) { sub(/.*=/, "", $i);
        exit !($i * 0.5 >= 100) } exit 1 }' "$name.load" ||
        fail "$name: fewer than 100 messages: $(cat "$name.load")"
    echo "$name: ringsock-load $*: $(cut -d' ' -f1,2,4 "$name.load")"
}

step "generated certificate"
start_server gen
port=$PORT pid=$SERVER_PID
$T openssl s_client -connect "127.0.0.1:$port" -showcerts < /dev/null > gen.info 2>&1 ||
    fail "s_client: $(cat gen.info)"
openssl x509 -noout -text < gen.info > gen.cert || fail "no certificate from the server"
grep -q 'ASN1 OID: prime256v1' gen.cert || fail "not a P-256 key: $(cat gen.cert)"
grep -q 'Signature Algorithm: ecdsa-with-SHA256' gen.cert || fail "not ECDSA: $(cat gen.cert)"
[ "$(openssl x509 -noout -subject < gen.info | sed 's/^subject=//')" = \
    "$(openssl x509 -noout -issuer < gen.info | sed 's/^issuer=//')" ] || fail "not self-signed"
echo "gen: self-signed ECDSA P-256 certificate"
s_client_echo tls13 "$port" -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256
s_client_echo tls12 "$port" -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256

step "ringsock-load through it"
load load13 --tls --conns 4 --depth 4 --size 16384
load load12 --tls12 --conns 4 --depth 4 --size 16384
load big --tls --conns 2 --depth 3 --size 100000
load threads --tls --conns 8 --depth 4 --size 16384 --threads 2
load mix-16k --tls --conns 4 --depth 4 --size 16384 &
mix=$!
load mix-1k --tls --conns 20 --size 1024
wait $mix || fail "mix-16k failed"

step "back-pressure: a client that does not read"
$T python3 "$BACKPRESSURE" "$port" "$pid" 50 || fail "back-pressure"
stop_server gen "$pid"

step "--cert PEM"
$T openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout own.key \
    -out own.crt -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    2> openssl.err || fail "$(cat openssl.err)"
cat own.crt own.key > own.pem
start_server own --cert own.pem
s_client_echo own "$PORT" -CAfile own.crt -verify_return_error -verify_hostname localhost
stop_server own "$SERVER_PID"
