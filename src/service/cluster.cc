// Several servers on one store (PostgreSQL): every server answers the API from
// its own in-memory view and keeps that view up to date with what the others
// store (ApplyChanges, fed by Store::PollChanges). One of them, the holder of
// the store's lease, is the leader: it alone runs the scheduler and the jobs,
// so it alone changes job states. A follower that is asked to cancel or
// terminate a job stores a "job-request" record instead; the leader's next
// pass applies it and deletes it.
#include <algorithm>

#include "common/log.h"
#include "service/batch_service.h"
#include "service/job.h"

namespace drover::service {
namespace {

constexpr std::string_view kJobRequest = "job-request";

}  // namespace

void BatchService::SetLeading(bool leading) {
  std::lock_guard<std::mutex> l(mu_);
  leading_ = leading;
  if (!leading) {
    // Every slice now (a server becomes a follower at start, before it serves, or
    // after leading, when its waiting jobs are already worked out); ApplyChanges
    // then takes one slice per batch of changes.
    Outcome none;
    while (ResolveDependencies(none, /*follower=*/true)) {
    }
    return;
  }
  // The GPUs free now: those no attempt started by the previous leader holds.
  free_gpus_ = std::set<std::string>(cfg_.gpu_ids.begin(), cfg_.gpu_ids.end());
  for (const Job* j : running_) {
    for (const auto& g : j->gpus) free_gpus_.erase(g);
  }
}

bool BatchService::leading() const {
  std::lock_guard<std::mutex> l(mu_);
  return leading_;
}

// Creation order, for pagination and for the order of queues. With a shared
// store the numbers must also be unique across servers: they are time-ordered
// (milliseconds, 32 per millisecond before running ahead of the clock) with
// this server's nonce in the low 16 bits.
int64_t BatchService::NextSeq() {
  if (!cfg_.shared_store) return next_seq_++;
  int64_t base = std::max((next_seq_ + 0xffff) >> 16, clock_.NowMillis() << 5);
  int64_t seq = (base << 16) | cfg_.seq_nonce;
  next_seq_ = seq + 1;
  return seq;
}

void BatchService::UnindexJob(const std::string& arn) {
  Job* j = FindJob(arn);
  if (!j) return;
  if (!j->parent.empty()) {
    if (Job* p = FindJob(j->parent)) --p->summary()[j->status];
  }
  EraseJob(*j);
}

void BatchService::ApplyChanges(const store::Changes& changes) {
  if (changes.puts.empty() && changes.deletes.empty()) return;
  bool wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    ++generation_;  // Job entries may be replaced: a pass in flight decides again
    for (const std::string& key : changes.deletes) {
      UnindexJob(key);
      Erase(key);
    }
    for (const store::Record& r : changes.puts) {
      auto doc = ParseJson(r.doc);
      if (!doc.ok() || !doc->is_object()) {
        LOG_ERROR("another server stored {} with a document that is not a JSON object", r.key);
        continue;
      }
      next_seq_ = std::max(next_seq_, r.seq + 1);
      if (r.kind == kJob) {
        UnindexJob(r.key);
        auto made = MakeJob(doc->as_object(), r.seq);
        made->doc = codec_->Pack(GetString(doc->as_object(), "jobDefinition").value_or(""), r.doc);
        Job& j = AddJob(std::move(made), /*count_in_parent=*/true);
        if (j.array_size > 0) {  // a new entry for a parent: count its children again
          if (!IsTerminal(j.status)) AddImplicitChildren(j, doc->as_object(), false);
          j.summary().clear();
          for (int i = 0; i < j.array_size; ++i) {
            if (Job* c = FindJob(j.id + ":" + std::to_string(i))) ++j.summary()[c->status];
          }
        }
        continue;
      }
      if (auto old = resources_.find(r.key); old != resources_.end()) {
        order_[old->second.kind].erase(old->second.seq);
      }
      order_[r.kind][r.seq] = r.key;
      if (r.kind == kJobDefinition) {
        auto& latest = jd_revisions_[r.name];
        latest = std::max(latest, r.revision);
      }
      resources_[r.key] =
          Resource{r.kind, r.key, r.name, r.revision, r.seq, std::move(doc->as_object())};
    }
    wake = leading_;
    if (!leading_) {  // what the leader does not store: waiting jobs moving on
      Outcome none;
      ResolveDependencies(none, /*follower=*/true);
    }
  }
  if (wake) Wake();
}

BatchService::Outcome BatchService::ForwardStop(const Job& job, const json::object& req,
                                                bool terminate) {
  std::string key = std::string(kJobRequest) + "/" + ids_.Uuid();
  json::object doc{{"jobId", job.id},
                   {"reason", GetString(req, "reason").value_or("")},
                   {"terminate", terminate}};
  Insert(std::string(kJobRequest), key, key, 0, std::move(doc));
  Outcome out;
  out.puts.push_back(key);
  return out;
}

void BatchService::ApplyJobRequests(Outcome& out) {
  auto it = order_.find(kJobRequest);
  if (it == order_.end() || it->second.empty()) return;
  std::vector<std::string> keys;
  for (const auto& [seq, key] : it->second) keys.push_back(key);
  for (const std::string& key : keys) {
    json::object doc = resources_.at(key).doc;  // a copy: Erase() below
    if (Job* j = FindJob(GetString(doc, "jobId").value_or(""))) {
      std::string reason(GetString(doc, "reason").value_or(""));
      if (GetBool(doc, "terminate").value_or(false)) TerminateOne(*j, reason, out);
      else CancelOne(*j, reason, out);
    }
    Erase(key);
    out.deletes.push_back(key);
  }
}

}  // namespace drover::service
