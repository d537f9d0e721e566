// BatchService: the AWS Batch operations over Drover's state.
//
// Thread-safety: a BatchService is safe for concurrent use. Each operation runs
// under one mutex against an in-memory view of the state, so validation and
// the change it leads to are atomic; the change is then queued to the store
// (in the same order) and the reply is sent only once the store says it is
// durable. Reads answer from memory.
//
// Transport-free: requests and replies are JSON objects shaped as the botocore
// model says. The API layer maps Status codes onto AWS exception names.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"
#include "exec/executor.h"
#include "sched/schedule.h"
#include "service/arn.h"
#include "service/doc_codec.h"
#include "store/store.h"

namespace drover::service {

class StringPool;  // job.h

struct ServiceConfig {
  std::string region = "us-east-1";
  std::string account_id = "123456789012";
  // Jobs on this host.
  sched::Resources host_capacity{2, 2048, 0};
  std::vector<std::string> gpu_ids;  // the host's GPUs (host_capacity.gpus == their count)
  std::string log_root;      // job output streams (logs::StreamWriter layout)
  std::string scratch_root;  // per-attempt working directories
  std::string image_root;    // the local image store (images::ImageStore)
  std::optional<uid_t> job_uid;  // attempts run as this user when set
  std::optional<gid_t> job_gid;
  // When > 0, each attempt runs as its own uid, job_uid_base + (n % job_uid_count),
  // so concurrent jobs cannot read each other's scratch directories.
  uid_t job_uid_base = 0;
  uint32_t job_uid_count = 0;
  uint64_t log_cap_bytes = 64ull << 20;
  int64_t job_retention_ms = 7LL * 24 * 3600 * 1000;
  // AWS's minimums: attemptDurationSeconds >= 60, jobStateTimeLimitActions
  // maxTimeSeconds >= 600. Lowered (--min-time-seconds) so tests stay fast.
  int64_t min_attempt_seconds = 60;
  // Back-pressure: writes answer TooManyRequestsException (429, which SDKs retry)
  // while this many batches wait for the store, instead of queueing without bound.
  size_t max_pending_writes = 20000;
  // Waiting jobs a scheduling pass works out at most (the next pass follows at once).
  size_t resolve_slice = 20000;
  // A pass woken only by attempts' exits runs at least this long after the
  // previous pass began, so that it fills the capacity of every exit meanwhile
  // (one pass and one commit for several), unless those exits freed half the
  // host's vCPUs already (a host of a few big jobs does not wait for more).
  // Submissions and other wakes do not wait. (4 ms: about 6.7 jobs placed per
  // pass in dispatch, 4.2 at 2 ms; a queued job waits at most this much longer
  // for capacity an exit freed.)
  int64_t capacity_pass_interval_us = 4000;
  int64_t min_time_limit_seconds = 600;
  std::string host_name = "localhost";
  // Several servers share the store (PostgreSQL): sequence numbers carry this
  // server's nonce, and CancelJob/TerminateJob on a follower go to the leader.
  bool shared_store = false;
  uint16_t seq_nonce = 0;
};

// Called exactly once per Call(): inline for reads and refused requests, on
// the store's writer thread for writes.
using Reply = std::function<void(Result<json::object>)>;

struct AccessKey {
  std::string id, secret;
};

class BatchService {
 public:
  BatchService(ServiceConfig cfg, store::Store& store, Clock& clock, IdGenerator& ids);
  ~BatchService();  // stops the scheduler thread if it runs

  // (Re)builds the in-memory view from the store.
  Status Load();
  // Load(), when a write the store refused left the view ahead of it (Call()
  // does this before each request; a server that takes over the scheduler
  // before it leads).
  Status ReloadIfStale();

  // Runs `operation` (a model operation name such as "CreateJobQueue").
  void Call(std::string_view operation, json::value request, Reply done);
  // Call() and wait for the reply (tests, tools).
  Result<json::object> CallSync(std::string_view operation, json::value request);

  // Access keys used to verify SigV4 signatures.
  std::optional<std::string> SecretFor(std::string_view access_key_id) const;
  size_t AccessKeyCount() const;
  Result<AccessKey> CreateAccessKey();
  Status ImportAccessKey(const AccessKey& key);

  const Arns& arns() const { return arns_; }

  // Jobs. The executor runs attempts; its events come back through
  // OnTaskEvent. SchedulePass() moves jobs along (dependencies, placement,
  // timeouts, retention) and starts what was placed; the scheduler thread runs
  // it whenever Wake() is called and at least once a second.
  void SetExecutor(exec::Executor* executor);
  void OnTaskEvent(const exec::TaskEvent& event);
  // `full`: decide for up to 2,000 waiting jobs at each queue head (backfill
  // reaches that far); a pass after an attempt ended decides for a short window
  // only (what its capacity can take). Full passes run on any other wake-up and
  // at least once a second.
  void SchedulePass(bool full = true);
  void StartScheduler();
  void StopScheduler();
  // Asks for a scheduler pass now. Wake(queue) is for new jobs in `queue`: if the
  // last pass left jobs waiting in that queue, the new ones can only queue behind
  // them, so such wakes are coalesced into at most one pass per
  // kBlockedPassInterval (a flood of submissions to a full queue does not cost a
  // pass each). Capacity changes (an attempt ends, a job is stopped) wake at once.
  void Wake();
  void Wake(const std::string& queue);
  // An attempt that held `vcpus` ended: a short-window pass (see SchedulePass).
  void WakeForCapacity(double vcpus);
  // Several servers on one store (cluster.cc). Every server answers the API
  // from its own in-memory view, which ApplyChanges() keeps up to date with
  // what the others store; only the leader (the holder of the store's lease)
  // runs the scheduler and jobs. A follower hands CancelJob/TerminateJob to the
  // leader as "job-request" records, since job states are the leader's to change.
  void SetLeading(bool leading);
  bool leading() const;
  void ApplyChanges(const store::Changes& changes);

  // After Load(): attempts that were STARTING or RUNNING when the server
  // stopped are lost; they are retried or failed.
  Status RecoverJobs();

 private:
  struct Resource {
    std::string kind, arn, name;
    int64_t revision = 0;
    int64_t seq = 0;
    json::object doc;
  };
  // What an operation did: its reply and the resources to persist.
  struct Outcome {
    json::object response;
    std::vector<std::string> puts;     // ARNs (or key ids) whose current doc is stored
    std::vector<std::string> deletes;  // ARNs removed from resources_
    std::vector<std::string> creates;  // ARNs among puts that must not be in the store yet
    bool wake = false;                 // the scheduler has work once this is stored
    // Set when the work is only new jobs joining this queue: if the last pass
    // left that queue blocked, the wake is deferred (see Wake()).
    std::string wake_queue;
  };
  using Handler = Result<Outcome> (BatchService::*)(const json::object& req);
  struct OpEntry {
    Handler handler;
    const char* unsupported;  // non-null: a ClientException message instead of a handler
  };
  static const std::map<std::string, OpEntry, std::less<>>& Ops();

  // Compute environments (compute_environments.cc).
  Result<Outcome> CreateComputeEnvironment(const json::object& req);
  Result<Outcome> UpdateComputeEnvironment(const json::object& req);
  Result<Outcome> DeleteComputeEnvironment(const json::object& req);
  Result<Outcome> DescribeComputeEnvironments(const json::object& req);
  Status CheckComputeResources(const json::object& cr, bool managed_update);
  // Job queues (job_queues.cc).
  Result<Outcome> CreateJobQueue(const json::object& req);
  Result<Outcome> UpdateJobQueue(const json::object& req);
  Result<Outcome> DeleteJobQueue(const json::object& req);
  Result<Outcome> DescribeJobQueues(const json::object& req);
  Result<json::array> CheckComputeEnvironmentOrder(const json::array& order);
  Status CheckTimeLimitActions(const json::array& actions);
  // Job definitions (job_definitions.cc).
  Result<Outcome> RegisterJobDefinition(const json::object& req);
  Result<Outcome> DeregisterJobDefinition(const json::object& req);
  Result<Outcome> DescribeJobDefinitions(const json::object& req);
  Resource* FindJobDefinition(std::string_view ref, bool latest_active_for_name);
  // Scheduling policies and consumable resources (policies.cc).
  Result<Outcome> CreateSchedulingPolicy(const json::object& req);
  Result<Outcome> UpdateSchedulingPolicy(const json::object& req);
  Result<Outcome> DeleteSchedulingPolicy(const json::object& req);
  Result<Outcome> DescribeSchedulingPolicies(const json::object& req);
  Result<Outcome> ListSchedulingPolicies(const json::object& req);
  Status CheckFairsharePolicy(const json::object& p);
  Result<Outcome> CreateConsumableResource(const json::object& req);
  Result<Outcome> UpdateConsumableResource(const json::object& req);
  Result<Outcome> DeleteConsumableResource(const json::object& req);
  Result<Outcome> DescribeConsumableResource(const json::object& req);
  Result<Outcome> ListConsumableResources(const json::object& req);
  Result<Outcome> ListJobsByConsumableResource(const json::object& req);
  // Jobs (jobs.cc, dispatch.cc).
  Result<Outcome> SubmitJob(const json::object& req);
  Result<Outcome> DescribeJobs(const json::object& req);
  Result<Outcome> ListJobs(const json::object& req);
  Result<Outcome> CancelJob(const json::object& req);
  Result<Outcome> TerminateJob(const json::object& req);
  Result<Outcome> GetJobQueueSnapshot(const json::object& req);
  struct Job;  // a job: its packed document and the scheduler's index entry
  Job* FindJob(std::string_view id_or_arn);
  std::string JobArn(const Job& job) const;
  // A job's index entry from its document (no other state is touched: Load runs
  // it on several threads), then added to the indexes (counted in its array
  // parent's summary when `count_in_parent`).
  std::unique_ptr<Job> MakeJob(const json::object& doc, int64_t seq);
  Job& AddJob(std::unique_ptr<Job> job, bool count_in_parent);
  void IndexJob(Job* job);  // AddJob's part without jobs_ and the parent's summary
  // A new job (SubmitJob): a sequence number, indexed, its document open.
  Job& NewJob(json::object doc, bool count_in_parent);
  void EraseJob(Job& job);  // from every index (its parent's summary untouched)
  // Job documents. Doc() opens the document for a change: the caller changes it
  // in place and persists the job (Persist packs it again). ReadDoc() is a copy
  // as DescribeJobs shows it (statusReason from the index entry).
  json::object& Doc(Job& job);
  // With `sp`, the copy's memory comes from there (a reply's arena).
  json::object ReadDoc(const Job& job, json::storage_ptr sp = {}) const;
  // An implicit array child's document, made from its parent's (job.h).
  json::object ChildDoc(const Job& child, json::storage_ptr sp = {}) const;
  // Indexes the implicit children of array parent `parent` (every index that has
  // no entry yet): their sequence numbers, dependencies and resources follow
  // from the parent and its document `pdoc`.
  void AddImplicitChildren(Job& parent, const json::object& pdoc, bool count_in_parent);
  // Packs every open document; `texts` receives each one's JSON text.
  void FlushDocs(std::unordered_map<const Job*, std::string>* texts);
  // Moves a job to `status` in memory (doc + index); the caller persists it. An
  // array child's parent follows (its summary and status), unless a follower
  // moves an implicit child (`refresh_parent` false: the leader stores the parent).
  void SetJobStatus(Job& job, std::string_view status, std::string reason,
                    bool refresh_parent = true);
  // Recomputes an array parent's statusSummary and status from its children.
  void RefreshParent(Job& parent);
  // Applies a cancel (started jobs untouched) or terminate to a job or array.
  void CancelOne(Job& job, const std::string& reason, Outcome& out);
  void TerminateOne(Job& job, const std::string& reason, Outcome& out);
  Result<Outcome> StopJob(const json::object& req, bool terminate);
  // Takes or gives back the consumable resources a job's attempt holds.
  void HoldConsumables(Job& job, bool hold);
  // SUBMITTED / PENDING jobs whose dependencies changed move on (or fail). A
  // follower moves its waiting jobs too, since the leader does not store those
  // moves, but leaves failures (a stored change) to the leader.
  // Works through a slice of them; true when more are left and this slice moved
  // some on (the next slice should follow at once).
  bool ResolveDependencies(Outcome& out, bool follower);
  void DecayShareHistory(int64_t now);
  void FinishAttempt(Job& job, const exec::TaskEvent& ev, Outcome& out);
  void FailStart(Job& job, const exec::TaskEvent& ev, Outcome& out);
  sched::Snapshot BuildSnapshot(size_t window);
  exec::TaskSpec MakeTaskSpec(Job& job, const std::string& ce_arn);
  void PersistSync(Outcome out);
  void SchedulerLoop();
  void StartAttempts(const std::vector<exec::TaskSpec>& specs);
  // Cluster (cluster.cc).
  int64_t NextSeq();
  void UnindexJob(const std::string& arn);  // drops a job (another server replaced it)
  Outcome ForwardStop(const Job& job, const json::object& req, bool terminate);
  void ApplyJobRequests(Outcome& out);  // the leader's side of ForwardStop

  // Tags (tags.cc).
  Result<Outcome> TagResource(const json::object& req);
  Result<Outcome> UntagResource(const json::object& req);
  Result<Outcome> ListTagsForResource(const json::object& req);
  Result<json::object*> TagsOf(const std::string& arn);

  // Helpers (batch_service.cc).
  // Finds a resource of `kind` by name or ARN; nullptr when absent.
  Resource* Find(std::string_view kind, std::string_view name_or_arn);
  Resource& Insert(std::string kind, std::string arn, std::string name, int64_t revision,
                   json::object doc);
  void Erase(const std::string& arn);
  struct Page {
    std::vector<Resource*> items;
    std::string next_token;  // empty: last page
  };
  // Resources of `kind` in creation order that pass `keep`, one page of them.
  Result<Page> Paginate(std::string_view kind, const json::object& req,
                        const std::function<bool(const Resource&)>& keep,
                        int64_t max_limit = 100);
  struct JobPage {
    std::vector<Job*> items;
    std::string next_token;
  };
  Result<JobPage> PaginateJobs(const json::object& req, const std::function<bool(Job&)>& keep,
                               int64_t max_limit);
  void Persist(Outcome outcome, Reply done);

  ServiceConfig cfg_;
  Arns arns_;
  store::Store& store_;
  Clock& clock_;
  IdGenerator& ids_;

  // A write failed and the reload after it failed too (the store was unreachable): memory
  // may hold what the store refused, so every call reloads first, or is refused.
  std::atomic<bool> stale_{false};
  mutable std::mutex mu_;
  std::unordered_map<std::string, Resource> resources_;            // by ARN / key id
  std::map<std::string, std::map<int64_t, std::string>, std::less<>> order_;  // kind -> seq -> ARN
  std::map<std::string, int64_t, std::less<>> jd_revisions_;  // job definition name -> latest
  int64_t next_seq_ = 1;
  // Jobs are not in resources_/order_: they are kept compactly (a million
  // queued jobs is an ordinary day), their documents packed by codec_.
  std::unique_ptr<StringPool> pool_;  // queue ARNs and shares jobs point into (job.h)
  std::unordered_map<std::string_view, std::unique_ptr<Job>> jobs_;  // by job id (its own)
  std::map<int64_t, Job*> job_order_;                           // by seq (ListJobs)
  std::set<std::pair<int64_t, Job*>> finished_;  // SUCCEEDED/FAILED by stoppedAt (retention)
  std::unordered_map<const Job*, json::object> open_docs_;      // being changed (Doc())
  // The documents of attempts in flight (STARTING, RUNNING) stay parsed between
  // their changes instead of being packed (their next change, RUNNING or the
  // exit, comes within milliseconds for short jobs, and would unpack them
  // again): job.doc is stale while a job is here. At most kMaxLiveDocs.
  std::unordered_map<const Job*, json::object> live_docs_;
  static constexpr size_t kMaxLiveDocs = 4096;
  // A job's document as stored: the open or live one's text, else the packed one's.
  std::string StoredText(const Job& job) const;
  std::unique_ptr<DocCodec> codec_ = std::make_unique<DocCodec>();  // replaced by Load()
  std::set<std::string> dirty_;  // ARNs changed as a side effect (array parents): persisted next
  // Attempts whose exit is among dirty_: acknowledged to the executor once the
  // write that carries them is durable (see OnTaskEvent).
  std::vector<std::string> exit_acks_;
  // SUBMITTED / PENDING jobs (not array parents), in creation order; a pass works
  // through at most cfg_.resolve_slice of them from where the last one stopped (a
  // restart can leave a million SUBMITTED).
  struct BySeq {
    using is_transparent = void;  // (lower_bound by a seq)
    bool operator()(const Job* a, const Job* b) const;
    bool operator()(const Job* a, int64_t seq) const;
    bool operator()(int64_t seq, const Job* b) const;
  };
  std::set<Job*, BySeq> waiting_;
  int64_t resolve_from_ = 0;  // the seq the next pass's slice starts at
  std::unordered_set<Job*> running_;  // STARTING / RUNNING jobs
  // RUNNABLE jobs per queue (and share), in the order the scheduler takes them, so a
  // pass looks at the head of each queue instead of at every queued job.
  struct QueueOrder {
    bool operator()(const Job* a, const Job* b) const;
  };
  std::unordered_map<std::string, std::set<Job*, QueueOrder>> runnable_;
  static std::string QueueKey(const Job& j);
  std::vector<Job*> snapshot_jobs_;   // the pass's RUNNABLE jobs, by JobView handle
  uint64_t generation_ = 0;           // bumped by Load(): Job pointers from before are stale
  // Fair share: each share's decayed past usage in vCPU-minutes, per queue ARN
  // (memory only: it restarts from zero with the server).
  std::map<std::string, std::map<std::string, double>> share_history_;
  int64_t share_history_at_ = 0;
  int64_t last_prune_ms_ = 0;
  uint64_t next_uid_ = 0;
  std::set<std::string> free_gpus_;  // GPU ids no running attempt holds

  exec::Executor* executor_ = nullptr;
  std::mutex sched_mu_;
  std::condition_variable sched_cv_;
  bool sched_wake_ = false;  // guarded by sched_mu_
  double sched_freed_vcpus_ = 0;  // by exits since the last pass began (sched_mu_)
  bool sched_full_ = true;   // the next pass is a full one (guarded by sched_mu_)
  bool sched_deferred_ = false;  // a coalesced wake is due (guarded by sched_mu_)
  // Queues the last pass left jobs waiting in (guarded by mu_).
  std::unordered_set<std::string> blocked_queues_;
  bool sched_stop_ = false;  // guarded by sched_mu_
  std::thread sched_thread_;
  bool leading_ = true;  // guarded by mu_
  std::mutex pass_mu_;  // one SchedulePass at a time
  // With the scheduler thread, a pass's attempts start from its commit's
  // callback (guarded by mu_), and the loop runs the next pass once no such
  // commit is in flight (starts_in_flight_).
  bool pipelined_starts_ = false;
  int starts_in_flight_ = 0;
  bool sched_stopping_ = false;  // guarded by mu_: StopScheduler began
  std::condition_variable starts_done_;
};

// Resource kinds, as they appear in ARNs.
inline constexpr std::string_view kComputeEnvironment = "compute-environment";
inline constexpr std::string_view kJobQueue = "job-queue";
inline constexpr std::string_view kJobDefinition = "job-definition";
inline constexpr std::string_view kSchedulingPolicy = "scheduling-policy";
inline constexpr std::string_view kConsumableResource = "consumable-resource";
inline constexpr std::string_view kAccessKey = "access-key";
inline constexpr std::string_view kJob = "job";

// Shared validation helpers.
// AWS Batch resource names: 1-128 letters, numbers, hyphens and underscores.
bool IsValidName(std::string_view name);
Status CheckName(std::string_view what, std::string_view name);
Status CheckTags(const json::object& tags);

// Whether a wake of the scheduler loop has to notify it. The loop decides
// from the flags under its mutex, so a wake it would act on the same way as
// one already pending needs no notify (that would only wake it to sleep
// again): a wake `full` (anything but exits) while a full one is pending, or
// exits while any wake is pending, unless they make the vCPUs freed since the
// last pass (`freed_before` -> `freed_after`) reach half of `host_vcpus`,
// at which the loop passes at once instead of after the capacity interval.
bool SchedulerNeedsNotify(bool wake_pending, bool full_pending, bool full, double freed_before,
                          double freed_after, double host_vcpus);

}  // namespace drover::service
