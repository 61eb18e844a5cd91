#!/usr/bin/env bash
# sdk_echo.sh SDK_ECHO: the SDK C++ example (examples/sdk_echo.cpp) echoes 1 MB to each of
# three clients byte for byte and exits 0 on SIGTERM; skipped (77) without python3.
set -euo pipefail
command -v python3 >/dev/null || exit 77
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
"$1" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do
    grep -q '^listening on ' "$tmp/out" && break
    sleep 0.05
done
port=$(awk '/^listening on / { print $3 }' "$tmp/out")
[ -n "$port" ] || { echo "FAIL: no port: $(cat "$tmp/err")" >&2; exit 1; }
python3 - "$port" <<'PY'
import socket, sys, threading
port = int(sys.argv[1])
data = bytes((i * 7 + i // 251) & 0xff for i in range(1 << 20))
bad = []
def client():
    s = socket.create_connection(("127.0.0.1", port))
    t = threading.Thread(target=s.sendall, args=(data,))
    t.start()
    got = bytearray()
    while len(got) < len(data):
        b = s.recv(1 << 16)
        if not b:
            break
        got += b
    t.join()
    s.close()
    if bytes(got) != data:
        bad.append(len(got))
ts = [threading.Thread(target=client) for _ in range(3)]
for t in ts: t.start()
for t in ts: t.join()
sys.exit(f"FAIL: echo differs ({bad})" if bad else 0)
PY
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || { echo "FAIL: exit status $rc after SIGTERM: $(cat "$tmp/err")" >&2; exit 1; }
echo ok
