// Jobs: SubmitJob, DescribeJobs, ListJobs, CancelJob, TerminateJob,
// GetJobQueueSnapshot. What happens to a job after it is submitted lives in
// dispatch.cc.
#include <algorithm>
#include <set>

#include "service/batch_service.h"
#include "service/job.h"

namespace drover::service {
namespace {

// Merges name/value lists (environment): entries of `over` replace same-named ones.
json::array MergeByKey(const json::array* base, const json::array* over, const char* key) {
  json::array out = base ? *base : json::array();
  if (!over) return out;
  for (const auto& o : *over) {
    auto k = GetString(o.as_object(), key);
    auto it = std::find_if(out.begin(), out.end(), [&](const json::value& v) {
      return GetString(v.as_object(), key) == k;
    });
    if (it != out.end()) *it = o;
    else out.push_back(o);
  }
  return out;
}

// Ref::name in command arguments becomes the parameter's value (longest names first).
json::array Substitute(const json::array& command, const json::object& params) {
  std::vector<std::pair<std::string, std::string>> ps;
  for (const auto& kv : params) {
    if (kv.value().is_string()) ps.emplace_back(kv.key(), kv.value().get_string());
  }
  std::sort(ps.begin(), ps.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  json::array out;
  for (const auto& arg : command) {
    std::string s(arg.as_string());
    for (const auto& [k, v] : ps) {
      std::string ref = "Ref::" + k;
      for (size_t pos = s.find(ref); pos != std::string::npos; pos = s.find(ref, pos + v.size())) {
        s.replace(pos, ref.size(), v);
      }
    }
    out.emplace_back(s);
  }
  return out;
}

// The job's vCPU / memory / GPU needs from resourceRequirements or the legacy fields.
sched::Resources Needs(const json::object& container) {
  sched::Resources r{1, 0, 0};
  if (auto v = GetInt(container, "vcpus")) r.vcpus = static_cast<double>(*v);
  if (auto m = GetInt(container, "memory")) r.memory_mib = *m;
  if (const auto* rr = GetArray(container, "resourceRequirements")) {
    for (const auto& e : *rr) {
      std::string_view type = *GetString(e.as_object(), "type");
      std::string value(*GetString(e.as_object(), "value"));
      try {
        if (type == "VCPU") r.vcpus = std::stod(value);
        if (type == "MEMORY") r.memory_mib = std::stoll(value);
        if (type == "GPU") r.gpus = std::stoll(value);
      } catch (...) {
        // Checked at validation; an unparsable value keeps the default.
      }
    }
  }
  return r;
}

bool Glob(std::string_view pattern, std::string_view s) {
  if (!pattern.empty() && pattern.back() == '*') {
    return s.starts_with(pattern.substr(0, pattern.size() - 1));
  }
  return pattern == s;
}

json::object Summary(const json::object& doc) {
  json::object s;
  for (const char* k : {"jobArn", "jobId", "jobName", "createdAt", "status", "statusReason",
                        "startedAt", "stoppedAt", "jobDefinition", "shareIdentifier"}) {
    if (auto it = doc.find(k); it != doc.end()) s[k] = it->value();
  }
  if (const auto* ap = GetObject(doc, "arrayProperties")) s["arrayProperties"] = *ap;
  if (const auto* c = GetObject(doc, "container")) {
    json::object cs;
    if (auto it = c->find("exitCode"); it != c->end()) cs["exitCode"] = it->value();
    if (auto it = c->find("reason"); it != c->end()) cs["reason"] = it->value();
    s["container"] = std::move(cs);
  }
  return s;
}

constexpr size_t kMaxDependencies = 100;
constexpr int64_t kMaxArraySize = 10000;

}  // namespace

BatchService::Job* BatchService::FindJob(std::string_view id_or_arn) {
  std::string id(id_or_arn);
  if (id_or_arn.starts_with("arn:")) {
    auto p = Arns::Parse(id_or_arn);
    if (!p || p->kind != kJob) return nullptr;
    id = p->resource;
  }
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

std::string BatchService::JobArn(const Job& job) const { return arns_.Make(kJob, job.id); }

std::unique_ptr<BatchService::Job> BatchService::MakeJob(const json::object& doc, int64_t seq) {
  auto job = std::make_unique<Job>();
  job->id = std::string(GetString(doc, "jobId").value_or(""));
  job->queue = PooledString(pool_->Intern(GetString(doc, "jobQueue").value_or("")));
  job->status = PooledString(pool_->Intern(GetString(doc, "status").value_or("SUBMITTED")));
  job->seq = seq;
  if (const auto* c = GetObject(doc, "container")) job->need = Needs(*c);
  if (const auto* deps = GetArray(doc, "dependsOn")) {
    for (const auto& d : *deps) {
      if (auto id = GetString(d.as_object(), "jobId")) job->depends_on.emplace_back(*id);
    }
  }
  if (const auto* t = GetObject(doc, "timeout")) {
    job->timeout_ms = GetInt(*t, "attemptDurationSeconds").value_or(0) * 1000;
  }
  if (const auto* rs = GetObject(doc, "retryStrategy")) {
    job->max_attempts = static_cast<int>(GetInt(*rs, "attempts").value_or(1));
  }
  job->attempts = GetArray(doc, "attempts") ? GetArray(doc, "attempts")->size() : 0;
  if (auto ce = GetString(doc, "drover:ce"); ce && !ce->empty()) {
    job->ce = PooledString(pool_->Intern(*ce));
  }
  job->task_id = std::string(GetString(doc, "drover:taskId").value_or(""));
  job->terminate_reason = std::string(GetString(doc, "drover:terminateReason").value_or(""));
  job->started_at = GetInt(doc, "startedAt").value_or(0);
  job->stopped_at = GetInt(doc, "stoppedAt").value_or(0);
  if (job->status == "RUNNABLE") job->runnable_at = GetInt(doc, "drover:runnableAt").value_or(0);
  job->retried = job->attempts > 0 && job->status == "RUNNABLE";
  job->share = PooledString(pool_->Intern(GetString(doc, "shareIdentifier").value_or("")));
  job->priority = GetInt(doc, "schedulingPriority").value_or(0);
  if (const auto* crp = GetObject(doc, "consumableResourceProperties")) {
    if (const auto* l = GetArray(*crp, "consumableResourceList")) {
      for (const auto& e : *l) {
        std::string_view arn = GetString(e.as_object(), "consumableResource").value_or("");
        job->consumables.emplace_back(std::string(arn.substr(arn.rfind('/') + 1)),
                                      GetInt(e.as_object(), "quantity").value_or(1));
      }
    }
  }
  job->holds_consumables = !job->ce.empty() && !job->consumables.empty();
  if (const auto* gpus = GetArray(doc, "drover:gpus"); gpus && !job->ce.empty()) {
    for (const auto& g : *gpus) job->gpus.emplace_back(g.as_string());
  }
  if (const auto* ap = GetObject(doc, "arrayProperties")) {
    if (auto idx = GetInt(*ap, "index")) {
      job->index = static_cast<int>(*idx);
      job->parent = job->id.substr(0, job->id.rfind(':'));
    } else if (auto size = GetInt(*ap, "size")) {
      job->array_size = static_cast<int>(*size);
    }
  }
  std::string_view reason = GetString(doc, "statusReason").value_or("");
  if (JobReason::Shared(job->status.str(), reason)) job->reason.Pooled(pool_->Intern(reason));
  else job->reason.Own(std::string(reason));
  return job;
}

BatchService::Job& BatchService::AddJob(std::unique_ptr<Job> job, bool count_in_parent) {
  Job* raw = job.get();
  if (count_in_parent && !raw->parent.empty()) {
    if (Job* p = FindJob(raw->parent)) ++p->summary()[raw->status];
  }
  IndexJob(raw);
  jobs_.emplace(std::string_view(raw->id), std::move(job));
  return *raw;
}

void BatchService::IndexJob(Job* raw) {
  if ((raw->status == "SUBMITTED" || raw->status == "PENDING") && raw->array_size == 0) {
    waiting_.insert(raw);
  }
  if (raw->status == "RUNNABLE") {
    auto& set = runnable_[QueueKey(*raw)];
    set.insert(set.end(), raw);  // (a new job usually goes last: the hint makes that O(1))
  }
  if (raw->status == "STARTING" || raw->status == "RUNNING") running_.insert(raw);
  job_order_.emplace_hint(job_order_.end(), raw->seq, raw);
  if (IsTerminal(raw->status)) finished_.insert({raw->stopped_at, raw});
}

BatchService::Job& BatchService::NewJob(json::object doc, bool count_in_parent) {
  Job& job = AddJob(MakeJob(doc, NextSeq()), count_in_parent);
  open_docs_[&job] = std::move(doc);
  return job;
}

void BatchService::EraseJob(Job& job) {
  waiting_.erase(&job);
  running_.erase(&job);
  if (auto q = runnable_.find(QueueKey(job)); q != runnable_.end()) q->second.erase(&job);
  open_docs_.erase(&job);
  live_docs_.erase(&job);
  job_order_.erase(job.seq);
  finished_.erase({job.stopped_at, &job});
  jobs_.erase(std::string_view(job.id));  // last: it owns `job`
}

json::object& BatchService::Doc(Job& job) {
  auto it = open_docs_.find(&job);
  if (it != open_docs_.end()) return it->second;
  if (auto live = live_docs_.find(&job); live != live_docs_.end()) {
    json::object& open = open_docs_[&job] = std::move(live->second);
    live_docs_.erase(live);
    open["status"] = job.status.str();
    return open;
  }
  if (job.implicit) {  // its first change: from now on it has a document of its own
    job.implicit = false;
    return open_docs_[&job] = ChildDoc(job);
  }
  auto doc = ParseJson(codec_->Unpack(job.doc));
  json::object& open = open_docs_[&job] = doc.ok() && doc->is_object()
                                               ? std::move(doc->as_object())
                                               : json::object();
  open["status"] = job.status.str();  // (moves between waiting states are not stored)
  return open;
}

json::object BatchService::ReadDoc(const Job& job, json::storage_ptr sp) const {
  json::object doc(sp);
  if (auto it = open_docs_.find(&job); it != open_docs_.end()) {
    doc = it->second;
  } else if (auto live = live_docs_.find(&job); live != live_docs_.end()) {
    doc = live->second;
  } else if (job.implicit) {
    doc = ChildDoc(job, sp);
  } else if (auto parsed = ParseJson(codec_->Unpack(job.doc), sp);
             parsed.ok() && parsed->is_object()) {
    doc = std::move(parsed->as_object());
  }
  doc["status"] = job.status.str();  // (moves between waiting states are not stored)
  if (!job.reason.empty()) doc["statusReason"] = job.reason.str();
  else doc.erase("statusReason");
  return doc;
}

json::object BatchService::ChildDoc(const Job& child, json::storage_ptr sp) const {
  // The fields a child's document had at SubmitJob that its parent's does not
  // share, and the parent's own later changes (its status, summary, stop), are
  // set or dropped here; everything else (definition, container, parameters,
  // tags, createdAt) is the parent's.
  json::object doc(sp);
  if (auto p = jobs_.find(std::string_view(child.parent)); p != jobs_.end()) {
    doc = ReadDoc(*p->second, sp);
  }
  for (auto it = doc.begin(); it != doc.end();) {
    if (it->key().starts_with("drover:")) it = doc.erase(it);
    else ++it;
  }
  for (const char* k : {"statusReason", "startedAt", "stoppedAt"}) doc.erase(k);
  doc["jobArn"] = JobArn(child);
  doc["jobId"] = child.id;
  doc["status"] = child.status.str();
  doc["isCancelled"] = false;
  doc["isTerminated"] = false;
  doc["arrayProperties"] = json::object({{"index", child.index}}, sp);
  json::array deps(sp);
  for (const std::string& d : child.depends_on) deps.push_back(json::object({{"jobId", d}}, sp));
  doc["dependsOn"] = std::move(deps);
  return doc;
}

void BatchService::AddImplicitChildren(Job& parent, const json::object& pdoc,
                                       bool count_in_parent) {
  // Dependencies: plain ones (wait for the job, or for a whole array), N_TO_N
  // (child i waits for child i of another array of the same size), SEQUENTIAL
  // (child i waits for child i-1 of this array).
  std::vector<std::string> plain, n_to_n;
  bool sequential = false;
  if (const auto* deps = GetArray(pdoc, "dependsOn")) {
    for (const auto& d : *deps) {
      std::string_view type = GetString(d.as_object(), "type").value_or("");
      std::string id(GetString(d.as_object(), "jobId").value_or(""));
      if (type == "SEQUENTIAL") sequential = true;
      else if (type == "N_TO_N") n_to_n.push_back(std::move(id));
      else plain.push_back(std::move(id));
    }
  }
  // Child i's sequence number is its parent's plus (i + 1) strides: the same after
  // a restart, and kept clear of other servers' numbers (NextSeq).
  int64_t stride = GetInt(pdoc, "drover:childSeqStride").value_or(1);
  PooledString submitted(pool_->Intern("SUBMITTED"));
  std::string prefix = parent.id + ":";
  for (int i = 0; i < parent.array_size; ++i) {
    std::string cid = prefix + std::to_string(i);
    int64_t seq = parent.seq + (i + 1) * stride;
    next_seq_ = std::max(next_seq_, seq + 1);
    if (jobs_.contains(cid)) continue;  // it changed state: stored, loaded as it is
    auto child = std::make_unique<Job>();
    child->id = std::move(cid);
    child->queue = parent.queue;
    child->status = submitted;
    child->need = parent.need;
    child->seq = seq;
    child->depends_on = plain;
    if (sequential && i > 0) child->depends_on.push_back(prefix + std::to_string(i - 1));
    for (const std::string& other : n_to_n) {
      child->depends_on.push_back(other + ":" + std::to_string(i));
    }
    child->timeout_ms = parent.timeout_ms;
    child->max_attempts = parent.max_attempts;
    child->share = parent.share;
    child->priority = parent.priority;
    child->consumables = parent.consumables;
    child->parent = parent.id;
    child->index = i;
    child->implicit = true;
    AddJob(std::move(child), count_in_parent);
  }
}

void BatchService::FlushDocs(std::unordered_map<const Job*, std::string>* texts) {
  for (auto& [cjob, doc] : open_docs_) {
    Job* job = const_cast<Job*>(cjob);
    if (!job->reason.empty()) doc["statusReason"] = job->reason.str();
    else doc.erase("statusReason");
    std::string text = ToJson(doc);
    if ((job->status == "STARTING" || job->status == "RUNNING") && live_docs_.size() < kMaxLiveDocs) {
      live_docs_[job] = std::move(doc);
    } else {
      job->doc = codec_->Pack(GetString(doc, "jobDefinition").value_or(""), text);
      live_docs_.erase(job);
    }
    if (texts) (*texts)[job] = std::move(text);
  }
  open_docs_.clear();
}

std::string BatchService::StoredText(const Job& job) const {
  if (auto it = open_docs_.find(&job); it != open_docs_.end()) return ToJson(it->second);
  if (auto it = live_docs_.find(&job); it != live_docs_.end()) return ToJson(it->second);
  return codec_->Unpack(job.doc);
}

Result<BatchService::Outcome> BatchService::SubmitJob(const json::object& req) {
  std::string name(*GetString(req, "jobName"));
  if (!IsValidName(name) || !std::isalnum(static_cast<unsigned char>(name[0]))) {
    return Status::Client("Job name '" + name + "' is invalid: it must be 1-128 characters "
                          "long, start with a letter or number, and contain only letters, "
                          "numbers, hyphens (-) and underscores (_)");
  }
  std::string_view qref = *GetString(req, "jobQueue");
  Resource* queue = Find(kJobQueue, qref);
  if (!queue) return Status::Client("Job queue " + std::string(qref) + " does not exist");
  if (GetString(queue->doc, "state") != "ENABLED") {
    return Status::Client("Job queue " + queue->name + " is DISABLED: it accepts no new jobs");
  }
  std::string_view dref = *GetString(req, "jobDefinition");
  Resource* def = FindJobDefinition(dref, /*latest_active_for_name=*/true);
  if (!def) return Status::Client("Job definition " + std::string(dref) + " does not exist");
  if (GetString(def->doc, "status") != "ACTIVE") {
    return Status::Client("Job definition " + std::string(dref) + " is INACTIVE");
  }
  // What Drover cannot run yet is refused now, never left RUNNABLE forever.
  if (GetString(def->doc, "type") == "multinode" || req.contains("nodeOverrides")) {
    return Status::Client("Multi-node parallel jobs are not supported by Drover yet");
  }
  if (def->doc.contains("eksProperties") || req.contains("eksPropertiesOverride")) {
    return Status::Client("EKS jobs are not supported by Drover");
  }
  if (def->doc.contains("ecsProperties") || req.contains("ecsPropertiesOverride")) {
    return Status::Client("Jobs with ecsProperties are not supported by Drover yet: use "
                          "containerProperties");
  }
  int64_t array_size = 0;
  if (const auto* ap = GetObject(req, "arrayProperties")) {
    array_size = GetInt(*ap, "size").value_or(0);
    if (array_size < 2 || array_size > kMaxArraySize) {
      return Status::Client("arrayProperties.size must be between 2 and " +
                            std::to_string(kMaxArraySize));
    }
  }
  // Dependencies: plain ones (wait for the job, or for a whole array), N_TO_N
  // (child i waits for child i of another array of the same size), SEQUENTIAL
  // (child i waits for child i-1 of this array).
  json::array depends;  // (the children's follow from it: AddImplicitChildren)
  std::vector<std::string> plain;
  if (const auto* deps = GetArray(req, "dependsOn")) {
    if (deps->size() > kMaxDependencies) {
      return Status::Client("A job can depend on at most " + std::to_string(kMaxDependencies) +
                            " jobs");
    }
    for (const auto& d : *deps) {
      const auto& o = d.as_object();
      std::string type(GetString(o, "type").value_or(""));
      auto id = GetString(o, "jobId");
      if (type == "SEQUENTIAL") {
        if (!array_size) return Status::Client("A SEQUENTIAL dependency needs an array job");
        if (id) return Status::Client("A SEQUENTIAL dependency takes no jobId");
        depends.push_back(json::object{{"type", "SEQUENTIAL"}});
        continue;
      }
      Job* dj = id ? FindJob(*id) : nullptr;
      if (!dj) {
        return Status::Client("Dependent job " + std::string(id.value_or("(no jobId)")) +
                              " does not exist");
      }
      if (type == "N_TO_N") {
        if (!array_size) return Status::Client("An N_TO_N dependency needs an array job");
        if (dj->array_size != array_size) {
          return Status::Client("An N_TO_N dependency needs an array job of the same size (" +
                                dj->id + " has " + std::to_string(dj->array_size) +
                                " children, this one " + std::to_string(array_size) + ")");
        }
        depends.push_back(json::object{{"jobId", dj->id}, {"type", "N_TO_N"}});
      } else {
        plain.push_back(dj->id);
        depends.push_back(json::object{{"jobId", dj->id}});
      }
    }
  }
  if (const auto* rs = GetObject(req, "retryStrategy")) {
    if (auto a = GetInt(*rs, "attempts"); a && (*a < 1 || *a > 10)) {
      return Status::Client("retryStrategy.attempts must be between 1 and 10");
    }
  }
  if (const auto* t = GetObject(req, "timeout")) {
    if (auto s = GetInt(*t, "attemptDurationSeconds"); s && *s < cfg_.min_attempt_seconds) {
      return Status::Client("timeout.attemptDurationSeconds must be at least " +
                            std::to_string(cfg_.min_attempt_seconds) + " seconds");
    }
  }
  if (const auto* tags = GetObject(req, "tags")) DROVER_RETURN_IF_ERROR(CheckTags(*tags));
  // Fair share: a queue with a scheduling policy needs a share identifier; one
  // without must not get one (AWS's rules).
  bool fair_share = queue->doc.contains("schedulingPolicyArn");
  if (fair_share && !req.contains("shareIdentifier")) {
    return Status::Client("Job queue " + queue->name + " has a fair-share scheduling policy: "
                          "shareIdentifier must be specified");
  }
  if (!fair_share && req.contains("shareIdentifier")) {
    return Status::Client("Job queue " + queue->name + " has no fair-share scheduling policy: "
                          "don't specify shareIdentifier");
  }
  if (auto share = GetString(req, "shareIdentifier")) {
    std::string_view body = *share;
    if (body.ends_with('*')) body.remove_suffix(1);
    bool ok = !body.empty() && body.size() <= 255;
    for (char c : body) ok = ok && std::isalnum(static_cast<unsigned char>(c));
    if (!ok) {
      return Status::Client("shareIdentifier '" + std::string(*share) + "' must be up to 255 "
                            "letters and numbers, optionally followed by an asterisk (*)");
    }
  }
  if (auto p = GetInt(req, "schedulingPriorityOverride"); p && (*p < 0 || *p > 9999)) {
    return Status::Client("schedulingPriorityOverride must be between 0 and 9999");
  }
  // Consumable resources: the override replaces the definition's list.
  const json::object* crp = GetObject(req, "consumableResourcePropertiesOverride");
  if (!crp) crp = GetObject(def->doc, "consumableResourceProperties");
  json::object consumables_doc;
  if (crp) {
    json::array list;
    std::set<std::string> seen;
    if (const auto* l = GetArray(*crp, "consumableResourceList")) {
      for (const auto& e : *l) {
        const auto& o = e.as_object();
        std::string_view ref = GetString(o, "consumableResource").value_or("");
        Resource* cr = Find(kConsumableResource, ref);
        if (!cr) {
          return Status::Client("Consumable resource " + std::string(ref) + " does not exist");
        }
        int64_t qty = GetInt(o, "quantity").value_or(1);
        if (qty < 1) return Status::Client("A consumable resource quantity must be at least 1");
        if (!seen.insert(cr->name).second) {
          return Status::Client("Consumable resource " + cr->name + " is listed twice");
        }
        list.push_back(json::object{{"consumableResource", cr->arn}, {"quantity", qty}});
      }
    }
    consumables_doc["consumableResourceList"] = std::move(list);
  }
  json::object container = GetObject(def->doc, "containerProperties")
                               ? *GetObject(def->doc, "containerProperties")
                               : json::object();
  const json::object* over = GetObject(req, "containerOverrides");
  if (over) {
    if (auto it = over->find("command"); it != over->end()) container["command"] = it->value();
    for (const char* k : {"vcpus", "memory", "instanceType"}) {
      if (auto it = over->find(k); it != over->end()) container[k] = it->value();
    }
    container["environment"] = MergeByKey(GetArray(container, "environment"),
                                          GetArray(*over, "environment"), "name");
    container["resourceRequirements"] =
        MergeByKey(GetArray(container, "resourceRequirements"),
                   GetArray(*over, "resourceRequirements"), "type");
  }
  sched::Resources need = Needs(container);
  if (need.vcpus <= 0) return Status::Client("The job needs a positive number of vCPUs");
  for (const auto& e : GetArray(container, "environment") ? *GetArray(container, "environment")
                                                          : json::array()) {
    auto n = GetString(e.as_object(), "name");
    if (n && n->starts_with("AWS_BATCH")) {
      return Status::Client("Environment variables starting with AWS_BATCH are reserved: " +
                            std::string(*n));
    }
  }
  json::object params = GetObject(def->doc, "parameters") ? *GetObject(def->doc, "parameters")
                                                          : json::object();
  if (const auto* p = GetObject(req, "parameters")) {
    for (const auto& kv : *p) params[kv.key()] = kv.value();
  }
  if (const auto* cmd = GetArray(container, "command")) {
    container["command"] = Substitute(*cmd, params);
  }
  for (const char* k : {"environment", "mountPoints", "volumes", "ulimits", "secrets",
                        "resourceRequirements", "command"}) {
    if (!container.contains(k)) container[k] = json::array();
  }
  container["networkInterfaces"] = json::array();

  std::string id = ids_.Uuid();
  std::string arn = arns_.Make(kJob, id);
  json::object doc;
  doc["jobArn"] = arn;
  doc["jobName"] = name;
  doc["jobId"] = id;
  doc["jobQueue"] = queue->arn;
  doc["status"] = "SUBMITTED";
  doc["attempts"] = json::array();
  doc["createdAt"] = clock_.NowMillis();
  if (crp) doc["consumableResourceProperties"] = std::move(consumables_doc);
  for (const char* k : {"retryStrategy", "timeout", "propagateTags", "platformCapabilities",
                        "schedulingPriority"}) {
    if (req.contains(k)) doc[k] = req.at(k);
    else if (def->doc.contains(k)) doc[k] = def->doc.at(k);
  }
  if (auto o = GetInt(req, "schedulingPriorityOverride")) doc["schedulingPriority"] = *o;
  if (req.contains("shareIdentifier")) doc["shareIdentifier"] = req.at("shareIdentifier");
  doc["dependsOn"] = std::move(depends);
  doc["jobDefinition"] = def->arn;
  doc["parameters"] = std::move(params);
  doc["container"] = std::move(container);
  doc["tags"] = req.contains("tags") ? req.at("tags") : json::object();
  doc["isCancelled"] = false;
  doc["isTerminated"] = false;
  Outcome out;
  out.response = {{"jobArn", arn}, {"jobName", name}, {"jobId", id}};
  out.wake = true;
  out.wake_queue = queue->arn;
  if (!array_size) {
    NewJob(std::move(doc), false).depends_on = plain;
    out.puts.push_back(arn);
    return out;
  }
  // An array: the parent is a handle whose status follows its children; the
  // children are jobs "<parent>:<index>", implicit (job.h) until they start or
  // are cancelled: the reply waits for one record, not for one per child.
  json::object summary;
  for (const char* st : kJobStates) summary[st] = 0;
  summary["SUBMITTED"] = array_size;
  doc["arrayProperties"] = json::object{{"size", array_size},
                                        {"statusSummary", summary},
                                        {"statusSummaryLastUpdatedAt", clock_.NowMillis()}};
  doc["drover:childSeqStride"] = cfg_.shared_store ? int64_t{1} << 16 : 1;
  Job& parent = NewJob(std::move(doc), false);
  parent.depends_on = plain;
  out.puts.push_back(arn);
  AddImplicitChildren(parent, Doc(parent), /*count_in_parent=*/false);
  parent.summary()["SUBMITTED"] = static_cast<int>(array_size);
  return out;
}

Result<BatchService::Outcome> BatchService::DescribeJobs(const json::object& req) {
  const json::array& ids = *GetArray(req, "jobs");
  if (ids.size() > 100) return Status::Client("jobs can list at most 100 job IDs");
  // The reply is a hundred documents parsed to be serialized once: they live in one
  // arena that goes with the reply, instead of thousands of heap allocations.
  json::storage_ptr arena = json::make_shared_resource<json::monotonic_resource>();
  json::array list(arena);
  for (const auto& v : ids) {
    if (Job* j = FindJob(v.as_string())) {
      json::object doc = ReadDoc(*j, arena);
      for (auto it = doc.begin(); it != doc.end();) {  // internal bookkeeping stays inside
        if (it->key().starts_with("drover:")) it = doc.erase(it);
        else ++it;
      }
      list.push_back(std::move(doc));
    }
  }
  Outcome out;
  out.response = json::object(arena);
  out.response["jobs"] = std::move(list);
  return out;
}

Result<BatchService::Outcome> BatchService::ListJobs(const json::object& req) {
  int selectors = req.contains("jobQueue") + req.contains("arrayJobId") +
                  req.contains("multiNodeJobId");
  if (selectors != 1) {
    return Status::Client("You must specify exactly one of jobQueue, arrayJobId and "
                          "multiNodeJobId");
  }
  std::string queue_arn;
  if (auto q = GetString(req, "jobQueue")) {
    Resource* queue = Find(kJobQueue, *q);
    if (!queue) return Status::Client("Job queue " + std::string(*q) + " does not exist");
    queue_arn = queue->arn;
  }
  const json::array* filters = GetArray(req, "filters");
  std::string status(GetString(req, "jobStatus").value_or("RUNNING"));
  bool any_status = filters && !filters->empty();  // with filters, jobStatus is ignored
  std::vector<std::function<bool(const json::object&)>> preds;
  if (filters) {
    for (const auto& f : *filters) {
      std::string fname(GetString(f.as_object(), "name").value_or(""));
      const json::array* vals = GetArray(f.as_object(), "values");
      if (!vals || vals->size() != 1) {
        return Status::Client("Filter " + fname + " needs exactly one value");
      }
      std::string value((*vals)[0].as_string());
      if (fname == "JOB_NAME") {
        preds.push_back([value](const json::object& d) {
          return Glob(value, GetString(d, "jobName").value_or(""));
        });
      } else if (fname == "JOB_DEFINITION") {
        std::string arn_prefix = value.starts_with("arn:") ? value
                                 : arns_.Make(kJobDefinition, value);
        bool has_rev = value.find(':', value.starts_with("arn:") ? value.rfind('/') : 0) !=
                       std::string::npos;
        preds.push_back([arn_prefix, has_rev](const json::object& d) {
          std::string_view def = GetString(d, "jobDefinition").value_or("");
          if (arn_prefix.ends_with('*')) return Glob(arn_prefix, def);
          return has_rev ? def == arn_prefix
                         : def.starts_with(arn_prefix + ":");
        });
      } else if (fname == "BEFORE_CREATED_AT" || fname == "AFTER_CREATED_AT") {
        int64_t t = 0;
        try {
          t = std::stoll(value);
        } catch (...) {
          return Status::Client("Filter " + fname + " needs a time in epoch milliseconds");
        }
        bool before = fname == "BEFORE_CREATED_AT";
        preds.push_back([t, before](const json::object& d) {
          int64_t c = GetInt(d, "createdAt").value_or(0);
          return before ? c < t : c > t;
        });
      } else if (fname == "SHARE_IDENTIFIER") {
        preds.push_back([value](const json::object& d) {
          return Glob(value, GetString(d, "shareIdentifier").value_or(""));
        });
      } else {
        return Status::Client("Unsupported filter name " + fname + ": use JOB_NAME, "
                              "JOB_DEFINITION, BEFORE_CREATED_AT, AFTER_CREATED_AT or "
                              "SHARE_IDENTIFIER");
      }
    }
  }
  std::string parent_prefix;  // arrayJobId: its children "<id>:"
  if (auto a = GetString(req, "arrayJobId")) {
    Job* p = FindJob(*a);
    if (!p || p->array_size == 0) {
      return Status::Client("Job " + std::string(*a) + " is not an array job");
    }
    parent_prefix = p->id + ":";
  }
  bool by_node_parent = req.contains("multiNodeJobId");  // multi-node jobs: none exist yet
  auto keep = [&](Job& j) {
    if (by_node_parent) return false;
    if (!parent_prefix.empty()) {
      if (j.parent.empty() || !j.id.starts_with(parent_prefix)) return false;
    } else if (!j.parent.empty() || j.queue != queue_arn) {
      return false;  // a queue lists its top-level jobs; children are listed by arrayJobId
    }
    if (!any_status && j.status != status) return false;
    if (preds.empty()) return true;
    json::object doc = ReadDoc(j);  // only filters need the document
    for (const auto& p : preds) {
      if (!p(doc)) return false;
    }
    return true;
  };
  DROVER_ASSIGN_OR_RETURN(JobPage page, PaginateJobs(req, keep, /*max_limit=*/1000));
  json::array list;
  json::monotonic_resource arena;  // each document is parsed for a few fields, then dropped
  for (Job* j : page.items) {
    list.push_back(Summary(ReadDoc(*j, json::storage_ptr(&arena))));
  }
  Outcome out;
  out.response["jobSummaryList"] = std::move(list);
  if (!page.next_token.empty()) out.response["nextToken"] = page.next_token;
  return out;
}

void BatchService::CancelOne(Job& j, const std::string& reason, Outcome& out) {
  // AWS cancels only jobs that have not started; for others the call succeeds
  // and the job goes on. An array parent passes the cancel to its children.
  if (j.array_size > 0) {
    for (int i = 0; i < j.array_size; ++i) {
      if (Job* c = FindJob(j.id + ":" + std::to_string(i))) CancelOne(*c, reason, out);
    }
    return;
  }
  if (j.status == "SUBMITTED" || j.status == "PENDING" || j.status == "RUNNABLE") {
    Doc(j)["isCancelled"] = true;
    SetJobStatus(j, "FAILED", reason);
    out.puts.push_back(JobArn(j));
    out.wake = true;  // its dependents fail on the next pass
  }
}

void BatchService::TerminateOne(Job& j, const std::string& reason, Outcome& out) {
  if (j.array_size > 0) {
    Doc(j)["isTerminated"] = true;
    dirty_.insert(JobArn(j));
    for (int i = 0; i < j.array_size; ++i) {
      if (Job* c = FindJob(j.id + ":" + std::to_string(i))) TerminateOne(*c, reason, out);
    }
    return;
  }
  if (IsTerminal(j.status)) return;
  json::object& doc = Doc(j);
  doc["isTerminated"] = true;
  if (j.status == "STARTING" || j.status == "RUNNING") {
    // The attempt is stopped by the executor; its exit event fails the job.
    j.terminate_reason = reason;
    doc["drover:terminateReason"] = reason;
    if (executor_ && !j.task_id.empty() && !j.start_pending) {
      executor_->Terminate(j.task_id, reason);
    }
  } else {
    SetJobStatus(j, "FAILED", reason);
    out.wake = true;
  }
  out.puts.push_back(JobArn(j));
}

Result<BatchService::Outcome> BatchService::StopJob(const json::object& req, bool terminate) {
  std::string_view ref = *GetString(req, "jobId");
  Job* j = FindJob(ref);
  if (!j) return Status::Client("Job " + std::string(ref) + " does not exist");
  if (!leading_) return ForwardStop(*j, req, terminate);  // the leader changes job states
  Outcome out;
  std::string reason(*GetString(req, "reason"));
  if (terminate) TerminateOne(*j, reason, out);
  else CancelOne(*j, reason, out);
  return out;
}

Result<BatchService::Outcome> BatchService::CancelJob(const json::object& req) {
  return StopJob(req, /*terminate=*/false);
}

Result<BatchService::Outcome> BatchService::TerminateJob(const json::object& req) {
  return StopJob(req, /*terminate=*/true);
}

Result<BatchService::Outcome> BatchService::GetJobQueueSnapshot(const json::object& req) {
  std::string_view ref = *GetString(req, "jobQueue");
  Resource* queue = Find(kJobQueue, ref);
  if (!queue) return Status::Client("Job queue " + std::string(ref) + " does not exist");
  std::vector<Job*> runnable;
  for (const auto& [key, set] : runnable_) {  // keys: queue ARN + '\n' + share
    if (key.starts_with(queue->arn + '\n')) runnable.insert(runnable.end(), set.begin(), set.end());
  }
  auto by_seq = [](Job* a, Job* b) { return a->seq < b->seq; };
  size_t front = std::min<size_t>(runnable.size(), 100);
  std::partial_sort(runnable.begin(), runnable.begin() + front, runnable.end(), by_seq);
  json::array jobs;
  for (size_t i = 0; i < front; ++i) {
    json::object doc = ReadDoc(*runnable[i]);
    jobs.push_back(json::object{
        {"jobArn", JobArn(*runnable[i])},
        {"earliestTimeAtPosition", runnable[i]->runnable_at
                                       ? runnable[i]->runnable_at
                                       : GetInt(doc, "createdAt").value_or(0)}});
  }
  Outcome out;
  out.response["frontOfQueue"] =
      json::object{{"jobs", std::move(jobs)}, {"lastUpdatedAt", clock_.NowMillis()}};
  // What the queue's running jobs hold, in total and (fair share) per share.
  double total = 0;
  std::map<std::string, double> per_share;
  for (Job* j : running_) {
    if (j->queue != queue->arn || j->ce.empty()) continue;
    total += j->need.vcpus;
    if (!j->share.empty()) per_share[j->share] += j->need.vcpus;
  }
  json::object util{{"totalCapacityUsage",
                     json::array{json::object{{"capacityUnit", "VCPU"}, {"quantity", total}}}},
                    {"lastUpdatedAt", clock_.NowMillis()}};
  if (queue->doc.contains("schedulingPolicyArn")) {
    std::vector<std::pair<std::string, double>> top(per_share.begin(), per_share.end());
    std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    json::array list;
    for (const auto& [share, v] : top) {
      list.push_back(json::object{
          {"shareIdentifier", share},
          {"capacityUsage", json::array{json::object{{"capacityUnit", "VCPU"}, {"quantity", v}}}}});
    }
    util["fairshareUtilization"] = json::object{
        {"activeShareCount", static_cast<int64_t>(per_share.size())},
        {"topCapacityUtilization", std::move(list)}};
  }
  out.response["queueUtilization"] = std::move(util);
  return out;
}

Result<BatchService::Outcome> BatchService::ListJobsByConsumableResource(const json::object& req) {
  std::string_view ref = *GetString(req, "consumableResource");
  Resource* cr = Find(kConsumableResource, ref);
  if (!cr) return Status::Client("Consumable resource " + std::string(ref) + " does not exist");
  std::string status_filter, name_filter;
  if (const auto* filters = GetArray(req, "filters")) {
    for (const auto& f : *filters) {
      std::string fname(GetString(f.as_object(), "name").value_or(""));
      const json::array* vals = GetArray(f.as_object(), "values");
      if (!vals || vals->size() != 1) {
        return Status::Client("Filter " + fname + " needs exactly one value");
      }
      std::string value((*vals)[0].as_string());
      if (fname == "JOB_STATUS") status_filter = value;
      else if (fname == "JOB_NAME") {
        for (char& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        name_filter = value;
      } else {
        return Status::Client("Unsupported filter name " + fname + ": use JOB_STATUS or JOB_NAME");
      }
    }
  }
  auto quantity = [&](const Job& j) -> int64_t {
    if (j.array_size) return 0;
    for (const auto& [name, q] : j.consumables) {
      if (name == cr->name) return q;
    }
    return 0;
  };
  auto keep = [&](Job& j) {
    if (quantity(j) == 0) return false;
    if (!status_filter.empty() && j.status != status_filter) return false;
    if (!name_filter.empty()) {
      std::string n(GetString(ReadDoc(j), "jobName").value_or(""));
      for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!Glob(name_filter, n)) return false;
    }
    return true;
  };
  DROVER_ASSIGN_OR_RETURN(JobPage page, PaginateJobs(req, keep, /*max_limit=*/1000));
  json::array list;
  for (Job* j : page.items) {
    const json::object d = ReadDoc(*j);
    json::object s{{"jobArn", JobArn(*j)},
                   {"jobQueueArn", d.at("jobQueue")},
                   {"jobName", d.at("jobName")},
                   {"jobDefinitionArn", d.at("jobDefinition")},
                   {"jobStatus", d.at("status")},
                   {"quantity", quantity(*j)},
                   {"createdAt", d.at("createdAt")},
                   {"consumableResourceProperties", d.at("consumableResourceProperties")}};
    for (const char* k : {"shareIdentifier", "statusReason", "startedAt"}) {
      if (auto it = d.find(k); it != d.end()) s[k] = it->value();
    }
    list.push_back(std::move(s));
  }
  Outcome out;
  out.response["jobs"] = std::move(list);
  if (!page.next_token.empty()) out.response["nextToken"] = page.next_token;
  return out;
}

}  // namespace drover::service
