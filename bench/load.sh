#!/usr/bin/env bash
# Builds Drover, starts a server on a temporary data dir and runs the SubmitJob /
# DescribeJobs load benchmark. Usage: bash bench/load.sh [CONNECTIONS] [REQUESTS]
set -euo pipefail
source "$(dirname "$0")/server.sh"
./build/bench/bench_load --data "$dir" --connections "${1:-1,8,32}" --requests "${2:-20000}" --repeats 1
