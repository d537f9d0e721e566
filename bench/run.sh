#!/usr/bin/env bash
# Builds Drover, starts a server on a temporary data dir and runs the job
# latency benchmark against it. Usage: bash bench/run.sh [JOBS]
set -euo pipefail
source "$(dirname "$0")/server.sh"
./build/bench/bench_job_latency --data "$dir" --jobs "${1:-200}"
