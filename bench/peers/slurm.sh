#!/usr/bin/env bash
# Peer: Slurm (Debian's slurm-wlm + munge) as a single-node cluster on loopback,
# configured for throughput after SchedMD's High Throughput Computing guide
# (https://slurm.schedmd.com/high_throughput.html): no accounting, no job
# completion log, jobacct_gather/none, sched/builtin (FIFO, no backfill overhead),
# max_rpc_cnt, sched_min_interval, sched_max_job_start, partition_job_depth
# (SchedulerParameters below), SlurmctldDebug=error, two slurmctld
# ports, munged with 10 threads, MinJobAge=2, MaxJobCount=200000,
# MaxArraySize=100001. Everything (config, state, munge key and socket, logs)
# lives in a temporary dir; the daemons are stopped at exit.
#
# Usage: bash bench/peers/slurm.sh   (root; installs slurm-wlm and munge with
# apt-get if missing; for the benchmark only, not a Drover dependency)
# Sizes (environment): SLURM_SUBMITS (sbatch calls per rate run, 1000),
# SLURM_REPEATS (3), SLURM_DRAIN_JOBS (10000), SLURM_LATENCY_JOBS (200),
# SLURM_ARRAY (10000), SLURM_SLOTS (concurrent jobs on the node; default 8 per
# CPU, as Drover runs 0.125-vCPU jobs 8 per CPU), SLURM_SCHED_PARAMS.
# Prints "slurm_<figure>: value unit [...]" lines.
set -uo pipefail
submits=${SLURM_SUBMITS:-1000}
repeats=${SLURM_REPEATS:-3}
drain_jobs=${SLURM_DRAIN_JOBS:-10000}
latency_jobs=${SLURM_LATENCY_JOBS:-200}
array=${SLURM_ARRAY:-10000}
ncpu=$(nproc)
slots=${SLURM_SLOTS:-$((ncpu * 8))}
# SchedMD's guide suggests defer, batch_sched_delay=20 and sched_min_interval=2000000
# for big clusters; on one node with 16 slots these left slots idle: measured here
# (80-160 jobs), defer+batch_sched_delay=20 drained 1.0 jobs/s with a 20 s
# submit->start; without them 7.8 jobs/s and 2.7 s; with batch_sched_delay=0 and
# sched_interval=1 17.4 jobs/s and 0.8 s. The best of those is the default.
sched_params=${SLURM_SCHED_PARAMS:-batch_sched_delay=0,sched_interval=1,max_rpc_cnt=150,sched_min_interval=20000,sched_max_job_start=200,partition_job_depth=500}

if [ "$(id -u)" != 0 ]; then
  echo "slurm_sbatch_rate_1: not run (needs root to start munged, slurmctld and slurmd)"
  exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge \
    >/dev/null 2>&1 || {
    echo "slurm_sbatch_rate_1: not run (apt-get install slurm-wlm munge failed)"
    exit 0
  }
fi

tmp=$(mktemp -d /tmp/slurm-bench.XXXXXX)
chmod 700 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "${KEEP_SLURM_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

node=$(hostname -s)
getent hosts "$node" >/dev/null || echo "127.0.0.1 $node" >>/etc/hosts  # Slurm resolves it
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# Two consecutive free ports for slurmctld (the guide: several ports absorb bursts).
for _ in $(seq 50); do
  cport=$(free_port)
  python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$((cport + 1))))" 2>/dev/null && break
done
dport=$(free_port)
mem_mib=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)

mkdir -p "$tmp/state" "$tmp/spool" "$tmp/out"
mungekey -c -k "$tmp/munge.key" >/dev/null 2>&1 || dd if=/dev/urandom of="$tmp/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$tmp/munge.key"
munged -f --num-threads 10 --socket "$tmp/munge.sock" --key-file "$tmp/munge.key" \
  --pid-file "$tmp/munged.pid" --log-file "$tmp/munged.log" --seed-file "$tmp/munge.seed" || {
  echo "slurm_sbatch_rate_1: not run (munged failed: $(tail -1 "$tmp/munged.log" 2>/dev/null))"
  exit 0
}
pids+=("$(cat "$tmp/munged.pid")")

cat >"$tmp/slurm.conf" <<EOF
ClusterName=bench
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$cport-$((cport + 1))
SlurmdPort=$dport
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge.sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
SlurmctldDebug=error
SlurmdDebug=error
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=$sched_params
PriorityType=priority/basic
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MaxJobCount=200000
MaxArraySize=100001
MinJobAge=2
MessageTimeout=30
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$slots RealMemory=$mem_mib State=UNKNOWN
PartitionName=bench Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF=$tmp/slurm.conf

ulimit -n 65536 2>/dev/null || true
slurmctld -D -c -i -f "$tmp/slurm.conf" >>"$tmp/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$tmp/slurm.conf" -N "$node" >>"$tmp/slurmd.out" 2>&1 &
pids+=($!)
ready=
for _ in $(seq 200); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null)
  case "$state" in idle*) ready=1; break ;; esac
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "slurm_sbatch_rate_1: not run (node not idle after 20 s: '$state'; $(tail -2 "$tmp/slurmctld.log" "$tmp/slurmd.log" "$tmp/slurmctld.out" "$tmp/slurmd.out" 2>/dev/null | tr '\n' ' '))"
  exit 0
fi
slurm_ver=$(sinfo --version)

now_ns() { date +%s%N; }
# median/min/max of numbers on stdin: "median [min..max, n=N]"
stats() {  # FORMAT UNIT
  sort -g | awk -v fmt="${1:-%.0f}" -v unit="${2:-/s}" '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a"; exit }
    printf fmt " %s [" fmt ".." fmt ", n=%d]\n", v[int((NR + 1) / 2)], unit, v[1], v[NR], NR }'
}
wait_empty() {  # until no job is left in the queue (or $1 seconds)
  local deadline=$(($(date +%s) + ${1:-3600}))
  while [ -n "$(squeue -h -o %i 2>/dev/null | head -1)" ]; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# 1. sbatch rate, held jobs (they stay PENDING, as Drover's go to a DISABLED CE).
for p in 1 8; do
  rates=()
  fails=0
  for _ in $(seq "$repeats"); do
    per=$((submits / p))
    t0=$(now_ns)
    subs=()
    for s in $(seq "$p"); do
      (for _ in $(seq "$per"); do
        sbatch -H -o /dev/null --wrap=true >/dev/null 2>>"$tmp/sbatch.err" || echo x >>"$tmp/fail.$s"
      done) &
      subs+=($!)
    done
    wait "${subs[@]}"  # not a bare wait: the daemons are children too
    t1=$(now_ns)
    f=$(cat "$tmp"/fail.* 2>/dev/null | wc -l); rm -f "$tmp"/fail.*
    fails=$((fails + f))
    rates+=("$(awk -v n=$((per * p - f)) -v d=$((t1 - t0)) 'BEGIN { print n / (d / 1e9) }')")
    scancel -u root >/dev/null 2>&1
    wait_empty 120
  done
  echo "slurm_sbatch_rate_$p: $(printf '%s\n' "${rates[@]}" | stats %.0f /s)  $p submitters, $per sbatch each per run, $fails failed ($slurm_ver)"
done

# 2. Drain: N trivial jobs from 8 submitters, first submission -> queue empty.
t0=$(now_ns)
per=$((drain_jobs / 8))
subs=()
for s in $(seq 8); do
  (for _ in $(seq "$per"); do sbatch -o /dev/null --wrap=true >/dev/null 2>&1 || echo x >>"$tmp/fail.$s"; done) &
  subs+=($!)
done
wait "${subs[@]}"
t_sub=$(now_ns)
if wait_empty 1800; then
  t1=$(now_ns)
  f=$(cat "$tmp"/fail.* 2>/dev/null | wc -l); rm -f "$tmp"/fail.*
  echo "slurm_drain_$((per * 8)): $(awk -v n=$((per * 8 - f)) -v d=$((t1 - t0)) 'BEGIN { printf "%.1f", n / (d / 1e9) }') jobs/s  $((per * 8 - f)) jobs in $(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f", d / 1e9 }') s, submission took $(awk -v d=$((t_sub - t0)) 'BEGIN { printf "%.1f", d / 1e9 }') s, $slots slots (queue polled every 0.2 s)"
else
  echo "slurm_drain_$((per * 8)): timed out after 1800 s"
  scancel -u root; wait_empty 120
fi

# 3. Submit -> start on an idle node: sbatch invoked -> the job's own first timestamp.
lat=()
for i in $(seq "$latency_jobs"); do
  out=$tmp/out/lat.$i
  t0=$(now_ns)
  sbatch -o "$out" --wrap='date +%s%N' >/dev/null 2>&1 || continue
  for _ in $(seq 20000); do [ -s "$out" ] && break; sleep 0.001; done
  [ -s "$out" ] || continue
  lat+=("$(awk -v s="$(head -1 "$out")" -v t="$t0" 'BEGIN { print (s - t) / 1e6 }')")
  wait_empty 60
done
p50=$(printf '%s\n' "${lat[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", v[int(0.5 * (NR - 1) + 1.5)] }')
p99=$(printf '%s\n' "${lat[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", v[int(0.99 * (NR - 1) + 1.5)] }')
echo "slurm_latency_start_p50: $p50 ms  sbatch invoked -> job's own start timestamp, ${#lat[@]} jobs one at a time"
echo "slurm_latency_start_p99: $p99 ms"

# 4. A job array of N tasks: sbatch latency, then drain.
t0=$(now_ns)
if sbatch --array=0-$((array - 1)) -o /dev/null --wrap=true >/dev/null 2>"$tmp/array.err"; then
  t1=$(now_ns)
  echo "slurm_array${array}_submit: $(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f", d / 1e6 }') ms  (sbatch --array=0-$((array - 1)), the whole command)"
  if wait_empty 3600; then
    t2=$(now_ns)
    echo "slurm_array${array}_drain: $(awk -v d=$((t2 - t0)) 'BEGIN { printf "%.1f", d / 1e9 }') s  $(awk -v n="$array" -v d=$((t2 - t0)) 'BEGIN { printf "%.1f", n / (d / 1e9) }') jobs/s"
  else
    echo "slurm_array${array}_drain: timed out"
  fi
else
  echo "slurm_array${array}_submit: failed ($(head -c 200 "$tmp/array.err"))"
fi
echo "slurm_config: $slurm_ver, $slots slots on $ncpu CPUs, SchedulerParameters=$sched_params"
