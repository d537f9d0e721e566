// Tags on every taggable resource, addressed by ARN.
#include "service/batch_service.h"

namespace drover::service {
namespace {

bool Taggable(std::string_view kind) {
  return kind == kComputeEnvironment || kind == kJobQueue || kind == kJobDefinition ||
         kind == kSchedulingPolicy || kind == kConsumableResource || kind == kJob;
}

}  // namespace

Result<BatchService::Outcome> BatchService::TagResource(const json::object& req) {
  std::string arn(*GetString(req, "resourceArn"));
  auto it = resources_.find(arn);
  if (it == resources_.end() || !Taggable(it->second.kind)) {
    return Status::Client("Resource " + arn + " does not exist or can't be tagged");
  }
  json::object tags = GetObject(it->second.doc, "tags") ? *GetObject(it->second.doc, "tags")
                                                         : json::object();
  for (const auto& kv : *GetObject(req, "tags")) tags[kv.key()] = kv.value();
  DROVER_RETURN_IF_ERROR(CheckTags(tags));
  it->second.doc["tags"] = std::move(tags);
  Outcome out;
  out.puts.push_back(arn);
  return out;
}

Result<BatchService::Outcome> BatchService::UntagResource(const json::object& req) {
  std::string arn(*GetString(req, "resourceArn"));
  auto it = resources_.find(arn);
  if (it == resources_.end() || !Taggable(it->second.kind)) {
    return Status::Client("Resource " + arn + " does not exist or can't be tagged");
  }
  json::value& tags = it->second.doc["tags"];
  if (!tags.is_object()) tags = json::object();
  for (const auto& k : *GetArray(req, "tagKeys")) tags.as_object().erase(k.as_string());
  Outcome out;
  out.puts.push_back(arn);
  return out;
}

Result<BatchService::Outcome> BatchService::ListTagsForResource(const json::object& req) {
  std::string arn(*GetString(req, "resourceArn"));
  auto it = resources_.find(arn);
  if (it == resources_.end() || !Taggable(it->second.kind)) {
    return Status::Client("Resource " + arn + " does not exist or can't be tagged");
  }
  Outcome out;
  const json::object* tags = GetObject(it->second.doc, "tags");
  out.response["tags"] = tags ? *tags : json::object();
  return out;
}

}  // namespace drover::service
