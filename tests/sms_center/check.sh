#!/usr/bin/env bash
# Run the end-to-end check (default) or the benchmark against a running stack.
#   ./check.sh                 -> e2e_check.py
#   ./check.sh bench [args]    -> bench.py (e.g. --count 2000 --window 20)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
set -a; . "$HERE/stack.env"; set +a
PY="${STACK_VENV:-$HERE/venv}/bin/python"
if [ "${1:-}" = bench ]; then shift; exec "$PY" "$HERE/bench.py" "$@"; fi
exec "$PY" "$HERE/e2e_check.py" "$@"
