// The host supervisor: one long-lived process per run directory that starts,
// watches and ends every job attempt on this host, and outlives the server.
//
// The server's LocalExecutor connects to it over a Unix socket in the run
// directory (starting it when nothing listens there). The supervisor starts an
// attempt's process itself (a clone straight into the job: no process of its
// own per attempt), in a cgroup taken from a pool of groups it reuses from
// attempt to attempt (limits rewritten only when they differ, counters read
// as differences), pumps the job's output into its log stream, and reports
// the exit. If the server stops or crashes, jobs run on and their output keeps
// flowing; the supervisor keeps each exit until a server acknowledges it, so a
// restarted server collects what ended while none watched. With no attempt
// running and no server connected, it exits (so an upgrade takes effect once
// the host is idle), leaving the unacknowledged exits in DATA/run/exits.jsonl
// for the next supervisor (kept a week).
//
// The protocol: one JSON object per line, each way.
//   server -> supervisor                    supervisor -> server
//   {"op":"hello","version":V}              {"op":"hello","version":V,"pid":P,"describe":S}
//   {"op":"start","spec":{..},"pidsMax":N}  {"op":"started","task":T,"pid":P,"at":MS}
//                                           or {"op":"failed","task":T,"client":B,"error":S}
//   {"op":"attach","task":T}                {"op":"running","task":T,"pid":P,"at":MS}
//                                           (then "exited" if it has ended) or
//                                           {"op":"unknown","task":T}
//   {"op":"term","task":T,"graceMs":G}      SIGTERM to the job's process group now,
//                                           SIGKILL to its whole cgroup after G ms
//   {"op":"ack","task":T}                   (forgets the exit)
//                                           {"op":"exited","task":T,"at":MS,"exitCode":C,
//                                            "signal":N,"peakMemoryBytes":B,"cpuTimeNs":C,
//                                            "oomKilled":B}
// Exits go to the connection that started or last attached the attempt.
//
// Why one supervisor per host rather than a shim process per attempt (what
// Drover had first, as containerd has): a shim costs an exec, a C runtime
// start-up and a task directory of files per attempt, and a fresh cgroup
// costs a directory per hierarchy made and removed; together they were most
// of the CPU of dispatching short jobs (docs/performance.md, "Dispatch").
#pragma once

#include <string>

#include "common/json.h"
#include "common/status.h"
#include "exec/executor.h"

namespace drover::exec {

inline constexpr int kSupervisorProtocol = 1;

struct SupervisorOptions {
  std::string run_dir;
  std::string cgroup_root = "/sys/fs/cgroup";  // "": no cgroups
  std::string cgroup_parent = "drover";
  // Written "ok\n" once the socket listens, or "err <why>\n" (another
  // supervisor holds the run directory: "err busy"), then closed.
  int ready_fd = -1;
};

// How long the supervisor's loop lets events gather after a turn that handled
// `events` while `attempts` were starting or running, before it looks again: 0
// for one attempt (its start and exit are reported at once), kGatherMicros
// for more. Under load every wake-up costs (a thread woken on another CPU is
// ~15 us of CPU on a virtual machine), so starts, exits and output that come
// together are handled in one turn and reported in one message batch, which
// wakes the server's reader once for all of them.
inline constexpr int64_t kGatherMicros = 500;
int64_t GatherMicros(size_t attempts, int events);

// An ended attempt's scratch directory goes to the remover thread, which empties
// it and puts it back in the pool. The remover takes them in batches: it is
// woken when its queue stops being empty and when it holds kRemoverBatch
// directories, and otherwise looks kRemoverGatherMs after the first came (one
// wake-up per batch instead of one per turn of the loop). WakeRemover: whether
// the push that made the queue `queued` long wakes it.
inline constexpr size_t kRemoverBatch = 16;
inline constexpr int64_t kRemoverGatherMs = 20;
bool WakeRemover(size_t queued);

// The task's spec on the wire.
json::object SpecToJson(const TaskSpec& spec);
TaskSpec SpecFromJson(const json::object& o);

// A connected socket to the run directory's supervisor, or an error (errno
// ENOENT/ECONNREFUSED when none listens).
Result<int> ConnectSupervisor(const std::string& run_dir);

// The supervisor's main (after the caller has detached it): returns its exit code.
int RunSupervisor(const SupervisorOptions& opts);

}  // namespace drover::exec
