#!/usr/bin/env bash
# readme_c.sh README INCLUDE_DIR LIBRINGSOCK_SO CC...: every ```c block of README compiles
# with -Wall -Wextra -Werror, with each compiler given (and clang when it is installed). A
# block with main() is also linked against LIBRINGSOCK_SO and run; when it prints
# "listening on PORT" it must echo what a client sends.
set -euo pipefail
readme=$1 include=$2 lib=$3
shift 3
compilers=("$@")
command -v clang >/dev/null && [[ " ${compilers[*]} " != *clang* ]] && compilers+=(clang)
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

awk -v dir="$tmp" '
    /^```c[[:space:]]*$/ { n++; f = dir "/snippet-" n ".c"; inside = 1; next }
    /^```/ && inside { inside = 0; close(f); next }
    inside { print > f }' "$readme"
shopt -s nullglob
snippets=("$tmp"/snippet-*.c)
((${#snippets[@]})) || fail "no \`\`\`c block in $readme"

for s in "${snippets[@]}"; do
    for cc in "${compilers[@]}"; do
        "$cc" -Wall -Wextra -Werror -I"$include" -c "$s" -o "$tmp/out.o" 2>"$tmp/cc.err" ||
            fail "$(basename "$s") with $cc:"$'\n'"$(cat "$tmp/cc.err")"
    done
    grep -q '\bmain(' "$s" || continue
    "${compilers[0]}" -Wall -Wextra -Werror -I"$include" "$s" "$lib" -Wl,-rpath,"$(dirname "$lib")" \
        -o "$tmp/prog" 2>"$tmp/cc.err" || fail "linking $(basename "$s"): $(cat "$tmp/cc.err")"
    "$tmp/prog" >"$tmp/prog.out" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(awk '/^listening on [0-9]+$/ { print $3 }' "$tmp/prog.out")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || fail "$(basename "$s") exited: $(cat "$tmp/prog.out")"
        sleep 0.05
    done
    [ -n "$port" ] || continue # a program that serves nothing: built, that is all
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'hello ringsock' >&3
    reply=$(timeout 5 head -c 14 <&3) || true
    exec 3>&-
    [ "$reply" = "hello ringsock" ] || fail "$(basename "$s") echoed '$reply'"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
done
echo "ok: ${#snippets[@]} block(s), ${compilers[*]}"
