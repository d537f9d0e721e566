#!/usr/bin/env bash
# The README's second command: install deps, build, run every test (unit tests
# and end-to-end tests through the real AWS clients) with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
