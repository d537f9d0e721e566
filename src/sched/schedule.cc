#include "sched/schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <tuple>

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

namespace {

// One scheduling pass over mutable usage. Each job is tried once.
class Pass {
 public:
  explicit Pass(const Snapshot& snap)
      : snap_(snap), ces_(snap.ces), host_used_(snap.host.used), consumables_(snap.consumables) {}

  Plan Run() {
    std::vector<const QueueView*> queues;
    for (const auto& q : snap_.queues) queues.push_back(&q);
    std::stable_sort(queues.begin(), queues.end(), [](const QueueView* a, const QueueView* b) {
      return a->priority != b->priority ? a->priority > b->priority : a->seq < b->seq;
    });
    std::map<std::string, std::vector<const JobView*>> by_queue;
    for (const auto& j : snap_.runnable) by_queue[j.queue].push_back(&j);
    for (auto& [q, jobs] : by_queue) {
      std::stable_sort(jobs.begin(), jobs.end(), [](const JobView* a, const JobView* b) {
        if (a->front != b->front) return a->front;
        if (a->priority != b->priority) return a->priority > b->priority;
        return a->seq < b->seq;
      });
    }
    for (const QueueView* q : queues) {
      auto it = by_queue.find(q->arn);
      if (it == by_queue.end()) continue;
      if (q->fair_share) {
        FairShare(*q, it->second);
      } else {
        for (const JobView* j : it->second) TryPlace(*q, *j, nullptr);
      }
    }
    // Jobs of queues that are not in the snapshot (deleted) wait with a reason too.
    for (const auto& [q, jobs] : by_queue) {
      bool known = std::any_of(snap_.queues.begin(), snap_.queues.end(),
                               [&q = q](const QueueView& v) { return v.arn == q; });
      if (known) continue;
      for (const JobView* j : jobs) Wait(*j, "Waiting: job queue was deleted");
    }
    return std::move(plan_);
  }

 private:
  // Takes jobs share by share: always from the share with the least weighted usage.
  void FairShare(const QueueView& q, const std::vector<const JobView*>& jobs) {
    std::map<std::string, std::vector<const JobView*>> shares;  // each in priority/FIFO order
    for (const JobView* j : jobs) shares[j->share].push_back(j);
    std::map<std::string, double> usage;
    if (auto u = snap_.share_usage.find(q.arn); u != snap_.share_usage.end()) usage = u->second;
    std::map<std::string, size_t> next;
    for (;;) {
      const std::string* best = nullptr;
      double best_score = 0;
      for (const auto& [share, list] : shares) {
        if (next[share] >= list.size()) continue;
        double score = usage[share] * list[next[share]]->weight;
        if (!best || score < best_score - kEps ||
            (std::abs(score - best_score) <= kEps &&
             list[next[share]]->seq < shares[*best][next[*best]]->seq)) {
          best = &share;
          best_score = score;
        }
      }
      if (!best) return;
      const JobView* j = shares[*best][next[*best]++];
      if (TryPlace(q, *j, &usage)) usage[j->share] += j->need.vcpus;
    }
  }

  bool TryPlace(const QueueView& q, const JobView& j, const std::map<std::string, double>* usage) {
    if (!q.enabled) {
      Wait(j, "Waiting: job queue " + q.name + " is DISABLED");
      return false;
    }
    for (const auto& [name, qty] : j.consumables) {
      auto c = consumables_.find(name);
      if (c == consumables_.end()) {
        Wait(j, "Waiting: consumable resource " + name + " does not exist");
        return false;
      }
      if (c->second.available < qty) {
        Wait(j, "Waiting for consumable resource " + name + ": the job needs " +
                       std::to_string(qty) + (qty > c->second.total
                                                  ? " but its total quantity is only "
                                                  : ", of a total quantity of ") +
                       std::to_string(c->second.total));
        return false;
      }
    }
    // Fair share: the reserve kept for share identifiers that are not running.
    int active = 0;
    bool share_active = false;
    if (usage) {
      for (const auto& [share, v] : *usage) {
        if (v > kEps) {
          ++active;
          if (share == j.share) share_active = true;
        }
      }
    }
    double reserve = share_active ? std::pow(q.compute_reservation, active) : 0;
    // A job like one that could not be placed since the last placement cannot be
    // placed either, and waits for the same reason: a deep queue's window is then
    // a lookup per job instead of a walk over the compute environments and a
    // reason formatted each time.
    const Resources& n = j.need;
    Failure key{&q, n.vcpus, n.memory_mib, n.gpus, reserve};
    if (auto f = failed_.find(key); f != failed_.end()) {
      if (f->second) Wait(j, *f->second);
      return false;
    }
    std::optional<std::string> reason = Place(q, j, reserve);
    if (!reason) return true;
    if (!reason->empty()) Wait(j, *reason);
    failed_.emplace(key, reason->empty() ? std::optional<std::string>()
                                         : std::optional<std::string>(std::move(*reason)));
    return false;
  }

  // Places `j` on the first compute environment of `q` with room (nullopt), or
  // says why it waits ("" when it waits for no reason worth a message).
  std::optional<std::string> Place(const QueueView& q, const JobView& j, double reserve) {
    std::string never, busy;
    bool any_usable = false, could_fit = false;
    const Resources& cap = snap_.host.capacity;
    const Resources& n = j.need;
    for (const std::string& ce_arn : q.ces) {
      auto ce_it = ces_.find(ce_arn);
      if (ce_it == ces_.end()) continue;
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
      if (n.vcpus > ce.max_vcpus + kEps) {
        never = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - the job needs " +
                FormatVcpus(n.vcpus) + " vCPU but compute environment " + ce.name +
                " allows at most " + FormatVcpus(ce.max_vcpus) + " (maxvCpus)";
        continue;
      }
      if (n.vcpus > cap.vcpus + kEps || n.memory_mib > cap.memory_mib || n.gpus > cap.gpus) {
        never = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - the job needs " + Need(n) +
                " but the largest host of compute environment " + ce.name + " has " + Need(cap);
        continue;
      }
      could_fit = true;
      double limit = ce.max_vcpus * (1 - reserve);
      bool reserved = ce.used.vcpus + n.vcpus > limit + kEps &&
                      ce.used.vcpus + n.vcpus <= ce.max_vcpus + kEps;
      bool ce_ok = ce.used.vcpus + n.vcpus <= limit + kEps;
      bool host_ok = host_used_.vcpus + n.vcpus <= cap.vcpus + kEps &&
                     host_used_.memory_mib + n.memory_mib <= cap.memory_mib &&
                     host_used_.gpus + n.gpus <= cap.gpus;
      if (ce_ok && host_ok) {
        ce.used.vcpus += n.vcpus;
        ce.used.memory_mib += n.memory_mib;
        ce.used.gpus += n.gpus;
        host_used_.vcpus += n.vcpus;
        host_used_.memory_mib += n.memory_mib;
        host_used_.gpus += n.gpus;
        for (const auto& [name, qty] : j.consumables) consumables_[name].available -= qty;
        plan_.start.push_back({j.id, ce.arn, j.handle});
        failed_.clear();  // usage changed: what failed may fit elsewhere or say otherwise
        return std::nullopt;
      }
      if (busy.empty()) {
        // Stable text (no live usage numbers): a reason changes only when the cause does.
        busy = "Waiting for capacity: the job needs " + Need(n) + "; " +
               (reserved ? "computeReservation keeps part of compute environment " + ce.name +
                               " for share identifiers that are not running yet"
                : !ce_ok ? "compute environment " + ce.name + " is at its maxvCpus (" +
                               FormatVcpus(ce.max_vcpus) + ")"
                         : "the host of compute environment " + ce.name + " (" + Need(cap) +
                               ") is busy with other jobs");
      }
    }
    if (could_fit || (!busy.empty() && never.empty())) return busy;
    if (!never.empty()) return never;
    if (!any_usable) return "Waiting: no compute environment of job queue " + q.name + " is ENABLED";
    return std::string();
  }

  void Wait(const JobView& j, std::string reason) {
    plan_.wait.push_back({j.id, std::move(reason), j.handle});
  }

  const Snapshot& snap_;
  std::map<std::string, CeView> ces_;  // usage grows as we place
  Resources host_used_;
  std::map<std::string, Consumable> consumables_;
  // Jobs that could not be placed since the last placement, by queue and need,
  // and why they wait (none: no message).
  struct Failure {
    const QueueView* q;
    double vcpus;
    int64_t memory_mib, gpus;
    double reserve;
    bool operator<(const Failure& o) const {
      return std::tie(q, vcpus, memory_mib, gpus, reserve) <
             std::tie(o.q, o.vcpus, o.memory_mib, o.gpus, o.reserve);
    }
  };
  std::map<Failure, std::optional<std::string>> failed_;
  Plan plan_;
};

}  // namespace

Plan Schedule(const Snapshot& snapshot) { return Pass(snapshot).Run(); }

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
