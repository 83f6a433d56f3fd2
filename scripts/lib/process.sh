# Shared by scripts/postgres.sh and scripts/redis.sh (sourced): ports and processes on loopback,
# so that a "stop" returns only once a server is gone and a "start" picks a free port.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether something accepts TCP connections on 127.0.0.1:PORT (a connect that hangs counts).
port_open() {
  local rc=0
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 124 ]
}

# Whether process PID runs (a zombie holds no socket any more: it counts as gone).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# wait_gone PID PORT SECONDS: waits until process PID has exited and then until PORT (if not
# empty) refuses connections, within SECONDS in all. Returns 0 when both hold, 1 when the process
# still runs at the deadline, 2 when the port still accepts connections.
wait_gone() {
  local pid=$1 port=$2 deadline=$((SECONDS + $3))
  while alive "$pid"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.02
  done
  if [ -n "$port" ]; then
    while port_open "$port"; do
      [ "$SECONDS" -lt "$deadline" ] || return 2
      sleep 0.02
    done
  fi
}
