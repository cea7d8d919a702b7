#!/usr/bin/env bash
# Media benchmark: the media engine's `media_legs` example (legs playing a
# 30 s prompt to a UDP echo on loopback) at increasing leg counts, one table
# row per count: the engine's CPU, the worker threads' wait for a CPU (how
# busy the rest of the machine kept them), resident memory per leg, frames
# sent against 50 per second per leg, and send lateness.
#
#   bash benches/media_legs.sh [SECONDS_PER_RUN] [LEGS...]
#
# Defaults: 20 s per run, 500 1000 2000 4000 legs; WORKERS=n sets the
# engine's worker threads (default 1), REALTIME=no keeps them off real-time
# scheduling (by default they ask for it, as the daemon's do).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
counts=("${@:-500 1000 2000 4000}")
read -r -a counts <<<"${counts[*]}"
workers=${WORKERS:-1}
realtime=${REALTIME:-yes}

cargo build --release -p dialhound-media --example media_legs
bin=target/release/examples/media_legs

# Two sockets per leg, plus the process's own.
largest=0
for legs in "${counts[@]}"; do ((legs > largest)) && largest=$legs; done
needed=$((2 * largest + 256))
soft=$(ulimit -Sn)
if [ "$soft" != unlimited ] && ((soft < needed)); then
  ulimit -Sn "$needed"
  echo "raised the open-files soft limit from $soft to $needed"
fi

printf '%6s %8s %9s %9s %9s %8s %8s %8s %9s %7s\n' \
  legs "cpu %" "wait %" "KiB/leg" "frames %" "p50 µs" "p99 µs" "max µs" lost load
for legs in "${counts[@]}"; do
  load=$(cut -d' ' -f1 /proc/loadavg)
  result=$("$bin" --legs "$legs" --seconds "$seconds" --workers "$workers" --realtime "$realtime" | grep '^RESULT')
  declare -A r=()
  for pair in ${result#RESULT }; do r[${pair%%=*}]=${pair#*=}; done
  printf '%6s %8s %9s %9s %9s %8s %8s %8s %9s %7s\n' \
    "${r[legs]}" "${r[cpu_pct]}" "${r[worker_wait_pct]}" "${r[rss_kib_per_leg]}" \
    "${r[frames_pct]}" "${r[p50_us]}" "${r[p99_us]}" "${r[max_us]}" "${r[lost]}" "$load"
  unset r
done
