#!/usr/bin/env bash
# A private, throwaway PostgreSQL server for the test suite (never the system one, never port 5432).
#   bash scripts/postgres.sh        install the Debian package if needed, start (or reuse) the server, print its URL
#   bash scripts/postgres.sh stop   stop it
# Settings: TUNEFORGE_PG_DIR (default /tmp/tuneforge-pg), TUNEFORGE_PG_PORT (default 55432),
# TUNEFORGE_PG_TIMEOUT (seconds to wait for readiness, default 30).
# Progress goes to stderr; the last stdout line is the SQLAlchemy URL, e.g.
#   postgresql+psycopg://postgres@127.0.0.1:55432/postgres
set -euo pipefail

PG_ROOT=${TUNEFORGE_PG_DIR:-/tmp/tuneforge-pg}
PG_PORT=${TUNEFORGE_PG_PORT:-55432}
PG_TIMEOUT=${TUNEFORGE_PG_TIMEOUT:-30}
DATA_DIR="$PG_ROOT/data"
LOG_FILE="$PG_ROOT/server.log"

say() { echo "postgres.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# The newest server binaries the Debian packages put under /usr/lib/postgresql/<major>/bin.
find_bin_dir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    echo "$dir"
  fi
}

install_postgres() {
  [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed and installing it needs root: run 'apt-get install postgresql' as root"
  local log=/tmp/tuneforge-pg-install.log
  say "installing the Debian package postgresql (log: $log)"
  export DEBIAN_FRONTEND=noninteractive
  local apt=(apt-get install -y -qq --no-install-recommends postgresql)
  # Refresh the package lists only when the install cannot find what it needs with the current ones.
  if ! "${apt[@]}" >"$log" 2>&1; then
    say "refreshing the package lists (apt-get update)"
    if ! { apt-get update -qq && "${apt[@]}"; } >>"$log" 2>&1; then
      tail -n 20 "$log" >&2
      die "apt-get install postgresql failed (full output: $log)"
    fi
  fi
}

# Runs a command as the OS user that owns the cluster: postgres refuses to run as root.
as_owner() {
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  elif command -v runuser >/dev/null; then
    runuser -u postgres -- "$@"
  else
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

is_running() { as_owner "$BIN/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1; }

# The port a running server listens on: line 4 of its postmaster.pid.
running_port() { sed -n 4p "$DATA_DIR/postmaster.pid" 2>/dev/null || true; }

show_log_tail() {
  if [ -f "$LOG_FILE" ]; then
    say "last lines of $LOG_FILE:"
    tail -n 20 "$LOG_FILE" >&2
  fi
}

stop_server() {
  if [ -d "$DATA_DIR" ] && is_running; then
    as_owner "$BIN/pg_ctl" stop -D "$DATA_DIR" -m fast -s >&2
    say "stopped the server in $DATA_DIR"
  else
    say "no server running in $DATA_DIR"
  fi
}

prepare_root() {
  mkdir -p "$PG_ROOT"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "the OS user 'postgres' is missing; reinstall the postgresql package"
    chown postgres: "$PG_ROOT"
  fi
  as_owner test -w "$PG_ROOT" \
    || die "$PG_ROOT is not writable by the server's OS user; set TUNEFORGE_PG_DIR to a directory under /tmp"
}

# A data dir from an interrupted initdb or another major version is thrown away: it only ever holds test data.
init_cluster() {
  local major
  major=$(basename "$(dirname "$BIN")")
  if [ -f "$DATA_DIR/PG_VERSION" ] && [ "$(cat "$DATA_DIR/PG_VERSION")" = "$major" ]; then
    return
  fi
  rm -rf "$DATA_DIR"
  say "creating a throwaway cluster in $DATA_DIR (PostgreSQL $major)"
  as_owner "$BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-sync >"$PG_ROOT/initdb.log" 2>&1 \
    || { tail -n 20 "$PG_ROOT/initdb.log" >&2; die "initdb failed (full output: $PG_ROOT/initdb.log)"; }
}

start_server() {
  # Durability is off: a crash loses only test data, and every test database is created and dropped in a blink.
  local options="-c listen_addresses=127.0.0.1 -p $PG_PORT -k '$DATA_DIR' -c fsync=off"
  options+=" -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
  say "starting the server on 127.0.0.1:$PG_PORT (log: $LOG_FILE)"
  as_owner "$BIN/pg_ctl" start -D "$DATA_DIR" -l "$LOG_FILE" -o "$options" -w -t "$PG_TIMEOUT" -s >&2 \
    || { show_log_tail; die "the server did not come up on 127.0.0.1:$PG_PORT (waited up to ${PG_TIMEOUT}s);" \
      "see the log above (port in use? set TUNEFORGE_PG_PORT)"; }
}

wait_until_ready() {
  local deadline=$((SECONDS + PG_TIMEOUT))
  until "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      show_log_tail
      die "the server in $DATA_DIR did not accept connections on 127.0.0.1:$PG_PORT within ${PG_TIMEOUT}s;" \
        "run 'bash scripts/postgres.sh stop' (or remove $PG_ROOT) and retry"
    fi
    sleep 0.2
  done
}

BIN=$(find_bin_dir)
case "${1:-start}" in
  stop)
    [ -n "$BIN" ] || { say "PostgreSQL is not installed; nothing to stop"; exit 0; }
    stop_server
    exit 0
    ;;
  start) ;;
  *) die "unknown command '$1': use 'bash scripts/postgres.sh' to start or 'bash scripts/postgres.sh stop'" ;;
esac

if [ -z "$BIN" ]; then
  install_postgres
  BIN=$(find_bin_dir)
  [ -n "$BIN" ] || die "installed postgresql but found no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
fi
prepare_root
init_cluster
if is_running && [ "$(running_port)" != "$PG_PORT" ]; then
  say "the server in $DATA_DIR listens on port $(running_port), not $PG_PORT: restarting it"
  stop_server
fi
if is_running; then
  say "reusing the server already running in $DATA_DIR"
else
  start_server
fi
wait_until_ready
echo "postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
