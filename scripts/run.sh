#!/usr/bin/env bash
# The README's first command: install deps, build, start Drover with its
# embedded defaults (SQLite state in ./drover-data, API on 127.0.0.1:8080).
# Extra arguments go to `drover server`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec ./build/drover server "$@"
