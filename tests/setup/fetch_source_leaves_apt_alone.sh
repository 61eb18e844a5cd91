#!/usr/bin/env bash
# fetch_source_leaves_apt_alone.sh FETCH_SOURCE: what the configure runs to get Debian's
# source packages (scripts/fetch-source) leaves apt alone, as root too: it writes no sources
# entry and runs no apt-get update (scripts/setup does, once). Where apt knows no source
# package and nothing is cached it fails with a message naming scripts/setup; with a cached
# tree it uses that. apt runs with a configuration of its own (APT_CONFIG): the binary
# entries only and no index, a machine scripts/setup has not prepared. --cached runs no apt
# at all.
set -euo pipefail
fetch=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

mkdir -p "$tmp/etc/sources.list.d" "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/home"
: >"$tmp/etc/sources.list"
[ -f /etc/apt/sources.list.d/debian.sources ] && cp /etc/apt/sources.list.d/debian.sources "$tmp/etc/sources.list.d/"
cat >"$tmp/apt.conf" <<CONF
Dir::Etc::sourcelist "$tmp/etc/sources.list";
Dir::Etc::sourceparts "$tmp/etc/sources.list.d";
Dir::State::lists "$tmp/lists";
Dir::Cache "$tmp/cache";
CONF
export APT_CONFIG=$tmp/apt.conf HOME=$tmp/home RINGSOCK_CACHE=$tmp/rs-cache
state() { ls -lA --time-style=full-iso /etc/apt/sources.list.d "$tmp/etc/sources.list.d" "$tmp/lists" 2>&1; }
before=$(state)

if path=$("$fetch" wolfssl 2>"$tmp/err"); then
    fail "fetch-source found a wolfssl source package without a deb-src entry: $path"
fi
grep -q "scripts/setup" "$tmp/err" || fail "the error does not name scripts/setup: $(cat "$tmp/err")"
[ "$(state)" = "$before" ] || fail "fetch-source changed apt's configuration or index:
$(diff <(echo "$before") <(state))"

# A tree unpacked earlier is used when apt knows none.
mkdir -p "$RINGSOCK_CACHE/wolfssl-src/5.5.4-2/wolfssl-5.5.4"
echo 5.5.4-2 >"$RINGSOCK_CACHE/wolfssl-src/5.5.4-2/.ringsock-complete"
path=$("$fetch" wolfssl 2>"$tmp/err") || fail "with a cached tree: $(cat "$tmp/err")"
[ "$path" = "$(cd "$RINGSOCK_CACHE/wolfssl-src/5.5.4-2/wolfssl-5.5.4" && pwd -P)" ] ||
    fail "with a cached tree it printed $path"
[ "$(state)" = "$before" ] || fail "fetch-source changed apt's configuration or index"

# --cached (debian/rules: the package build needs no network) never runs apt: the newest
# cached tree, the pinned one, or a failure. apt-get and apt-cache here only record a call.
mkdir -p "$tmp/bin" "$RINGSOCK_CACHE/wolfssl-src/5.5.4-10/wolfssl-5.5.4"
echo 5.5.4-10 >"$RINGSOCK_CACHE/wolfssl-src/5.5.4-10/.ringsock-complete"
for t in apt-get apt-cache; do
    # shellcheck disable=SC2016 # $0 and $* are the stub's
    printf '#!/bin/sh\necho "$0 $*" >>"%s/apt-calls"\nexit 1\n' "$tmp" >"$tmp/bin/$t"
    chmod +x "$tmp/bin/$t"
done
path=$(PATH=$tmp/bin:$PATH "$fetch" --cached wolfssl 2>"$tmp/err3") || fail "--cached: $(cat "$tmp/err3")"
[ "$path" = "$(cd "$RINGSOCK_CACHE/wolfssl-src/5.5.4-10/wolfssl-5.5.4" && pwd -P)" ] ||
    fail "--cached printed $path, not the newest cached tree (5.5.4-10)"
path=$(RINGSOCK_WOLFSSL_VERSION=5.5.4-2 PATH=$tmp/bin:$PATH "$fetch" --cached wolfssl 2>"$tmp/err3") ||
    fail "--cached, pinned: $(cat "$tmp/err3")"
[ "$path" = "$(cd "$RINGSOCK_CACHE/wolfssl-src/5.5.4-2/wolfssl-5.5.4" && pwd -P)" ] ||
    fail "--cached, pinned to 5.5.4-2, printed $path"
if path=$(PATH=$tmp/bin:$PATH "$fetch" --cached libsrtp2 2>"$tmp/err2"); then
    fail "--cached found a libsrtp2 tree in an empty cache: $path"
fi
grep -q -- "--cached" "$tmp/err2" || fail "--cached with nothing cached: $(cat "$tmp/err2")"
[ ! -e "$tmp/apt-calls" ] || fail "--cached ran apt: $(cat "$tmp/apt-calls")"
echo "ok: $(head -c 300 "$tmp/err" | tr '\n' ' ')"
