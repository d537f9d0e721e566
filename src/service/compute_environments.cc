// Compute environments: Create/Update/Delete/Describe.
//
// Drover creates compute environments synchronously: a new one is VALID at
// once (AWS passes through CREATING while it builds an ECS cluster; there is
// nothing to build here). Subnets, security groups, roles and instance types
// are kept as given: there is no EC2 behind them.
#include "service/batch_service.h"

namespace drover::service {
namespace {

bool IsFargate(std::string_view type) { return type == "FARGATE" || type == "FARGATE_SPOT"; }

// Members of computeResources that AWS rejects for Fargate compute environments.
constexpr std::string_view kNotForFargate[] = {
    "minvCpus", "desiredvCpus", "instanceTypes", "allocationStrategy", "imageId", "ec2KeyPair",
    "instanceRole", "placementGroup", "bidPercentage", "spotIamFleetRole", "launchTemplate",
    "ec2Configuration"};

json::object Summary(const json::object& doc) {
  return {{"computeEnvironmentName", doc.at("computeEnvironmentName")},
          {"computeEnvironmentArn", doc.at("computeEnvironmentArn")}};
}

}  // namespace

Status BatchService::CheckComputeResources(const json::object& cr, bool update) {
  std::string_view type = GetString(cr, "type").value_or("EC2");
  if (IsFargate(type)) {
    for (std::string_view k : kNotForFargate) {
      if (cr.contains(k)) {
        return Status::Client("computeResources." + std::string(k) +
                              " isn't applicable to a " + std::string(type) +
                              " compute environment");
      }
    }
  }
  auto min = GetInt(cr, "minvCpus");
  auto max = GetInt(cr, "maxvCpus");
  auto desired = GetInt(cr, "desiredvCpus");
  for (auto [name, v] : {std::pair{"minvCpus", min}, {"maxvCpus", max}, {"desiredvCpus", desired}}) {
    if (v && *v < 0) {
      return Status::Client("computeResources." + std::string(name) + " must not be negative");
    }
  }
  if (min && max && *min > *max) {
    return Status::Client("computeResources.minvCpus (" + std::to_string(*min) +
                          ") must not be greater than maxvCpus (" + std::to_string(*max) + ")");
  }
  if (desired && max && *desired > *max) {
    return Status::Client("computeResources.desiredvCpus (" + std::to_string(*desired) +
                          ") must not be greater than maxvCpus (" + std::to_string(*max) + ")");
  }
  if (desired && min && *desired < *min) {
    return Status::Client("computeResources.desiredvCpus (" + std::to_string(*desired) +
                          ") must not be less than minvCpus (" + std::to_string(*min) + ")");
  }
  if (auto bid = GetInt(cr, "bidPercentage"); bid && (*bid < 0 || *bid > 100)) {
    return Status::Client("computeResources.bidPercentage must be between 0 and 100");
  }
  if (const auto* tags = GetObject(cr, "tags")) DROVER_RETURN_IF_ERROR(CheckTags(*tags));
  return Status::Ok();
}

Result<BatchService::Outcome> BatchService::CreateComputeEnvironment(const json::object& req) {
  std::string name(*GetString(req, "computeEnvironmentName"));
  DROVER_RETURN_IF_ERROR(CheckName("Compute environment", name));
  std::string arn = arns_.Make(kComputeEnvironment, name);
  if (resources_.contains(arn)) {
    return Status::Client("Object already exists: compute environment " + name +
                          " already exists");
  }
  std::string_view type = *GetString(req, "type");
  const json::object* cr = GetObject(req, "computeResources");
  if (type == "MANAGED") {
    if (!cr) {
      return Status::Client("computeResources must be specified for a MANAGED compute "
                            "environment");
    }
    if (req.contains("unmanagedvCpus")) {
      return Status::Client("unmanagedvCpus is only supported for UNMANAGED compute "
                            "environments");
    }
    DROVER_RETURN_IF_ERROR(CheckComputeResources(*cr, false));
  } else {
    if (cr) {
      return Status::Client("computeResources can't be specified for an UNMANAGED compute "
                            "environment");
    }
    if (auto u = GetInt(req, "unmanagedvCpus"); u && *u < 0) {
      return Status::Client("unmanagedvCpus must not be negative");
    }
  }
  if (const auto* tags = GetObject(req, "tags")) DROVER_RETURN_IF_ERROR(CheckTags(*tags));

  json::object doc;
  doc["computeEnvironmentName"] = name;
  doc["computeEnvironmentArn"] = arn;
  std::string uuid = ids_.Uuid();
  doc["ecsClusterArn"] = "arn:aws:ecs:" + arns_.region() + ":" + arns_.account() +
                         ":cluster/" + name + "_Batch_" + uuid;
  doc["tags"] = req.contains("tags") ? req.at("tags") : json::object();
  doc["type"] = type;
  doc["state"] = req.contains("state") ? req.at("state") : json::value("ENABLED");
  doc["status"] = "VALID";
  doc["statusReason"] = "ComputeEnvironment Healthy";
  if (cr) {
    json::object c = *cr;
    std::string_view crtype = *GetString(c, "type");
    if (!IsFargate(crtype)) {
      if (!c.contains("minvCpus")) c["minvCpus"] = 0;
      if (!c.contains("desiredvCpus")) c["desiredvCpus"] = c["minvCpus"];
      if (!c.contains("allocationStrategy")) c["allocationStrategy"] = "BEST_FIT";
    }
    doc["computeResources"] = std::move(c);
  }
  for (const char* k : {"serviceRole", "unmanagedvCpus", "eksConfiguration", "updatePolicy",
                        "context"}) {
    if (req.contains(k)) doc[k] = req.at(k);
  }
  doc["containerOrchestrationType"] = req.contains("eksConfiguration") ? "EKS" : "ECS";
  doc["uuid"] = uuid;

  Insert(std::string(kComputeEnvironment), arn, name, 0, std::move(doc));
  Outcome out;
  out.response = Summary(resources_.at(arn).doc);
  out.puts.push_back(arn);
  out.creates.push_back(arn);  // two servers cannot both create it
  return out;
}

Result<BatchService::Outcome> BatchService::UpdateComputeEnvironment(const json::object& req) {
  std::string_view ref = *GetString(req, "computeEnvironment");
  Resource* ce = Find(kComputeEnvironment, ref);
  if (!ce) return Status::Client("Compute environment " + std::string(ref) + " does not exist");
  json::object doc = ce->doc;  // validate on a copy: a refused update changes nothing
  bool managed = GetString(doc, "type") == "MANAGED";
  if (req.contains("unmanagedvCpus")) {
    if (managed) {
      return Status::Client("unmanagedvCpus is only supported for UNMANAGED compute "
                            "environments");
    }
    if (*GetInt(req, "unmanagedvCpus") < 0) {
      return Status::Client("unmanagedvCpus must not be negative");
    }
    doc["unmanagedvCpus"] = req.at("unmanagedvCpus");
  }
  if (const json::object* update = GetObject(req, "computeResources")) {
    if (!managed) {
      return Status::Client("computeResources can't be updated for an UNMANAGED compute "
                            "environment");
    }
    json::object cr = *GetObject(doc, "computeResources");
    for (const auto& kv : *update) {
      if (kv.key() == "updateToLatestImageVersion") continue;  // an action, not a setting
      cr[kv.key()] = kv.value();
    }
    // desiredvCpus follows a raised minvCpus, as a scale-out would.
    auto min = GetInt(cr, "minvCpus");
    auto desired = GetInt(cr, "desiredvCpus");
    if (min && desired && *desired < *min && !update->contains("desiredvCpus")) {
      cr["desiredvCpus"] = *min;
    }
    if (auto max = GetInt(cr, "maxvCpus"); desired && max && *desired > *max &&
                                           !update->contains("desiredvCpus")) {
      cr["desiredvCpus"] = *max;
    }
    DROVER_RETURN_IF_ERROR(CheckComputeResources(cr, true));
    doc["computeResources"] = std::move(cr);
  }
  for (const char* k : {"state", "serviceRole", "updatePolicy", "context"}) {
    if (req.contains(k)) doc[k] = req.at(k);
  }
  ce->doc = std::move(doc);
  Outcome out;
  out.response = Summary(ce->doc);
  out.puts.push_back(ce->arn);
  return out;
}

Result<BatchService::Outcome> BatchService::DeleteComputeEnvironment(const json::object& req) {
  std::string_view ref = *GetString(req, "computeEnvironment");
  Resource* ce = Find(kComputeEnvironment, ref);
  if (!ce) return Status::Client("Compute environment " + std::string(ref) + " does not exist");
  if (GetString(ce->doc, "state") != "DISABLED") {
    return Status::Client("Cannot delete, compute environment " + ce->name +
                          " must be DISABLED first (UpdateComputeEnvironment --state DISABLED)");
  }
  for (auto& [seq, qarn] : order_[std::string(kJobQueue)]) {
    const Resource& q = resources_.at(qarn);
    if (const auto* order = GetArray(q.doc, "computeEnvironmentOrder")) {
      for (const auto& o : *order) {
        if (GetString(o.as_object(), "computeEnvironment") == ce->arn) {
          return Status::Client("Cannot delete, found existing JobQueue relationship: " +
                                q.name + " uses compute environment " + ce->name);
        }
      }
    }
  }
  Outcome out;
  out.deletes.push_back(ce->arn);
  Erase(ce->arn);
  return out;
}

Result<BatchService::Outcome> BatchService::DescribeComputeEnvironments(const json::object& req) {
  json::array list;
  Outcome out;
  if (const json::array* refs = GetArray(req, "computeEnvironments"); refs && !refs->empty()) {
    if (refs->size() > 100) {
      return Status::Client("computeEnvironments can list at most 100 compute environments");
    }
    for (const auto& r : *refs) {
      if (Resource* ce = Find(kComputeEnvironment, r.as_string())) list.push_back(ce->doc);
    }
  } else {
    DROVER_ASSIGN_OR_RETURN(Page page,
                            Paginate(kComputeEnvironment, req, [](const Resource&) { return true; }));
    for (Resource* r : page.items) list.push_back(r->doc);
    if (!page.next_token.empty()) out.response["nextToken"] = page.next_token;
  }
  out.response["computeEnvironments"] = std::move(list);
  return out;
}

}  // namespace drover::service
