#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# DTLS and DTLS-SRTP interop tests of ringsock with real peers: OpenSSL (s_client, s_server)
# and GnuTLS (gnutls-cli, gnutls-serv).
#
#   dtls_interop.sh PATH/TO/ringsock-echo PATH/TO/ringsock-dtls-client
#
#   a. openssl s_client -dtls1_2 against ringsock-echo --dtls: a message echoed exactly; the
#      fingerprint ringsock-echo prints is that of the certificate s_client got (generated,
#      and a --cert PEM that s_client verifies).
#   b. s_client -use_srtp against ringsock-echo --dtls --srtp, one profile at a time (the
#      four the server accepts) and with the client's preference list: the profile s_client
#      reports, and its "EXTRACTOR-dtls_srtp" keying material equal byte for byte to what
#      ringsock-echo derived for that association.
#   c. ringsock-dtls-client against openssl s_server -dtls1_2: --srtp with each profile the
#      client offers: ringsock's keymat equals s_server's "Keying material" byte for byte;
#      the peer fingerprint is s_server's certificate; a plain DTLS message arrives.
#   d. GnuTLS: gnutls-cli -u against ringsock-echo --dtls (a line echoed) and --srtp (each
#      profile: gnutls-cli's profile and key material equal ringsock-echo's); ringsock-dtls-
#      client against gnutls-serv -u --echo (messages echoed exactly) and with
#      --srtp-profiles (the profile gnutls-serv set).
# (gnutls-serv --echo cuts messages at about 250 bytes: the test sends 200.)
# Each case prints PASS or FAIL; the script fails if any case failed. Exits 77 (skipped)
# when openssl, gnutls-cli or gnutls-serv is missing or lacks DTLS-SRTP.
set -euo pipefail
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

ECHO=${1:?usage: dtls_interop.sh RINGSOCK_ECHO RINGSOCK_DTLS_CLIENT}
CLIENT=${2:?usage: dtls_interop.sh RINGSOCK_ECHO RINGSOCK_DTLS_CLIENT}
ECHO=$(realpath "$ECHO") CLIENT=$(realpath "$CLIENT")
T="timeout 20"     # every client command runs under this
TSRV="timeout 240" # background peers, in case the cleanup never runs

need_tools "apt-get install openssl gnutls-bin" openssl gnutls-cli gnutls-serv
if ! openssl s_client -help 2>&1 | grep -q -- '-use_srtp' ||
    ! gnutls-cli --help 2>&1 | grep -q -- '--keymatexport'; then
    echo "SKIP: openssl or gnutls-cli without DTLS-SRTP / keying material export"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringsock-dtls-interop.XXXXXX")
failed=0
BG_STDIN=hold # start_bg: s_server quits at the end of its input (see below)
QUIET_STOP=1  # stop_server: the cases print PASS or FAIL, not each server's exit

dtls_cleanup() {
    exec 9>&- 2> /dev/null || true # let the peers reading the held FIFO see its end
    cleanup
}
trap dtls_cleanup EXIT

pass() {
    echo "PASS: $*"
}

fail() { # one case failed; the others still run
    echo "FAIL: $*"
    failed=$((failed + 1))
}

cd "$tmp"
# s_server quits at the end of its input: it reads this FIFO, which the script holds open.
mkfifo hold
exec 9<> hold

$T openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
    -out server.crt -days 2 -subj "/CN=localhost" -addext subjectAltName=DNS:localhost \
    2> openssl.err || die "certificate: $(cat openssl.err)"
cat server.crt server.key > server.pem

start_ringsock() { # NAME ARGS... (ringsock-echo ARGS)
    local name=$1
    shift
    start_bg "$name" '^listening on \([0-9]*\)$' "$ECHO" "$@" --addr 127.0.0.1 --port 0
}

start_s_server() { # NAME ARGS... (openssl s_server -dtls1_2 ARGS, on an ephemeral port)
    local name=$1
    shift
    start_bg "$name" '^ACCEPT .*:\([0-9]*\)$' $TSRV openssl s_server -dtls1_2 \
        -accept 127.0.0.1:0 -cert server.crt -key server.key "$@"
}

free_udp_port() { # a port nobody uses now (gnutls-serv cannot pick one itself)
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        grep -qi ":$(printf '%04X' "$p") " /proc/net/udp /proc/net/udp6 2> /dev/null || break
    done
    echo "$p"
}

start_gnutls_serv() { # NAME ARGS... (gnutls-serv -u ARGS)
    local name=$1
    shift
    # (it reports the port on stderr)
    start_bg "$name" '^UDP .*listening on IPv4 .* port \([0-9]*\)\.\.\.done$' \
        bash -c 'exec "$@" 2>&1' - $TSRV gnutls-serv -u -p "$(free_udp_port)" --x509certfile=server.crt --x509keyfile=server.key "$@"
}

# The last "srtp profile=P keymat=K" line ringsock-echo (log NAME.out) printed; waits 2 s.
echo_keys() {
    local i line=
    for ((i = 0; i < 40; i++)); do
        line=$(grep '^srtp profile=' "$1.out" | tail -1 || true)
        [ "$(grep -c '^srtp profile=' "$1.out" || true)" -ge "$2" ] && break
        sleep 0.05
    done
    echo "$line"
}

# SRTP profiles: OpenSSL's name, GnuTLS's name, keying material length (2 * (key + salt)).
PROFILES=(
    "SRTP_AEAD_AES_128_GCM SRTP_AEAD_AES_128_GCM 56"
    "SRTP_AES128_CM_SHA1_80 SRTP_AES128_CM_HMAC_SHA1_80 60"
    "SRTP_AES128_CM_SHA1_32 SRTP_AES128_CM_HMAC_SHA1_32 60"
    "SRTP_AEAD_AES_256_GCM SRTP_AEAD_AES_256_GCM 88"
)

# ==== a. openssl s_client against ringsock-echo --dtls ====
step "a. openssl s_client -dtls1_2 against ringsock-echo --dtls"
printf 'hello over DTLS from openssl s_client: %s\n' "$(head -c 300 /dev/urandom | base64 -w0)" \
    > line.in
start_ringsock dtls --dtls
dtls_pid=$SERVER_PID dtls_port=$PORT
run_fed sc-echo line.in $T openssl s_client -dtls1_2 -connect "127.0.0.1:$dtls_port" -quiet \
    -no_ign_eof
if [ "$RC" -eq 0 ] && cmp -s line.in sc-echo.echo; then
    pass "s_client -dtls1_2: $(stat -c %s line.in)-byte message echoed exactly"
else
    fail "s_client -dtls1_2: status $RC, $(stat -c %s sc-echo.echo) of $(stat -c %s line.in) bytes back: $(tail -n 3 sc-echo.cerr)"
fi
# The fingerprint ringsock-echo printed is that of the certificate it serves.
$T openssl s_client -dtls1_2 -connect "127.0.0.1:$dtls_port" -showcerts < /dev/null \
    > sc-cert.info 2>&1 || true
sed -n '/BEGIN CERT/,/END CERT/p' sc-cert.info > got.crt
printed=$(sed -n 's/^fingerprint sha-256 //p' dtls.out)
if [ -s got.crt ] && [ "$printed" = "$(fingerprint got.crt)" ]; then
    pass "generated certificate: printed fingerprint ${printed:0:23}... is that of the served one"
else
    fail "fingerprint: printed '$printed', served '$(fingerprint got.crt 2> /dev/null || true)'"
fi
stop_server dtls "$dtls_pid"

start_ringsock dtls-cert --dtls --cert server.pem
run_fed sc-verify line.in $T openssl s_client -dtls1_2 -connect "127.0.0.1:$PORT" -quiet \
    -no_ign_eof -CAfile server.crt -verify_return_error
printed=$(sed -n 's/^fingerprint sha-256 //p' dtls-cert.out)
if [ "$RC" -eq 0 ] && cmp -s line.in sc-verify.echo && [ "$printed" = "$(fingerprint server.crt)" ]; then
    pass "--cert: s_client verified the certificate, message echoed, fingerprint matches"
else
    fail "--cert: status $RC, fingerprint '$printed' vs '$(fingerprint server.crt)': $(tail -n 3 sc-verify.cerr)"
fi
stop_server dtls-cert "$SERVER_PID"

# ==== b. s_client -use_srtp against ringsock-echo --dtls --srtp ====
step "b. openssl s_client -use_srtp against ringsock-echo --dtls --srtp"
start_ringsock srtp --dtls --srtp
srtp_pid=$SERVER_PID srtp_port=$PORT
n=0
# s_client_srtp NAME OFFER WANT_PROFILE LEN
s_client_srtp() {
    local name=$1 offer=$2 want=$3 len=$4 got keys ours
    n=$((n + 1))
    $T openssl s_client -dtls1_2 -connect "127.0.0.1:$srtp_port" -use_srtp "$offer" \
        -keymatexport EXTRACTOR-dtls_srtp -keymatexportlen "$len" < /dev/null \
        > "$name.info" 2>&1 || true
    got=$(sed -n 's/^SRTP Extension negotiated, profile=//p' "$name.info")
    keys=$(sed -n 's/^ *Keying material: //p' "$name.info" | lower_hex)
    ours=$(echo_keys srtp "$n")
    if [ "$got" = "$want" ] && [ -n "$keys" ] &&
        [ "$ours" = "srtp profile=$want keymat=$keys" ]; then
        pass "s_client -use_srtp $offer: profile $want, $len bytes of keying material equal"
    else
        fail "s_client -use_srtp $offer: profile '$got' (want $want), s_client keys '$keys', ringsock '$ours': $(grep -m2 -i 'error' "$name.info" || true)"
    fi
}
s_client_srtp sc-srtp-pref SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80 SRTP_AEAD_AES_128_GCM 56
for p in "${PROFILES[@]}"; do
    read -r ossl _ len <<< "$p"
    s_client_srtp "sc-$ossl" "$ossl" "$ossl" "$len"
done
stop_server srtp "$srtp_pid"

# ==== c. ringsock-dtls-client against openssl s_server ====
step "c. ringsock-dtls-client against openssl s_server -dtls1_2"
server_fp=$(fingerprint server.crt | lower_hex)
# run_client NAME ARGS...: sets RC
run_client() {
    local name=$1
    shift
    RC=0
    $T "$CLIENT" "$@" > "$name.cout" 2> "$name.cerr" || RC=$?
}
for p in "${PROFILES[@]:0:2}"; do # the two the client offers
    read -r ossl _ len <<< "$p"
    start_s_server "ss-$ossl" -use_srtp "$ossl" -keymatexport EXTRACTOR-dtls_srtp \
        -keymatexportlen "$len"
    run_client "rc-$ossl" --connect "127.0.0.1:$PORT" --srtp --count 0
    ours=$(sed -n 's/^keymat=//p' "rc-$ossl.cout")
    theirs=
    for ((i = 0; i < 40; i++)); do
        theirs=$(sed -n 's/^ *Keying material: //p' "ss-$ossl.out" | lower_hex)
        [ -n "$theirs" ] && break
        sleep 0.05
    done
    if [ "$RC" -eq 0 ] && grep -qx "profile=$ossl" "rc-$ossl.cout" && [ -n "$ours" ] &&
        [ "$ours" = "$theirs" ] && grep -qx "peer_fp=$server_fp" "rc-$ossl.cout"; then
        pass "s_server -use_srtp $ossl: ringsock keymat = s_server's Keying material ($len bytes): $ours"
    else
        fail "s_server -use_srtp $ossl: status $RC, ringsock '$ours', s_server '$theirs': $(cat "rc-$ossl.cout" "rc-$ossl.cerr")"
    fi
    stop_peer "$SERVER_PID"
done

start_s_server ss-plain
msg="plain DTLS message from ringsock $RANDOM"
run_client rc-plain --connect "127.0.0.1:$PORT" --send "$msg"
for ((i = 0; i < 40; i++)); do
    grep -qF "$msg" ss-plain.out && break
    sleep 0.05
done
if [ "$RC" -eq 0 ] && grep -qF "$msg" ss-plain.out && grep -qx "peer_fp=$server_fp" rc-plain.cout; then
    pass "s_server -dtls1_2: the message arrived; peer fingerprint is s_server's certificate"
else
    fail "s_server -dtls1_2: status $RC: $(cat rc-plain.cout rc-plain.cerr)"
fi
stop_peer "$SERVER_PID"

# ==== d. GnuTLS ====
gnutls_knows() { # PROFILE: GnuTLS before 3.8 has no AEAD SRTP profiles
    local probe
    probe=$(timeout 2 gnutls-cli -u --srtp-profiles="$1" -p 9 127.0.0.1 < /dev/null 2>&1 || true)
    if grep -q 'Syntax error' <<< "$probe"; then
        echo "SKIP: this GnuTLS ($(gnutls-cli --version | head -1)) does not know $1"
        return 1
    fi
}

step "d. gnutls-cli -u against ringsock-echo --dtls / --dtls --srtp"
start_ringsock gdtls --dtls
run_fed gc-echo line.in $T gnutls-cli -u --insecure --logfile=gc-echo.log -p "$PORT" 127.0.0.1
if [ "$RC" -eq 0 ] && cmp -s line.in gc-echo.echo; then
    pass "gnutls-cli -u: message echoed exactly ($(sed -n 's/^- Description: //p' gc-echo.log))"
else
    fail "gnutls-cli -u: status $RC, $(stat -c %s gc-echo.echo) bytes back: $(tail -qn 3 gc-echo.log gc-echo.cerr)"
fi
stop_server gdtls "$SERVER_PID"

start_ringsock gsrtp --dtls --srtp
gsrtp_port=$PORT
n=0
for p in "${PROFILES[@]}"; do
    read -r ossl gnu len <<< "$p"
    gnutls_knows "$gnu" || continue
    n=$((n + 1))
    $T gnutls-cli -u --insecure --srtp-profiles="$gnu" --keymatexport=EXTRACTOR-dtls_srtp \
        --keymatexportsize="$len" --logfile="gc-$gnu.log" -p "$gsrtp_port" 127.0.0.1 \
        < /dev/null > "gc-$gnu.out" 2> "gc-$gnu.err" || true
    got=$(sed -n 's/^- SRTP profile: //p' "gc-$gnu.log")
    keys=$(sed -n 's/^- Key material: //p' "gc-$gnu.log" | lower_hex)
    ours=$(echo_keys gsrtp "$n")
    if [ "$got" = "$gnu" ] && [ -n "$keys" ] && [ "$ours" = "srtp profile=$ossl keymat=$keys" ]; then
        pass "gnutls-cli --srtp-profiles=$gnu: $len bytes of key material equal"
    else
        fail "gnutls-cli --srtp-profiles=$gnu: profile '$got', gnutls '$keys', ringsock '$ours': $(tail -qn 2 "gc-$gnu.log" "gc-$gnu.err")"
    fi
done
stop_server gsrtp "$SERVER_PID"

step "d. ringsock-dtls-client against gnutls-serv -u"
start_gnutls_serv gs-echo --echo
run_client rc-gs-echo --connect "127.0.0.1:$PORT" --count 5 --size 200 --expect-echo
if [ "$RC" -eq 0 ] && grep -qx 'echo ok: 5 messages' rc-gs-echo.cout; then
    pass "gnutls-serv -u --echo: 5 messages echoed exactly"
else
    fail "gnutls-serv -u --echo: status $RC: $(cat rc-gs-echo.cout rc-gs-echo.cerr)"
fi
stop_peer "$SERVER_PID"
for p in "${PROFILES[@]:0:2}"; do
    read -r ossl gnu len <<< "$p"
    gnutls_knows "$gnu" || continue
    start_gnutls_serv "gs-$gnu" --srtp-profiles="$gnu"
    run_client "rc-gs-$gnu" --connect "127.0.0.1:$PORT" --srtp --count 0
    if [ "$RC" -eq 0 ] && grep -qx "profile=$ossl" "rc-gs-$gnu.cout" &&
        [ "$(sed -n 's/^keymat=//p' "rc-gs-$gnu.cout" | tr -d '\n' | wc -c)" -eq $((len * 2)) ]; then
        pass "gnutls-serv --srtp-profiles=$gnu: handshake, profile $ossl"
    else
        fail "gnutls-serv --srtp-profiles=$gnu: status $RC: $(cat "rc-gs-$gnu.cout" "rc-gs-$gnu.cerr")"
    fi
    stop_peer "$SERVER_PID"
done

if [ "$failed" -gt 0 ]; then
    echo "FAIL: $failed case(s) failed"
    exit 1
fi
echo "PASS"
