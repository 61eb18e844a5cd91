# shellcheck shell=bash disable=SC2154,SC2034 # quiet_pct comes from the sourcing script; hz, gate_waits are for it
# What every bench script shares: sourced with . scripts/lib/common.sh (scripts/lib/bench.sh
# sources it too). The sourcing script sets quiet_pct (the machine counts as idle below this
# share of busy time) and may set quiet_tries before calling wait_quiet.

hz=$(getconf CLK_TCK)
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # PID -> its CPU ticks
quiet_tries=15 # wait_quiet gives up after this many 0.2 s looks
gate_waits=0   # runs that had to wait for the machine to be idle

wait_quiet() { # up to quiet_tries x 0.2 s for the machine to be idle
  local a b i
  for ((i = 0; i < quiet_tries; i++)); do
    a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat)
    sleep 0.2
    b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat)
    awk -v a="$a" -v b="$b" -v q="$quiet_pct" 'BEGIN { split(a, x); split(b, y);
      busy = y[1] - x[1]; idle = y[2] - x[2]; exit !(busy + idle > 0 && busy * 100 < q * (busy + idle)) }' &&
      return 0
    ((i > 0)) || gate_waits=$((gate_waits + 1))
  done
  return 0 # busy anyway: the run goes ahead and counts what the others took
}

median() { # - when there is nothing
  sort -g | awk '{a[NR]=$1} END {print !NR ? "-" : (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
}
