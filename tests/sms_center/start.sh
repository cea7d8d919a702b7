#!/usr/bin/env bash
# Start the SMS test stack on loopback: Redis + RabbitMQ (Debian packages),
# an upstream SMSC simulator, Jasmin 0.11.0 (SMPP server + SMPP client connector),
# then configure Jasmin through jCli. Installs what is missing first.
#
# Usage: ./start.sh            (settings: stack.env, overridable from the environment)
#        SKIP_INSTALL=1 ./start.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=stack.env
. "$HERE/stack.env"
RUN="${STACK_RUN_DIR:-$HERE/run}"
VENV="${STACK_VENV:-$HERE/venv}"
export STACK_HOST SMPPS_PORT SMPP_USER SMPP_PASS THROTTLED_USER THROTTLED_PASS THROTTLED_TPS \
       JCLI_PORT JCLI_USER JCLI_PASS UPSTREAM_PORT UPSTREAM_CTL_PORT UPSTREAM_USER UPSTREAM_PASS \
       UPSTREAM_CID UPSTREAM_CONNECTORS CONNECTOR_TPS FAIL_PREFIX REJECT_PREFIX DLR_DELAY_MS

T0=$(date +%s.%N)
ts() { awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "[%6.2fs] ", a - b }'; }
say() { ts; echo "$*"; }
die() { ts; echo "ERROR: $*" >&2; exit 1; }

# wait_port PORT TIMEOUT_S NAME
wait_port() {
  local port=$1 timeout=$2 name=$3 t=0
  until (exec 3<>"/dev/tcp/$STACK_HOST/$port") 2>/dev/null; do
    sleep 0.2; t=$((t + 1))
    [ $t -ge $((timeout * 5)) ] && die "$name did not open $STACK_HOST:$port within ${timeout}s"
  done
  return 0
}

port_busy() { (exec 3<>"/dev/tcp/$STACK_HOST/$1") 2>/dev/null; }

# ---------------------------------------------------------------- install
install_all() {
  if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || ! command -v redis-server >/dev/null; then
    say "installing rabbitmq-server redis-server (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q rabbitmq-server redis-server >/dev/null
  fi
  if [ ! -x "$VENV/bin/jasmind.py" ] || ! "$VENV/bin/python" -c 'import smpplib' 2>/dev/null; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=/path/to/python3.11)"
    say "creating venv $VENV with jasmin==$JASMIN_VERSION smpplib"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$HERE/constraints.txt" "jasmin==$JASMIN_VERSION" smpplib
  fi
  local v
  v=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("jasmin"))')
  [ "$v" = "$JASMIN_VERSION" ] || die "venv has jasmin $v, want $JASMIN_VERSION"
}
[ "${SKIP_INSTALL:-0}" = 1 ] || install_all
say "install check done"

for p in "$REDIS_PORT" "$AMQP_PORT" "$UPSTREAM_PORT" "$UPSTREAM_CTL_PORT" "$SMPPS_PORT" "$JCLI_PORT" \
         "$HTTPAPI_PORT" "$ROUTER_PB_PORT" "$SMPPCM_PB_PORT" "$SMPPS_PB_PORT"; do
  port_busy "$p" && die "port $p already in use (stack already running? run ./stop.sh)"
done

# From here on, a failed start stops whatever it already started.
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "start failed (rc=$rc), stopping; logs in $RUN/logs" >&2; "$HERE/stop.sh" >/dev/null 2>&1; fi' EXIT

# Fresh state on every start: no persisted Jasmin profile, empty queues, empty Redis.
rm -rf "$RUN"
mkdir -p "$RUN"/{redis,rabbitmq,jasmin/etc/jasmin/store,jasmin/etc/jasmin/resource,jasmin/log,logs}

# ---------------------------------------------------------------- redis
say "starting redis on $STACK_HOST:$REDIS_PORT"
redis-server --bind "$STACK_HOST" --port "$REDIS_PORT" --daemonize yes --protected-mode yes \
  --dir "$RUN/redis" --save '' --appendonly no \
  --pidfile "$RUN/redis/redis.pid" --logfile "$RUN/logs/redis.log"
until redis-cli -h "$STACK_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
say "redis up"

# ---------------------------------------------------------------- rabbitmq
say "starting rabbitmq ($RABBIT_NODENAME) on $STACK_HOST:$AMQP_PORT"
RMQ="$RUN/rabbitmq"
echo '[].' > "$RMQ/enabled_plugins"          # no management plugin, no extra listeners
(
  export HOME="$RMQ" RABBITMQ_NODENAME="$RABBIT_NODENAME" RABBITMQ_NODE_IP_ADDRESS="$STACK_HOST" \
         RABBITMQ_NODE_PORT="$AMQP_PORT" RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT" ERL_EPMD_ADDRESS="$STACK_HOST" \
         RABBITMQ_MNESIA_BASE="$RMQ/mnesia" RABBITMQ_LOG_BASE="$RMQ/log" RABBITMQ_PID_FILE="$RMQ/rabbit.pid" \
         RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ/enabled_plugins" RABBITMQ_CONFIG_FILE="$RMQ/rabbitmq" \
         RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  cd "$RMQ"
  setsid /usr/lib/rabbitmq/bin/rabbitmq-server > "$RUN/logs/rabbitmq.out" 2>&1 < /dev/null &
)
wait_port "$AMQP_PORT" 90 rabbitmq
say "rabbitmq up"

# ---------------------------------------------------------------- upstream SMSC simulator
say "starting upstream SMSC simulator on $STACK_HOST:$UPSTREAM_PORT (ctl :$UPSTREAM_CTL_PORT)"
setsid "$VENV/bin/python" -u "$HERE/upstream_smsc.py" --log "$RUN/upstream-messages.jsonl" ${UPSTREAM_ARGS:-} \
  > "$RUN/logs/upstream.log" 2>&1 < /dev/null &
echo $! > "$RUN/upstream.pid"
wait_port "$UPSTREAM_PORT" 15 upstream
say "upstream up"

# ---------------------------------------------------------------- jasmin
JROOT="$RUN/jasmin"
JCFG="$JROOT/etc/jasmin/jasmin.cfg"
# The pip package ships no /etc/jasmin/resource/amqp0-9-1.xml: txAMQP's copy of the spec works.
cp "$("$VENV/bin/python" -c 'import txamqp,os;print(os.path.dirname(txamqp.__file__))')/specs/standard/amqp0-9-1.stripped.xml" \
   "$JROOT/etc/jasmin/resource/amqp0-9-1.xml"
JCLI_MD5=$(printf %s "$JCLI_PASS" | md5sum | cut -d' ' -f1)
cat > "$JCFG" <<EOF
# Generated by start.sh: Jasmin $JASMIN_VERSION for the SMS test stack (loopback only)
[smpp-server]
id = smpps_01
bind = $STACK_HOST
port = $SMPPS_PORT
billing_feature = False
log_level = INFO
log_file = $JROOT/log/default-smpps_01.log

[smpp-server-pb]
bind = $STACK_HOST
port = $SMPPS_PB_PORT

[client-management]
bind = $STACK_HOST
port = $SMPPCM_PB_PORT
store_path = $JROOT/etc/jasmin/store

[sm-listener]
log_level = INFO

[dlr]
log_level = INFO
# A receipt that overtakes its own submit_sm_resp mapping (backlog in the dlr.submit_sm_resp
# queue) is retried: defaults 10 s x 2, after which it is dropped. Retry fast and longer here.
dlr_lookup_retry_delay = $DLR_LOOKUP_RETRY_DELAY
dlr_lookup_max_retries = $DLR_LOOKUP_MAX_RETRIES

[amqp-broker]
host = $STACK_HOST
port = $AMQP_PORT
username = guest
password = guest
vhost = /
spec = $JROOT/etc/jasmin/resource/amqp0-9-1.xml
connection_failure_retry_delay = 2
connection_loss_retry_delay = 2

[redis-client]
host = $STACK_HOST
port = $REDIS_PORT
dbid = 0

[http-api]
bind = $STACK_HOST
port = $HTTPAPI_PORT
billing_feature = False

[router]
bind = $STACK_HOST
port = $ROUTER_PB_PORT
store_path = $JROOT/etc/jasmin/store

[deliversm-thrower]
retry_delay = 5
max_retries = 3

[dlr-thrower]
dlr_pdu = deliver_sm
retry_delay = 5
max_retries = 3

[jcli]
bind = $STACK_HOST
port = $JCLI_PORT
authentication = True
admin_username = $JCLI_USER
admin_password = $JCLI_MD5
EOF

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

# ---------------------------------------------------------------- jcli configuration
say "configuring jasmin through jcli"
"$VENV/bin/python" "$HERE/jcli_setup.py" --wait-bound 30 > "$RUN/logs/jcli_setup.log" 2>&1 \
  || { cat "$RUN/logs/jcli_setup.log" >&2; die "jcli configuration failed"; }
say "connector $UPSTREAM_CID bound to upstream; routes configured"

cat <<EOF
$(ts)SMS stack ready.
  SMPP server (bind_transceiver): $STACK_HOST:$SMPPS_PORT  system_id=$SMPP_USER password=$SMPP_PASS
  throttled user:                 system_id=$THROTTLED_USER password=$THROTTLED_PASS (smpps_throughput=$THROTTLED_TPS)
  jcli:                           telnet $STACK_HOST $JCLI_PORT  ($JCLI_USER/$JCLI_PASS)
  upstream SMSC control API:      http://$STACK_HOST:$UPSTREAM_CTL_PORT/{status,messages,mo,reset}
  upstream message log:           $RUN/upstream-messages.jsonl
  logs:                           $RUN/logs/  $JROOT/log/
EOF
