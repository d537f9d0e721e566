#!/usr/bin/env bash
# The README's second command: install deps, build, run every test (unit tests
# and end-to-end tests through the real AWS clients) with ctest, then fuzz
# each fuzz target briefly (fuzz/run.sh: clang, ASan + UBSan).
#
# Each stage has a time budget, so the whole command stays well inside CI's
# 90 minutes (a stage over budget fails the command):
#   deps + build  25 min   (BUILD_BUDGET, seconds)
#   ctest         30 min   (CTEST_BUDGET; each test also has its own TIMEOUT)
#   fuzz          10 min   (FUZZ_BUDGET; its build plus FUZZ_SECONDS, default
#                           30, per target, two targets at a time)
# FUZZ_SECONDS=0 skips the fuzz stage. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() {  # stage NAME BUDGET_SECONDS COMMAND...
  local name=$1 budget=$2 start rc=0
  shift 2
  start=$(date +%s)
  echo "== $name (budget ${budget} s)"
  timeout -k 30 "$budget" "$@" || rc=$?
  echo "== $name: $([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc$([ $rc = 124 ] && echo ', over budget'))") in $(($(date +%s) - start)) s"
  return $rc
}

stage build "${BUILD_BUDGET:-1500}" bash scripts/build.sh
stage ctest "${CTEST_BUDGET:-1800}" ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-30}" stage fuzz "${FUZZ_BUDGET:-600}" bash fuzz/run.sh
fi
