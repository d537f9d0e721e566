// BatchService's index entry for a job: what scheduling needs, kept beside the
// job's AWS-shaped document. Private to the service module.
#pragma once

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <string_view>
#include <vector>

#include "sched/schedule.h"
#include "service/batch_service.h"
#include "service/doc_codec.h"

namespace drover::service {

inline constexpr const char* kJobStates[] = {"SUBMITTED", "PENDING",   "RUNNABLE", "STARTING",
                                            "RUNNING",   "SUCCEEDED", "FAILED"};

inline bool IsTerminal(std::string_view status) {
  return status == "SUCCEEDED" || status == "FAILED";
}

// Not started yet: moves between these states are not stored (see Job::implicit).
inline bool IsWaiting(std::string_view status) {
  return status == "SUBMITTED" || status == "PENDING" || status == "RUNNABLE";
}

// Strings that many jobs share (queue ARNs, share identifiers) are kept once,
// in a pool that only grows (their number is that of queues and shares); a job
// holds a pointer. Thread-safe: Load interns from several threads.
class StringPool {
 public:
  StringPool() : id_(NextId()) {}
  // Each thread remembers what it interned last in this pool: Load interns a
  // few strings per job from several threads, mostly the same few.
  const std::string* Intern(std::string_view s) {
    struct Recent {
      uint64_t pool = 0;
      const std::string* last[4] = {};
    };
    thread_local Recent recent;
    if (recent.pool != id_) recent = Recent{id_, {}};
    for (const std::string* p : recent.last) {
      if (p && *p == s) return p;
    }
    const std::string* p;
    {
      std::lock_guard<std::mutex> l(mu_);
      p = &*strings_.emplace(s).first;
    }
    std::move_backward(recent.last, recent.last + 3, recent.last + 4);
    recent.last[0] = p;
    return p;
  }

 private:
  static uint64_t NextId() {
    static std::atomic<uint64_t> next{1};
    return next++;
  }
  const uint64_t id_;  // (a pool at a freed one's address is another pool)
  std::mutex mu_;
  std::unordered_set<std::string> strings_;  // nodes: their addresses never change
};

class PooledString {
 public:
  PooledString() = default;
  explicit PooledString(const std::string* s) : s_(s) {}
  const std::string& str() const {
    static const std::string empty;
    return s_ ? *s_ : empty;
  }
  operator const std::string&() const { return str(); }  // NOLINT: used as a string
  bool empty() const { return str().empty(); }
  friend bool operator==(const PooledString& a, std::string_view b) { return a.str() == b; }
  friend bool IsTerminal(const PooledString& s) { return IsTerminal(std::string_view(s.str())); }

 private:
  const std::string* s_ = nullptr;
};

// statusReason. Why a RUNNABLE job waits is one of few texts the scheduler
// repeats for many jobs (its turn in a queue, why a queue or compute environment
// cannot take it), so it points into the pool; any other reason (with a job id,
// an exit code, an error message) is owned.
class JobReason {
 public:
  static bool Shared(std::string_view status, std::string_view reason) {
    return status == "RUNNABLE" &&
           (reason.starts_with("Waiting") || reason.starts_with("MISCONFIGURATION"));
  }
  const std::string& str() const {
    static const std::string empty;
    return p_ ? *p_ : empty;
  }
  bool empty() const { return str().empty(); }
  void Pooled(const std::string* s) {  // (plan reasons are pooled as they come)
    own_.reset();
    p_ = s;
  }
  void Own(std::string s) {
    own_ = s.empty() ? nullptr : std::make_unique<std::string>(std::move(s));
    p_ = own_.get();
  }
  friend bool operator==(const JobReason& a, std::string_view b) { return a.str() == b; }

 private:
  const std::string* p_ = nullptr;  // into the pool, or own_
  std::unique_ptr<std::string> own_;
};

struct BatchService::Job {
  // The AWS-shaped document (DescribeJobs), packed. While an operation changes it,
  // it is open in BatchService::open_docs_ instead (Doc()), and packed again when
  // the change is persisted. statusReason is `reason` below, not this document's.
  DocCodec::Packed doc;
  std::string id;  // its ARN: BatchService::JobArn()
  PooledString queue;  // ARN
  PooledString status;  // mirrors doc["status"]
  sched::Resources need;
  int64_t seq = 0;
  std::vector<std::string> depends_on;  // job ids
  int64_t timeout_ms = 0;               // per attempt; 0: none
  int max_attempts = 1;
  size_t attempts = 0;                  // finished attempts
  // The current attempt (STARTING / RUNNING):
  PooledString ce;      // compute environment ARN it holds capacity in
  std::string task_id;
  int64_t started_at = 0;
  int64_t stopped_at = 0;  // SUCCEEDED / FAILED: when (retention)
  bool start_pending = false;  // placed, not yet handed to the executor
  std::string terminate_reason;  // TerminateJob: the attempt ends in FAILED
  bool timed_out = false;        // the attempt ran past its timeout (retry rules apply)
  bool retried = false;          // goes to the front of its queue
  int64_t reason_since = 0;      // RUNNABLE: when the current wait reason began
  int64_t runnable_at = 0;       // RUNNABLE: since when (GetJobQueueSnapshot)
  JobReason reason;              // statusReason (the document's is overwritten with it)
  // Fair share and consumable resources.
  PooledString share;    // shareIdentifier
  int64_t priority = 0;  // schedulingPriority (within its share)
  std::vector<std::pair<std::string, int64_t>> consumables;  // resource name -> quantity
  bool holds_consumables = false;  // the current attempt holds them
  std::vector<std::string> gpus;   // GPU ids the current attempt holds
  // Array jobs. A parent is never scheduled: its status follows its children.
  std::string parent;                  // child: the parent's id
  int index = -1;                      // child: AWS_BATCH_JOB_ARRAY_INDEX
  // Child: it has only ever waited (SUBMITTED, PENDING, RUNNABLE), so it is not
  // stored and `doc` is empty: its document is its parent's with the child's own
  // fields (BatchService::ChildDoc), and Load / ApplyChanges make it again from
  // the parent's record. Its first other change (Doc()) makes it explicit.
  // (Any job's moves between the waiting states are not stored either: `status`
  // is the truth, the document's is overwritten with it, and a restart or a
  // follower works them out again from the dependencies.)
  bool implicit = false;
  int array_size = 0;                  // parent: number of children
  // Parent: children per status (made on first use: most jobs are not parents).
  std::unique_ptr<std::map<std::string, int>> summary_;
  std::map<std::string, int>& summary() {
    if (!summary_) summary_ = std::make_unique<std::map<std::string, int>>();
    return *summary_;
  }
};

}  // namespace drover::service
