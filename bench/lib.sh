# Sourced by bench scripts: starting and stopping Drover servers on temporary
# data dirs, and "key: value" result lines. Expects to run from the repo root.
bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$bench_root"

# start_drover DIR [server args...]: starts a server on DIR (created if missing),
# sets drover_pid, returns once DIR/endpoint exists (at most START_TIMEOUT
# seconds, default 30). Log: DIR.log.
start_drover() {
  local d=$1; shift
  mkdir -p "$d"
  rm -f "$d/endpoint"
  ./build/drover server --listen "127.0.0.1:${DROVER_PORT:-0}" --data "$d" --log-level warn "$@" \
    >>"$d.log" 2>&1 &
  drover_pid=$!
  for _ in $(seq $((${START_TIMEOUT:-30} * 20))); do [ -s "$d/endpoint" ] && return 0; sleep 0.05; done
  echo "drover server on $d did not start; see $d.log" >&2
  return 1
}

# stop_drover: SIGTERM the server started last and wait for it.
stop_drover() {
  if [ -n "${drover_pid:-}" ]; then
    kill -TERM "$drover_pid" 2>/dev/null || true
    wait "$drover_pid" 2>/dev/null || true
    drover_pid=
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
