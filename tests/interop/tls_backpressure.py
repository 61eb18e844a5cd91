#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Back-pressure check for a TLS (--tcp: plain TCP) echo server: a client that does not read.

    tls_backpressure.py [--tcp] PORT SERVER_PID [MEGABYTES]

Connects with TLS (--tcp: without) to 127.0.0.1:PORT and sends MEGABYTES (default 50) of
random bytes without reading anything back, until the server stops taking them (no progress
for 2 s). The server must have stopped reading (the client got stuck before the end) and its
RSS (VmRSS of SERVER_PID) must not have grown by more than 8 MiB. Then the client reads:
everything must come back, byte for byte, while it sends the rest. Prints what it saw; exits 1
on a failure.
"""
import os
import selectors
import socket
import ssl
import sys
import time

STALL_S = 2.0  # no progress for this long: the server has stopped reading
RSS_LIMIT_KB = 8 * 1024
CHUNK = 16384


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    args = sys.argv[1:]
    plain = args[:1] == ["--tcp"]
    if plain:
        args = args[1:]
    port, pid = int(args[0]), int(args[1])
    total = int(args[2] if len(args) > 2 else 50) << 20
    data = os.urandom(total)
    tls = socket.create_connection(("127.0.0.1", port), timeout=10)
    if not plain:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        tls = ctx.wrap_socket(tls)
    tls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(tls, selectors.EVENT_WRITE)
    rss0 = rss_kb(pid)

    # 1. Send without reading.
    sent, last = 0, time.monotonic()
    while sent < total and time.monotonic() - last < STALL_S:
        try:
            sent += tls.send(data[sent:sent + CHUNK])
            last = time.monotonic()
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            sel.select(0.2)
    rss1 = rss_kb(pid)
    print(f"sent {sent} of {total} bytes without reading{', then stuck' if sent < total else ''};"
          f" server RSS {rss0} -> {rss1} kB")
    if sent >= total:
        fail("the server kept reading from a client that does not read")
    if rss1 - rss0 > RSS_LIMIT_KB:
        fail(f"the server's RSS grew by {rss1 - rss0} kB (limit {RSS_LIMIT_KB} kB)")

    # 2. Read it all back, sending the rest meanwhile.
    got = 0
    deadline = time.monotonic() + 60
    sel.modify(tls, selectors.EVENT_READ | selectors.EVENT_WRITE)
    while got < total:
        if time.monotonic() > deadline:
            fail(f"only {got} of {total} bytes came back")
        progress = False
        try:
            while True:
                buf = tls.recv(65536)
                if not buf:
                    fail(f"the server closed after {got} of {total} bytes")
                if buf != data[got:got + len(buf)]:
                    fail(f"the echo differs within bytes {got}..{got + len(buf)}")
                got += len(buf)
                progress = True
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            pass
        while sent < total:
            try:
                sent += tls.send(data[sent:sent + CHUNK])
                progress = True
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                break
        if sent == total:
            sel.modify(tls, selectors.EVENT_READ)
        if not progress:
            sel.select(0.5)
    print(f"then all {total} bytes came back exactly; server RSS {rss_kb(pid)} kB")
    tls.close()


if __name__ == "__main__":
    main()
