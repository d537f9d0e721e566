// Job definitions: Register (revisions 1, 2, 3...), Deregister (INACTIVE),
// Describe. Every property set (container, node, ECS, EKS) is stored and
// returned as given; which of them Drover can run is decided at SubmitJob.
#include <charconv>

#include "service/batch_service.h"

namespace drover::service {
namespace {

std::optional<double> ParseNumber(std::string_view s) {
  double d = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return d;
}

Status CheckResourceRequirements(const json::array& reqs, const std::string& where) {
  for (const auto& r : reqs) {
    const auto& o = r.as_object();
    std::string_view type = *GetString(o, "type");
    std::string_view value = *GetString(o, "value");
    auto n = ParseNumber(value);
    bool ok = n.has_value();
    if (type == "VCPU") ok = ok && *n > 0;
    if (type == "MEMORY") ok = ok && *n >= 4 && *n == static_cast<int64_t>(*n);
    if (type == "GPU") ok = ok && *n >= 0 && *n == static_cast<int64_t>(*n);
    if (!ok) {
      return Status::Client(where + ".resourceRequirements: invalid " + std::string(type) +
                            " value '" + std::string(value) + "'" +
                            (type == "MEMORY" ? " (an integer number of MiB, at least 4)"
                             : type == "VCPU" ? " (a positive number of vCPUs)"
                                              : " (a whole number of GPUs)"));
    }
  }
  return Status::Ok();
}

Status CheckContainer(const json::object& c, const std::string& where) {
  if (auto v = GetInt(c, "vcpus"); v && *v < 1) {
    return Status::Client(where + ".vcpus must be at least 1");
  }
  if (auto m = GetInt(c, "memory"); m && *m < 4) {
    return Status::Client(where + ".memory must be at least 4 MiB");
  }
  if (const auto* rr = GetArray(c, "resourceRequirements")) {
    DROVER_RETURN_IF_ERROR(CheckResourceRequirements(*rr, where));
  }
  return Status::Ok();
}

// "n", "n:", ":m" or "n:m" with 0 <= n <= m < numNodes.
bool ValidTargetNodes(std::string_view t, int64_t num_nodes) {
  auto num = [](std::string_view s, int64_t dflt) -> std::optional<int64_t> {
    if (s.empty()) return dflt;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
    return v;
  };
  size_t colon = t.find(':');
  auto lo = num(t.substr(0, colon), 0);
  auto hi = colon == std::string_view::npos ? lo : num(t.substr(colon + 1), num_nodes - 1);
  if (t.empty() || t == ":") return t == ":";
  return lo && hi && *lo <= *hi && *hi < num_nodes;
}

Status CheckNodeProperties(const json::object& np) {
  int64_t n = *GetInt(np, "numNodes");
  int64_t main = *GetInt(np, "mainNode");
  if (n < 1) return Status::Client("nodeProperties.numNodes must be at least 1");
  if (main < 0 || main >= n) {
    return Status::Client("nodeProperties.mainNode must be between 0 and numNodes - 1");
  }
  const auto& ranges = *GetArray(np, "nodeRangeProperties");
  if (ranges.empty()) return Status::Client("nodeProperties.nodeRangeProperties is empty");
  for (const auto& r : ranges) {
    std::string_view t = *GetString(r.as_object(), "targetNodes");
    if (!ValidTargetNodes(t, n)) {
      return Status::Client("nodeProperties.nodeRangeProperties.targetNodes '" + std::string(t) +
                            "' is not a valid range of nodes 0.." + std::to_string(n - 1));
    }
    if (const auto* c = GetObject(r.as_object(), "container")) {
      DROVER_RETURN_IF_ERROR(CheckContainer(*c, "nodeRangeProperties.container"));
    }
  }
  return Status::Ok();
}

Status CheckRetryStrategy(const json::object& rs) {
  if (auto a = GetInt(rs, "attempts"); a && (*a < 1 || *a > 10)) {
    return Status::Client("retryStrategy.attempts must be between 1 and 10");
  }
  if (const auto* rules = GetArray(rs, "evaluateOnExit")) {
    if (rules->size() > 5) {
      return Status::Client("retryStrategy.evaluateOnExit can have at most 5 entries");
    }
    for (const auto& r : *rules) {
      const auto& o = r.as_object();
      for (const char* k : {"onStatusReason", "onReason", "onExitCode"}) {
        if (auto v = GetString(o, k); v && v->size() > 512) {
          return Status::Client(std::string("retryStrategy.evaluateOnExit.") + k +
                                " can be at most 512 characters");
        }
      }
      if (auto code = GetString(o, "onExitCode")) {
        std::string_view c = *code;
        bool ok = !c.empty();
        for (size_t i = 0; i < c.size() && ok; ++i) {
          ok = std::isdigit(static_cast<unsigned char>(c[i])) || (c[i] == '*' && i + 1 == c.size());
        }
        if (!ok) {
          return Status::Client("retryStrategy.evaluateOnExit.onExitCode '" + std::string(c) +
                                "' must be digits, optionally ending with *");
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace

BatchService::Resource* BatchService::FindJobDefinition(std::string_view ref,
                                                        bool latest_active_for_name) {
  std::string_view name_rev = ref;
  if (ref.starts_with("arn:")) {
    auto p = Arns::Parse(ref);
    if (!p || p->kind != kJobDefinition) return nullptr;
    if (p->region != arns_.region() || p->account != arns_.account()) return nullptr;
    name_rev = ref.substr(ref.size() - p->resource.size());
  }
  if (name_rev.find(':') != std::string_view::npos) {
    auto it = resources_.find(arns_.Make(kJobDefinition, name_rev));
    return it == resources_.end() ? nullptr : &it->second;
  }
  if (!latest_active_for_name) return nullptr;
  auto latest = jd_revisions_.find(name_rev);
  if (latest == jd_revisions_.end()) return nullptr;
  for (int64_t rev = latest->second; rev >= 1; --rev) {
    auto it = resources_.find(arns_.Make(kJobDefinition,
                                         std::string(name_rev) + ":" + std::to_string(rev)));
    if (it != resources_.end() && GetString(it->second.doc, "status") == "ACTIVE") {
      return &it->second;
    }
  }
  return nullptr;
}

Result<BatchService::Outcome> BatchService::RegisterJobDefinition(const json::object& req) {
  std::string name(*GetString(req, "jobDefinitionName"));
  DROVER_RETURN_IF_ERROR(CheckName("Job definition", name));
  std::string_view type = *GetString(req, "type");
  bool container = req.contains("containerProperties");
  int props = container + req.contains("ecsProperties") + req.contains("eksProperties");
  if (type == "container") {
    if (req.contains("nodeProperties")) {
      return Status::Client("nodeProperties can't be specified for a container job definition");
    }
    if (props != 1) {
      return Status::Client("A container job definition needs exactly one of "
                            "containerProperties, ecsProperties and eksProperties");
    }
    if (container) {
      DROVER_RETURN_IF_ERROR(CheckContainer(*GetObject(req, "containerProperties"),
                                            "containerProperties"));
    }
  } else {
    if (!req.contains("nodeProperties")) {
      return Status::Client("nodeProperties must be specified for a multinode job definition");
    }
    if (props != 0) {
      return Status::Client("A multinode job definition takes its containers from "
                            "nodeProperties.nodeRangeProperties");
    }
    DROVER_RETURN_IF_ERROR(CheckNodeProperties(*GetObject(req, "nodeProperties")));
  }
  if (const auto* rs = GetObject(req, "retryStrategy")) {
    DROVER_RETURN_IF_ERROR(CheckRetryStrategy(*rs));
  }
  if (const auto* t = GetObject(req, "timeout")) {
    if (auto s = GetInt(*t, "attemptDurationSeconds"); s && *s < cfg_.min_attempt_seconds) {
      return Status::Client("timeout.attemptDurationSeconds must be at least " +
                            std::to_string(cfg_.min_attempt_seconds) + " seconds");
    }
  }
  if (auto p = GetInt(req, "schedulingPriority"); p && (*p < 0 || *p > 9999)) {
    return Status::Client("schedulingPriority must be between 0 and 9999");
  }
  if (const auto* tags = GetObject(req, "tags")) DROVER_RETURN_IF_ERROR(CheckTags(*tags));

  int64_t revision = jd_revisions_[name] + 1;
  std::string arn = arns_.Make(kJobDefinition, name + ":" + std::to_string(revision));
  json::object doc;
  doc["jobDefinitionName"] = name;
  doc["jobDefinitionArn"] = arn;
  doc["revision"] = revision;
  doc["status"] = "ACTIVE";
  doc["type"] = type;
  for (const char* k : {"schedulingPriority", "parameters", "retryStrategy",
                        "containerProperties", "timeout", "nodeProperties", "tags",
                        "propagateTags", "platformCapabilities", "ecsProperties", "eksProperties",
                        "consumableResourceProperties"}) {
    if (req.contains(k)) doc[k] = req.at(k);
  }
  if (!doc.contains("parameters")) doc["parameters"] = json::object();
  if (!doc.contains("tags")) doc["tags"] = json::object();
  doc["containerOrchestrationType"] = req.contains("eksProperties") ? "EKS" : "ECS";
  jd_revisions_[name] = revision;
  Insert(std::string(kJobDefinition), arn, name, revision, std::move(doc));
  Outcome out;
  out.response = {{"jobDefinitionName", name}, {"jobDefinitionArn", arn}, {"revision", revision}};
  out.puts.push_back(arn);
  out.creates.push_back(arn);  // two servers cannot both create it
  return out;
}

Result<BatchService::Outcome> BatchService::DeregisterJobDefinition(const json::object& req) {
  std::string_view ref = *GetString(req, "jobDefinition");
  Resource* jd = FindJobDefinition(ref, /*latest_active_for_name=*/true);
  if (!jd) return Status::Client("Job definition " + std::string(ref) + " does not exist");
  Outcome out;
  if (GetString(jd->doc, "status") != "INACTIVE") {
    jd->doc["status"] = "INACTIVE";
    out.puts.push_back(jd->arn);
  }
  return out;
}

Result<BatchService::Outcome> BatchService::DescribeJobDefinitions(const json::object& req) {
  auto status = GetString(req, "status");
  if (status && *status != "ACTIVE" && *status != "INACTIVE") {
    return Status::Client("status must be ACTIVE or INACTIVE");
  }
  auto name = GetString(req, "jobDefinitionName");
  auto keep = [&](const Resource& r) {
    if (name && r.name != *name) return false;
    if (status && GetString(r.doc, "status") != *status) return false;
    return true;
  };
  json::array list;
  Outcome out;
  if (const json::array* refs = GetArray(req, "jobDefinitions"); refs && !refs->empty()) {
    if (refs->size() > 100) {
      return Status::Client("jobDefinitions can list at most 100 job definitions");
    }
    for (const auto& v : *refs) {
      std::string_view ref = v.as_string();
      std::string_view bare = ref;
      if (ref.starts_with("arn:")) {
        auto p = Arns::Parse(ref);
        if (!p || p->kind != kJobDefinition) continue;
        bare = ref.substr(ref.size() - p->resource.size());
      }
      if (bare.find(':') != std::string_view::npos) {
        if (Resource* jd = FindJobDefinition(ref, false); jd && keep(*jd)) list.push_back(jd->doc);
        continue;
      }
      // A bare name: every revision of it.
      for (auto& [seq, arn] : order_[std::string(kJobDefinition)]) {
        const Resource& r = resources_.at(arn);
        if (r.name == bare && keep(r)) list.push_back(r.doc);
      }
    }
  } else {
    DROVER_ASSIGN_OR_RETURN(Page page, Paginate(kJobDefinition, req, keep));
    for (Resource* r : page.items) list.push_back(r->doc);
    if (!page.next_token.empty()) out.response["nextToken"] = page.next_token;
  }
  out.response["jobDefinitions"] = std::move(list);
  return out;
}

}  // namespace drover::service
