// The scheduler: a pure function from a snapshot of the state to a plan
// (nomad's Scheduler over a State producing a Plan). It decides which
// RUNNABLE jobs start where, and for every job it leaves waiting, says why.
// It never reads the store, takes no locks and has no clock: the service
// builds the Snapshot under its lock, calls Schedule() outside it, and its
// plan applier re-checks each placement before committing it.
//
// Thread-safety: Schedule() is a pure function; call it from any thread.
//
// Policy (FIFO + resource fit; fair share and the rest come later):
// - Queues are visited by priority (higher first), ties by creation order.
// - Within a queue, jobs are taken in submission order (retried jobs first);
//   each tries the queue's compute environments in `order`.
// - A job that does not fit *now* does not block the jobs behind it
//   (backfill): smaller jobs may start ahead of it. A job that can never fit
//   any compute environment of its queue says so (MISCONFIGURATION:...).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace drover::sched {

struct Resources {
  double vcpus = 0;
  int64_t memory_mib = 0;
  int64_t gpus = 0;
};

struct CeView {
  std::string arn, name;
  bool enabled = true;
  bool managed = true;  // UNMANAGED ones need hosts that join them (not yet)
  double max_vcpus = 0;
  Resources used;  // by jobs STARTING or RUNNING in it
};

struct QueueView {
  std::string arn, name;
  bool enabled = true;
  int64_t priority = 0;
  int64_t seq = 0;               // creation order: breaks priority ties
  std::vector<std::string> ces;  // compute environment ARNs, in order
};

struct JobView {
  std::string id;
  std::string queue;  // ARN
  Resources need;
  int64_t seq = 0;  // submission order
  bool front = false;  // a retried job goes to the front of its queue (AWS's rule)
};

// The machine the local compute environments run on.
struct HostView {
  Resources capacity;
  Resources used;
};

struct Snapshot {
  std::vector<QueueView> queues;
  std::map<std::string, CeView> ces;  // by ARN
  std::vector<JobView> runnable;      // every RUNNABLE job
  HostView host;
};

struct Placement {
  std::string job_id, ce_arn;
};

struct Wait {
  std::string job_id, reason;
};

struct Plan {
  std::vector<Placement> start;
  std::vector<Wait> wait;
};

Plan Schedule(const Snapshot& snapshot);

// "start j1@ce-a; wait j2(reason)" — for tests and debug logs.
std::string PlanToString(const Plan& plan);

// Formats a vCPU count as AWS does in messages: 1, 0.25, 2.5.
std::string FormatVcpus(double v);

}  // namespace drover::sched
