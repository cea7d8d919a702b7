#!/usr/bin/env bash
# Answered-call load benchmark: the daemon places CALLS calls to a SIPp UAS
# that echoes RTP (`-rtp_echo`) on loopback; every call is answered and plays
# a 30 s prompt (a generated tone), then hangs up after HOLD seconds. One
# table row per run:
#   failed    calls placed minus calls answered (from the load-test summary)
#   peak      the highest `dialhound_sip_active_dialogs` seen (answered, up)
#   cpu %     the daemon's utime+stime over the plateau (every call answered
#             and its prompt still playing), as a share of one core
#   sipp %    the SIPp UAS's CPU over the same window (it shares the machine)
#   KiB/call  (median RSS over the plateau - RSS before the calls) / peak
#   p50/p99/max µs, frames %
#             send lateness seen on the wire: the daemon's RTP packets are
#             taken off the loopback interface (AF_PACKET, kernel send
#             timestamps, needs root) for about 1 stream in 20; within each
#             stream a packet's lateness is its send time minus the time its
#             RTP timestamp says it was due, the stream's earliest packet
#             counting as on time. frames % is the packets seen against
#             50 per second per sampled stream.
#   eng p99   the media engine's own p99 send lateness over the plateau, in
#             µs, from /metrics (`dialhound_media_send_lateness_seconds
#             {percentile="99"}` covers the frames since the previous scrape,
#             so the page is read once as the plateau begins and once as it
#             ends). Like the wire figure it pools every frame of the window:
#             a median of per-second p99s would hide the few bad seconds that
#             make a p99. It differs from the wire figure in that it counts
#             every leg, measures after `send_to` returns, and against the
#             frame's tick rather than the stream's best packet: a leg late
#             by the same amount every frame (the last of its tick's legs,
#             say) counts here, not on the wire, where a peer cannot tell.
#   load      the 1-minute load average when the run began (other work on
#             the machine skews every figure)
#
#   cargo build --release -p dialhound && bash benches/answered_load.sh [HOLD_SECONDS] [CALLS...]
#
# Defaults: hold 32 s, 2000 calls. RATE=n sets the calls placed per second
# (default 250: 2,000 calls are all up 8 s after the first and 5,000 after
# 20 s, inside the 30 s prompt), WORKERS=n the media threads and
# REALTIME=true|false their scheduling (both the daemon's defaults unless set),
# RUNS=n the runs per size (default 1), DIALHOUND_BIN the binary (default
# target/release/dialhound), CALL_ARGS more flags for `dialhound call` (such
# as --no-barge-in). ANSWERED_LOAD_LOG=FILE appends each run's capture figures
# and its busiest daemon threads to FILE. A fresh daemon serves each run.
set -euo pipefail
cd "$(dirname "$0")/.."
hold=${1:-32}
shift || true
counts=("${@:-2000}")
read -r -a counts <<<"${counts[*]}"
rate=${RATE:-250}
workers=${WORKERS:-}
realtime=${REALTIME:-}
runs=${RUNS:-1}
prompt_seconds=30
bin=${DIALHOUND_BIN:-target/release/dialhound}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release -p dialhound" >&2; exit 1; }
bin=$(realpath "$bin")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)
sip_port=25170
media_port=26000  # SIPp's RTP echo; the daemon's RTP ports are 30000-49999
metrics_port=29464

# Two sockets per call in the daemon, plus its own.
largest=0
for calls in "${counts[@]}"; do ((calls > largest)) && largest=$calls; done
needed=$((2 * largest + 1024))
soft=$(ulimit -Sn)
if [ "$soft" != unlimited ] && ((soft < needed)); then
  ulimit -Sn "$needed"
  echo "raised the open-files soft limit from $soft to $needed"
fi

thread_ticks() { # tid name ticks, one line per thread of a process
  for stat in /proc/"$1"/task/*/stat; do
    awk '{ match($0, /\(.*\)/); name = substr($0, RSTART + 1, RLENGTH - 2); gsub(/ /, "_", name)
           split(substr($0, RSTART + RLENGTH + 1), f, " "); print FILENAME, name, f[12] + f[13] }' "$stat" 2>/dev/null || true
  done
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
active_dialogs() { # the page is kept in $work/page for engine_p99
  curl -s --max-time 1 "http://127.0.0.1:$metrics_port/metrics" >"$work/page" || true
  awk '$1 == "dialhound_sip_active_dialogs" { print $2; found = 1 } END { if (!found) print 0 }' "$work/page"
}
engine_p99_us() { # the media engine's own p99 over the frames since the previous scrape of $work/page
  awk '$1 == "dialhound_media_send_lateness_seconds{percentile=\"99\"}" { printf "%.0f", $2 * 1e6 }' "$work/page"
}

# The prompt: a 30 s 440 Hz tone, 8 kHz mono 16-bit.
python3 - "$work/prompt.wav" "$prompt_seconds" <<'PY'
import math, struct, sys, wave
path, seconds = sys.argv[1], int(sys.argv[2])
with wave.open(path, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                           for i in range(8000 * seconds)))
PY

# Send lateness off the wire: RTP from the daemon's ports to SIPp's echo port.
cat >"$work/lateness.py" <<'PY'
import ctypes, resource, socket, struct, sys, time
seconds, lo, hi, every, dst, calls = float(sys.argv[1]), *map(int, sys.argv[2:7])
DROP = 17
prog = [  # classic BPF: outgoing IPv4 UDP, unfragmented, sport in [lo, hi], sport % every == 0, dport == dst
    (0x20, 0, 0, 0xFFFFF000 + 4),  # A = pkttype
    (0x15, 0, DROP - 2, 4),        # PACKET_OUTGOING
    (0x28, 0, 0, 12), (0x15, 0, DROP - 4, 0x0800),
    (0x30, 0, 0, 23), (0x15, 0, DROP - 6, 17),
    (0x28, 0, 0, 20), (0x45, DROP - 8, 0, 0x1FFF),
    (0xB1, 0, 0, 14),              # X = IP header length
    (0x48, 0, 0, 14),              # A = source port
    (0x35, 0, DROP - 11, lo), (0x25, DROP - 12, 0, hi),
    (0x94, 0, 0, every), (0x15, 0, DROP - 14, 0),
    (0x48, 0, 0, 16), (0x15, 0, DROP - 16, dst),
    (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0),
]
assert len(prog) == DROP + 1
raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
buf = ctypes.create_string_buffer(raw)
fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.setsockopt(socket.SOL_SOCKET, 26, fprog)              # SO_ATTACH_FILTER
s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)           # SO_RCVBUFFORCE
s.setsockopt(socket.SOL_SOCKET, 35, 1)                  # SO_TIMESTAMPNS
s.bind(("lo", 0x0003))
s.settimeout(0.2)
packets = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        data, anc, _, _ = s.recvmsg(64, 64)
    except socket.timeout:
        continue
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == 35:
            sec, nsec = struct.unpack("qq", value[:16])
            packets.append((sec * 1_000_000_000 + nsec, data))
streams = {}
for ns, data in packets:
    udp = 14 + (data[14] & 0x0F) * 4
    rtp = udp + 8
    if len(data) < rtp + 12 or data[rtp] >> 6 != 2:
        continue
    sport = struct.unpack_from("!H", data, udp)[0]
    ts, ssrc = struct.unpack_from("!II", data, rtp + 4)
    streams.setdefault((sport, ssrc), []).append((ns, ts))
late = []
for pkts in streams.values():
    if len(pkts) < 2:
        continue
    t0 = pkts[0][1]
    offsets = [ns - ((ts - t0) & 0xFFFFFFFF) * 125_000 for ns, ts in pkts]  # 8 kHz clock
    best = min(offsets)
    late += [(o - best) / 1000 for o in offsets]
seen = sum(len(pkts) for pkts in streams.values())
# A fresh daemon hands out RTP ports in order from `lo`: the sampled ones, even a silent one.
expected = max(len(streams), len(range(lo, lo + 2 * calls, every)))
late.sort()
q = lambda p: late[min(len(late) - 1, int(p * len(late)))] if late else float("nan")
use = resource.getrusage(resource.RUSAGE_SELF)
print(f"LATENESS streams={len(streams)} packets={len(late)} p50_us={q(0.5):.0f} p99_us={q(0.99):.0f} "
      f"max_us={late[-1] if late else float('nan'):.0f} frames_pct={100 * seen / max(1, 50 * seconds * expected):.2f} "
      f"capture_cpu_s={use.ru_utime + use.ru_stime:.2f}")
PY

write_config() {
  cat >"$work/dialhound.toml" <<CONFIG
[daemon]
data_dir = "$work/data"
socket = "$work/dialhound.sock"
key_file = "$work/dialhound.key"
metrics = "127.0.0.1:$metrics_port"
[sip]
listen = "127.0.0.1:0"
keepalive_seconds = 0
[media]
rtp_ports = "30000-49999"
prompts = "$work/prompts"
${workers:+workers = $workers}
${realtime:+realtime = $realtime}
[[trunk]]
name = "bench"
proxy = "127.0.0.1:$sip_port"
tier = "premium"
channels = 20000
cps = 5000
CONFIG
}

one_run() { # calls: one row of the table
  local calls=$1 load
  load=$(cut -d' ' -f1 /proc/loadavg)
  rm -rf "$work/data" "$work/dialhound.sock" "$work/prompts"
  mkdir -p "$work/prompts"
  write_config
  "$bin" serve --config "$work/dialhound.toml" 2>"$work/daemon.log" &
  local daemon=$!
  for _ in $(seq 100); do [ -S "$work/dialhound.sock" ] && break; sleep 0.1; done
  kill -0 "$daemon" 2>/dev/null || { echo "the daemon did not start:" >&2; tail -5 "$work/daemon.log" >&2; exit 1; }
  sipp -sn uas -i 127.0.0.1 -p "$sip_port" -mp "$media_port" -rtp_echo -m "$calls" -nostdin \
    -timeout $((calls / rate + hold + 120))s -trace_err -error_file "$work/sipp.err" >/dev/null 2>&1 &
  local sipp=$!
  sleep 1
  local idle_rss
  idle_rss=$(rss_kib "$daemon")

  "$bin" --socket "$work/dialhound.sock" --json call --trunk bench --to 13800138000 \
    --count "$calls" --rate "$rate" --play "$work/prompt.wav" --hold "$hold" \
    --ring-timeout 10 ${CALL_ARGS:-} >"$work/summary.json" 2>"$work/call.err" &
  local caller=$!
  local started=$SECONDS
  # The first prompt ends 30 s after the first answer, about when the first call goes out.
  local playing_until=$((started + prompt_seconds - 1))

  # Wait until every call is up, then sample over the rest of the plateau.
  local peak=0 dialogs full=""
  while kill -0 "$caller" 2>/dev/null && ((SECONDS < playing_until - 2)); do
    dialogs=$(active_dialogs)
    ((dialogs > peak)) && peak=$dialogs
    # Every call up, or the last placed a few seconds ago (some failed).
    if ((dialogs >= calls || SECONDS >= started + calls / rate + 3)); then full=1; break; fi
    sleep 0.25
  done
  local window=$((playing_until - SECONDS))
  local cpu0 sipp0 t0 cpu1 sipp1 t1 rss_samples=() engine_p99="-" lateness=""
  if [ -n "$full" ] && ((window >= 2)); then
    python3 "$work/lateness.py" "$((window - 1))" 30000 49999 40 "$media_port" "$calls" >"$work/lateness.out" 2>&1 &
    local capture=$!
    thread_ticks "$daemon" >"$work/threads0"
    cpu0=$(cpu_ticks "$daemon"); sipp0=$(cpu_ticks "$sipp"); t0=$(date +%s.%N)
    active_dialogs >/dev/null # the engine's lateness window starts here
    while ((SECONDS < playing_until)); do
      sleep 1
      rss_samples+=("$(rss_kib "$daemon")")
    done
    cpu1=$(cpu_ticks "$daemon"); sipp1=$(cpu_ticks "$sipp"); t1=$(date +%s.%N)
    dialogs=$(active_dialogs)
    ((dialogs > peak)) && peak=$dialogs
    engine_p99=$(engine_p99_us)
    thread_ticks "$daemon" >"$work/threads1"
    wait "$capture" || true
    lateness=$(grep '^LATENESS' "$work/lateness.out" || true)
    [ -n "$lateness" ] || echo "  no lateness capture: $(tail -1 "$work/lateness.out")" >&2
  else
    # Never all up at once: keep the peak for the row.
    while kill -0 "$caller" 2>/dev/null && ((SECONDS < started + calls / rate + hold)); do
      dialogs=$(active_dialogs)
      ((dialogs > peak)) && peak=$dialogs
      sleep 0.5
    done
  fi
  wait "$caller" || true
  wait "$sipp" 2>/dev/null || true

  local answered failed
  answered=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["outcomes"].get("answered",0))' \
    <"$work/summary.json" 2>/dev/null || echo 0)
  failed=$((calls - answered))
  if ((failed > 0)); then
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("  outcomes:", r["outcomes"], "refused:", r["refused_by_trunk_limits"], "errors:", r["errors"])' \
      <"$work/summary.json" 2>/dev/null || { echo "  call failed:"; head -5 "$work/call.err"; }
  fi
  local cpu="-" sipp_cpu="-" per_call="-"
  if [ -n "${t0:-}" ]; then
    cpu=$(awk -v a="$cpu1" -v b="$cpu0" -v t="$ticks" -v s="$t1" -v r="$t0" 'BEGIN { printf "%.1f", 100 * (a - b) / t / (s - r) }')
    sipp_cpu=$(awk -v a="$sipp1" -v b="$sipp0" -v t="$ticks" -v s="$t1" -v r="$t0" 'BEGIN { printf "%.1f", 100 * (a - b) / t / (s - r) }')
    local rss
    rss=$(printf '%s\n' "${rss_samples[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    per_call=$(awk -v r="$rss" -v i="$idle_rss" -v n="$peak" 'BEGIN { if (n > 0) printf "%.1f", (r - i) / n; else print "-" }')
  fi
  declare -A l=([p50_us]=- [p99_us]=- [max_us]=- [frames_pct]=-)
  for pair in ${lateness#LATENESS }; do l[${pair%%=*}]=${pair#*=}; done
  printf '%6s %7s %7s %6s %7s %8s %9s %8s %8s %8s %8s %8s %5s\n' "$calls" "$failed" "$peak" \
    "$cpu" "$sipp_cpu" "${idle_rss}" "$per_call" "${l[p50_us]}" "${l[p99_us]}" "${l[max_us]}" "${l[frames_pct]}" "$engine_p99" "$load"
  if [ -n "${ANSWERED_LOAD_LOG:-}" ]; then
    { echo "$calls calls: $lateness"
      grep -m1 -o 'media threads.*' "$work/daemon.log" | sed 's/^/  /' || true
      [ -n "${t0:-}" ] && awk -v t="$ticks" -v d="$(awk -v s="$t1" -v r="$t0" 'BEGIN { print s - r }')" '
        NR == FNR { before[$1] = $3; next }
        { busy = ($3 - before[$1]) / t / d * 100; if (busy >= 1) printf "  thread %s: %.1f %% of a core\n", $2, busy }
      ' "$work/threads0" "$work/threads1" | sort -t: -k2 -rn | head -6
    } >>"$ANSWERED_LOAD_LOG"
  fi

  kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
}

echo "hold ${hold} s, ${rate} calls/s, media threads: ${workers:-default} (realtime: ${realtime:-default}), prompt ${prompt_seconds} s, machine of $(nproc) cores"
printf '%6s %7s %7s %6s %7s %8s %9s %8s %8s %8s %8s %8s %5s\n' \
  calls failed peak "cpu %" "sipp %" "idle KiB" "KiB/call" "p50 µs" "p99 µs" "max µs" "frames %" "eng p99" load
for calls in "${counts[@]}"; do
  for _ in $(seq "$runs"); do
    one_run "$calls"
  done
done
