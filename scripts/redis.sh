#!/usr/bin/env bash
# A throwaway Redis on loopback for the tests and examples.
#
#   scripts/redis.sh start DIR   installs Debian's redis-server if missing, starts a server whose
#                                files live in DIR on 127.0.0.1 and a free port, waits until it
#                                answers, prints its URL
#   scripts/redis.sh stop DIR    stops it and returns once it is gone: its process has exited and
#                                its port refuses connections (a later start reuses its port if
#                                still free)
#
# Fails (non-zero exit, a message on stderr) when Redis cannot be installed or started within
# 30 s, or is not gone within 30 s of a stop.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

# Seconds a start may take to answer, and a stop to make the server go away.
START_TIMEOUT=30
STOP_TIMEOUT=30

die() { echo "redis.sh: $*" >&2; exit 1; }

# shellcheck source=lib/process.sh
. "$(dirname "$0")/lib/process.sh"

# Whether a server could listen on 127.0.0.1:PORT. SO_REUSEADDR as redis-server sets it: the
# connections a stopped server closed (TIME_WAIT) do not keep a restart off its old port.
port_free() {
  python3 -c 'import socket,sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

# Whether PID is a running redis-server (a stale pid file may name an unrelated process).
is_redis() {
  alive "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = redis-server ]
}

# Whether the server on PORT is the one whose pid file is in DIR and answers commands.
answers() {
  local port=$1 pid
  pid=$(cat "$dir/redis.pid" 2>/dev/null) || return 1
  timeout 5 redis-cli -p "$port" info server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$pid"
}

case $cmd in
  start)
    if ! command -v redis-server >/dev/null 2>&1; then
      echo "installing redis-server (Debian package)" >&2
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } >&2 \
        || { echo "could not install redis-server" >&2; exit 1; }
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/port" ] && answers "$(cat "$dir/port")"; then
      echo "redis://127.0.0.1:$(cat "$dir/port")"
      exit 0
    fi
    # The port it had before, if it is still free (a restart keeps its clients' URL); a port
    # can be taken between choosing it and binding it, so a few attempts.
    for attempt in 1 2 3; do
      port=
      if [ "$attempt" = 1 ] && [ -f "$dir/last-port" ] && port_free "$(cat "$dir/last-port")"; then
        port=$(cat "$dir/last-port")
      fi
      [ -n "$port" ] || port=$(free_port)
      rm -f "$dir/redis.pid"
      log_from=$(( $(stat -c %s "$dir/redis.log" 2>/dev/null || echo 0) + 1 ))
      redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2 \
        || die "redis-server did not start (log: $dir/redis.log)"
      deadline=$((SECONDS + START_TIMEOUT))
      while [ "$SECONDS" -lt "$deadline" ]; do
        if answers "$port"; then
          echo "$port" >"$dir/port"
          echo "$port" >"$dir/last-port"
          echo "redis://127.0.0.1:$port"
          exit 0
        fi
        # It gave up (e.g. the port was taken meanwhile): no use waiting for it.
        pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
        if { [ -n "$pid" ] && ! alive "$pid"; } \
          || tail -c "+$log_from" "$dir/redis.log" 2>/dev/null | grep -q "aborting\|Could not create server TCP"; then
          break
        fi
        sleep 0.05
      done
      pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
      if [ -n "$pid" ] && is_redis "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
      fi
      echo "redis.sh: redis did not answer on port $port (attempt $attempt)" >&2
    done
    tail -n 30 "$dir/redis.log" >&2 2>/dev/null || true
    die "redis did not start (files in $dir)"
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    if [ -f "$dir/redis.pid" ]; then
      pid=$(cat "$dir/redis.pid")
      port=$(cat "$dir/port" 2>/dev/null || cat "$dir/last-port" 2>/dev/null || true)
      if [ -n "$pid" ] && is_redis "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        rc=0
        wait_gone "$pid" "$port" "$STOP_TIMEOUT" || rc=$?
        case $rc in
          0) ;;
          1) kill -KILL "$pid" 2>/dev/null || true
             die "redis (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM: killed it with SIGKILL" ;;
          *) die "port $port still accepts connections ${STOP_TIMEOUT}s after redis (pid $pid) exited" ;;
        esac
      fi
      rm -f "$dir/redis.pid" "$dir/port"
    fi
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
