#!/usr/bin/env bash
# The whole comparison of issue #7 in one command: Drover's scenarios 1-5, the
# host's process-spawn floor, and the peers (Slurm, moto) on this machine in the
# same run. Writes bench/results/<UTC date-time>.md (machine info + one table;
# the raw lines next to it as .log) and copies the table into docs/performance.md
# under "Latest comparison".
#
# Usage: bash bench/compare.sh                 full run (~30 min on 2 cores)
#        QUICK=1 bash bench/compare.sh         smoke run with small sizes (~5 min)
#        SCALE=1 bash bench/compare.sh         also scenario 5 (1,000,000 queued jobs;
#                                              adds ~10 min; SCALE_DEPTH to change)
#        ONLY=scale SCALE=1 bash bench/compare.sh   scenario 5 alone
# Sizes (environment, defaults for the full run): REQUESTS=10000 (SubmitJob per
# run), REPEATS=3, CONNECTIONS=1,8,32,128, LIST_JOBS=10000, DISPATCH_JOBS=10000,
# ARRAY_SIZE=10000, LATENCY_JOBS=200, FLOOR_N=5000, MOTO_REQUESTS=1000,
# SLURM_SUBMITS=1000, SLURM_DRAIN_JOBS=3000, SLURM_LATENCY_JOBS=100, SLURM_ARRAY=10000,
# NO_DOCS=1 (leave docs/performance.md alone).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

quick=${QUICK:-0}
q() { if [ "$quick" = 1 ]; then echo "$1"; else echo "$2"; fi; }
requests=${REQUESTS:-$(q 2000 10000)}
repeats=${REPEATS:-$(q 1 3)}
connections=${CONNECTIONS:-1,8,32,128}
list_jobs=${LIST_JOBS:-$(q 2000 10000)}
dispatch_jobs=${DISPATCH_JOBS:-$(q 1000 10000)}
array_size=${ARRAY_SIZE:-$(q 1000 10000)}
latency_jobs=${LATENCY_JOBS:-$(q 50 200)}
floor_n=${FLOOR_N:-$(q 1000 5000)}
moto_requests=${MOTO_REQUESTS:-$(q 300 1000)}
export SLURM_SUBMITS=${SLURM_SUBMITS:-$(q 100 1000)}
export SLURM_REPEATS=${SLURM_REPEATS:-$repeats}
export SLURM_DRAIN_JOBS=${SLURM_DRAIN_JOBS:-$(q 400 3000)}
export SLURM_LATENCY_JOBS=${SLURM_LATENCY_JOBS:-$(q 20 100)}
export SLURM_ARRAY=${SLURM_ARRAY:-$(q 1000 10000)}
scale=${SCALE:-0}
scale_depth=${SCALE_DEPTH:-1000000}
only=${ONLY:-all}

bash scripts/build.sh >/dev/null
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p bench/results
raw=bench/results/$stamp.log
out=bench/results/$stamp.md
work=$(mktemp -d /tmp/drover-compare.XXXXXX)
trap 'stop_drover; [ -z "${extra_pid:-}" ] || kill -TERM "$extra_pid"; rm -rf "$work"' EXIT
load=./build/bench/bench_load
say() { echo "== $* ($(date -u +%H:%M:%S))" >&2; }
record() { tee -a "$raw"; }
# A failing step is recorded and the run goes on.
step() {
  echo "# loadavg before ${2:-$1} ${3:-} ${4:-} ${5:-}: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw"
  "$@" | record || echo "# step failed ($?): $*" | record
}

{
  echo "# config: quick=$quick requests=$requests repeats=$repeats connections=$connections list_jobs=$list_jobs dispatch_jobs=$dispatch_jobs array_size=$array_size latency_jobs=$latency_jobs floor_n=$floor_n moto_requests=$moto_requests slurm_submits=$SLURM_SUBMITS slurm_drain_jobs=$SLURM_DRAIN_JOBS slurm_latency_jobs=$SLURM_LATENCY_JOBS slurm_array=$SLURM_ARRAY scale=$scale scale_depth=$scale_depth"
  echo "# machine: cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1); cores=$(nproc); memory=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); kernel=$(uname -r); debian=$(cat /etc/debian_version); commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+dirty'); loadavg_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$raw"
# CPU time the hypervisor gave to other guests during the run (/proc/stat "steal"):
# on a shared VM it explains a slow run better than the load average does.
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9 }' /proc/stat; }
read -r ticks_start steal_start < <(cpu_ticks)

run_drover_scenarios() {
  say "1. SubmitJob throughput, DescribeJobs(100)"
  start_drover "$work/s1"
  step $load --data "$work/s1" --mode submit,describe --connections "$connections" \
    --requests "$requests" --repeats "$repeats" --seconds 60
  stop_drover

  say "1. ListJobs of a $list_jobs-job queue"
  start_drover "$work/s1b"
  step $load --data "$work/s1b" --mode list --list-jobs "$list_jobs" --repeats "$repeats"
  stop_drover

  say "3. latency on an idle host ($latency_jobs jobs)"
  start_drover "$work/s3"
  step ./build/bench/bench_job_latency --data "$work/s3" --jobs "$latency_jobs"
  stop_drover

  say "2. dispatch of $dispatch_jobs trivial jobs, each burst right after the posix_spawn floor"
  start_drover "$work/s2"
  step $load --data "$work/s2" --mode dispatch --jobs "$dispatch_jobs" --repeats "$repeats" \
    --timeout 1800 --floor "./build/bench/bench_spawn_floor --n $floor_n --repeats 1 --only posix_spawn"
  stop_drover

  say "4. a $array_size-child array"
  start_drover "$work/s4"
  step $load --data "$work/s4" --mode array --array-size "$array_size" --timeout 1800
  stop_drover

  say "2. the spawn floor"
  step ./build/bench/bench_spawn_floor --n "$floor_n" --repeats "$repeats"
}

run_peers() {
  say "peer: moto"
  step bash bench/peers/moto.sh "$moto_requests" "$repeats"
  say "peer: Slurm"
  step bash bench/peers/slurm.sh
}

run_scale() {
  say "5. scale: $scale_depth queued jobs"
  local d=$work/s5 port
  port=$(free_port)
  DROVER_PORT=$port start_drover "$d"
  step $load --data "$d" --mode submit,rss --connections 32 --requests "$requests" \
    --repeats "$repeats" --prefix empty_ --server-pid "$drover_pid"
  step ./build/bench/bench_job_latency --data "$d" --jobs 50 --prefix empty_
  step $load --data "$d" --mode fill,rss --depth "$scale_depth" --timeout 3600 --prefix deep_ \
    --server-pid "$drover_pid"
  step $load --data "$d" --mode submit --connections 32 --requests "$requests" --repeats "$repeats" \
    --prefix deep_
  step ./build/bench/bench_job_latency --data "$d" --jobs 50 --prefix deep_
  step $load --data "$d" --mode rss --prefix deep_after_ --server-pid "$drover_pid"
  # The same SubmitJob runs again, alternating with runs against a second, empty
  # server started now: the ratio is taken pair by pair (this machine's speed
  # drifts within minutes, and the empty-queue runs above came before the fill).
  local deep_pid=$drover_pid r
  DROVER_PORT=$(free_port) start_drover "$work/s5e"
  extra_pid=$drover_pid drover_pid=$deep_pid
  # (A fresh server's first runs are slower, as its files and heap grow: the
  # empty one is warmed up as the deep one was by its fill, and not counted.)
  step $load --data "$work/s5e" --mode submit --connections 32 --requests "$requests" \
    --repeats 2 --prefix warmup_empty_
  for r in $(seq "$repeats"); do
    step $load --data "$work/s5e" --mode submit --connections 32 --requests "$requests" \
      --repeats 1 --prefix "pair${r}_empty_"
    step $load --data "$d" --mode submit --connections 32 --requests "$requests" \
      --repeats 1 --prefix "pair${r}_deep_"
  done
  kill -TERM "$extra_pid" 2>/dev/null || true
  wait "$extra_pid" 2>/dev/null || true
  extra_pid=
  stop_drover
  local t0
  t0=$(date +%s%N)
  # Loading a million jobs takes a while: wait up to 10 minutes, and go on if not.
  DROVER_PORT=$port START_TIMEOUT=600 start_drover "$d" ||
    echo "deep_restart_to_serving: not run (no endpoint within 600 s)" | record
  step $load --data "$d" --mode ping --since-ns "$t0" --timeout 600 --prefix deep_
  step $load --data "$d" --mode rss --prefix deep_restarted_ --server-pid "$drover_pid"
  stop_drover
}

case "$only" in
  all)
    run_drover_scenarios
    run_peers
    if [ "$scale" = 1 ]; then run_scale; fi
    ;;
  drover) run_drover_scenarios ;;
  peers) run_peers ;;
  scale) run_scale ;;
  *) echo "ONLY=all|drover|peers|scale" >&2; exit 2 ;;
esac

echo "# loadavg_at_end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw"
read -r ticks_end steal_end < <(cpu_ticks)
echo "# steal_pct: $(( (steal_end - steal_start) * 100 / (ticks_end - ticks_start + 1) ))" >>"$raw"
python3 bench/report.py "$raw" "$out"
echo "wrote $out" >&2
if [ "${NO_DOCS:-0}" != 1 ]; then
  python3 bench/report.py --docs docs/performance.md "$out"
  echo "updated docs/performance.md" >&2
fi
