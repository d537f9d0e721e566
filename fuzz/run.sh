#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, in build-fuzz/) and fuzzes
# each for FUZZ_SECONDS seconds (default 60), FUZZ_JOBS targets at a time
# (default 2). Fails on any crash, leak, UB report, timeout or out-of-memory,
# and prints the executions per target. Arguments pick targets (default: all).
#
#   bash fuzz/run.sh                          # the test command's stage
#   FUZZ_SECONDS=3600 bash fuzz/run.sh ops    # a long run of one target
#
# Inputs libFuzzer finds go to build-fuzz/fuzz-run/<target>/corpus (never into
# the source tree); crash artifacts to build-fuzz/fuzz-run/<target>/. To keep
# a grown corpus, minimize it into fuzz/corpus/<target> (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-2}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(http ops sigv4 logs)

command -v clang++ >/dev/null || { echo "fuzz: clang++ missing (bash scripts/deps.sh)"; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
cmake -S . -B build-fuzz -G Ninja -DDROVER_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null
ninja -C build-fuzz -j "${FUZZ_BUILD_JOBS:-2}" "${targets[@]/#/fuzz_}"
echo "fuzz: built in $(($(date +%s) - start)) s; fuzzing ${targets[*]} for ${seconds} s each, ${jobs} at a time"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
run_one() {
  local t=$1 dir="build-fuzz/fuzz-run/$1"
  mkdir -p "$dir/corpus"
  local extra=() dict="fuzz/$t.dict"
  [ "$t" = http ] || [ "$t" = ops ] && dict=fuzz/batch.dict
  [ -f "$dict" ] && extra+=("-dict=$dict")
  [ -d "fuzz/regressions/$t" ] && extra+=("fuzz/regressions/$t")
  # The first corpus dir is the writable one; the source corpus is read only.
  if "build-fuzz/fuzz/fuzz_$t" "$dir/corpus" "fuzz/corpus/$t" "${extra[@]}" \
      -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$dir/" >"$dir/log" 2>&1; then
    echo 0 >"$dir/rc"
  else
    echo $? >"$dir/rc"
  fi
}
export -f run_one
export seconds
rm -f build-fuzz/fuzz-run/*/rc
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'

failed=0
for t in "${targets[@]}"; do
  dir="build-fuzz/fuzz-run/$t"
  rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  cov=$(grep -a -o 'cov: [0-9]*' "$dir/log" | tail -1 || true)
  if [ "$rc" = 0 ]; then
    echo "fuzz_$t: ok, ${execs:-?} executions in ${seconds} s (${cov:-cov: ?})"
  else
    failed=1
    echo "fuzz_$t: FAILED (exit $rc) after ${execs:-?} executions; log $dir/log:"
    grep -a -A40 -m1 -E '^==[0-9]+==ERROR|runtime error|fuzz check failed|deadly signal|Timeout|out-of-memory' \
      "$dir/log" | head -60 || tail -40 "$dir/log"
    ls "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* 2>/dev/null || true
  fi
done
echo "fuzz: stage took $(($(date +%s) - start)) s"
exit $failed
