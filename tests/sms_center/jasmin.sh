#!/usr/bin/env bash
# Jasmin alone, inside a stack start.sh brought up (Redis, RabbitMQ and the
# upstream stay as they are):
#   ./jasmin.sh start   start jasmind on the configuration start.sh wrote, then
#                       configure it through jCli (users, connector, routes) and
#                       wait until its connector is bound to the upstream
#   ./jasmin.sh kill    kill -9 jasmind, as a crash would: nothing is flushed
# start.sh uses the first; the SMS tests use both to crash the SMS center
# mid-campaign and bring it back.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
set -a
# shellcheck source=stack.env
. "$HERE/stack.env"
set +a
# shellcheck source=lib.sh
. "$HERE/lib.sh"
RUN="${STACK_RUN_DIR:-$HERE/run}"
VENV="${STACK_VENV:-$HERE/venv}"
JROOT="$RUN/jasmin"
JCFG="$JROOT/etc/jasmin/jasmin.cfg"

start() {
  [ -f "$JCFG" ] || die "no $JCFG: start the stack with start.sh first"
  port_busy "$SMPPS_PORT" && die "port $SMPPS_PORT already in use (jasmind already running?)"
  [ -f "$RUN/logs/jasmind.out" ] && mv "$RUN/logs/jasmind.out" "$RUN/logs/jasmind.out.1"
  say "starting jasmind (with --enable-dlr-lookup --enable-dlr-thrower, JASMIN_TCP_NODELAY=$JASMIN_TCP_NODELAY)"
  (
    export ROOT_PATH="$JROOT" LOG_PATH="$JROOT/log"
    # Optional: TCP_NODELAY on jasmind's sockets (see tcp_nodelay/sitecustomize.py); off = stock Jasmin
    [ "$JASMIN_TCP_NODELAY" = 1 ] && export PYTHONPATH="$HERE/tcp_nodelay${PYTHONPATH:+:$PYTHONPATH}"
    cd "$JROOT"
    # --enable-dlr-lookup / --enable-dlr-thrower: without them (or the separate dlrlookupd.py/dlrd.py
    # daemons) receipts from the upstream are never forwarded to SMPP server users.
    setsid "$VENV/bin/python" -u "$VENV/bin/jasmind.py" -c "$JCFG" --enable-dlr-lookup --enable-dlr-thrower \
      > "$RUN/logs/jasmind.out" 2>&1 < /dev/null &
    echo $! > "$RUN/jasmind.pid"
  )
  wait_port "$JCLI_PORT" 60 "jasmin jcli"
  wait_port "$SMPPS_PORT" 10 "jasmin smpp server"
  say "jasmind up"
  if grep -q "ERROR\|Cannot start" "$RUN/logs/jasmind.out"; then
    cat "$RUN/logs/jasmind.out" >&2; die "jasmind reported startup errors"
  fi
  say "configuring jasmin through jcli"
  "$VENV/bin/python" "$HERE/jcli_setup.py" --wait-bound 30 > "$RUN/logs/jcli_setup.log" 2>&1 \
    || { cat "$RUN/logs/jcli_setup.log" >&2; die "jcli configuration failed"; }
  say "connector $UPSTREAM_CID bound to upstream; routes configured"
}

kill_hard() {
  local pid
  [ -f "$RUN/jasmind.pid" ] || die "no $RUN/jasmind.pid: jasmind was not started by this stack"
  pid=$(cat "$RUN/jasmind.pid")
  kill -KILL "$pid" 2>/dev/null || die "jasmind (pid $pid) is not running"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && die "jasmind (pid $pid) outlived kill -9"
  # its listeners go with it
  for _ in $(seq 1 50); do port_busy "$SMPPS_PORT" || break; sleep 0.1; done
  rm -f "$RUN/jasmind.pid"
  # jasmind refuses to start while its lock file (FileLock("/tmp/jasmind")) is there, and a
  # killed jasmind leaves it behind: clear it as a supervisor restarting a crashed one must.
  rm -f /tmp/jasmind.lock
  say "killed jasmind (pid $pid)"
}

case "${1:-}" in
  start) start ;;
  kill) kill_hard ;;
  *) echo "usage: $0 start|kill" >&2; exit 2 ;;
esac
