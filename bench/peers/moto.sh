#!/usr/bin/env bash
# Peer: moto's server mode (moto 5.2.1, in-memory AWS mock, `python3 -m moto.server`)
# with its Docker-free Batch backend (POST /moto-api/config {"batch":{"use_docker":false}}:
# jobs are marked SUCCEEDED at submission, nothing runs, nothing is durable).
# Measures the boto3 SubmitJob rate with 1 and 8 threads against moto, then against a
# fresh Drover server with the SAME script (bench/peers/boto3_submit.py), so both
# figures share boto3's client-side cost.
# Usage: bash bench/peers/moto.sh [REQUESTS] [REPEATS]   (needs build/drover)
# Prints "moto_boto3_submit_tN: ..." and "drover_boto3_submit_tN: ..." lines.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
requests=${1:-2000}
repeats=${2:-3}
tmp=$(mktemp -d)
moto_pid=
cleanup() {
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null
  stop_drover
  rm -rf "$tmp"
}
trap cleanup EXIT

if ! python3 -c 'import moto.server, boto3' 2>/dev/null; then
  echo "moto_boto3_submit_t1: not run (python3 cannot import moto.server and boto3)"
  exit 0
fi
port=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$tmp/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 200); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/moto-api/" && break
  sleep 0.1
done
curl -sf -X POST -H 'Content-Type: application/json' \
  -d '{"batch": {"use_docker": false}}' "http://127.0.0.1:$port/moto-api/config" >/dev/null
moto_ver=$(python3 -c 'import moto; print(moto.__version__)')
for t in 1 8; do
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    python3 bench/peers/boto3_submit.py "http://127.0.0.1:$port" "$t" "$requests" "$repeats" \
    "moto_boto3_submit_t$t" | sed "s/\$/ (moto $moto_ver server mode)/"
done
kill "$moto_pid"; wait "$moto_pid" 2>/dev/null || true; moto_pid=

start_drover "$tmp/drover"
for t in 1 8; do
  AWS_SHARED_CREDENTIALS_FILE=$tmp/drover/credentials AWS_CONFIG_FILE=$tmp/drover/config \
    python3 bench/peers/boto3_submit.py "$(cat "$tmp/drover/endpoint")" "$t" "$requests" \
    "$repeats" "drover_boto3_submit_t$t"
done
