# Helpers shared by start.sh and jasmin.sh (sourced, after stack.env).
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

