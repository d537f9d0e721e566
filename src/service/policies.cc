// Scheduling policies (fair share) and consumable resources: full CRUD.
// What they do to scheduling comes with the scheduler; here they are stored,
// validated and returned as AWS does.
#include <set>

#include "service/batch_service.h"

namespace drover::service {

Status BatchService::CheckFairsharePolicy(const json::object& p) {
  if (auto d = GetInt(p, "shareDecaySeconds"); d && (*d < 0 || *d > 604800)) {
    return Status::Client("fairsharePolicy.shareDecaySeconds must be between 0 and 604800");
  }
  if (auto r = GetInt(p, "computeReservation"); r && (*r < 0 || *r > 99)) {
    return Status::Client("fairsharePolicy.computeReservation must be between 0 and 99");
  }
  if (const auto* dist = GetArray(p, "shareDistribution")) {
    if (dist->size() > 500) {
      return Status::Client("fairsharePolicy.shareDistribution can have at most 500 entries");
    }
    std::set<std::string> ids;
    for (const auto& e : *dist) {
      const auto& o = e.as_object();
      std::string id(*GetString(o, "shareIdentifier"));
      std::string_view body = id;
      if (body.ends_with('*')) body.remove_suffix(1);
      bool ok = !id.empty() && body.size() <= 255;
      for (char c : body) ok = ok && std::isalnum(static_cast<unsigned char>(c));
      if (!ok) {
        return Status::Client("shareIdentifier '" + id + "' must be up to 255 letters and "
                              "numbers, optionally followed by an asterisk (*)");
      }
      if (!ids.insert(id).second) {
        return Status::Client("shareIdentifier '" + id + "' is listed twice");
      }
      auto it = o.find("weightFactor");
      if (it != o.end()) {
        double w = it->value().to_number<double>();
        if (w < 0.0001 || w > 999.9999) {
          return Status::Client("weightFactor for share " + id +
                                " must be between 0.0001 and 999.9999");
        }
      }
    }
    // Prefixes can't overlap: "UserA*" and "UserA1" would both match UserA1.
    for (const std::string& a : ids) {
      if (!a.ends_with('*')) continue;
      std::string_view prefix(a.data(), a.size() - 1);
      for (const std::string& b : ids) {
        if (a != b && std::string_view(b).starts_with(prefix)) {
          return Status::Client("shareIdentifier '" + a + "' overlaps '" + b + "'");
        }
      }
    }
  }
  return Status::Ok();
}

Result<BatchService::Outcome> BatchService::CreateSchedulingPolicy(const json::object& req) {
  std::string name(*GetString(req, "name"));
  DROVER_RETURN_IF_ERROR(CheckName("Scheduling policy", name));
  std::string arn = arns_.Make(kSchedulingPolicy, name);
  if (resources_.contains(arn)) {
    return Status::Client("Object already exists: scheduling policy " + name +
                          " already exists");
  }
  if (const auto* fp = GetObject(req, "fairsharePolicy")) {
    DROVER_RETURN_IF_ERROR(CheckFairsharePolicy(*fp));
  }
  if (const auto* tags = GetObject(req, "tags")) DROVER_RETURN_IF_ERROR(CheckTags(*tags));
  json::object doc{{"name", name}, {"arn", arn}};
  for (const char* k : {"fairsharePolicy", "quotaSharePolicy"}) {
    if (req.contains(k)) doc[k] = req.at(k);
  }
  doc["tags"] = req.contains("tags") ? req.at("tags") : json::object();
  Insert(std::string(kSchedulingPolicy), arn, name, 0, std::move(doc));
  Outcome out;
  out.response = {{"name", name}, {"arn", arn}};
  out.puts.push_back(arn);
  out.creates.push_back(arn);  // two servers cannot both create it
  return out;
}

Result<BatchService::Outcome> BatchService::UpdateSchedulingPolicy(const json::object& req) {
  std::string_view ref = *GetString(req, "arn");
  Resource* sp = Find(kSchedulingPolicy, ref);
  if (!sp || !ref.starts_with("arn:")) {
    return Status::Client("Scheduling policy " + std::string(ref) + " does not exist");
  }
  if (const auto* fp = GetObject(req, "fairsharePolicy")) {
    DROVER_RETURN_IF_ERROR(CheckFairsharePolicy(*fp));
    sp->doc["fairsharePolicy"] = *fp;
  }
  if (req.contains("quotaSharePolicy")) sp->doc["quotaSharePolicy"] = req.at("quotaSharePolicy");
  Outcome out;
  out.puts.push_back(sp->arn);
  return out;
}

Result<BatchService::Outcome> BatchService::DeleteSchedulingPolicy(const json::object& req) {
  std::string_view ref = *GetString(req, "arn");
  Resource* sp = Find(kSchedulingPolicy, ref);
  if (!sp || !ref.starts_with("arn:")) {
    return Status::Client("Scheduling policy " + std::string(ref) + " does not exist");
  }
  for (auto& [seq, qarn] : order_[std::string(kJobQueue)]) {
    const Resource& q = resources_.at(qarn);
    if (GetString(q.doc, "schedulingPolicyArn") == sp->arn) {
      return Status::Client("Cannot delete scheduling policy " + sp->name +
                            ": it is used by job queue " + q.name);
    }
  }
  Outcome out;
  out.deletes.push_back(sp->arn);
  Erase(sp->arn);
  return out;
}

Result<BatchService::Outcome> BatchService::DescribeSchedulingPolicies(const json::object& req) {
  const json::array& refs = *GetArray(req, "arns");
  if (refs.size() > 100) return Status::Client("arns can list at most 100 scheduling policies");
  json::array list;
  for (const auto& r : refs) {
    std::string_view ref = r.as_string();
    if (Resource* sp = Find(kSchedulingPolicy, ref); sp && ref.starts_with("arn:")) {
      list.push_back(sp->doc);
    }
  }
  Outcome out;
  out.response["schedulingPolicies"] = std::move(list);
  return out;
}

Result<BatchService::Outcome> BatchService::ListSchedulingPolicies(const json::object& req) {
  DROVER_ASSIGN_OR_RETURN(Page page,
                          Paginate(kSchedulingPolicy, req, [](const Resource&) { return true; }));
  json::array list;
  for (Resource* r : page.items) list.push_back(json::object{{"arn", r->arn}});
  Outcome out;
  out.response["schedulingPolicies"] = std::move(list);
  if (!page.next_token.empty()) out.response["nextToken"] = page.next_token;
  return out;
}

namespace {

json::object ConsumableSummary(const json::object& doc) {
  json::object s;
  for (const char* k : {"consumableResourceArn", "consumableResourceName", "totalQuantity",
                        "inUseQuantity", "resourceType"}) {
    s[k] = doc.at(k);
  }
  return s;
}

}  // namespace

Result<BatchService::Outcome> BatchService::CreateConsumableResource(const json::object& req) {
  std::string name(*GetString(req, "consumableResourceName"));
  DROVER_RETURN_IF_ERROR(CheckName("Consumable resource", name));
  std::string arn = arns_.Make(kConsumableResource, name);
  if (resources_.contains(arn)) {
    return Status::Client("Object already exists: consumable resource " + name +
                          " already exists");
  }
  int64_t total = GetInt(req, "totalQuantity").value_or(0);
  if (total < 0) return Status::Client("totalQuantity must be non-negative");
  std::string type(GetString(req, "resourceType").value_or("REPLENISHABLE"));
  if (type != "REPLENISHABLE" && type != "NON_REPLENISHABLE") {
    return Status::Client("resourceType must be REPLENISHABLE or NON_REPLENISHABLE");
  }
  if (const auto* tags = GetObject(req, "tags")) DROVER_RETURN_IF_ERROR(CheckTags(*tags));
  json::object doc{{"consumableResourceName", name},
                   {"consumableResourceArn", arn},
                   {"totalQuantity", total},
                   {"inUseQuantity", 0},
                   {"availableQuantity", total},
                   {"resourceType", type},
                   {"createdAt", clock_.NowMillis()},
                   {"tags", req.contains("tags") ? req.at("tags") : json::object()}};
  Insert(std::string(kConsumableResource), arn, name, 0, std::move(doc));
  Outcome out;
  out.response = {{"consumableResourceName", name},
                  {"consumableResourceArn", arn},
                  {"createdAt", resources_.at(arn).doc.at("createdAt")}};
  out.puts.push_back(arn);
  out.creates.push_back(arn);  // two servers cannot both create it
  return out;
}

Result<BatchService::Outcome> BatchService::UpdateConsumableResource(const json::object& req) {
  std::string_view ref = *GetString(req, "consumableResource");
  Resource* cr = Find(kConsumableResource, ref);
  if (!cr) return Status::Client("Consumable resource " + std::string(ref) + " does not exist");
  std::string op(GetString(req, "operation").value_or("SET"));
  auto qty = GetInt(req, "quantity");
  int64_t total = *GetInt(cr->doc, "totalQuantity");
  int64_t in_use = *GetInt(cr->doc, "inUseQuantity");
  if (qty && *qty < 0) return Status::Client("quantity must be non-negative");
  if (op == "SET") {
    if (qty) total = *qty;
  } else if (op == "ADD") {
    if (__builtin_add_overflow(total, qty.value_or(0), &total)) {
      return Status::Client("totalQuantity would exceed the largest quantity (2^63-1)");
    }
  } else if (op == "REMOVE") {
    total -= qty.value_or(0);  // both non-negative: cannot overflow
  } else {
    return Status::Client("operation must be SET, ADD or REMOVE");
  }
  if (total < 0) return Status::Client("totalQuantity can't become negative");
  cr->doc["totalQuantity"] = total;
  cr->doc["availableQuantity"] = std::max<int64_t>(0, total - in_use);
  Outcome out;
  out.response = {{"consumableResourceName", cr->name},
                  {"consumableResourceArn", cr->arn},
                  {"totalQuantity", total}};
  out.puts.push_back(cr->arn);
  return out;
}

Result<BatchService::Outcome> BatchService::DeleteConsumableResource(const json::object& req) {
  std::string_view ref = *GetString(req, "consumableResource");
  Resource* cr = Find(kConsumableResource, ref);
  if (!cr) return Status::Client("Consumable resource " + std::string(ref) + " does not exist");
  if (GetInt(cr->doc, "inUseQuantity").value_or(0) > 0) {
    return Status::Client("Consumable resource " + cr->name + " is held by running jobs");
  }
  Outcome out;
  out.deletes.push_back(cr->arn);
  Erase(cr->arn);
  return out;
}

Result<BatchService::Outcome> BatchService::DescribeConsumableResource(const json::object& req) {
  std::string_view ref = *GetString(req, "consumableResource");
  Resource* cr = Find(kConsumableResource, ref);
  if (!cr) return Status::Client("Consumable resource " + std::string(ref) + " does not exist");
  Outcome out;
  out.response = cr->doc;
  return out;
}

Result<BatchService::Outcome> BatchService::ListConsumableResources(const json::object& req) {
  std::vector<std::string> names;
  if (const auto* filters = GetArray(req, "filters")) {
    for (const auto& f : *filters) {
      const auto& o = f.as_object();
      if (GetString(o, "name") != "CONSUMABLE_RESOURCE_NAME") {
        return Status::Client("Unsupported filter name: the only filter is "
                              "CONSUMABLE_RESOURCE_NAME");
      }
      if (const auto* vals = GetArray(o, "values")) {
        for (const auto& v : *vals) names.emplace_back(v.as_string());
      }
    }
  }
  auto keep = [&](const Resource& r) {
    if (names.empty()) return true;
    for (const std::string& n : names) {
      if (n.ends_with('*') ? std::string_view(r.name).starts_with(
                                 std::string_view(n).substr(0, n.size() - 1))
                           : r.name == n) {
        return true;
      }
    }
    return false;
  };
  DROVER_ASSIGN_OR_RETURN(Page page, Paginate(kConsumableResource, req, keep));
  json::array list;
  for (Resource* r : page.items) list.push_back(ConsumableSummary(r->doc));
  Outcome out;
  out.response["consumableResources"] = std::move(list);
  if (!page.next_token.empty()) out.response["nextToken"] = page.next_token;
  return out;
}

}  // namespace drover::service
