#!/usr/bin/env bash
# Stop everything start.sh started (by pid files / node name only). Logs stay in run/logs.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/stack.env"
RUN="${STACK_RUN_DIR:-$HERE/run}"

stop_pidfile() {  # stop_pidfile FILE NAME
  local f=$1 name=$2 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$f"
}

stop_pidfile "$RUN/jasmind.pid" jasmind
stop_pidfile "$RUN/upstream.pid" upstream-smsc

if [ -d "$RUN/rabbitmq" ]; then
  ( export HOME="$RUN/rabbitmq"; cd "$RUN/rabbitmq"
    # with the pid file, "stop" waits until the Erlang VM has exited
    /usr/lib/rabbitmq/bin/rabbitmqctl -q -n "$RABBIT_NODENAME" stop "$RUN/rabbitmq/rabbit.pid" >/dev/null 2>&1 \
      && echo "stopped rabbitmq" )
  stop_pidfile "$RUN/rabbitmq/rabbit.pid" "rabbitmq (leftover VM)"
  # epmd was started by our node; stop it only if no other Erlang node is registered
  if command -v epmd >/dev/null; then
    for _ in $(seq 1 50); do epmd -names 2>/dev/null | grep -q "^name ${RABBIT_NODENAME%@*} " || break; sleep 0.1; done
    epmd -names 2>/dev/null | grep -q '^name ' || epmd -kill >/dev/null 2>&1 || true
  fi
fi
if [ -f "$RUN/redis/redis.pid" ]; then
  redis-cli -h "$STACK_HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 && echo "stopped redis"
  rm -f "$RUN/redis/redis.pid"
fi
# logs and state stay in run/ for inspection; start.sh wipes run/ on the next start
exit 0
