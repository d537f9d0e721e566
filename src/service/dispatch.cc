// What happens to a job after SubmitJob: the scheduler pass (dependencies,
// placement through sched::Schedule, timeouts, retention), the plan applier,
// and the executor's events. Every transition is stored before anything acts
// on it: a job is handed to the executor only once STARTING is durable.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include "common/log.h"
#include "common/thread.h"
#include "images/images.h"
#include "logs/logs.h"
#include "service/batch_service.h"
#include "service/job.h"

namespace drover::service {
namespace {

constexpr const char* kEssentialExited = "Essential container in task exited";
constexpr const char* kTimedOut = "Job attempt duration exceeded timeout";
constexpr int64_t kPruneEveryMs = 60 * 1000;
// Coalesced passes for submissions to blocked queues: at most one per interval.
constexpr auto kBlockedPassInterval = std::chrono::milliseconds(50);

bool Glob(std::string_view pattern, std::string_view s) {
  if (!pattern.empty() && pattern.back() == '*') {
    return s.starts_with(pattern.substr(0, pattern.size() - 1));
  }
  return pattern == s;
}

// AWS's evaluateOnExit: the first rule whose conditions all match decides;
// when none matches, the job is retried (if it has attempts left).
bool ShouldRetry(const json::object& doc, int exit_code, const std::string& reason,
                 const std::string& status_reason) {
  const json::object* rs = GetObject(doc, "retryStrategy");
  const json::array* rules = rs ? GetArray(*rs, "evaluateOnExit") : nullptr;
  if (!rules) return true;
  for (const auto& r : *rules) {
    const auto& o = r.as_object();
    auto code = GetString(o, "onExitCode");
    auto on_reason = GetString(o, "onReason");
    auto on_status = GetString(o, "onStatusReason");
    if (code && !Glob(*code, exit_code >= 0 ? std::to_string(exit_code) : "")) continue;
    if (on_reason && !Glob(*on_reason, reason)) continue;
    if (on_status && !Glob(*on_status, status_reason)) continue;
    std::string action(GetString(o, "action").value_or("RETRY"));
    for (char& c : action) c = static_cast<char>(std::toupper(c));
    return action == "RETRY";
  }
  return true;
}

// The weightFactor of `share` in a fair-share policy: an exact shareIdentifier,
// else the longest matching "prefix*", else 1.0 (AWS's default).
double WeightFor(const json::object* policy, const std::string& share) {
  const json::object* fp = policy ? GetObject(*policy, "fairsharePolicy") : nullptr;
  const json::array* dist = fp ? GetArray(*fp, "shareDistribution") : nullptr;
  if (!dist) return 1.0;
  double weight = 1.0;
  size_t best = 0;
  for (const auto& e : *dist) {
    const auto& o = e.as_object();
    std::string_view id = GetString(o, "shareIdentifier").value_or("");
    double w = 1.0;
    if (auto it = o.find("weightFactor"); it != o.end() && it->value().is_number()) {
      w = it->value().to_number<double>();
    }
    if (id == share) return w;
    if (id.ends_with('*') && std::string_view(share).starts_with(id.substr(0, id.size() - 1)) &&
        id.size() > best) {
      best = id.size();
      weight = w;
    }
  }
  return weight;
}

std::string NameFromArn(std::string_view arn) {
  std::string_view s = arn.substr(arn.rfind('/') + 1);
  return std::string(s.substr(0, s.find(':')));
}

}  // namespace

void BatchService::SetExecutor(exec::Executor* executor) {
  std::lock_guard<std::mutex> l(mu_);
  executor_ = executor;
}

void BatchService::RefreshParent(Job& p) {
  json::object& doc = Doc(p);
  json::object summary;
  int done = 0, started = 0;
  for (const char* st : kJobStates) {
    int n = p.summary()[st];
    summary[st] = n;
    if (IsTerminal(st)) done += n;
    if (std::string_view(st) != "SUBMITTED" && std::string_view(st) != "PENDING") started += n;
  }
  json::object& ap = doc["arrayProperties"].as_object();
  ap["statusSummary"] = std::move(summary);
  ap["statusSummaryLastUpdatedAt"] = clock_.NowMillis();
  dirty_.insert(JobArn(p));
  // AWS: the parent is PENDING once any child is RUNNABLE, and finishes when
  // every child has: SUCCEEDED only if they all did.
  if (done == p.array_size) {
    int failed = p.summary()["FAILED"];
    if (failed == 0) SetJobStatus(p, "SUCCEEDED", "");
    else SetJobStatus(p, "FAILED", std::to_string(failed) + " of " +
                                       std::to_string(p.array_size) + " child jobs failed");
  } else if (started > 0 && p.status != "PENDING") {
    SetJobStatus(p, "PENDING", "");
  }
}

bool BatchService::QueueOrder::operator()(const Job* a, const Job* b) const {
  // As sched::Schedule orders a queue: retried first, then (fair share) priority, then FIFO.
  if (a->retried != b->retried) return a->retried;
  int64_t pa = a->share.empty() ? 0 : a->priority, pb = b->share.empty() ? 0 : b->priority;
  if (pa != pb) return pa > pb;
  if (a->seq != b->seq) return a->seq < b->seq;
  return a < b;
}

std::string BatchService::QueueKey(const Job& j) { return j.queue.str() + '\n' + j.share.str(); }

void BatchService::SetJobStatus(Job& job, std::string_view status, std::string reason,
                                bool refresh_parent) {
  // A move between the waiting states (SUBMITTED, PENDING, RUNNABLE) is not
  // stored: it follows from the dependencies and is worked out again after a
  // restart (and by followers). Only the index changes, unless the document is
  // open for another change anyway; an implicit array child stays implicit.
  bool index_only = IsWaiting(status) && IsWaiting(job.status.str()) &&
                    !open_docs_.contains(&job);  // (an implicit child's never is)
  json::object* doc = index_only ? nullptr : &Doc(job);
  if (job.status == "RUNNABLE" && status != "RUNNABLE") {
    auto it = runnable_.find(QueueKey(job));
    if (it != runnable_.end()) it->second.erase(&job);
  } else if (job.status != "RUNNABLE" && status == "RUNNABLE") {
    runnable_[QueueKey(job)].insert(&job);
  }
  if (status == "STARTING" || status == "RUNNING") running_.insert(&job);
  else running_.erase(&job);
  if (!job.parent.empty() && job.status != status) {
    if (Job* p = FindJob(job.parent)) {
      --p->summary()[job.status];
      ++p->summary()[std::string(status)];
      job.status = PooledString(pool_->Intern(status));
      if (refresh_parent) RefreshParent(*p);
    }
  }
  job.status = PooledString(pool_->Intern(status));
  if (doc) {
    (*doc)["status"] = status;
    if (!reason.empty()) (*doc)["statusReason"] = reason;
    else doc->erase("statusReason");
  }
  if (JobReason::Shared(status, reason)) job.reason.Pooled(pool_->Intern(reason));
  else job.reason.Own(std::move(reason));
  if ((status == "SUBMITTED" || status == "PENDING") && job.array_size == 0) {
    waiting_.insert(&job);
  } else {
    waiting_.erase(&job);
  }
  if (status == "RUNNABLE") {
    job.runnable_at = clock_.NowMillis();
    if (doc) (*doc)["drover:runnableAt"] = job.runnable_at;
  }
  if (IsTerminal(status)) {  // (never implicit: `doc` is open)
    if (!doc->contains("stoppedAt")) (*doc)["stoppedAt"] = clock_.NowMillis();
    finished_.erase({job.stopped_at, &job});
    job.stopped_at = GetInt(*doc, "stoppedAt").value_or(0);
    finished_.insert({job.stopped_at, &job});
    job.ce = PooledString();
    job.task_id.clear();
    doc->erase("drover:ce");
    doc->erase("drover:taskId");
    doc->erase("drover:terminateReason");
  }
}

void BatchService::HoldConsumables(Job& job, bool hold) {
  if (job.consumables.empty() || job.holds_consumables == hold) return;
  job.holds_consumables = hold;
  for (const auto& [name, qty] : job.consumables) {
    auto it = resources_.find(arns_.Make(kConsumableResource, name));
    if (it == resources_.end()) continue;  // deleted meanwhile
    json::object& doc = it->second.doc;
    int64_t total = GetInt(doc, "totalQuantity").value_or(0);
    int64_t in_use = GetInt(doc, "inUseQuantity").value_or(0) + (hold ? qty : -qty);
    // A NON_REPLENISHABLE resource is used up by the job that held it.
    if (!hold && GetString(doc, "resourceType") == "NON_REPLENISHABLE") total -= qty;
    in_use = std::max<int64_t>(0, in_use);
    total = std::max<int64_t>(0, total);
    doc["inUseQuantity"] = in_use;
    doc["totalQuantity"] = total;
    doc["availableQuantity"] = std::max<int64_t>(0, total - in_use);
    dirty_.insert(it->second.arn);
  }
}

// Fair share looks at usage over a window (shareDecaySeconds; 0 means 600 s):
// each share's past usage decays exponentially with that time constant, and
// grows by the vCPU-minutes its running jobs use.
void BatchService::DecayShareHistory(int64_t now) {
  int64_t dt = share_history_at_ ? now - share_history_at_ : 0;
  share_history_at_ = now;
  if (dt <= 0) return;
  std::map<std::string, std::map<std::string, double>> running;
  for (const Job* j : running_) {
    if (!j->ce.empty() && !j->share.empty()) running[j->queue][j->share] += j->need.vcpus;
  }
  for (const auto& [seq, qarn] : order_[std::string(kJobQueue)]) {
    auto sp = GetString(resources_.at(qarn).doc, "schedulingPolicyArn");
    if (!sp) continue;
    double window = 600;
    auto policy = resources_.find(std::string(*sp));
    if (policy != resources_.end()) {
      if (const auto* fp = GetObject(policy->second.doc, "fairsharePolicy")) {
        if (auto d = GetInt(*fp, "shareDecaySeconds"); d && *d > 0) window = static_cast<double>(*d);
      }
    }
    double decay = std::exp(-static_cast<double>(dt) / 1000.0 / window);
    auto& hist = share_history_[qarn];
    for (auto& [share, v] : hist) v *= decay;
    for (const auto& [share, vcpus] : running[qarn]) hist[share] += vcpus * dt / 60000.0;
  }
}

sched::Snapshot BatchService::BuildSnapshot(size_t window) {
  sched::Snapshot snap;
  snapshot_jobs_.clear();
  snap.host.capacity = cfg_.host_capacity;
  for (const auto& [seq, arn] : order_[std::string(kComputeEnvironment)]) {
    const Resource& r = resources_.at(arn);
    sched::CeView ce;
    ce.arn = arn;
    ce.name = r.name;
    ce.enabled = GetString(r.doc, "state") == "ENABLED" && GetString(r.doc, "status") == "VALID";
    ce.managed = GetString(r.doc, "type") == "MANAGED";
    if (const auto* cr = GetObject(r.doc, "computeResources")) {
      ce.max_vcpus = static_cast<double>(GetInt(*cr, "maxvCpus").value_or(0));
    }
    snap.ces[arn] = ce;
  }
  for (const auto& [seq, arn] : order_[std::string(kJobQueue)]) {
    const Resource& r = resources_.at(arn);
    sched::QueueView q;
    q.arn = arn;
    q.name = r.name;
    q.enabled = GetString(r.doc, "state") == "ENABLED";
    q.priority = GetInt(r.doc, "priority").value_or(0);
    q.seq = seq;
    if (const auto* order = GetArray(r.doc, "computeEnvironmentOrder")) {
      for (const auto& o : *order) {
        q.ces.emplace_back(*GetString(o.as_object(), "computeEnvironment"));
      }
    }
    if (auto sp = GetString(r.doc, "schedulingPolicyArn")) {
      q.fair_share = true;
      auto policy = resources_.find(std::string(*sp));
      if (policy != resources_.end()) {
        if (const auto* fp = GetObject(policy->second.doc, "fairsharePolicy")) {
          q.compute_reservation =
              static_cast<double>(GetInt(*fp, "computeReservation").value_or(0)) / 100.0;
        }
      }
      snap.share_usage[arn] = share_history_[arn];  // past usage; running jobs are added below
    }
    snap.queues.push_back(std::move(q));
  }
  for (const auto& [seq, arn] : order_[std::string(kConsumableResource)]) {
    const Resource& r = resources_.at(arn);
    int64_t total = GetInt(r.doc, "totalQuantity").value_or(0);
    snap.consumables[r.name] = sched::Consumable{
        total, total - GetInt(r.doc, "inUseQuantity").value_or(0)};
  }
  std::map<std::string, const json::object*> policies;  // queue ARN -> its policy's document
  for (const auto& q : snap.queues) {
    if (!q.fair_share) continue;
    auto sp = GetString(resources_.at(q.arn).doc, "schedulingPolicyArn");
    auto policy = resources_.find(std::string(*sp));
    policies[q.arn] = policy == resources_.end() ? nullptr : &policy->second.doc;
  }
  // The head of each queue (each share of a fair-share queue): a pass decides for
  // at most `window` jobs per head, so its cost follows what it can place, not the
  // depth of the queue. Jobs further back wait for their turn (and say so).
  for (const auto& [key, jobs] : runnable_) {
    size_t n = 0;
    for (Job* j : jobs) {
      if (n++ == window) break;
      sched::JobView v{.id = j->id, .queue = j->queue, .need = j->need, .seq = j->seq,
                       .front = j->retried};
      v.handle = snapshot_jobs_.size();
      snapshot_jobs_.push_back(j);
      if (auto p = policies.find(j->queue); p != policies.end()) {
        v.share = j->share;
        v.weight = WeightFor(p->second, j->share);
        v.priority = j->priority;
      }
      v.consumables = j->consumables;
      snap.runnable.push_back(std::move(v));
    }
  }
  for (Job* j : running_) {
    if (!j->ce.empty()) {  // STARTING / RUNNING hold capacity
      if (policies.contains(j->queue)) snap.share_usage[j->queue][j->share] += j->need.vcpus;
      auto it = snap.ces.find(j->ce);
      if (it != snap.ces.end()) {
        it->second.used.vcpus += j->need.vcpus;
        it->second.used.memory_mib += j->need.memory_mib;
        it->second.used.gpus += j->need.gpus;
      }
      snap.host.used.vcpus += j->need.vcpus;
      snap.host.used.memory_mib += j->need.memory_mib;
      snap.host.used.gpus += j->need.gpus;
    }
  }
  return snap;
}

exec::TaskSpec BatchService::MakeTaskSpec(Job& job, const std::string& ce_arn) {
  json::object& doc = Doc(job);
  // Every key this function adds to `doc` is added here, before `container` is
  // taken: inserting into a Boost.JSON object may move its values, and a
  // reference into it would dangle.
  for (const char* k : {"drover:logStream", "drover:ce", "drover:taskId", "drover:logGroup",
                        "drover:gpus"}) {
    if (!doc.contains(k)) doc[k] = nullptr;
  }
  json::object& container = doc.at("container").as_object();
  const Resource& ce = resources_.at(ce_arn);
  const Resource& queue = resources_.at(job.queue);
  exec::TaskSpec spec;
  std::string uuid = ids_.Uuid();
  spec.task_id.reserve(32);
  for (char c : uuid) {
    if (c != '-') spec.task_id.push_back(c);
  }
  spec.job_id = job.id;
  spec.attempt = static_cast<int>(job.attempts) + 1;

  // Logs go where the definition's awslogs configuration says, as on AWS.
  std::string group = "/aws/batch/job";
  std::string stream = NameFromArn(GetString(doc, "jobDefinition").value_or("job")) +
                       "/default/" + spec.task_id;
  if (const auto* lc = GetObject(container, "logConfiguration");
      lc && GetString(*lc, "logDriver") == "awslogs") {
    if (const auto* opts = GetObject(*lc, "options")) {
      if (auto g = GetString(*opts, "awslogs-group")) group = *g;
      if (auto p = GetString(*opts, "awslogs-stream-prefix")) {
        stream = std::string(*p) + "/default/" + spec.task_id;
      }
    }
  }
  // The stream is named in DescribeJobs once the attempt runs (it exists then).
  doc.at("drover:logStream") = stream;
  container.erase("logStreamName");
  container["taskArn"] = "arn:aws:ecs:" + arns_.region() + ":" + arns_.account() + ":task/" +
                         ce.name + "_Batch/" + spec.task_id;
  container["containerInstanceArn"] = "arn:aws:ecs:" + arns_.region() + ":" + arns_.account() +
                                      ":container-instance/" + ce.name + "_Batch/" +
                                      cfg_.host_name;
  doc.at("drover:ce") = ce_arn;
  doc.at("drover:taskId") = spec.task_id;
  doc.at("drover:logGroup") = group;
  spec.log_root = cfg_.log_root;
  spec.log_group = group;
  spec.log_stream = stream;
  spec.log_cap_bytes = cfg_.log_cap_bytes;

  std::string scratch = cfg_.scratch_root + "/" + job.id + "-" + std::to_string(spec.attempt);
  spec.uid = cfg_.job_uid;
  spec.gid = cfg_.job_gid;
  if (cfg_.job_uid && cfg_.job_uid_count > 0) {
    spec.uid = cfg_.job_uid_base + static_cast<uid_t>(next_uid_++ % cfg_.job_uid_count);
  }
  spec.workdir = scratch;
  spec.scratch_workdir = true;  // the executor makes it, as the attempt's user
  spec.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "HOME=" + scratch, "TMPDIR=" + scratch};
  if (const auto* env = GetArray(container, "environment")) {
    for (const auto& e : *env) {
      const auto& o = e.as_object();
      spec.env.push_back(std::string(GetString(o, "name").value_or("")) + "=" +
                         std::string(GetString(o, "value").value_or("")));
    }
  }
  spec.env.push_back("AWS_BATCH_JOB_ID=" + job.id);
  spec.env.push_back("AWS_BATCH_JOB_ATTEMPT=" + std::to_string(spec.attempt));
  spec.env.push_back("AWS_BATCH_JQ_NAME=" + queue.name);
  spec.env.push_back("AWS_BATCH_CE_NAME=" + ce.name);
  if (job.index >= 0) spec.env.push_back("AWS_BATCH_JOB_ARRAY_INDEX=" + std::to_string(job.index));
  // GPUs: the attempt gets exactly its devices.
  job.gpus.clear();
  for (auto it = free_gpus_.begin();
       it != free_gpus_.end() && static_cast<int64_t>(job.gpus.size()) < job.need.gpus;) {
    job.gpus.push_back(*it);
    it = free_gpus_.erase(it);
  }
  if (job.gpus.empty()) {
    doc.at("drover:gpus") = nullptr;
  } else {
    std::string list;
    json::array ids;
    for (const auto& g : job.gpus) {
      list += (list.empty() ? "" : ",") + g;
      ids.emplace_back(g);
    }
    spec.env.push_back("CUDA_VISIBLE_DEVICES=" + list);
    spec.env.push_back("NVIDIA_VISIBLE_DEVICES=" + list);
    doc.at("drover:gpus") = std::move(ids);
  }
  if (const auto* cmd = GetArray(container, "command")) {
    for (const auto& a : *cmd) spec.argv.emplace_back(a.as_string());
  }
  // Limits: memory as a hard limit, vCPU as CPU weight (ECS on EC2), and also as a
  // hard quota on Fargate compute environments or ones tagged drover.cpu=hard.
  spec.memory_mib = job.need.memory_mib;
  spec.vcpus = job.need.vcpus;
  if (const auto* cr = GetObject(ce.doc, "computeResources")) {
    std::string_view t = GetString(*cr, "type").value_or("");
    spec.hard_cpu = t == "FARGATE" || t == "FARGATE_SPOT";
  }
  if (const auto* tags = GetObject(ce.doc, "tags"); tags && GetString(*tags, "drover.cpu") == "hard") {
    spec.hard_cpu = true;
  }

  // The log stream holds the job's own output, as on AWS (where an attempt ran
  // is in its containerInstanceArn); a header line is written only to name
  // what could not be applied. A job that prints nothing so has no file.
  // Images: a job whose image is in the local store runs in a sandbox over it; a
  // compute environment tagged drover.images=isolate requires that.
  const json::object* ce_tags = GetObject(ce.doc, "tags");
  bool isolate = ce_tags && GetString(*ce_tags, "drover.images") == "isolate";
  std::vector<std::string> applied_here;
  if (auto image = GetString(container, "image"); image && !image->empty()) {
    auto rootfs = cfg_.image_root.empty()
                      ? std::nullopt
                      : images::ImageStore(cfg_.image_root).Resolve(*image);
    if (rootfs) {
      exec::TaskSpec::Sandbox box;
      box.rootfs = *rootfs;
      box.read_only_root = GetBool(container, "readonlyRootFilesystem").value_or(false);
      box.network = ce_tags && GetString(*ce_tags, "drover.network") == "host";
      std::map<std::string, std::string> volumes;  // name -> host path
      if (const auto* vs = GetArray(container, "volumes")) {
        for (const auto& v : *vs) {
          const auto* host = GetObject(v.as_object(), "host");
          auto src = host ? GetString(*host, "sourcePath") : std::nullopt;
          if (src) volumes[std::string(GetString(v.as_object(), "name").value_or(""))] = *src;
        }
      }
      if (const auto* mps = GetArray(container, "mountPoints")) {
        for (const auto& m : *mps) {
          const auto& mo = m.as_object();
          auto it = volumes.find(std::string(GetString(mo, "sourceVolume").value_or("")));
          if (it == volumes.end()) continue;  // named volumes without a host path: not here
          box.mounts.push_back({it->second, std::string(GetString(mo, "containerPath").value_or("")),
                                GetBool(mo, "readOnly").value_or(false)});
        }
      }
      // `user` inside the sandbox: a number, "uid:gid", or a name from the image's /etc/passwd.
      if (auto user = GetString(container, "user"); user && !user->empty()) {
        std::string u(*user), g;
        if (size_t c = u.find(':'); c != std::string::npos) {
          g = u.substr(c + 1);
          u = u.substr(0, c);
        }
        auto number = [](const std::string& x) -> std::optional<int64_t> {
          if (x.empty() || x.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
          return std::stoll(x);
        };
        if (auto n = number(u)) {
          box.uid = static_cast<uid_t>(*n);
        } else {
          std::ifstream passwd(*rootfs + "/etc/passwd");
          std::string line;
          while (std::getline(passwd, line)) {
            std::vector<std::string> f;
            std::stringstream ls(line);
            for (std::string x; std::getline(ls, x, ':');) f.push_back(x);
            if (f.size() >= 4 && f[0] == u) {
              box.uid = static_cast<uid_t>(std::stoul(f[2]));
              if (g.empty()) box.gid = static_cast<gid_t>(std::stoul(f[3]));
            }
          }
          if (u == "root") box.uid = 0;
        }
        if (auto n = number(g)) box.gid = static_cast<gid_t>(*n);
        if (!box.uid) {
          spec.cannot_start = "CannotStartContainerError: user '" + std::string(*user) +
                              "' is not in the image's /etc/passwd";
        }
      }
      // linuxParameters where they map: devices, tmpfs mounts, /dev/shm's size
      // (initProcessEnabled: bubblewrap is the sandbox's init already).
      if (const auto* lp = GetObject(container, "linuxParameters")) {
        if (const auto* devs = GetArray(*lp, "devices")) {
          for (const auto& d : *devs) {
            std::string host(GetString(d.as_object(), "hostPath").value_or(""));
            std::string target(GetString(d.as_object(), "containerPath").value_or(host));
            box.mounts.push_back({host, target, false, true});
          }
        }
        if (const auto* tmpfs = GetArray(*lp, "tmpfs")) {
          for (const auto& t : *tmpfs) {
            box.mounts.push_back({"", std::string(GetString(t.as_object(), "containerPath").value_or("")),
                                  false, false, GetInt(t.as_object(), "size").value_or(64)});
          }
        }
        if (auto shm = GetInt(*lp, "sharedMemorySize"); shm && *shm > 0) {
          box.mounts.push_back({"", "/dev/shm", false, false, *shm});
        }
      }
      // GPUs: the sandbox gets its own devices' nodes and no others.
      std::error_code ec;
      for (const auto& g : job.gpus) {
        for (std::string dev : {"/dev/nvidia" + g}) {
          if (std::filesystem::exists(dev, ec)) box.mounts.push_back({dev, dev, false, true});
        }
      }
      if (!job.gpus.empty()) {
        for (const char* dev : {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}) {
          if (std::filesystem::exists(dev, ec)) box.mounts.push_back({dev, dev, false, true});
        }
      }
      spec.sandbox = std::move(box);
      for (auto& e : spec.env) {
        if (e.rfind("HOME=", 0) == 0) e = "HOME=/tmp";
        if (e.rfind("TMPDIR=", 0) == 0) e = "TMPDIR=/tmp";
      }
      applied_here = {"readonlyRootFilesystem", "mountPoints", "volumes", "user",
                      "linuxParameters"};
      spec.log_header.push_back("[drover] sandbox: image '" + std::string(*image) +
                                "' from the local store, " +
                                (spec.sandbox->network ? "host network" : "loopback network only") +
                                ", /tmp is the attempt's scratch directory");
    } else if (isolate) {
      spec.cannot_start = "CannotPullContainerError: image '" + std::string(*image) +
                          "' is not in this host's image store (drover image import " +
                          std::string(*image) + " FILE), and compute environment " + ce.name +
                          " requires isolation";
    } else {
      spec.log_header.push_back("[drover] host mode: image '" + std::string(*image) +
                                "' is not in the local image store and is not used: the "
                                "command runs on the host");
    }
  }
  if (const auto* ul = GetArray(container, "ulimits")) {
    for (const auto& u : *ul) {
      const auto& uo = u.as_object();
      spec.ulimits.push_back({std::string(GetString(uo, "name").value_or("")),
                              GetInt(uo, "softLimit").value_or(0),
                              GetInt(uo, "hardLimit").value_or(0)});
    }
    applied_here.push_back("ulimits");
  }
  std::vector<std::string> ignored;
  for (const char* k : {"user", "privileged", "readonlyRootFilesystem", "mountPoints", "volumes",
                        "ulimits", "linuxParameters", "secrets", "jobRoleArn",
                        "executionRoleArn", "fargatePlatformConfiguration", "ephemeralStorage",
                        "runtimePlatform", "networkConfiguration", "repositoryCredentials"}) {
    if (std::find(applied_here.begin(), applied_here.end(), k) != applied_here.end()) continue;
    auto it = container.find(k);
    if (it == container.end()) continue;
    const json::value& v = it->value();
    bool empty = (v.is_array() && v.as_array().empty()) || (v.is_object() && v.as_object().empty()) ||
                 (v.is_bool() && !v.as_bool()) || (v.is_string() && v.as_string().empty());
    if (!empty) ignored.emplace_back(k);
  }
  if (!ignored.empty()) {
    std::string list;
    for (const auto& i : ignored) list += (list.empty() ? "" : ", ") + i;
    spec.log_header.push_back(std::string("[drover] ") +
                              (spec.sandbox ? "sandbox" : "host mode") + ": not applied: " + list);
  }
  return spec;
}

void BatchService::FinishAttempt(Job& job, const exec::TaskEvent& ev, Outcome& out) {
  json::object& doc = Doc(job);
  json::object& container = doc["container"].as_object();
  bool lost = ev.exit_code < 0;  // the attempt's host went away: no exit code
  std::string attempt_reason = !job.terminate_reason.empty() ? job.terminate_reason
                               : job.timed_out               ? kTimedOut
                               : lost                        ? ev.reason
                                                             : kEssentialExited;
  job.timed_out = false;
  json::object ac;
  for (const char* k : {"containerInstanceArn", "taskArn", "logStreamName"}) {
    if (auto it = container.find(k); it != container.end()) ac[k] = it->value();
  }
  if (!lost) {
    ac["exitCode"] = ev.exit_code;
    container["exitCode"] = ev.exit_code;
  } else {
    container.erase("exitCode");
  }
  if (!ev.reason.empty()) {
    ac["reason"] = ev.reason;
    container["reason"] = ev.reason;
  } else {
    container.erase("reason");
  }
  ac["networkInterfaces"] = json::array();
  json::object attempt{{"container", std::move(ac)},
                       {"startedAt", job.started_at ? job.started_at : ev.at_ms},
                       {"stoppedAt", ev.at_ms},
                       {"statusReason", attempt_reason}};
  // What the attempt used, to right-size jobs (a Drover extension clients ignore).
  if (ev.peak_memory_bytes >= 0 || ev.cpu_time_ns >= 0) {
    json::object usage;
    if (ev.peak_memory_bytes >= 0) {
      usage["peakMemoryMiB"] = static_cast<double>(ev.peak_memory_bytes) / (1 << 20);
    }
    if (ev.cpu_time_ns >= 0) usage["cpuSeconds"] = static_cast<double>(ev.cpu_time_ns) / 1e9;
    attempt["resourceUsage"] = std::move(usage);
  }
  doc.at("attempts").as_array().push_back(std::move(attempt));
  ++job.attempts;
  HoldConsumables(job, false);
  for (const auto& g : job.gpus) free_gpus_.insert(g);
  job.gpus.clear();
  doc.erase("drover:gpus");
  job.ce = PooledString();
  job.task_id.clear();
  job.started_at = 0;
  doc.erase("drover:ce");
  doc.erase("drover:taskId");

  if (!job.terminate_reason.empty()) {
    doc["stoppedAt"] = ev.at_ms;
    SetJobStatus(job, "FAILED", job.terminate_reason);
  } else if (!lost && ev.exit_code == 0 && attempt_reason == kEssentialExited) {
    doc["stoppedAt"] = ev.at_ms;
    SetJobStatus(job, "SUCCEEDED", kEssentialExited);
  } else if (static_cast<int>(job.attempts) < job.max_attempts &&
             ShouldRetry(doc, ev.exit_code, ev.reason, attempt_reason)) {
    job.retried = true;
    SetJobStatus(job, "RUNNABLE",
                 "Retrying: attempt " + std::to_string(job.attempts) + " of " +
                     std::to_string(job.max_attempts) + " ended: " +
                     (lost ? ev.reason : "exit code " + std::to_string(ev.exit_code)));
  } else {
    doc["stoppedAt"] = ev.at_ms;
    SetJobStatus(job, "FAILED", attempt_reason);
  }
  out.puts.push_back(JobArn(job));
  out.wake = true;
}

void BatchService::OnTaskEvent(const exec::TaskEvent& ev) {
  Outcome out;
  double freed_vcpus = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    Job* j = FindJob(ev.job_id);
    if (j && j->task_id == ev.task_id) freed_vcpus = j->need.vcpus;
    if (!j || j->task_id != ev.task_id) {  // a stale event of an older attempt
      if (ev.kind == exec::TaskEvent::Kind::kExited && executor_) executor_->Acknowledge(ev.task_id);
      return;
    }
    if (ev.kind == exec::TaskEvent::Kind::kRunning) {
      j->started_at = ev.at_ms;
      json::object& doc = Doc(*j);
      doc["startedAt"] = ev.at_ms;
      if (auto stream = GetString(doc, "drover:logStream")) {
        std::string name(*stream);  // a copy: the insertion below may move doc's values
        doc.at("container").as_object()["logStreamName"] = std::move(name);
      }
      SetJobStatus(*j, "RUNNING", "");
      // Stored with the next write (at the latest the next pass, within a
      // second), not in a commit of its own: until then the store says
      // STARTING, and a restarted server re-attaches STARTING attempts too.
      dirty_.insert(JobArn(*j));
      return;
    }
    if (ev.start_failed) {
      FailStart(*j, ev, out);
    } else {
      FinishAttempt(*j, ev, out);
    }
    // The executor keeps the exit until it is durable here: a crash before that
    // finds it again when the next server re-attaches. With the scheduler
    // thread, the exit is stored with the next write, at the latest the commit
    // of the pass it wakes (below), together with the attempts that pass starts
    // in the capacity it freed: one commit for both, not one per exit.
    if (pipelined_starts_ && leading_ && out.deletes.empty()) {
      dirty_.insert(out.puts.begin(), out.puts.end());
      exit_acks_.push_back(ev.task_id);
    } else {
      Persist(std::move(out), [this, task = ev.task_id](Result<json::object> r) {
        if (!r.ok()) return;
        std::lock_guard<std::mutex> l(mu_);
        if (executor_) executor_->Acknowledge(task);
      });
    }
  }
  if (ev.kind == exec::TaskEvent::Kind::kExited) WakeForCapacity(freed_vcpus);
}

// The attempt could not start (the executor said so at once, or later): it ends
// with the reason, and when it was the job's own doing its log stream (whose
// header explains) is named.
void BatchService::FailStart(Job& j, const exec::TaskEvent& ev, Outcome& out) {
  j.start_pending = false;
  j.terminate_reason.clear();
  json::object& doc = Doc(j);
  if (auto stream = GetString(doc, "drover:logStream"); stream && ev.client_error) {
    std::string name(*stream);  // a copy: the insertion below may move doc's values
    doc.at("container").as_object()["logStreamName"] = std::move(name);
  }
  FinishAttempt(j, ev, out);
}

void BatchService::PersistSync(Outcome out) {
  if (out.puts.empty() && out.deletes.empty()) return;
  std::promise<void> p;
  auto f = p.get_future();
  {
    std::lock_guard<std::mutex> l(mu_);
    Persist(std::move(out), [&p](Result<json::object>) { p.set_value(); });
  }
  f.wait();
}

bool BatchService::BySeq::operator()(const Job* a, const Job* b) const {
  return a->seq != b->seq ? a->seq < b->seq : a < b;
}
bool BatchService::BySeq::operator()(const Job* a, int64_t seq) const { return a->seq < seq; }
bool BatchService::BySeq::operator()(int64_t seq, const Job* b) const { return seq < b->seq; }

bool BatchService::ResolveDependencies(Outcome& out, bool follower) {
  // A slice in creation order, from where the last pass stopped (round robin:
  // jobs that keep waiting for dependencies do not starve the ones behind them).
  std::vector<Job*> waiting;
  auto it = waiting_.lower_bound(resolve_from_);
  while (waiting.size() < cfg_.resolve_slice && waiting.size() < waiting_.size()) {
    if (it == waiting_.end()) it = waiting_.begin();
    waiting.push_back(*it++);
  }
  resolve_from_ = it == waiting_.end() ? 0 : (*it)->seq;
  bool partial = waiting.size() < waiting_.size(), moved = false;
  for (Job* j : waiting) {
    std::string failed, pending;
    for (const std::string& dep : j->depends_on) {
      Job* d = FindJob(dep);
      if (!d || d->status == "SUCCEEDED") continue;  // pruned jobs had finished
      if (d->status == "FAILED") {
        failed = dep;
        break;
      }
      pending += (pending.empty() ? "" : ", ") + dep + " (" + d->status.str() + ")";
    }
    const std::string& current = j->reason.str();
    if (!failed.empty()) {
      if (follower) continue;  // a change to store: the leader's
      SetJobStatus(*j, "FAILED", "Dependent Job " + failed + " failed");
    } else if (!pending.empty()) {
      std::string reason = "Waiting for dependencies: " + pending;
      if (j->status == "PENDING" && current == reason) continue;
      SetJobStatus(*j, "PENDING", reason, !follower);
    } else {
      auto q = resources_.find(j->queue);
      SetJobStatus(*j, "RUNNABLE",
                   "Waiting for its turn in job queue " +
                       (q == resources_.end() ? j->queue : q->second.name),
                   !follower);
    }
    moved = true;
    if (open_docs_.contains(j)) out.puts.push_back(JobArn(*j));  // (else nothing to store)
  }
  // The next slice at once while slices move jobs on (after a restart, a million
  // SUBMITTED); jobs that only keep waiting are looked at again at the next tick.
  return partial && moved;
}

void BatchService::SchedulePass(bool full) {
  std::lock_guard<std::mutex> pass(pass_mu_);
  if (!leading()) return;  // a follower: the leader schedules (cluster.cc)
  // No decisions on a view a refused write left ahead of the store: reloaded
  // first (or, while the store is away, no pass).
  if (Status s = ReloadIfStale(); !s.ok()) return;
  auto t_pass = std::chrono::steady_clock::now();
  std::vector<exec::TaskSpec> starts;
  // Attempts start once STARTING is durable; Start() only hands each to the
  // executor (a request to the host's supervisor, not awaited).
  auto start_all = [this, t_pass](const std::vector<exec::TaskSpec>& specs) {
    auto t_durable = std::chrono::steady_clock::now();
    StartAttempts(specs);
    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    LOG_DEBUG("pass: {} attempts placed; durable {:.1f} ms after the pass began, started {:.1f} ms later",
              specs.size(), ms(t_pass, t_durable), ms(t_durable, std::chrono::steady_clock::now()));
  };
  std::promise<void> durable;
  auto durable_f = durable.get_future();
  bool stored = true;  // (written by the commit's callback before `durable` is set)
  bool prune_logs = false;
  int64_t now = clock_.NowMillis();
  {
    std::unique_lock<std::mutex> l(mu_);
    Outcome out;
    // 0. CancelJob / TerminateJob that followers handed over (cluster.cc).
    ApplyJobRequests(out);
    // 1. Dependencies: SUBMITTED and PENDING jobs move on or fail.
    if (ResolveDependencies(out, /*follower=*/false)) Wake();  // the next slice next
    // 2. Timeouts.
    for (Job* j : running_) {
      if (j->status == "RUNNING" && j->timeout_ms > 0 && !j->timed_out &&
          j->terminate_reason.empty() && j->started_at + j->timeout_ms <= now && executor_) {
        j->timed_out = true;
        executor_->Terminate(j->task_id, kTimedOut);
      }
    }
    // 3. Placement: the pure scheduler decides on a snapshot, outside the lock.
    DecayShareHistory(now);
    // Windows: a full pass backfills deep; one after an exit fills the freed capacity.
    constexpr size_t kFullWindow = 2000, kCapacityWindow = 64;
    sched::Snapshot snap = BuildSnapshot(full ? kFullWindow : kCapacityWindow);
    uint64_t generation = generation_;
    l.unlock();
    sched::Plan plan = sched::Schedule(snap);
    l.lock();
    if (generation != generation_) plan = sched::Plan();  // the state was reloaded: decide again
    auto job_of = [&](uint64_t handle) {
      return handle < snapshot_jobs_.size() ? snapshot_jobs_[handle] : nullptr;
    };
    // 4. Plan applier: re-check each decision against the state as it is now.
    for (const auto& p : plan.start) {
      Job* j = job_of(p.handle);
      auto ce = resources_.find(p.ce_arn);
      if (!j || j->status != "RUNNABLE" || ce == resources_.end() ||
          GetString(ce->second.doc, "state") != "ENABLED" || !executor_) {
        continue;  // changed meanwhile: the next pass decides again
      }
      exec::TaskSpec spec = MakeTaskSpec(*j, p.ce_arn);
      j->ce = PooledString(pool_->Intern(p.ce_arn));
      j->task_id = spec.task_id;
      j->start_pending = true;
      HoldConsumables(*j, true);
      SetJobStatus(*j, "STARTING", "");
      j->retried = false;  // (after it left the queue's ordered set: the flag is part of its key)
      out.puts.push_back(JobArn(*j));
      starts.push_back(std::move(spec));
    }
    // Why a job waits is kept in memory only: it is recomputed by every pass
    // (and after a restart), so storing it would only rewrite documents.
    blocked_queues_.clear();
    for (const auto& w : plan.wait) {
      Job* j = job_of(w.handle);
      if (j) blocked_queues_.insert(j->queue);
      if (!j || j->status != "RUNNABLE" || j->reason == w.reason) continue;
      j->reason.Pooled(pool_->Intern(w.reason));  // (overwrites the document's statusReason)
      j->reason_since = now;
    }
    // The queues' jobStateTimeLimitActions: cancel jobs blocked for too long
    // with a given reason (e.g. MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT).
    std::unordered_map<std::string, const json::array*> limit_actions;  // queue ARN -> actions
    for (const auto& [seq, qarn] : order_[std::string(kJobQueue)]) {
      const json::array* a = GetArray(resources_.at(qarn).doc, "jobStateTimeLimitActions");
      if (a && !a->empty()) limit_actions[qarn] = a;
    }
    for (const auto& w : plan.wait) {
      if (limit_actions.empty()) break;
      Job* j = job_of(w.handle);
      if (!j || j->status != "RUNNABLE" || j->reason_since == 0) continue;
      auto qa = limit_actions.find(j->queue);
      if (qa == limit_actions.end()) continue;
      const json::array* actions = qa->second;
      std::string code = w.reason.substr(0, w.reason.find(" - "));
      for (const auto& a : *actions) {
        const auto& ao = a.as_object();
        if (GetString(ao, "state") != "RUNNABLE" || GetString(ao, "reason") != code ||
            GetString(ao, "action") != "CANCEL") {
          continue;
        }
        int64_t max_ms = GetInt(ao, "maxTimeSeconds").value_or(0) * 1000;
        if (now - j->reason_since < max_ms) continue;
        Doc(*j)["isCancelled"] = true;
        SetJobStatus(*j, "FAILED",
                     "Canceled by the job queue's jobStateTimeLimitActions: " + code + " for " +
                         std::to_string(max_ms / 1000) + " seconds");
        out.puts.push_back(JobArn(*j));
        break;
      }
    }
    // 5. Retention: finished jobs older than the retention period go.
    if (now - last_prune_ms_ >= kPruneEveryMs) {
      last_prune_ms_ = now;
      prune_logs = true;
      int64_t cutoff = now - cfg_.job_retention_ms;
      std::vector<Job*> expired;  // (finished_ is in stoppedAt order: no walk over every job)
      for (auto it = finished_.lower_bound({1, nullptr});
           it != finished_.end() && it->first < cutoff; ++it) {
        expired.push_back(it->second);
      }
      for (Job* j : expired) {
        // A child goes with its array: while the parent waits for others, a
        // missing child would come back as an implicit one after a restart.
        if (Job* p = j->parent.empty() ? nullptr : FindJob(j->parent); p && !IsTerminal(p->status)) {
          continue;
        }
        out.deletes.push_back(JobArn(*j));
        EraseJob(*j);
      }
    }
    if (out.puts.empty() && out.deletes.empty() && dirty_.empty()) {
      durable.set_value();
    } else if (pipelined_starts_ && !starts.empty()) {
      // With the scheduler thread, the attempts start from the STARTING commit's
      // callback: this thread goes on (the loop's next pass waits for the commit,
      // StopScheduler for the starts).
      // An attempt whose STARTING record the store refused is not started: the
      // view was reloaded from the store (where its job still waits), and the
      // next pass places it again.
      ++starts_in_flight_;
      Persist(std::move(out), [this, start_all, specs = std::move(starts)](Result<json::object> r) {
        if (r.ok()) start_all(specs);
        std::lock_guard<std::mutex> l(mu_);
        if (--starts_in_flight_ == 0) starts_done_.notify_all();
      });
      durable.set_value();
    } else {
      Persist(std::move(out), [&durable, &stored](Result<json::object> r) {
        stored = r.ok();
        durable.set_value();
      });
    }
  }
  durable_f.wait();
  if (!stored) starts.clear();  // (as above)
  if (prune_logs && !cfg_.log_root.empty()) {
    auto pruned = logs::LogStore(cfg_.log_root).Prune(now - cfg_.job_retention_ms);
    if (pruned.ok() && *pruned > 0) LOG_INFO("pruned {} expired log streams", *pruned);
  }
  if (!starts.empty()) start_all(starts);
}

// Hands a pass's placed attempts to the executor (together), except those whose
// job was stopped meanwhile.
void BatchService::StartAttempts(const std::vector<exec::TaskSpec>& specs) {
  std::vector<const exec::TaskSpec*> go;
  {
    std::lock_guard<std::mutex> l(mu_);
    Outcome out;
    for (const exec::TaskSpec& spec : specs) {
      Job* j = FindJob(spec.job_id);
      if (!j || j->task_id != spec.task_id) continue;
      if (!j->terminate_reason.empty()) {  // terminated before it started
        j->start_pending = false;
        FinishAttempt(*j, exec::TaskEvent{exec::TaskEvent::Kind::kExited, spec.task_id,
                                          spec.job_id, spec.attempt, clock_.NowMillis(), -1,
                                          j->terminate_reason},
                      out);
        continue;
      }
      go.push_back(&spec);
    }
    if (!out.puts.empty()) Persist(std::move(out), [](Result<json::object>) {});
  }
  if (go.empty()) return;
  std::vector<Status> started = executor_->StartAll(go);  // kRunning arrives through OnTaskEvent
  std::lock_guard<std::mutex> l(mu_);
  Outcome out;
  for (size_t i = 0; i < go.size(); ++i) {
    const exec::TaskSpec& spec = *go[i];
    Job* j = FindJob(spec.job_id);
    if (!j || j->task_id != spec.task_id) continue;
    j->start_pending = false;
    if (const Status& s = started[i]; !s.ok()) {
      exec::TaskEvent ev{exec::TaskEvent::Kind::kExited, spec.task_id, spec.job_id,
                         spec.attempt, clock_.NowMillis(), -1, s.message()};
      ev.start_failed = true;
      ev.client_error = s.code() == Code::kClient;
      FailStart(*j, ev, out);
    } else if (!j->terminate_reason.empty()) {
      executor_->Terminate(j->task_id, j->terminate_reason);
    }
  }
  if (!out.puts.empty()) Persist(std::move(out), [](Result<json::object>) {});
}

Status BatchService::RecoverJobs() {
  Outcome out;
  struct Ref {
    std::string task_id, job_id;
    int attempt;
  };
  std::vector<Ref> attach;
  std::promise<void> p;
  auto f = p.get_future();
  {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<Job*> lost;
    for (Job* j : running_) {  // STARTING and RUNNING
      if (executor_ && !j->task_id.empty()) {
        attach.push_back({j->task_id, j->id, static_cast<int>(j->attempts) + 1});
      } else {
        lost.push_back(j);
      }
    }
    for (Job* j : lost) {
      exec::TaskEvent ev{exec::TaskEvent::Kind::kExited, j->task_id, j->id,
                         static_cast<int>(j->attempts) + 1, clock_.NowMillis(), -1,
                         "Host lost: the Drover server stopped while the attempt was running"};
      FinishAttempt(*j, ev, out);
    }
    if (!lost.empty()) LOG_WARN("{} job attempts were lost while the server was down", lost.size());
    if (out.puts.empty()) {
      p.set_value();
    } else {
      Persist(std::move(out), [&p](Result<json::object>) { p.set_value(); });
    }
  }
  f.wait();
  // Attempts that were running: re-attach (their events arrive through OnTaskEvent).
  for (const auto& r : attach) executor_->Attach(r.task_id, r.job_id, r.attempt);
  if (!attach.empty()) LOG_INFO("re-attached to {} job attempts", attach.size());
  return Status::Ok();
}

void BatchService::StartScheduler() {
  {
    std::lock_guard<std::mutex> l(sched_mu_);
    sched_stop_ = false;  // (started again after a stop: a server that leads again)
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    pipelined_starts_ = true;
    sched_stopping_ = false;
  }
  sched_thread_ = std::thread([this] { SchedulerLoop(); });
}

void BatchService::StopScheduler() {
  {
    std::lock_guard<std::mutex> l(sched_mu_);
    sched_stop_ = true;
  }
  sched_cv_.notify_all();
  {
    std::lock_guard<std::mutex> l(mu_);
    sched_stopping_ = true;  // (a loop waiting for a pass's commit)
  }
  starts_done_.notify_all();
  if (sched_thread_.joinable()) sched_thread_.join();
  // What waited for the next write (RUNNING moves) is stored before a graceful
  // stop, and the attempts of the last passes are handed over.
  std::promise<void> p;
  auto f = p.get_future();
  {
    std::unique_lock<std::mutex> l(mu_);
    starts_done_.wait(l, [&] { return starts_in_flight_ == 0; });
    pipelined_starts_ = false;
    if (dirty_.empty()) return;
    Persist(Outcome{}, [&p](Result<json::object>) { p.set_value(); });
  }
  f.wait();
}

bool SchedulerNeedsNotify(bool wake_pending, bool full_pending, bool full, double freed_before,
                          double freed_after, double host_vcpus) {
  if (!wake_pending) return true;
  if (full) return !full_pending;
  return !full_pending && freed_before * 2 < host_vcpus && freed_after * 2 >= host_vcpus;
}

void BatchService::Wake() {
  bool notify;
  {
    std::lock_guard<std::mutex> l(sched_mu_);
    notify = SchedulerNeedsNotify(sched_wake_, sched_full_, true, sched_freed_vcpus_,
                                  sched_freed_vcpus_, cfg_.host_capacity.vcpus);
    sched_wake_ = true;
    sched_full_ = true;
  }
  if (notify) sched_cv_.notify_all();
}

void BatchService::WakeForCapacity(double vcpus) {
  bool notify;
  {
    std::lock_guard<std::mutex> l(sched_mu_);
    notify = SchedulerNeedsNotify(sched_wake_, sched_full_, false, sched_freed_vcpus_,
                                  sched_freed_vcpus_ + vcpus, cfg_.host_capacity.vcpus);
    sched_wake_ = true;
    sched_freed_vcpus_ += vcpus;
  }
  if (notify) sched_cv_.notify_all();
}

void BatchService::SchedulerLoop() {
  SetThreadName("drover-sched");
  using namespace std::chrono;
  constexpr auto kTick = seconds(1);  // passes run at least this often (timeouts, retention)
  const auto kCapacityInterval = microseconds(cfg_.capacity_pass_interval_us);
  auto last_pass = steady_clock::now(), last_full = last_pass;
  for (;;) {
    bool full;
    {
      std::unique_lock<std::mutex> l(sched_mu_);
      for (;;) {
        if (sched_stop_) return;
        auto now = steady_clock::now();
        // Woken by exits alone: not before the capacity interval (their capacity
        // is filled by one pass), unless they freed half the host already; by
        // anything else: at once.
        const bool capacity_only = sched_wake_ && !sched_full_;
        const auto capacity_at = last_pass + kCapacityInterval;
        const bool half_freed = sched_freed_vcpus_ * 2 >= cfg_.host_capacity.vcpus;
        if ((sched_wake_ && (!capacity_only || half_freed || now >= capacity_at)) ||
            now >= last_pass + kTick ||
            (sched_deferred_ && now >= last_pass + kBlockedPassInterval)) {
          break;
        }
        auto until = last_pass + kTick;
        if (sched_deferred_) until = std::min(until, last_pass + kBlockedPassInterval);
        if (capacity_only) until = std::min(until, capacity_at);
        sched_cv_.wait_until(l, until);
      }
      sched_wake_ = false;
      sched_freed_vcpus_ = 0;
      sched_deferred_ = false;
      full = sched_full_ || steady_clock::now() >= last_full + kTick;
      sched_full_ = false;
    }
    {
      // At most one pass's STARTING commit in flight: the next pass waits for it,
      // so that the exits and submissions meanwhile are decided together, in one
      // pass and one commit (one pass per exit cost the server ~20 % more CPU in
      // dispatch). The wait is one group commit at most.
      std::unique_lock<std::mutex> l(mu_);
      starts_done_.wait(l, [&] { return starts_in_flight_ == 0 || sched_stopping_; });
    }
    last_pass = steady_clock::now();
    if (full) last_full = last_pass;
    SchedulePass(full);
  }
}

}  // namespace drover::service
