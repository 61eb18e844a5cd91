#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# TLS interop tests of ringsock with real peers: OpenSSL (s_client, s_server) and GnuTLS
# (gnutls-cli).
#
#   tls_interop.sh PATH/TO/ringsock-echo PATH/TO/ringsock-tls-client PATH/TO/ringsock-starttls-server
#
# A test PKI made at start in a temporary directory: a root CA, an intermediate CA, and from
# them a server certificate for localhost (served with its chain), a client certificate and
# one for the wrong name; plus a self-signed localhost certificate and one for localhost
# straight from the root.
#
#   1. ringsock-echo --tls: s_client with TLS 1.2 and 1.3 (verifying chain and name) echoes
#      a payload byte for byte; gnutls-cli too; ALPN by the server's preference; a client
#      certificate required: present works, missing or untrusted fails the handshake (the
#      client gets wolfSSL's alert) and the server serves the next client; the generated
#      self-signed certificate; --ktls: the same echo, one "ktls ..." line per connection
#      (both ways offloaded for AES-128-GCM where the kernel lists the tls ULP).
#   2. ringsock-tls-client against s_server: SNI reaches the server (it switches
#      certificates on it), ALPN as s_server chose it, verification fails for an untrusted
#      certificate and for a wrong name (SOCKET_TLS_HANDSHAKE_FAILED, and s_server gets the
#      alert), passes with the right CA, the peer fingerprint; a client certificate to a
#      server that asks for one.
#   3. StartTLS: openssl s_client -starttls smtp (and gnutls-cli --starttls-proto=smtp)
#      against ringsock-starttls-server, which upgrades its TCP socket with
#      ISocketProvider_UpgradeToTLSSocket(initServerSide=true) and then echoes.
# Every server must still be alive at the end and exit 0 on SIGTERM.
# Exits 77 (skipped) when openssl or gnutls-cli is not installed.
set -euo pipefail
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

ECHO=${1:?usage: tls_interop.sh RINGSOCK_ECHO RINGSOCK_TLS_CLIENT RINGSOCK_STARTTLS_SERVER}
CLIENT=${2:?usage: tls_interop.sh RINGSOCK_ECHO RINGSOCK_TLS_CLIENT RINGSOCK_STARTTLS_SERVER}
STARTTLS=${3:?usage: tls_interop.sh RINGSOCK_ECHO RINGSOCK_TLS_CLIENT RINGSOCK_STARTTLS_SERVER}
ECHO=$(realpath "$ECHO") CLIENT=$(realpath "$CLIENT") STARTTLS=$(realpath "$STARTTLS")
T="timeout 20"     # every client command runs under this
TSRV="timeout 240" # background peers (s_server), in case the cleanup never runs

need_tools "apt-get install openssl gnutls-bin" openssl gnutls-cli

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringsock-tls-interop.XXXXXX")
trap cleanup EXIT

fail() { die "$@"; } # the first failure ends the test

# ---- the test PKI ----
cd "$tmp"
EC=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
$T openssl req -x509 "${EC[@]}" -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=ringsock test root CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2> openssl.err || fail "CA: $(cat openssl.err)"
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' \
    > int.ext
$T openssl req -new "${EC[@]}" -keyout int.key -out int.csr \
    -subj "/CN=ringsock test intermediate CA" 2> openssl.err || fail "$(cat openssl.err)"
$T openssl x509 -req -in int.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile int.ext -out int.pem 2> openssl.err || fail "intermediate: $(cat openssl.err)"

# leaf NAME CN EXTRA_EXTENSION EKU ISSUER: NAME.crt and NAME.key, signed by ISSUER.pem/.key.
leaf() {
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' > "$1.ext"
    printf 'extendedKeyUsage=%s\n%s\n' "$4" "$3" >> "$1.ext"
    $T openssl req -new "${EC[@]}" -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" \
        2> openssl.err || fail "$1: $(cat openssl.err)"
    $T openssl x509 -req -in "$1.csr" -CA "$5.pem" -CAkey "$5.key" -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.crt" 2> openssl.err || fail "$1: $(cat openssl.err)"
}
leaf server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1" serverAuth int
leaf client "ringsock test client" "" clientAuth int
leaf wrong wrong.example "subjectAltName=DNS:wrong.example" serverAuth int
leaf sni localhost "subjectAltName=DNS:localhost" serverAuth ca
$T openssl req -x509 "${EC[@]}" -keyout self.key -out self.crt -days 2 -subj "/CN=localhost" \
    -addext subjectAltName=DNS:localhost 2> openssl.err || fail "self-signed: $(cat openssl.err)"
# What ringsock loads: the chain, then the key.
cat server.crt int.pem server.key > server.pem
cat client.crt int.pem client.key > client.pem
$T openssl verify -CAfile ca.pem -untrusted int.pem server.crt client.crt wrong.crt > /dev/null ||
    fail "the test PKI does not verify"
echo "test PKI: root CA, intermediate CA, server/client/wrong-name/SNI/self-signed certificates"

# Payload: 256 KiB of random bytes, so a lost, duplicated or reordered record shows up in cmp.
head -c 262144 /dev/urandom > payload.bin
PAYLOAD_SIZE=$(stat -c %s payload.bin)
: > empty.in

# ---- servers ----

start_ringsock() { # NAME PROGRAM ARGS...
    local name=$1
    shift
    start_bg "$name" '^listening on \([0-9]*\)$' "$@"
}

start_s_server() { # NAME ARGS... (openssl s_server ARGS, on an ephemeral port)
    local name=$1
    shift
    start_bg "$name" '^ACCEPT .*:\([0-9]*\)$' $TSRV openssl s_server -accept 127.0.0.1:0 "$@"
}

handshake_failures() { # NAME: how many connections ringsock-echo closed in the handshake
    grep -c 'connection closed: SOCKET_TLS_HANDSHAKE_FAILED' "$1.err" || true
}

# s_client_refused NAME PORT ALERT ARGS...: s_client must fail and get no byte back; unless
# ALERT is -, its error must be the alert the server sent (s_client's words: "alert ALERT").
# The client sends no data: with TLS 1.3 it would send it before the server's verdict, and a
# server that closes with unread data makes the kernel send a reset, which can overtake the
# alert. Its stdin stays open (see feed), so it waits for the server's answer.
s_client_refused() {
    local name=$1 port=$2 alert=$3
    shift 3
    run_fed "$name" empty.in \
        $T openssl s_client -connect "127.0.0.1:$port" -quiet -no_ign_eof -nocommands "$@"
    [ "$RC" -ne 0 ] || fail "$name: openssl s_client $* succeeded"
    [ "$RC" -ne 124 ] || fail "$name: openssl s_client $* hung"
    [ ! -s "$name.echo" ] || fail "$name: $(stat -c %s "$name.echo") bytes came back"
    [ "$alert" = - ] || grep -q "alert $alert" "$name.cerr" ||
        fail "$name: s_client got no '$alert' alert: $(grep -m1 'error:' "$name.cerr" || cat "$name.cerr")"
    echo "$name: openssl s_client $*: refused (status $RC): $(grep -m1 -o 'error:[^:]*:[^:]*:[^:]*:[^:]*' \
        "$name.cerr" || echo 'no error text')"
}

VERIFY=(-CAfile ca.pem -verify_return_error -verify_hostname localhost -servername localhost)

# ==== 1. ringsock-echo --tls against openssl s_client and gnutls-cli ====
step "ringsock-echo --tls --cert (chain + key) --alpn http/1.1,h2"
start_ringsock tls "$ECHO" --tls --cert server.pem --alpn http/1.1,h2 --port 0
tls_pid=$SERVER_PID tls_port=$PORT

s_client_echo tls12 "$tls_port" -tls1_2 "${VERIFY[@]}"
s_client_echo tls13 "$tls_port" -tls1_3 "${VERIFY[@]}"
s_client_echo tls12-aes128 "$tls_port" -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 "${VERIFY[@]}"
s_client_echo tls13-chacha "$tls_port" -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 \
    "${VERIFY[@]}"

# Handshake details: version, ALPN (server preference: http/1.1 although the client prefers h2).
alpn_check() { # NAME EXPECTED_LINE ARGS...
    local name=$1 want=$2
    shift 2
    $T openssl s_client -connect "127.0.0.1:$tls_port" "$@" < /dev/null > "$name.info" 2>&1 ||
        fail "$name: openssl s_client $* failed: $(cat "$name.info")"
    grep -qxF "$want" "$name.info" ||
        fail "$name: want '$want', got: $(grep -E 'ALPN|Protocol' "$name.info" | tr '\n' ' ')"
    echo "$name: openssl s_client $*: $want"
}
alpn_check alpn12 "ALPN protocol: http/1.1" -tls1_2 -alpn h2,http/1.1 "${VERIFY[@]}"
alpn_check alpn13 "ALPN protocol: http/1.1" -tls1_3 -alpn h2,http/1.1 "${VERIFY[@]}"
alpn_check alpn-h2 "ALPN protocol: h2" -alpn h2,spdy/3 "${VERIFY[@]}"
alpn_check alpn-none "No ALPN negotiated" -alpn foo/1 "${VERIFY[@]}"
# (s_client prints the session block with "Protocol :" only once a TLS 1.3 ticket came.)
grep -q '^New, TLSv1.3, Cipher is' alpn13.info || fail "alpn13: not TLS 1.3: $(cat alpn13.info)"
grep -q '^New, TLSv1.2, Cipher is' alpn12.info || fail "alpn12: not TLS 1.2: $(cat alpn12.info)"

# gnutls-cli: informational messages to a log file, so stdout holds the echo only.
gnutls_echo() { # NAME PORT ARGS...
    local name=$1 port=$2
    shift 2
    run_fed "$name" payload.bin $T gnutls-cli --logfile="$name.log" -p "$port" "$@" 127.0.0.1
    [ "$RC" -eq 0 ] || fail "$name: gnutls-cli $* exited $RC: $(cat "$name.log" "$name.cerr")"
    cmp payload.bin "$name.echo" ||
        fail "$name: echo differs ($(stat -c %s "$name.echo") of $PAYLOAD_SIZE bytes back)"
    echo "$name: gnutls-cli $*: $PAYLOAD_SIZE bytes echoed exactly" \
        "($(sed -n 's/^- Description: //p' "$name.log"))"
}
gnutls_echo gnutls "$tls_port" --x509cafile=ca.pem --verify-hostname=localhost
gnutls_echo gnutls12 "$tls_port" --x509cafile=ca.pem --verify-hostname=localhost \
    --priority=NORMAL:-VERS-ALL:+VERS-TLS1.2
gnutls_echo gnutls-alpn "$tls_port" --x509cafile=ca.pem --verify-hostname=localhost \
    --alpn=h2 --alpn=http/1.1
grep -q 'Application protocol: http/1.1' gnutls-alpn.log ||
    fail "gnutls-alpn: server did not choose http/1.1: $(grep -i alpn gnutls-alpn.log || true)"
stop_server tls "$tls_pid"

step "ringsock-echo --tls --require-client-cert"
start_ringsock mtls "$ECHO" --tls --cert server.pem --require-client-cert ca.pem --port 0
mtls_pid=$SERVER_PID mtls_port=$PORT
WITH_CERT=(-cert client.crt -key client.key -cert_chain int.pem)
s_client_echo mtls12 "$mtls_port" -tls1_2 "${WITH_CERT[@]}" "${VERIFY[@]}"
s_client_echo mtls13 "$mtls_port" -tls1_3 "${WITH_CERT[@]}" "${VERIFY[@]}"
# The server tells the client why (wolfSSL's alerts): no certificate, or one from an unknown CA.
s_client_refused mtls12-none "$mtls_port" "handshake failure" -tls1_2 "${VERIFY[@]}"
s_client_refused mtls13-none "$mtls_port" "certificate required" -tls1_3 "${VERIFY[@]}"
s_client_refused mtls13-untrusted "$mtls_port" "unknown ca" -tls1_3 -cert self.crt -key self.key \
    "${VERIFY[@]}"
s_client_refused mtls12-untrusted "$mtls_port" "unknown ca" -tls1_2 -cert self.crt -key self.key \
    "${VERIFY[@]}"
# The failures show on the server, which goes on serving.
for ((i = 0; i < 40; i++)); do
    [ "$(handshake_failures mtls)" -ge 4 ] && break
    sleep 0.05
done
[ "$(handshake_failures mtls)" -eq 4 ] ||
    fail "mtls: $(handshake_failures mtls) handshake failures reported, want 4: $(cat mtls.err)"
echo "mtls: ringsock-echo reported the 4 refused handshakes (SOCKET_TLS_HANDSHAKE_FAILED)"
s_client_echo mtls13-after "$mtls_port" -tls1_3 "${WITH_CERT[@]}" "${VERIFY[@]}"
gnutls_echo gnutls-mtls "$mtls_port" --x509cafile=ca.pem --verify-hostname=localhost \
    --x509certfile=client.pem --x509keyfile=client.key
stop_server mtls "$mtls_pid"

step "ringsock-echo --tls with the generated self-signed certificate"
start_ringsock selfsigned "$ECHO" --tls --port 0
self_pid=$SERVER_PID self_port=$PORT
s_client_echo selfsigned "$self_port" -tls1_3
$T openssl s_client -connect "127.0.0.1:$self_port" < /dev/null > selfsigned.info 2>&1 ||
    fail "selfsigned: $(cat selfsigned.info)"
grep -q 'O *= *ringsock self-signed' selfsigned.info ||
    fail "selfsigned: unexpected certificate: $(grep -m2 'subject\|s:' selfsigned.info)"
s_client_refused selfsigned-verify "$self_port" - -tls1_3 -verify_return_error
gnutls_echo gnutls-insecure "$self_port" --insecure
stop_server selfsigned "$self_pid"

# --ktls: the echo is the same whatever the kernel takes (api.md: user space where it cannot),
# and each connection says what the kernel took when it closes. Where the kernel lists the
# tls ULP (its module loaded), the AES-128-GCM connections must have gone to it both ways;
# elsewhere only the form is known (no ULP, or one the kernel would load for root alone).
step "ringsock-echo --tls --ktls"
start_ringsock ktls "$ECHO" --tls --ktls --cert server.pem --port 0
ktls_pid=$SERVER_PID ktls_port=$PORT
s_client_echo ktls13 "$ktls_port" -tls1_3 "${VERIFY[@]}"
s_client_echo ktls12 "$ktls_port" -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 "${VERIFY[@]}"
s_client_echo ktls13-chacha "$ktls_port" -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 \
    "${VERIFY[@]}"
for ((i = 0; i < 40; i++)); do
    [ "$(grep -c '^ktls' ktls.out || true)" -ge 3 ] && break
    sleep 0.05
done
ktls_got=$(sed -n 's/^ktls //p' ktls.out | xargs)
[[ $ktls_got =~ ^((tx\+rx|tx|rx|none)( |$)){3}$ ]] ||
    fail "ktls: want one 'ktls tx+rx|tx|rx|none' line per connection (3): $(cat ktls.out)"
if grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2> /dev/null; then
    [[ $ktls_got == "tx+rx tx+rx "* ]] ||
        fail "ktls: the kernel has the tls ULP, yet AES-128-GCM (TLS 1.3, 1.2) went: $ktls_got"
fi
echo "ktls: what the kernel took, per connection (TLS 1.3, 1.2, ChaCha20): $ktls_got"
stop_server ktls "$ktls_pid"
rc=0
"$ECHO" --ktls --port 0 > /dev/null 2> ktls-usage.err || rc=$?
[ "$rc" -eq 2 ] || fail "ringsock-echo --ktls without --tls: exit status $rc, want 2 (usage)"

# ==== 2. ringsock-tls-client against openssl s_server ====
# run_client NAME WANT_STATUS ARGS...: ringsock-tls-client ARGS must exit with WANT_STATUS.
run_client() {
    local name=$1 want=$2 rc=0
    shift 2
    $T "$CLIENT" "$@" > "$name.cout" 2> "$name.cerr" || rc=$?
    [ "$rc" -eq "$want" ] ||
        fail "$name: ringsock-tls-client $* exited $rc, want $want: $(cat "$name.cout" "$name.cerr")"
}

step "ringsock-tls-client against openssl s_server (-alpn, chain, -rev)"
start_s_server s_server -cert server.crt -key server.key -cert_chain int.pem \
    -alpn http/1.1,h2 -rev
ss_pid=$SERVER_PID ss_port=$PORT
ss=127.0.0.1:$ss_port
fp_server=$(fingerprint server.crt | lower_hex)

run_client ok 0 --connect "$ss" --servername localhost --cafile ca.pem --alpn h2,http/1.1 \
    --send "hello from ringsock"
grep -qx 'kcosgnir morf olleh' ok.cout || fail "ok: no reversed line: $(cat ok.cout)"
grep -qx 'alpn: http/1.1' ok.cout || fail "ok: s_server chose http/1.1: $(cat ok.cout)"
grep -qx "peer fingerprint: $fp_server" ok.cout ||
    fail "ok: fingerprint, want $fp_server: $(cat ok.cout)"
echo "ok: verified, s_server's ALPN http/1.1, fingerprint of server.crt, line reversed by s_server"

run_client alpn-h2 0 --connect "$ss" --servername localhost --cafile ca.pem --alpn h2 --send x
grep -qx 'alpn: h2' alpn-h2.cout || fail "alpn-h2: $(cat alpn-h2.cout)"
run_client noalpn 0 --connect "$ss" --servername localhost --cafile ca.pem --send x
grep -qx 'alpn: none' noalpn.cout || fail "noalpn: $(cat noalpn.cout)"
echo "alpn: h2 when only h2 is offered, none when none is"

# expect_refused NAME SERVER ALERT ARGS...: exit status 1 with the handshake failure as the
# reason; unless ALERT is -, the s_server named SERVER (its log SERVER.err) must then report
# that alert from ringsock (OpenSSL's words: "alert ALERT"): ringsock tells the server why.
expect_refused() {
    local name=$1 server=$2 alert=$3 before i
    shift 3
    before=$(grep -c "alert $alert" "$server.err" || true)
    run_client "$name" 1 "$@"
    grep -qx 'ringsock-tls-client: SOCKET_TLS_HANDSHAKE_FAILED' "$name.cerr" ||
        fail "$name: want SOCKET_TLS_HANDSHAKE_FAILED: $(cat "$name.cerr")"
    ! grep -q '^connected' "$name.cout" || fail "$name: connected: $(cat "$name.cout")"
    if [ "$alert" != - ]; then
        for ((i = 0; i < 40; i++)); do
            [ "$(grep -c "alert $alert" "$server.err" || true)" -gt "$before" ] && break
            sleep 0.05
        done
        [ "$(grep -c "alert $alert" "$server.err" || true)" -gt "$before" ] ||
            fail "$name: s_server got no '$alert' alert: $(tail -2 "$server.err")"
        echo "$name: status 1, SOCKET_TLS_HANDSHAKE_FAILED; s_server got alert $alert"
    else
        echo "$name: status 1, SOCKET_TLS_HANDSHAKE_FAILED"
    fi
}
expect_refused wrong-name s_server "bad certificate" --connect "$ss" --servername wrong.example \
    --cafile ca.pem --send x
expect_refused untrusted-ca s_server "unknown ca" --connect "$ss" --servername localhost \
    --cafile self.crt --send x
expect_refused system-store s_server "unknown ca" --connect "$ss" --servername localhost --send x
run_client no-verify 0 --connect "$ss" --servername wrong.example --no-verify --send "abc"
grep -qx 'cba' no-verify.cout || fail "no-verify: $(cat no-verify.cout)"
echo "no-verify: wrong name accepted with --no-verify"
kill -0 "$ss_pid" 2> /dev/null || fail "s_server died: $(cat s_server.out s_server.err)"
stop_peer "$ss_pid"

step "ringsock-tls-client against s_server with a self-signed certificate"
start_s_server s_self -cert self.crt -key self.key -rev
self_ss=127.0.0.1:$PORT
expect_refused self-signed s_self "unknown ca" --connect "$self_ss" --servername localhost \
    --cafile ca.pem --send x
run_client self-pinned 0 --connect "$self_ss" --servername localhost --cafile self.crt --send y
grep -qx "peer fingerprint: $(fingerprint self.crt | lower_hex)" self-pinned.cout ||
    fail "self-pinned: $(cat self-pinned.cout)"
echo "self-pinned: trusted when the certificate itself is the trust anchor"
stop_peer "$SERVER_PID"

step "SNI: s_server switches to the root-signed certificate for 'localhost' (-servername_fatal)"
start_s_server s_sni -cert self.crt -key self.key -servername localhost -cert2 sni.crt \
    -key2 sni.key -servername_fatal -rev
sni=127.0.0.1:$PORT
run_client sni 0 --connect "$sni" --servername localhost --cafile ca.pem --send "sni"
grep -qx "peer fingerprint: $(fingerprint sni.crt | lower_hex)" sni.cout ||
    fail "sni: s_server did not switch on the SNI: $(cat sni.cout)"
grep -qx 'ins' sni.cout || fail "sni: $(cat sni.cout)"
expect_refused sni-other s_sni - --connect "$sni" --servername other.example --no-verify --send x
run_client sni-none 0 --connect "$sni" --no-verify --send "z"
grep -qx "peer fingerprint: $(fingerprint self.crt | lower_hex)" sni-none.cout ||
    fail "sni-none: without SNI s_server should keep its default certificate: $(cat sni-none.cout)"
echo "sni: 'localhost' switched the certificate; other.example refused (fatal); none: default"
stop_peer "$SERVER_PID"

step "ringsock-tls-client with a client certificate (s_server -Verify)"
start_s_server s_mtls -cert server.crt -key server.key -cert_chain int.pem -Verify 2 \
    -CAfile ca.pem -verify_return_error -rev
mt=127.0.0.1:$PORT
run_client client-cert 0 --connect "$mt" --servername localhost --cafile ca.pem \
    --cert client.pem --send "mutual"
grep -qx 'lautum' client-cert.cout || fail "client-cert: $(cat client-cert.cout)"
echo "client-cert: s_server accepted the client certificate (chain sent by ringsock)"
# Without a certificate s_server refuses; with TLS 1.3 the client learns it only after its
# own handshake is done, from the alert: either way no reply.
rc=0
$T "$CLIENT" --connect "$mt" --servername localhost --cafile ca.pem --send x \
    > no-client-cert.cout 2> no-client-cert.cerr || rc=$?
[ "$rc" -eq 1 ] || fail "no-client-cert: exit $rc: $(cat no-client-cert.cout no-client-cert.cerr)"
! grep -qx 'x' no-client-cert.cout || fail "no-client-cert: s_server answered"
echo "no-client-cert: status 1, $(cat no-client-cert.cerr)"
stop_peer "$SERVER_PID"

# ==== 3. StartTLS ====
step "StartTLS: openssl s_client -starttls smtp against ringsock-starttls-server"
start_ringsock starttls "$STARTTLS" --cert server.pem --port 0
st_pid=$SERVER_PID st_port=$PORT
printf 'hello after STARTTLS\nsecond line\n' > starttls.in
printf 'hello after STARTTLS\r\nsecond line\r\n' > starttls.want # s_client -crlf
run_fed starttls starttls.in $T openssl s_client -connect "127.0.0.1:$st_port" \
    -starttls smtp -crlf -quiet -no_ign_eof -nocommands "${VERIFY[@]}"
[ "$RC" -eq 0 ] || fail "starttls: s_client -starttls smtp exited $RC: $(cat starttls.cerr)"
cmp starttls.want starttls.echo || fail "starttls: echo differs: $(od -c starttls.echo | head)"
echo "starttls: s_client -starttls smtp -crlf: upgraded, verified, lines (CRLF) echoed exactly"
s_client_echo starttls-bulk "$st_port" -starttls smtp -tls1_2 "${VERIFY[@]}"
run_fed starttls-gnutls starttls.in $T gnutls-cli --logfile=starttls-gnutls.log \
    --starttls-proto=smtp --x509cafile=ca.pem --verify-hostname=localhost -p "$st_port" 127.0.0.1
[ "$RC" -eq 0 ] || fail "starttls-gnutls: exited $RC: $(cat starttls-gnutls.log starttls-gnutls.cerr)"
cmp starttls.in starttls-gnutls.echo || fail "starttls-gnutls: echo differs"
echo "starttls-gnutls: gnutls-cli --starttls-proto=smtp: upgraded, lines echoed exactly"
n=$(grep -c 'upgraded: TLS' starttls.err || true)
[ "$n" -eq 3 ] || fail "starttls: $n upgrades reported, want 3: $(cat starttls.err)"
stop_server starttls "$st_pid"

echo "PASS"
