#!/usr/bin/env bash
# The README's first command: install deps, build, start Drover with its
# embedded defaults (SQLite state in ./drover-data, API on 127.0.0.1:8080),
# then run the quickstart against it (a local compute environment, a queue, a
# hello-world job and its output). The server keeps running until Ctrl-C.
# Extra arguments go to `drover server`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh

data=./drover-data
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --data) data="${args[$((i + 1))]}" ;;
    --data=*) data="${args[$i]#--data=}" ;;
  esac
done

./build/drover server "$@" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" || true' INT TERM EXIT
for _ in $(seq 100); do
  kill -0 "$server" 2>/dev/null || { wait "$server"; exit $?; }
  [ -s "$data/endpoint" ] && break
  sleep 0.1
done
./build/drover quickstart --data "$data" || echo "quickstart failed (see above); the server keeps running"
echo "Drover is running at $(cat "$data/endpoint"). Ctrl-C stops it."
wait "$server"
