#!/usr/bin/env bash
# Builds Drover, starts a server on a temporary data dir and runs the SubmitJob /
# DescribeJobs load benchmark. Usage: bash bench/load.sh [CONNECTIONS] [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
dir=$(mktemp -d)
./build/drover server --listen 127.0.0.1:0 --data "$dir" --log-level warn &
server=$!
trap 'kill -TERM $server; wait $server; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -s "$dir/endpoint" ] && break; sleep 0.1; done
./build/bench/bench_load --data "$dir" --connections "${1:-1,8,32}" --requests "${2:-20000}"
