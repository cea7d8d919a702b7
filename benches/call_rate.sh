#!/usr/bin/env bash
# Call-rate benchmark: dialhound and SIPp's own UAC each place calls (answer,
# 1 s talk, BYE) to a SIPp UAS on loopback at increasing rates, in the same run.
# For each rate it prints the failed calls, the requests the caller sent again
# for want of an answer, the rate the caller actually placed them at, and the
# caller's CPU seconds per 10,000 calls; the last line
# gives the highest rate each sustained: no failed call, and placed at 95 % of
# the rate asked or more.
#
#   cargo build --release && bash benches/call_rate.sh [SECONDS_PER_STEP] [RATES...]
#
# Defaults: 10 s per step, rates 100 200 400 700 1000 1300.
set -euo pipefail
cd "$(dirname "$0")/.."
step_seconds=${1:-10}
shift || true
rates=("${@:-100 200 400 700 1000 1300}")
read -r -a rates <<<"${rates[*]}"
bin=target/release/dialhound
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)
cpu_seconds() { # utime+stime of a process, in seconds
  awk -v t="$ticks" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"
}
uac_column() { # name: the last statistics line of SIPp's CSV, by column name
  awk -F';' -v name="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) col = i }
                          END { print (col ? $col : "?") }' "$work/uac.csv" 2>/dev/null || echo "?"
}
uas() { # port calls: a SIPp UAS in the background; its pid in $sipp_pid
  sipp -sn uas -i 127.0.0.1 -p "$1" -m "$2" -nostdin -timeout $((step_seconds + 60))s \
    -mp "$(( $1 + 1000 ))" >/dev/null 2>&1 &
  sipp_pid=$!
}

cat >"$work/dialhound.toml" <<CONFIG
[daemon]
data_dir = "$work/data"
socket = "$work/dialhound.sock"
key_file = "$work/dialhound.key"
[sip]
listen = "127.0.0.1:0"
keepalive_seconds = 0
[[trunk]]
name = "bench"
proxy = "127.0.0.1:25070"
tier = "premium"
channels = 20000
cps = 5000
CONFIG
"$bin" serve --config "$work/dialhound.toml" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 100); do [ -S "$work/dialhound.sock" ] && break; sleep 0.1; done

best_dialhound=0; best_sipp=0
printf '%-6s %-9s %8s %8s %8s %9s %14s\n' rate caller calls failed resent placed/s "cpu_s/10k"
for rate in "${rates[@]}"; do
  calls=$(( rate * step_seconds ))
  # dialhound as the caller
  uas 25070 "$calls"
  sleep 0.5
  before=$(cpu_seconds "$daemon")
  summary=$("$bin" --socket "$work/dialhound.sock" --json call --trunk bench \
    --to 13800138000 --count "$calls" --rate "$rate" --hold 1 --ring-timeout 10 --no-media)
  after=$(cpu_seconds "$daemon")
  echo "$summary" >>"${CALL_RATE_LOG:-/dev/null}"
  wait "$sipp_pid" || true
  read -r answered placed resent < <(echo "$summary" | python3 -c 'import json,sys; d = json.load(sys.stdin)
# The last call is placed (calls - 1) / rate after the first.
print(d["outcomes"].get("answered", 0), round((d["calls"] - 1) / max(d["placing_seconds"], 1e-9)),
      d.get("retransmissions", "?"))')
  failed=$(( calls - answered ))
  cpu=$(awk -v a="$after" -v b="$before" -v n="$calls" 'BEGIN { printf "%.2f", (a - b) * 10000 / n }')
  printf '%-6s %-9s %8s %8s %8s %9s %14s\n' "$rate" dialhound "$calls" "$failed" "$resent" "$placed" "$cpu"
  [ "$failed" -eq 0 ] && ((placed * 100 >= rate * 95)) && best_dialhound=$rate

  # SIPp's own UAC as the caller
  uas 25072 "$calls"
  sleep 0.5
  status=0
  began=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$work/uac.time" sipp -sn uac -i 127.0.0.1 -p 25074 -r "$rate" \
    -m "$calls" -d 1000 -nostdin -timeout $((step_seconds + 60))s -mp 28000 \
    -trace_stat -stf "$work/uac.csv" 127.0.0.1:25072 >/dev/null 2>&1 || status=$?
  ended=$(date +%s.%N)
  wait "$sipp_pid" || true
  # SIPp places its last call about 1 s (the talk) before it exits.
  placed=$(awk -v a="$began" -v b="$ended" -v n="$calls" 'BEGIN { printf "%.0f", (n - 1) / (b - a - 1) }')
  uac_failed=$(uac_column "FailedCall(C)")
  uac_resent=$(uac_column "Retransmissions(C)")
  [ "$status" -ne 0 ] && [ "$uac_failed" = 0 ] && uac_failed="exit $status"
  cpu=$(tail -1 "$work/uac.time" | awk -v n="$calls" '{ printf "%.2f", ($1 + $2) * 10000 / n }')
  printf '%-6s %-9s %8s %8s %8s %9s %14s\n' "$rate" sipp-uac "$calls" "$uac_failed" "$uac_resent" "$placed" "$cpu"
  [ "$uac_failed" = 0 ] && ((placed * 100 >= rate * 95)) && best_sipp=$rate
done
echo "highest rate sustained (no failed call, placed at 95 % of the rate or more): dialhound $best_dialhound/s, sipp-uac $best_sipp/s"
