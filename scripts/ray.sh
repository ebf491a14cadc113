#!/usr/bin/env bash
# A private local Ray cluster for the test suite and for single-host use of the Ray executor.
#   bash scripts/ray.sh        start (or reuse) the head node, print its address (the last stdout line)
#   bash scripts/ray.sh stop   stop it
# Settings: TUNEFORGE_RAY_PORT (default 56379), TUNEFORGE_RAY_CPUS (logical CPUs it offers, default 4: two
# workers, Ray Train's controller and a spare), TUNEFORGE_RAY_DIR (its session files, default /tmp/tuneforge-ray),
# TUNEFORGE_RAY_TIMEOUT (seconds to wait for the head to answer, default 60).
# Ray comes from the dev extra (or `pip install 'tuneforge[ray]'`); the dashboard and usage reporting stay off.
set -euo pipefail
cd "$(dirname "$0")/.."

RAY_PORT=${TUNEFORGE_RAY_PORT:-56379}
RAY_CPUS=${TUNEFORGE_RAY_CPUS:-4}
RAY_DIR=${TUNEFORGE_RAY_DIR:-/tmp/tuneforge-ray}
RAY_TIMEOUT=${TUNEFORGE_RAY_TIMEOUT:-60}
RAY=${TUNEFORGE_RAY_BIN:-.venv/bin/ray}
export RAY_USAGE_STATS_ENABLED=0

say() { echo "ray.sh: $*" >&2; }
[ -x "$RAY" ] || { say "error: $RAY not found: run 'bash scripts/setup.sh --dev' (or pip install 'tuneforge[ray]')"; exit 1; }

# A head answers with an active node (a half-started one left by a failed start answers with none).
running() { "$RAY" status --address "127.0.0.1:$RAY_PORT" 2>/dev/null | grep -q " node_"; }

case "${1:-start}" in
  stop)
    # Only this head's processes (they all name its session folder): `ray stop` would end every Ray on the
    # machine, a user's own included. Its workers exit with their raylet.
    pkill -f "$RAY_DIR/session_" 2>/dev/null || true
    for _ in $(seq 20); do pgrep -f "$RAY_DIR/session_" >/dev/null || break; sleep 0.5; done
    pkill -KILL -f "$RAY_DIR/session_" 2>/dev/null || true
    say "stopped the head on port $RAY_PORT"
    exit 0 ;;
  start) ;;
  *) say "error: unknown command '$1': use 'bash scripts/ray.sh' or 'bash scripts/ray.sh stop'"; exit 1 ;;
esac

if running; then
  say "reusing the head on 127.0.0.1:$RAY_PORT"
else
  say "starting a head on 127.0.0.1:$RAY_PORT with $RAY_CPUS CPUs (log: $RAY_DIR/start.log)"
  mkdir -p "$RAY_DIR"
  "$RAY" start --head --node-ip-address 127.0.0.1 --port "$RAY_PORT" --num-cpus "$RAY_CPUS" --num-gpus 0 \
    --include-dashboard false --disable-usage-stats --temp-dir "$RAY_DIR" >"$RAY_DIR/start.log" 2>&1 \
    || { tail -n 20 "$RAY_DIR/start.log" >&2; say "error: ray start failed"; exit 1; }
  # Its node registers a moment after `ray start` returns (longer on a busy machine).
  for _ in $(seq "$RAY_TIMEOUT"); do running && break; sleep 1; done
  running || { say "error: the head does not answer on 127.0.0.1:$RAY_PORT within $RAY_TIMEOUT s"; exit 1; }
fi
echo "127.0.0.1:$RAY_PORT"
