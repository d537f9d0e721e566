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
// - Fair-share queues: the next job comes from the share identifier with the
//   least running vCPUs times its weightFactor (so a share with weight 0.5
//   gets twice the vCPUs of one with weight 1 under contention); within a
//   share, higher schedulingPriority first, then submission order. While A
//   shares are running, (computeReservation/100)^A of each compute
//   environment's maxvCpus is kept for shares that are not running yet.
// - A job starts only when every consumable resource it names has its
//   quantity available; the quantity is held until the job ends.
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
  // Fair share (the queue has a scheduling policy).
  bool fair_share = false;
  double compute_reservation = 0;  // computeReservation / 100
};

struct JobView {
  std::string id;
  std::string queue;  // ARN
  Resources need;
  int64_t seq = 0;  // submission order
  bool front = false;  // a retried job goes to the front of its queue (AWS's rule)
  // Fair share: the job's share identifier, that share's weightFactor (lower
  // gets more), and its schedulingPriority (higher first, within its share).
  std::string share = {};
  double weight = 1;
  int64_t priority = 0;
  // Consumable resources the job holds while it runs: name -> quantity.
  std::vector<std::pair<std::string, int64_t>> consumables = {};
  uint64_t handle = 0;  // the caller's own reference to the job, handed back in the plan
};

// The machine the local compute environments run on.
struct HostView {
  Resources capacity;
  Resources used;
};

struct Consumable {
  int64_t total = 0, available = 0;
};

struct Snapshot {
  std::vector<QueueView> queues;
  std::map<std::string, CeView> ces;  // by ARN
  std::vector<JobView> runnable;      // every RUNNABLE job
  HostView host;
  // vCPUs held by running jobs, per fair-share queue and share identifier.
  std::map<std::string, std::map<std::string, double>> share_usage;
  std::map<std::string, Consumable> consumables;  // by name
};

struct Placement {
  std::string job_id, ce_arn;
  uint64_t handle = 0;
};

struct Wait {
  std::string job_id, reason;
  uint64_t handle = 0;
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
