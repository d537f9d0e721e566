#include "service/batch_service.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <thread>

#include "common/base64.h"
#include "common/log.h"
#include "common/thread.h"
#include "model/model.h"
#include "service/job.h"

namespace drover::service {

namespace {

constexpr const char* kSageMaker =
    "Drover does not run SageMaker jobs: service environments and service jobs are not "
    "supported (see docs/api-compat.md)";
constexpr const char* kQuotaShares =
    "Drover does not run SageMaker jobs: quota shares belong to quota-management job queues "
    "for SageMaker Training service jobs, which Drover does not support (see "
    "docs/api-compat.md)";

constexpr size_t kMaxSubmitJobBytes = 30 * 1024;

}  // namespace

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  }
  return true;
}

Status CheckName(std::string_view what, std::string_view name) {
  if (IsValidName(name)) return Status::Ok();
  return Status::Client(std::string(what) + " name '" + std::string(name) +
                        "' is invalid: it must be 1-128 characters long and contain only "
                        "letters, numbers, hyphens (-) and underscores (_)");
}

Status CheckTags(const json::object& tags) {
  if (tags.size() > 50) return Status::Client("A resource can have at most 50 tags");
  for (const auto& kv : tags) {
    std::string_view k = kv.key();
    if (k.empty() || k.size() > 128) {
      return Status::Client("Tag keys must be 1-128 characters long");
    }
    if (k.size() >= 4 && k.substr(0, 4) == "aws:") {
      return Status::Client("Tag keys starting with 'aws:' are reserved for AWS use: " +
                            std::string(k));
    }
    if (!kv.value().is_string() || kv.value().get_string().size() > 256) {
      return Status::Client("Tag values must be strings of at most 256 characters");
    }
  }
  return Status::Ok();
}

BatchService::BatchService(ServiceConfig cfg, store::Store& store, Clock& clock,
                           IdGenerator& ids)
    : cfg_(std::move(cfg)), arns_(cfg_.region, cfg_.account_id), store_(store), clock_(clock),
      ids_(ids), pool_(std::make_unique<StringPool>()) {}

BatchService::~BatchService() { StopScheduler(); }

const std::map<std::string, BatchService::OpEntry, std::less<>>& BatchService::Ops() {
  using S = BatchService;
  static const std::map<std::string, OpEntry, std::less<>> ops = {
      {"CreateComputeEnvironment", {&S::CreateComputeEnvironment, nullptr}},
      {"UpdateComputeEnvironment", {&S::UpdateComputeEnvironment, nullptr}},
      {"DeleteComputeEnvironment", {&S::DeleteComputeEnvironment, nullptr}},
      {"DescribeComputeEnvironments", {&S::DescribeComputeEnvironments, nullptr}},
      {"CreateJobQueue", {&S::CreateJobQueue, nullptr}},
      {"UpdateJobQueue", {&S::UpdateJobQueue, nullptr}},
      {"DeleteJobQueue", {&S::DeleteJobQueue, nullptr}},
      {"DescribeJobQueues", {&S::DescribeJobQueues, nullptr}},
      {"RegisterJobDefinition", {&S::RegisterJobDefinition, nullptr}},
      {"DeregisterJobDefinition", {&S::DeregisterJobDefinition, nullptr}},
      {"DescribeJobDefinitions", {&S::DescribeJobDefinitions, nullptr}},
      {"CreateSchedulingPolicy", {&S::CreateSchedulingPolicy, nullptr}},
      {"UpdateSchedulingPolicy", {&S::UpdateSchedulingPolicy, nullptr}},
      {"DeleteSchedulingPolicy", {&S::DeleteSchedulingPolicy, nullptr}},
      {"DescribeSchedulingPolicies", {&S::DescribeSchedulingPolicies, nullptr}},
      {"ListSchedulingPolicies", {&S::ListSchedulingPolicies, nullptr}},
      {"CreateConsumableResource", {&S::CreateConsumableResource, nullptr}},
      {"UpdateConsumableResource", {&S::UpdateConsumableResource, nullptr}},
      {"DeleteConsumableResource", {&S::DeleteConsumableResource, nullptr}},
      {"DescribeConsumableResource", {&S::DescribeConsumableResource, nullptr}},
      {"ListConsumableResources", {&S::ListConsumableResources, nullptr}},
      {"ListJobsByConsumableResource", {&S::ListJobsByConsumableResource, nullptr}},
      {"TagResource", {&S::TagResource, nullptr}},
      {"UntagResource", {&S::UntagResource, nullptr}},
      {"ListTagsForResource", {&S::ListTagsForResource, nullptr}},
      {"SubmitJob", {&S::SubmitJob, nullptr}},
      {"DescribeJobs", {&S::DescribeJobs, nullptr}},
      {"ListJobs", {&S::ListJobs, nullptr}},
      {"CancelJob", {&S::CancelJob, nullptr}},
      {"TerminateJob", {&S::TerminateJob, nullptr}},
      {"GetJobQueueSnapshot", {&S::GetJobQueueSnapshot, nullptr}},
      // Quota shares: SageMaker quota management only.
      {"CreateQuotaShare", {nullptr, kQuotaShares}},
      {"UpdateQuotaShare", {nullptr, kQuotaShares}},
      {"DeleteQuotaShare", {nullptr, kQuotaShares}},
      {"DescribeQuotaShare", {nullptr, kQuotaShares}},
      {"ListQuotaShares", {nullptr, kQuotaShares}},
      // SageMaker: not Drover's business.
      {"CreateServiceEnvironment", {nullptr, kSageMaker}},
      {"UpdateServiceEnvironment", {nullptr, kSageMaker}},
      {"DeleteServiceEnvironment", {nullptr, kSageMaker}},
      {"DescribeServiceEnvironments", {nullptr, kSageMaker}},
      {"SubmitServiceJob", {nullptr, kSageMaker}},
      {"DescribeServiceJob", {nullptr, kSageMaker}},
      {"ListServiceJobs", {nullptr, kSageMaker}},
      {"TerminateServiceJob", {nullptr, kSageMaker}},
      {"UpdateServiceJob", {nullptr, kSageMaker}},
  };
  return ops;
}

Status BatchService::Load() {
  using Ms = std::chrono::duration<double, std::milli>;
  auto t0 = std::chrono::steady_clock::now();
  // Everything is read into new structures first: if the store cannot be read,
  // the view in memory stays as it was. Reading the store (this thread) and
  // parsing and packing the jobs' documents (worker threads, one per core)
  // overlap: chunks of records go through a short queue, and each record's text
  // is dropped as soon as it is packed, so a restart never holds every
  // document's text at once. The indexes are then built on this thread, in
  // creation order.
  std::mutex pipe_mu;
  std::condition_variable pipe_cv;
  std::deque<std::vector<store::Record>> pipe;
  bool read_done = false;
  constexpr size_t kMaxQueued = 8;  // chunks waiting for a worker
  std::vector<std::unique_ptr<Job>> loaded;
  std::vector<store::Record> records;  // everything but jobs
  bool bad = false;
  auto codec = std::make_unique<DocCodec>();  // the loaded jobs' dictionaries
  auto work = [&] {
    alignas(16) static thread_local unsigned char arena_buf[64 * 1024];
    for (;;) {
      std::vector<store::Record> chunk;
      {
        std::unique_lock<std::mutex> pl(pipe_mu);
        pipe_cv.wait(pl, [&] { return read_done || !pipe.empty(); });
        if (pipe.empty()) return;
        chunk = std::move(pipe.front());
        pipe.pop_front();
      }
      pipe_cv.notify_all();  // the reader may go on
      std::vector<std::unique_ptr<Job>> jobs;
      std::vector<store::Record> others;
      bool chunk_bad = false;
      for (store::Record& r : chunk) {
        if (r.kind != kJob) {
          others.push_back(std::move(r));
          continue;
        }
        // The document is read once and dropped: its tree lives in a buffer reused
        // for every document instead of hundreds of small heap allocations.
        json::monotonic_resource arena(arena_buf, sizeof arena_buf);
        auto doc = ParseJson(r.doc, json::storage_ptr(&arena));
        if (!doc.ok() || !doc->is_object()) {
          chunk_bad = true;
          continue;
        }
        auto job = MakeJob(doc->as_object(), r.seq);
        job->doc = codec->Pack(GetString(doc->as_object(), "jobDefinition").value_or(""), r.doc);
        std::string().swap(r.doc);  // packed: give the text's memory back now
        jobs.push_back(std::move(job));
      }
      chunk = std::vector<store::Record>();
      std::lock_guard<std::mutex> pl(pipe_mu);
      bad = bad || chunk_bad;
      for (auto& j : jobs) loaded.push_back(std::move(j));
      for (auto& r : others) records.push_back(std::move(r));
    }
  };
  size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
  std::vector<std::thread> workers;
  for (size_t t = 0; t < threads; ++t) {
    workers.emplace_back([&work] {
      SetThreadName("drover-load");
      work();
    });
  }
  size_t records_count = 0;
  Status read = store_.Scan(4096, [&](std::vector<store::Record>&& chunk) {
    records_count += chunk.size();
    std::unique_lock<std::mutex> pl(pipe_mu);
    pipe_cv.wait(pl, [&] { return pipe.size() < kMaxQueued; });
    pipe.push_back(std::move(chunk));
    pl.unlock();
    pipe_cv.notify_all();
  });
  auto t_read = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> pl(pipe_mu);
    read_done = true;
  }
  pipe_cv.notify_all();
  for (auto& t : workers) t.join();
  if (!read.ok()) return read;
  if (bad) return Status::Server("a stored job document is not a JSON object");
  std::vector<std::pair<store::Record, json::object>> parsed;  // everything but jobs
  for (auto& r : records) {
    auto doc = ParseJson(r.doc);
    if (!doc.ok() || !doc->is_object()) {
      return Status::Server("stored document of " + r.key + " is not a JSON object");
    }
    std::string().swap(r.doc);
    parsed.emplace_back(std::move(r), std::move(doc->as_object()));
  }
  std::vector<store::Record>().swap(records);
  auto t_parsed = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> l(mu_);
  resources_.clear();
  order_.clear();
  jd_revisions_.clear();
  open_docs_.clear();
  live_docs_.clear();
  job_order_.clear();
  finished_.clear();
  jobs_.clear();
  dirty_.clear();
  waiting_.clear();
  running_.clear();
  runnable_.clear();
  snapshot_jobs_.clear();
  blocked_queues_.clear();
  codec_ = std::move(codec);  // (after jobs_.clear(): the old jobs' dictionaries go with it)
  ++generation_;
  next_seq_ = 1;
  size_t job_count = loaded.size();
  resources_.reserve(parsed.size());
  jobs_.reserve(job_count);
  for (auto& [r, doc] : parsed) {
    next_seq_ = std::max(next_seq_, r.seq + 1);
    Resource res{r.kind, r.key, r.name, r.revision, r.seq, std::move(doc)};
    order_[res.kind][res.seq] = res.arn;
    if (res.kind == kJobDefinition) {
      auto& latest = jd_revisions_[res.name];
      latest = std::max(latest, res.revision);
    }
    resources_[res.arn] = std::move(res);
  }
  parsed.clear();
  // The id map and the other indexes are independent: another thread fills the
  // map (a cache miss or three per id) while this one builds the rest in creation
  // order (the ordered sets then grow at their ends). Children count in their
  // parents' summaries once both are done.
  std::vector<Job*> by_seq;
  by_seq.reserve(loaded.size());
  for (const auto& job : loaded) by_seq.push_back(job.get());
  std::thread by_id([&] {
    for (auto& job : loaded) {
      std::string_view id(job->id);
      jobs_.emplace(id, std::move(job));
    }
  });
  std::sort(by_seq.begin(), by_seq.end(), [](Job* a, Job* b) { return a->seq < b->seq; });
  if (!by_seq.empty()) next_seq_ = std::max(next_seq_, by_seq.back()->seq + 1);
  std::vector<Job*> parents;
  for (Job* j : by_seq) {
    IndexJob(j);
    if (j->array_size > 0) parents.push_back(j);
  }
  by_id.join();
  for (Job* j : by_seq) {
    if (j->parent.empty()) continue;
    if (Job* p = FindJob(j->parent)) ++p->summary()[j->status];
  }
  // Array children that have only waited are not stored: made again from their
  // parents (every child of a finished array changed, and is stored).
  size_t implicit = 0;
  for (Job* p : parents) {
    if (IsTerminal(p->status)) continue;
    size_t before = jobs_.size();
    AddImplicitChildren(*p, ReadDoc(*p), /*count_in_parent=*/true);
    implicit += jobs_.size() - before;
  }
  free_gpus_ = std::set<std::string>(cfg_.gpu_ids.begin(), cfg_.gpu_ids.end());
  for (const Job* j : running_) {
    for (const auto& g : j->gpus) free_gpus_.erase(g);
  }
  ::malloc_trim(0);  // the loaded texts are gone: return their pages to the system
  auto t_end = std::chrono::steady_clock::now();
  LOG_INFO("loaded {} records ({} jobs, and {} waiting array children made from their "
           "parents) in {:.0f} ms: read {:.0f} ms (jobs parsed and packed meanwhile on {} "
           "threads, done {:.0f} ms later), indexed {:.0f} ms",
           records_count, job_count, implicit, Ms(t_end - t0).count(), Ms(t_read - t0).count(),
           threads,
           Ms(t_parsed - t_read).count(), Ms(t_end - t_parsed).count());
  stale_ = false;
  return Status::Ok();
}

Status BatchService::ReloadIfStale() { return stale_ ? Load() : Status::Ok(); }

void BatchService::Call(std::string_view operation, json::value request, Reply done) {
  auto op = Ops().find(operation);
  const model::Operation* mop = model::ServiceModel::Batch().FindOperation(operation);
  if (op == Ops().end() || !mop) {
    return done(Status::Client("Unknown operation " + std::string(operation)));
  }
  if (op->second.unsupported) return done(Status::Client(op->second.unsupported));
  if (Status s = model::ServiceModel::Batch().Conform(mop->input, request); !s.ok()) {
    return done(s);
  }
  // AWS's limit on a SubmitJob request (parameters, overrides, tags included).
  if (operation == "SubmitJob" && ToJson(request).size() > kMaxSubmitJobBytes) {
    return done(Status::Client("The SubmitJob request is larger than 30 KiB (AWS's limit)"));
  }
  if (!operation.starts_with("Describe") && !operation.starts_with("List") &&
      !operation.starts_with("Get") && store_.Pending() >= cfg_.max_pending_writes) {
    return done(Status::Throttled("Too many requests: " + std::to_string(store_.Pending()) +
                                  " writes are waiting for the store; retry"));
  }
  if (stale_) {
    if (Status r = Load(); !r.ok()) {
      return done(Status::Server("The state could not be reloaded from the store after a "
                                 "failed write: " + r.message()));
    }
  }
  std::unique_lock<std::mutex> l(mu_);
  Result<Outcome> out = (this->*op->second.handler)(request.as_object());
  if (!out.ok()) {
    FlushDocs(nullptr);  // (handlers check before they change anything)
    l.unlock();
    return done(out.status());
  }
  if (out->puts.empty() && out->deletes.empty()) {
    FlushDocs(nullptr);
    l.unlock();
    return done(std::move(out->response));
  }
  bool wake = out->wake;
  bool defer = !out->wake_queue.empty() && blocked_queues_.contains(out->wake_queue);
  Persist(std::move(out).value(), std::move(done));  // under mu_: store order = memory order
  l.unlock();
  if (wake && defer) {
    // A pass within kBlockedPassInterval: the loop may be asleep until its 1 s tick,
    // so the first deferral since the last pass wakes it to shorten its wait.
    bool first;
    {
      std::lock_guard<std::mutex> s(sched_mu_);
      first = !sched_deferred_;
      sched_deferred_ = true;
      sched_full_ = true;
    }
    if (first) sched_cv_.notify_one();
  } else if (wake) {
    Wake();
  }
}

void BatchService::Persist(Outcome outcome, Reply done) {
  store::WriteBatch batch;
  for (const std::string& arn : dirty_) {
    if (std::find(outcome.puts.begin(), outcome.puts.end(), arn) == outcome.puts.end()) {
      outcome.puts.push_back(arn);
    }
  }
  dirty_.clear();
  std::vector<std::string> acks;
  acks.swap(exit_acks_);
  std::unordered_map<const Job*, std::string> texts;
  FlushDocs(&texts);
  std::unordered_set<std::string_view> seen;  // a key put twice is stored once
  for (const std::string& arn : outcome.puts) {
    if (!seen.insert(arn).second) continue;
    store::Record rec;
    if (auto it = resources_.find(arn); it != resources_.end()) {
      const Resource& r = it->second;
      rec = store::Record{r.kind, r.arn, r.name, r.revision, r.seq, ToJson(r.doc)};
    } else if (Job* j = FindJob(arn)) {
      if (j->implicit) continue;  // nothing to store: made from its parent's record
      auto t = texts.find(j);
      rec = store::Record{std::string(kJob), JobArn(*j), j->id, 0, j->seq,
                          t != texts.end() ? std::move(t->second) : StoredText(*j)};
    } else {
      continue;  // gone meanwhile (a dirty parent that was pruned)
    }
    rec.create_only =
        std::find(outcome.creates.begin(), outcome.creates.end(), arn) != outcome.creates.end();
    batch.puts.push_back(std::move(rec));
  }
  batch.deletes = std::move(outcome.deletes);
  store_.Write(std::move(batch), [this, response = std::move(outcome.response),
                                  done = std::move(done), acks = std::move(acks)](Status s) mutable {
    if (s.ok()) {
      if (!acks.empty()) {  // the exits this write carried are durable
        std::lock_guard<std::mutex> l(mu_);
        if (executor_) executor_->AcknowledgeAll(acks);
      }
      return done(std::move(response));
    }
    // The in-memory view ran ahead of the store: rebuild it from what is durable.
    LOG_ERROR("write failed, reloading state from the store: {}", s.message());
    if (Status r = Load(); !r.ok()) {
      LOG_ERROR("reload failed: {}", r.message());
      stale_ = true;
    }
    if (s.code() == Code::kAlreadyExists) {
      // Another server created the same key a moment ago. This view is reloaded
      // now, so a retry (which SDKs make for a 500) gets the right answer: the
      // next revision, or "already exists".
      return done(Status::Server("Another server created this resource at the same moment; "
                                 "retry: " + s.message()));
    }
    done(Status::Server("The change could not be stored: " + s.message()));
  });
}

Result<json::object> BatchService::CallSync(std::string_view operation, json::value request) {
  std::promise<Result<json::object>> p;
  auto f = p.get_future();
  Call(operation, std::move(request), [&p](Result<json::object> r) { p.set_value(std::move(r)); });
  return f.get();
}

BatchService::Resource* BatchService::Find(std::string_view kind, std::string_view name_or_arn) {
  std::string arn;
  if (name_or_arn.starts_with("arn:")) {
    arn = std::string(name_or_arn);
  } else {
    arn = arns_.Make(kind, name_or_arn);
  }
  auto it = resources_.find(arn);
  if (it == resources_.end() || it->second.kind != kind) return nullptr;
  return &it->second;
}

BatchService::Resource& BatchService::Insert(std::string kind, std::string arn, std::string name,
                                             int64_t revision, json::object doc) {
  int64_t seq = NextSeq();
  order_[kind][seq] = arn;
  Resource& r = resources_[arn];
  r = Resource{std::move(kind), arn, std::move(name), revision, seq, std::move(doc)};
  return r;
}

void BatchService::Erase(const std::string& arn) {
  auto it = resources_.find(arn);
  if (it == resources_.end()) return;
  order_[it->second.kind].erase(it->second.seq);
  resources_.erase(it);
}

namespace {

// maxResults and nextToken: how many items a page has and the seq it starts after.
Status PageBounds(const json::object& req, int64_t max_limit, int64_t& max, int64_t& after) {
  max = 100;
  if (auto m = GetInt(req, "maxResults")) {
    if (*m < 1 || *m > max_limit) {
      return Status::Client("maxResults must be between 1 and " + std::to_string(max_limit));
    }
    max = *m;
  }
  after = 0;
  if (auto tok = GetString(req, "nextToken")) {
    auto raw = Base64Decode(*tok);
    if (!raw || !raw->starts_with("seq:")) return Status::Client("Invalid nextToken");
    try {
      after = std::stoll(raw->substr(4));
    } catch (...) {
      return Status::Client("Invalid nextToken");
    }
  }
  return Status::Ok();
}

std::string SeqToken(int64_t seq) { return Base64Encode("seq:" + std::to_string(seq)); }

}  // namespace

Result<BatchService::Page> BatchService::Paginate(
    std::string_view kind, const json::object& req,
    const std::function<bool(const Resource&)>& keep, int64_t max_limit) {
  int64_t max, after;
  DROVER_RETURN_IF_ERROR(PageBounds(req, max_limit, max, after));
  Page page;
  auto kit = order_.find(kind);
  if (kit == order_.end()) return page;
  for (auto it = kit->second.upper_bound(after); it != kit->second.end(); ++it) {
    Resource& r = resources_.at(it->second);
    if (!keep(r)) continue;
    if (static_cast<int64_t>(page.items.size()) == max) {
      page.next_token = SeqToken(page.items.back()->seq);
      break;
    }
    page.items.push_back(&r);
  }
  return page;
}

Result<BatchService::JobPage> BatchService::PaginateJobs(const json::object& req,
                                                         const std::function<bool(Job&)>& keep,
                                                         int64_t max_limit) {
  int64_t max, after;
  DROVER_RETURN_IF_ERROR(PageBounds(req, max_limit, max, after));
  JobPage page;
  for (auto it = job_order_.upper_bound(after); it != job_order_.end(); ++it) {
    if (!keep(*it->second)) continue;
    if (static_cast<int64_t>(page.items.size()) == max) {
      page.next_token = SeqToken(page.items.back()->seq);
      break;
    }
    page.items.push_back(it->second);
  }
  return page;
}

}  // namespace drover::service
