#include "sched/schedule.h"

#include <algorithm>
#include <cstdio>

namespace drover::sched {
namespace {

constexpr double kEps = 1e-9;

std::string Need(const Resources& r) {
  std::string s = FormatVcpus(r.vcpus) + " vCPU, " + std::to_string(r.memory_mib) + " MiB";
  if (r.gpus) s += ", " + std::to_string(r.gpus) + " GPU";
  return s;
}

}  // namespace

std::string FormatVcpus(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

Plan Schedule(const Snapshot& snap) {
  Plan plan;
  std::map<std::string, CeView> ces = snap.ces;  // usage grows as we place
  Resources host_used = snap.host.used;
  const Resources& cap = snap.host.capacity;

  std::vector<const QueueView*> queues;
  for (const auto& q : snap.queues) queues.push_back(&q);
  std::stable_sort(queues.begin(), queues.end(), [](const QueueView* a, const QueueView* b) {
    return a->priority != b->priority ? a->priority > b->priority : a->seq < b->seq;
  });
  std::map<std::string, std::vector<const JobView*>> by_queue;
  for (const auto& j : snap.runnable) by_queue[j.queue].push_back(&j);
  for (auto& [q, jobs] : by_queue) {
    std::stable_sort(jobs.begin(), jobs.end(), [](const JobView* a, const JobView* b) {
      return a->front != b->front ? a->front : a->seq < b->seq;
    });
  }

  for (const QueueView* q : queues) {
    auto it = by_queue.find(q->arn);
    if (it == by_queue.end()) continue;
    for (const JobView* j : it->second) {
      if (!q->enabled) {
        plan.wait.push_back({j->id, "Waiting: job queue " + q->name + " is DISABLED"});
        continue;
      }
      // Can the job ever fit? Check it against each usable CE's limits.
      std::string never;     // why it can never fit (when no CE could ever take it)
      std::string busy;      // why it can't start now
      bool placed = false;
      bool any_usable = false;
      bool could_fit = false;
      for (const std::string& ce_arn : q->ces) {
        auto ce_it = ces.find(ce_arn);
        if (ce_it == ces.end()) continue;
        CeView& ce = ce_it->second;
        if (!ce.enabled) continue;
        if (!ce.managed) {
          if (busy.empty()) {
            busy = "Waiting: compute environment " + ce.name +
                   " is UNMANAGED and no host has joined it";
          }
          continue;
        }
        any_usable = true;
        const Resources& n = j->need;
        if (n.vcpus > ce.max_vcpus + kEps) {
          never = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - the job needs " +
                  FormatVcpus(n.vcpus) + " vCPU but compute environment " + ce.name +
                  " allows at most " + FormatVcpus(ce.max_vcpus) + " (maxvCpus)";
          continue;
        }
        if (n.vcpus > cap.vcpus + kEps || n.memory_mib > cap.memory_mib || n.gpus > cap.gpus) {
          never = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - the job needs " + Need(n) +
                  " but the largest host of compute environment " + ce.name + " has " +
                  Need(cap);
          continue;
        }
        could_fit = true;
        bool ce_ok = ce.used.vcpus + n.vcpus <= ce.max_vcpus + kEps;
        bool host_ok = host_used.vcpus + n.vcpus <= cap.vcpus + kEps &&
                       host_used.memory_mib + n.memory_mib <= cap.memory_mib &&
                       host_used.gpus + n.gpus <= cap.gpus;
        if (ce_ok && host_ok) {
          ce.used.vcpus += n.vcpus;
          ce.used.memory_mib += n.memory_mib;
          ce.used.gpus += n.gpus;
          host_used.vcpus += n.vcpus;
          host_used.memory_mib += n.memory_mib;
          host_used.gpus += n.gpus;
          plan.start.push_back({j->id, ce.arn});
          placed = true;
          break;
        }
        if (busy.empty()) {
          // Stable text (no live usage numbers): a reason changes only when the cause does.
          busy = "Waiting for capacity: the job needs " + Need(n) + "; " +
                 (ce_ok ? "the host of compute environment " + ce.name + " (" + Need(cap) +
                              ") is busy with other jobs"
                        : "compute environment " + ce.name + " is at its maxvCpus (" +
                              FormatVcpus(ce.max_vcpus) + ")");
        }
      }
      if (placed) continue;
      if (could_fit || (!busy.empty() && never.empty())) {
        plan.wait.push_back({j->id, busy});
      } else if (!never.empty()) {
        plan.wait.push_back({j->id, never});
      } else if (!any_usable) {
        plan.wait.push_back({j->id, "Waiting: no compute environment of job queue " + q->name +
                                        " is ENABLED"});
      }
    }
  }
  // Jobs of queues that are not in the snapshot (deleted) wait with a reason too.
  for (const auto& [q, jobs] : by_queue) {
    bool known = std::any_of(snap.queues.begin(), snap.queues.end(),
                             [&](const QueueView& v) { return v.arn == q; });
    if (known) continue;
    for (const JobView* j : jobs) plan.wait.push_back({j->id, "Waiting: job queue was deleted"});
  }
  return plan;
}

std::string PlanToString(const Plan& plan) {
  std::string s;
  for (const auto& p : plan.start) {
    if (!s.empty()) s += "; ";
    s += "start " + p.job_id + "@" + p.ce_arn;
  }
  for (const auto& w : plan.wait) {
    if (!s.empty()) s += "; ";
    s += "wait " + w.job_id + "(" + w.reason + ")";
  }
  return s;
}

}  // namespace drover::sched
