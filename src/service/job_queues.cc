// Job queues: Create/Update/Delete/Describe.
#include <set>

#include "service/batch_service.h"

namespace drover::service {
namespace {

json::object Summary(const json::object& doc) {
  return {{"jobQueueName", doc.at("jobQueueName")}, {"jobQueueArn", doc.at("jobQueueArn")}};
}

Status CheckPriority(int64_t p) {
  if (p < 0 || p > 1000) {
    return Status::Client("priority must be between 0 and 1000 (got " + std::to_string(p) + ")");
  }
  return Status::Ok();
}

// The family a compute environment belongs to: queues can't mix them.
std::string Family(const json::object& ce) {
  if (GetString(ce, "containerOrchestrationType") == "EKS") return "EKS";
  if (const auto* cr = GetObject(ce, "computeResources")) {
    std::string_view t = GetString(*cr, "type").value_or("EC2");
    if (t == "FARGATE" || t == "FARGATE_SPOT") return "FARGATE";
  }
  return "EC2";
}

}  // namespace

// Checks a computeEnvironmentOrder and returns it with every compute
// environment named by its ARN, sorted by order (as AWS describes it).
Result<json::array> BatchService::CheckComputeEnvironmentOrder(const json::array& order) {
  if (order.empty() || order.size() > 3) {
    return Status::Client("computeEnvironmentOrder must list between 1 and 3 compute "
                          "environments");
  }
  std::set<int64_t> orders;
  std::set<std::string> arns, families;
  std::vector<std::pair<int64_t, json::object>> out;
  for (const auto& e : order) {
    const auto& o = e.as_object();
    int64_t n = *GetInt(o, "order");
    std::string_view ref = *GetString(o, "computeEnvironment");
    Resource* ce = Find(kComputeEnvironment, ref);
    if (!ce) {
      return Status::Client("Compute environment " + std::string(ref) + " does not exist");
    }
    if (n < 0) return Status::Client("computeEnvironmentOrder.order must not be negative");
    if (!orders.insert(n).second) {
      return Status::Client("computeEnvironmentOrder has two entries with order " +
                            std::to_string(n) + "; each order must be unique");
    }
    if (!arns.insert(ce->arn).second) {
      return Status::Client("computeEnvironmentOrder lists compute environment " + ce->name +
                            " twice");
    }
    if (GetString(ce->doc, "status") != "VALID") {
      return Status::Client("Compute environment " + ce->name + " is not VALID");
    }
    families.insert(Family(ce->doc));
    out.emplace_back(n, json::object{{"order", n}, {"computeEnvironment", ce->arn}});
  }
  if (families.size() > 1) {
    return Status::Client("A job queue can't mix EC2, Fargate and EKS compute environments");
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  json::array result;
  for (auto& [n, o] : out) result.push_back(std::move(o));
  return result;
}

Status BatchService::CheckTimeLimitActions(const json::array& actions) {
  if (actions.size() > 5) {
    return Status::Client("jobStateTimeLimitActions can have at most 5 entries");
  }
  for (const auto& a : actions) {
    int64_t t = *GetInt(a.as_object(), "maxTimeSeconds");
    if (t < cfg_.min_time_limit_seconds || t > 86400) {
      return Status::Client("jobStateTimeLimitActions.maxTimeSeconds must be between " +
                            std::to_string(cfg_.min_time_limit_seconds) + " and 86400 (got " +
                            std::to_string(t) + ")");
    }
  }
  return Status::Ok();
}

Result<BatchService::Outcome> BatchService::CreateJobQueue(const json::object& req) {
  std::string name(*GetString(req, "jobQueueName"));
  DROVER_RETURN_IF_ERROR(CheckName("Job queue", name));
  std::string arn = arns_.Make(kJobQueue, name);
  if (resources_.contains(arn)) {
    return Status::Client("Object already exists: job queue " + name + " already exists");
  }
  DROVER_RETURN_IF_ERROR(CheckPriority(*GetInt(req, "priority")));
  if (GetString(req, "jobQueueType") == "SAGEMAKER_TRAINING" ||
      req.contains("serviceEnvironmentOrder")) {
    return Status::Client("Drover does not run SageMaker jobs: SAGEMAKER_TRAINING queues and "
                          "serviceEnvironmentOrder are not supported");
  }
  const json::array* order = GetArray(req, "computeEnvironmentOrder");
  if (!order) return Status::Client("computeEnvironmentOrder must be specified");
  DROVER_ASSIGN_OR_RETURN(json::array normalized, CheckComputeEnvironmentOrder(*order));
  std::string policy_arn;  // stored as the policy's ARN, whatever named it
  if (auto sp = GetString(req, "schedulingPolicyArn")) {
    Resource* policy = Find(kSchedulingPolicy, *sp);
    if (!policy) return Status::Client("Scheduling policy " + std::string(*sp) + " does not exist");
    policy_arn = policy->arn;
  }
  if (const auto* actions = GetArray(req, "jobStateTimeLimitActions")) {
    DROVER_RETURN_IF_ERROR(CheckTimeLimitActions(*actions));
  }
  if (const auto* tags = GetObject(req, "tags")) DROVER_RETURN_IF_ERROR(CheckTags(*tags));
  std::string family = Family(Find(kComputeEnvironment,
                                   normalized[0].as_object().at("computeEnvironment").as_string())
                                  ->doc);
  std::string type = family == "FARGATE" ? "ECS_FARGATE" : family == "EKS" ? "EKS" : "ECS";
  if (auto t = GetString(req, "jobQueueType"); t && *t != type) {
    return Status::Client("jobQueueType " + std::string(*t) +
                          " does not match its compute environments (" + type + ")");
  }

  json::object doc;
  doc["jobQueueName"] = name;
  doc["jobQueueArn"] = arn;
  doc["state"] = req.contains("state") ? req.at("state") : json::value("ENABLED");
  if (!policy_arn.empty()) doc["schedulingPolicyArn"] = policy_arn;
  doc["status"] = "VALID";
  doc["statusReason"] = "JobQueue Healthy";
  doc["priority"] = req.at("priority");
  doc["computeEnvironmentOrder"] = std::move(normalized);
  doc["jobQueueType"] = type;
  doc["tags"] = req.contains("tags") ? req.at("tags") : json::object();
  doc["jobStateTimeLimitActions"] =
      req.contains("jobStateTimeLimitActions") ? req.at("jobStateTimeLimitActions") : json::array();
  Insert(std::string(kJobQueue), arn, name, 0, std::move(doc));
  Outcome out;
  out.response = Summary(resources_.at(arn).doc);
  out.puts.push_back(arn);
  out.creates.push_back(arn);  // two servers cannot both create it
  return out;
}

Result<BatchService::Outcome> BatchService::UpdateJobQueue(const json::object& req) {
  std::string_view ref = *GetString(req, "jobQueue");
  Resource* q = Find(kJobQueue, ref);
  if (!q) return Status::Client("Job queue " + std::string(ref) + " does not exist");
  json::object doc = q->doc;
  if (auto p = GetInt(req, "priority")) {
    DROVER_RETURN_IF_ERROR(CheckPriority(*p));
    doc["priority"] = *p;
  }
  if (req.contains("serviceEnvironmentOrder")) {
    return Status::Client("Drover does not run SageMaker jobs: serviceEnvironmentOrder is not "
                          "supported");
  }
  if (const json::array* order = GetArray(req, "computeEnvironmentOrder")) {
    DROVER_ASSIGN_OR_RETURN(json::array normalized, CheckComputeEnvironmentOrder(*order));
    doc["computeEnvironmentOrder"] = std::move(normalized);
  }
  if (auto sp = GetString(req, "schedulingPolicyArn")) {
    if (!doc.contains("schedulingPolicyArn")) {
      return Status::Client("Job queue " + q->name + " is a FIFO queue: a scheduling policy "
                            "can only be set when the queue is created");
    }
    Resource* policy = Find(kSchedulingPolicy, *sp);
    if (!policy) {
      return Status::Client("Scheduling policy " + std::string(*sp) + " does not exist");
    }
    doc["schedulingPolicyArn"] = policy->arn;
  }
  if (const auto* actions = GetArray(req, "jobStateTimeLimitActions")) {
    DROVER_RETURN_IF_ERROR(CheckTimeLimitActions(*actions));
    doc["jobStateTimeLimitActions"] = *actions;
  }
  if (req.contains("state")) doc["state"] = req.at("state");
  q->doc = std::move(doc);
  Outcome out;
  out.response = Summary(q->doc);
  out.puts.push_back(q->arn);
  return out;
}

Result<BatchService::Outcome> BatchService::DeleteJobQueue(const json::object& req) {
  std::string_view ref = *GetString(req, "jobQueue");
  Resource* q = Find(kJobQueue, ref);
  if (!q) return Status::Client("Job queue " + std::string(ref) + " does not exist");
  if (GetString(q->doc, "state") != "DISABLED") {
    return Status::Client("Cannot delete, job queue " + q->name +
                          " must be DISABLED first (UpdateJobQueue --state DISABLED)");
  }
  Outcome out;
  out.deletes.push_back(q->arn);
  Erase(q->arn);
  return out;
}

Result<BatchService::Outcome> BatchService::DescribeJobQueues(const json::object& req) {
  json::array list;
  Outcome out;
  if (const json::array* refs = GetArray(req, "jobQueues"); refs && !refs->empty()) {
    if (refs->size() > 100) return Status::Client("jobQueues can list at most 100 job queues");
    for (const auto& r : *refs) {
      if (Resource* q = Find(kJobQueue, r.as_string())) list.push_back(q->doc);
    }
  } else {
    DROVER_ASSIGN_OR_RETURN(Page page, Paginate(kJobQueue, req, [](const Resource&) { return true; }));
    for (Resource* r : page.items) list.push_back(r->doc);
    if (!page.next_token.empty()) out.response["nextToken"] = page.next_token;
  }
  out.response["jobQueues"] = std::move(list);
  return out;
}

}  // namespace drover::service
