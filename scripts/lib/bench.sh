# shellcheck shell=bash disable=SC2154 # the settings below come from the sourcing script
# Helpers shared by scripts/bench and scripts/bench-tls; sourced with . scripts/lib/bench.sh.
#
# The sourcing script sets, before calling them:
#   bench_name   its name, for messages
#   tmp          its temporary directory (results go to $tmp/r-ROW-SERVER, $tmp/runs.log)
#   bin          the directory with ringsock-load and the servers
#   srv_cpu cli_cpu        the cores of the server and of the load generator (cli_cpu: a
#                          taskset list; RINGSOCK_LOAD_CPUS overrides it, see below)
#   secs warmup            each load run's measured seconds and warmup
#   quiet_pct    the machine counts as idle below this share of busy time
#   others_pct   a run is repeated when other processes took more than this % of one core
#   max_retries  ... but not more often than this in all, to bound the time
# and defines server_cmd NAME, which prints the command line of the server called NAME.
# spid is the running server's pid (empty when none): the caller's EXIT trap kills it.
# Sourced once the programs are built: bench_elapsed counts from here.

# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh
# The load generator: RINGSOCK_LOAD_THREADS=N runs ringsock-load --threads N in run_load's
# rows, RINGSOCK_LOAD_CPUS=LIST (a taskset list: 1-3, 1,3) pins it to those CPUs, thread i to
# the i-th when there are N or more. Its CPU share in the runs (the report's load gen CPU, the
# stall check) is the process's with one thread and the busiest thread's with more.
load_threads=${RINGSOCK_LOAD_THREADS:-1}
[[ $load_threads =~ ^[1-9][0-9]*$ ]] || {
  echo "RINGSOCK_LOAD_THREADS: '$load_threads' is not a number of threads" >&2
  exit 2
}
cli_cpu=${RINGSOCK_LOAD_CPUS:-$cli_cpu}
[[ $cli_cpu =~ ^[0-9][0-9,-]*$ ]] || {
  echo "RINGSOCK_LOAD_CPUS: '$cli_cpu' is not a CPU list (taskset -c)" >&2
  exit 2
}
load_cpu_field=client_cpu
((load_threads == 1)) || load_cpu_field=client_thread_cpu_max
spid=
bench_started=$SECONDS
retries=0      # runs repeated
noisy=0        # runs kept although disturbed
stalls=0       # runs repeated because the VM stalled
died=0         # runs whose server was gone at the end

# CPU ticks of every user process except this script (and so its children once they have
# exited: the clients) and the server: what other people's work takes during a run. Kernel
# threads (which also carry our own loopback traffic) are left out.
others_ticks() {
  awk -v me=$$ -v srv="${spid:-0}" 'FNR == 1 {
      pid = FILENAME; sub(/^\/proc\//, "", pid); sub(/\/stat$/, "", pid);
      r = $0; sub(/^.*\) /, "", r); n = split(r, a, " ");
      if (n >= 15 && pid != me && pid != srv && pid != 2 && a[2] != 2 && pid != 1)
        t += a[12] + a[13] + a[14] + a[15] }
    END { print t + 0 }' /proc/[0-9]*/stat 2>/dev/null || echo 0
}
# O0 O1 W0 W1 -> other processes' CPU in % of one core. A child that ran long before and
# exited during the run brings all its time along; no more than all cores can have been taken.
others_pct_of() {
  awk -v a="$1" -v b="$2" -v w0="$3" -v w1="$4" -v hz="$hz" -v ncpu="$(nproc)" \
    'BEGIN { o = (b - a) / hz; p = o < 0 ? 0 : 100 * o / (w1 - w0);
      printf "%.0f", (p > 100 * ncpu ? 100 * ncpu : p) }'
}

# --quick promises about a minute even on a busy machine: at most 1 s of waiting for an idle
# machine before a run, and at most 4 repeated runs in all.
quick_limits() {
  quiet_tries=5
  max_retries=4
}
quiet_secs() { awk -v n="$quiet_tries" 'BEGIN { print n * 0.2 }'; } # wait_quiet's limit, in s
bench_elapsed() { # the time since the script sourced this file, as "M min S s"
  local s=$((SECONDS - bench_started))
  echo "$((s / 60)) min $((s % 60)) s"
}

start_server() { # NAME [ENV=VALUE...] -> spid, sport
  local name=$1
  shift
  : >"$tmp/server.out"
  # shellcheck disable=SC2046
  env "$@" taskset -c "$srv_cpu" $(server_cmd "$name") >"$tmp/server.out" 2>"$tmp/server.err" &
  spid=$!
  sport=
  for _ in $(seq 200); do
    sport=$(awk '/^listening on/ {print $3}' "$tmp/server.out")
    [ -n "$sport" ] && return 0
    sleep 0.02
  done
  echo "$bench_name: $name did not start: $(cat "$tmp/server.err")" >&2
  exit 1
}
# Stops the server; srv_died=1 (with a note) when it was no longer running.
stop_server() {
  srv_died=0
  if ! kill -0 "$spid" 2>/dev/null; then
    srv_died=1
    died=$((died + 1))
    echo "  (the server was gone at the end of the run: $(tail -3 "$tmp/server.err" | tr '\n' ' '))" >&2
  fi
  kill -TERM "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  spid=
}

# run_load ROW SERVER BUSY LABEL CLIENT_ARGS...: one ringsock-load run against a fresh
# server, repeated while others disturbed it. Appends "msgs/s MB/s p99 server_us_per_msg
# client_cpu others% server_minflt_per_msg" to $tmp/r-ROW-SERVER.
# Disturbed: other processes took more than others_pct of a core, or (BUSY=1: rows where the
# load keeps one side busy) neither the server nor the client got past 80% of its core. That
# is this VM stalling, both sides waiting; it comes and goes for seconds and hits whichever
# server runs then.
run_load() {
  local row=$1 srv=$2 busy=$3 label=$4 attempt line o0 o1 w0 w1 others stalled
  shift 4
  for attempt in 1 2 3; do
    start_server "$srv"
    wait_quiet
    o0=$(others_ticks); w0=$(date +%s.%N)
    line=$(taskset -c "$cli_cpu" "$bin/ringsock-load" --port "$sport" --server-pid "$spid" \
      --threads "$load_threads" --seconds "$secs" --warmup "$warmup" --quiet "$@" \
      2>"$tmp/client.err") || line=
    o1=$(others_ticks); w1=$(date +%s.%N)
    stop_server
    ((srv_died)) && line=
    others=$(others_pct_of "$o0" "$o1" "$w0" "$w1")
    stalled=$(awk -v l="$line" -v b="$busy" -v c="$load_cpu_field" 'BEGIN {
        n = split(l, kv, /[ =]/); for (i = 1; i < n; i += 2) v[kv[i]] = kv[i + 1];
        print (b && v[c] < 0.8 && v["server_cpu"] < 0.8) ? 1 : 0 }')
    if [ -n "$line" ] && { { ((others <= others_pct)) && ((!stalled)); } ||
      ((attempt == 3 || retries >= max_retries)); }; then
      { ((others <= others_pct)) && ((!stalled)); } || noisy=$((noisy + 1))
      break
    fi
    if [ -z "$line" ] && ((attempt == 3)); then
      echo "$bench_name: $srv $label: ringsock-load failed: $(cat "$tmp/client.err")" >&2
      exit 1
    fi
    ((stalled)) && stalls=$((stalls + 1))
    retries=$((retries + 1))
  done
  awk -v l="$line" -v o="$others" -v c="$load_cpu_field" 'BEGIN {
      n = split(l, kv, /[ =]/); for (i = 1; i < n; i += 2) v[kv[i]] = kv[i + 1];
      print v["msgs/s"], v["MB/s"], v["p99_us"], v["server_us_per_msg"], v[c], o,
        v["server_minflt_per_msg"] }' >>"$tmp/r-$row-$srv"
  printf '  %-9s %-22s %s others=%s%%%s\n' "$srv" "$label" \
    "$(tr ' ' '\n' <<<"$line" | grep -E '^(msgs/s|MB/s|p99_us|client_cpu|client_thread_cpu_max|client_us_per_msg|server_cpu|server_us_per_msg|server_minflt_per_msg)=' | tr '\n' ' ')" \
    "$others" "$( ((stalled)) && echo ' stalled')" | tee -a "$tmp/runs.log" >&2
}

col() { cut -d' ' -f"$2" "$1" | median; } # FILE FIELD -> median
# FILE_A FIELD_A FILE_B FIELD_B -> median over repetitions of A/B, as x.xx: runs next to each
# other in time are compared with each other.
pratio() {
  paste -d' ' <(cut -d' ' -f"$2" "$1") <(cut -d' ' -f"$4" "$3") |
    awk '$2 > 0 { print $1 / $2 }' | median | awk '{ if ($1 == "-") print; else printf "%.2f", $1 }'
}
r() { echo "$tmp/r-$1-$2"; } # ROW SERVER -> its results file
# ROW SERVER FIELD: the median, or - without that server
med() { if [ -f "$(r "$1" "$2")" ]; then col "$(r "$1" "$2")" "$3"; else echo -; fi; }
# ROW SERVER BASE FIELD: the paired ratio SERVER / BASE, or -
vs() { if [ -f "$(r "$1" "$2")" ]; then pratio "$(r "$1" "$2")" "$4" "$(r "$1" "$3")" "$4"; else echo -; fi; }
# The same, marked † where the ratio of the medians differs from it by more than 10%: the
# machine changed speed within the row, and only the paired ratio compares like with like.
vs_mark() {
  local p
  p=$(vs "$@")
  [ "$p" = - ] && { echo -; return; }
  awk -v p="$p" -v a="$(med "$1" "$2" "$4")" -v b="$(med "$1" "$3" "$4")" \
    'BEGIN { q = b > 0 ? a / b : 0; printf "%s%s", p, (p > 0 && (q / p > 1.1 || q / p < 0.91)) ? " †" : "" }'
}
num() { awk -v x="$1" -v d="$2" 'BEGIN { if (x == "-") print x; else printf "%.*f", d, x }'; }
met_missed() { awk "BEGIN { print (($1) ? \"met\" : \"missed\") }"; } # CONDITION
# TEST GOAL FIGURE [CONDITION [UNIT]]: one line of a goals table (| test | goal | this run |
# verdict |), FIGURE with UNIT (default x, a ratio) and met or missed by "FIGURE CONDITION";
# without CONDITION no verdict. Without a figure (- or empty: a server or iperf3 gave none)
# the goal is neither met nor missed.
goal() {
  local verdict='' unit=${5-x}
  if [ -z "$3" ] || [ "$3" = - ]; then
    echo "| $1 | $2 | - | no figure |"
    return
  fi
  [ -z "${4:-}" ] || verdict=$(met_missed "$3 $4")
  echo "| $1 | $2 | $3$unit | $verdict |"
}
goals_header() {
  echo "| test | goal | this run | |"
  echo "|---|---|---:|---|"
}
# PATHSPEC...: the source revision and the uncommitted files under PATHSPEC, for a report;
# ? outside a git checkout or without git.
source_state() {
  local rev dirty
  rev=$(git rev-parse --short HEAD 2>/dev/null) || { echo '?'; return; }
  dirty=$(git status --porcelain -- "$@" 2>/dev/null | awk '{print $2}' | xargs) || dirty=
  echo "$rev${dirty:+ with uncommitted changes in $dirty}"
}
