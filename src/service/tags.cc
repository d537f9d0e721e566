// Tags on every taggable resource, addressed by ARN.
#include "service/batch_service.h"
#include "service/job.h"

namespace drover::service {
namespace {

bool Taggable(std::string_view kind) {
  return kind == kComputeEnvironment || kind == kJobQueue || kind == kJobDefinition ||
         kind == kSchedulingPolicy || kind == kConsumableResource || kind == kJob;
}

}  // namespace

// The tags object of a taggable resource (a job's document is opened for the change).
Result<json::object*> BatchService::TagsOf(const std::string& arn) {
  json::object* doc = nullptr;
  if (auto it = resources_.find(arn); it != resources_.end() && Taggable(it->second.kind)) {
    doc = &it->second.doc;
  } else if (Job* j = arn.starts_with("arn:") ? FindJob(arn) : nullptr) {
    // An array's implicit children show its tags: they keep those they had.
    for (int i = 0; i < j->array_size; ++i) {
      Job* c = FindJob(j->id + ":" + std::to_string(i));
      if (c && c->implicit) {
        Doc(*c);
        dirty_.insert(JobArn(*c));
      }
    }
    doc = &Doc(*j);
  }
  if (!doc) return Status::Client("Resource " + arn + " does not exist or can't be tagged");
  json::value& tags = (*doc)["tags"];
  if (!tags.is_object()) tags = json::object();
  return &tags.as_object();
}

Result<BatchService::Outcome> BatchService::TagResource(const json::object& req) {
  std::string arn(*GetString(req, "resourceArn"));
  DROVER_ASSIGN_OR_RETURN(json::object * tags, TagsOf(arn));
  json::object merged = *tags;
  for (const auto& kv : *GetObject(req, "tags")) merged[kv.key()] = kv.value();
  DROVER_RETURN_IF_ERROR(CheckTags(merged));
  *tags = std::move(merged);
  Outcome out;
  out.puts.push_back(arn);
  return out;
}

Result<BatchService::Outcome> BatchService::UntagResource(const json::object& req) {
  std::string arn(*GetString(req, "resourceArn"));
  DROVER_ASSIGN_OR_RETURN(json::object * tags, TagsOf(arn));
  for (const auto& k : *GetArray(req, "tagKeys")) tags->erase(k.as_string());
  Outcome out;
  out.puts.push_back(arn);
  return out;
}

Result<BatchService::Outcome> BatchService::ListTagsForResource(const json::object& req) {
  std::string arn(*GetString(req, "resourceArn"));
  auto it = resources_.find(arn);
  Job* j = it == resources_.end() && arn.starts_with("arn:") ? FindJob(arn) : nullptr;
  if (j) {
    Outcome out;
    json::object doc = ReadDoc(*j);
    const json::object* tags = GetObject(doc, "tags");
    out.response["tags"] = tags ? *tags : json::object();
    return out;
  }
  if (it == resources_.end() || !Taggable(it->second.kind)) {
    return Status::Client("Resource " + arn + " does not exist or can't be tagged");
  }
  Outcome out;
  const json::object* tags = GetObject(it->second.doc, "tags");
  out.response["tags"] = tags ? *tags : json::object();
  return out;
}

}  // namespace drover::service
