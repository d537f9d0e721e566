#include "model/model.h"

#include <algorithm>

#include "batch_model.inc"

namespace drover::model {
namespace {

std::string Str(const json::object& o, std::string_view k) {
  auto s = GetString(o, k);
  return s ? std::string(*s) : std::string();
}

std::string Quote(const json::value& v) {
  if (v.is_string()) return "'" + std::string(v.get_string()) + "'";
  if (v.is_null()) return "null";
  return "'" + ToJson(v) + "'";
}

bool IsIntegral(const json::value& v) { return v.is_int64() || v.is_uint64(); }

}  // namespace

Result<ServiceModel> ServiceModel::Parse(std::string_view text) {
  DROVER_ASSIGN_OR_RETURN(json::value doc, ParseJson(text));
  if (!doc.is_object()) return Status::Server("service model is not an object");
  ServiceModel m;
  const auto* ops = GetObject(doc.as_object(), "operations");
  const auto* shapes = GetObject(doc.as_object(), "shapes");
  if (!ops || !shapes) return Status::Server("service model lacks operations or shapes");
  for (const auto& [name, v] : *ops) {
    const auto& o = v.as_object();
    m.ops_[std::string(name)] = Operation{std::string(name), Str(o, "method"), Str(o, "uri"),
                                          Str(o, "input"), Str(o, "output")};
  }
  for (const auto& [name, v] : *shapes) {
    const auto& o = v.as_object();
    Shape s;
    s.type = Str(o, "type");
    if (const auto* mem = GetObject(o, "members")) {
      for (const auto& [mname, mv] : *mem) {
        const auto& mo = mv.as_object();
        s.members[std::string(mname)] =
            MemberRef{Str(mo, "shape"), Str(mo, "location"), Str(mo, "locationName")};
      }
    }
    if (const auto* req = GetArray(o, "required")) {
      for (const auto& r : *req) s.required.emplace_back(r.as_string());
    }
    if (const auto* en = GetArray(o, "enum")) {
      for (const auto& e : *en) s.enums.emplace_back(e.as_string());
    }
    s.min = GetInt(o, "min");
    s.max = GetInt(o, "max");
    s.member = Str(o, "member");
    s.key = Str(o, "key");
    s.value = Str(o, "value");
    m.shapes_[std::string(name)] = std::move(s);
  }
  return m;
}

const ServiceModel& ServiceModel::Batch() {
  static const ServiceModel* model = [] {
    auto r = Parse(kBatchModelJson);
    if (!r.ok()) std::abort();  // The embedded model is generated at build time: cannot fail.
    return new ServiceModel(std::move(r).value());
  }();
  return *model;
}

const Operation* ServiceModel::FindOperation(std::string_view name) const {
  auto it = ops_.find(name);
  return it == ops_.end() ? nullptr : &it->second;
}

const Shape* ServiceModel::FindShape(std::string_view name) const {
  auto it = shapes_.find(name);
  return it == shapes_.end() ? nullptr : &it->second;
}

Status ServiceModel::Conform(std::string_view shape_name, json::value& value) const {
  const Shape* shape = FindShape(shape_name);
  if (!shape) return Status::Server("unknown shape " + std::string(shape_name));
  std::vector<std::string> errors;
  if (value.is_null()) value = json::object();
  Check(*shape, value, "", errors);
  if (errors.empty()) return Status::Ok();
  std::string msg = std::to_string(errors.size()) +
                    (errors.size() == 1 ? " validation error detected: "
                                        : " validation errors detected: ");
  for (size_t i = 0; i < errors.size(); ++i) msg += (i ? "; " : "") + errors[i];
  return Status::Client(msg);
}

void ServiceModel::Check(const Shape& s, json::value& v, const std::string& path,
                         std::vector<std::string>& errors) const {
  auto fail = [&](const std::string& constraint) {
    errors.push_back("Value " + (s.type == "structure" || s.type == "list" || s.type == "map"
                                     ? std::string()
                                     : Quote(v) + " ") +
                     "at '" + path + "' failed to satisfy constraint: " + constraint);
  };
  auto child = [&](const std::string& c) { return path.empty() ? c : path + "." + c; };
  auto length_limits = [&](size_t n) {
    if (s.min && static_cast<int64_t>(n) < *s.min) {
      fail("Member must have length greater than or equal to " + std::to_string(*s.min));
    }
    if (s.max && static_cast<int64_t>(n) > *s.max) {
      fail("Member must have length less than or equal to " + std::to_string(*s.max));
    }
  };
  if (s.type == "structure") {
    if (!v.is_object()) return fail("Member must be an object");
    json::object& o = v.as_object();
    for (auto it = o.begin(); it != o.end();) {
      auto m = s.members.find(std::string(it->key()));
      if (m == s.members.end()) {
        it = o.erase(it);  // unknown member: ignored, as AWS does
        continue;
      }
      if (it->value().is_null()) {  // an explicit null is the same as absent
        it = o.erase(it);
        continue;
      }
      const Shape* ms = FindShape(m->second.shape);
      if (ms) Check(*ms, it->value(), child(m->first), errors);
      ++it;
    }
    for (const auto& r : s.required) {
      if (!o.contains(r)) {
        errors.push_back("Value null at '" + child(r) +
                         "' failed to satisfy constraint: Member must not be null");
      }
    }
  } else if (s.type == "list") {
    if (!v.is_array()) return fail("Member must be a list");
    length_limits(v.as_array().size());
    const Shape* es = FindShape(s.member);
    if (!es) return;
    json::array& a = v.as_array();
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].is_null()) {
        errors.push_back("Value null at '" + path + "." + std::to_string(i + 1) +
                         ".member' failed to satisfy constraint: Member must not be null");
        continue;
      }
      Check(*es, a[i], path + "." + std::to_string(i + 1) + ".member", errors);
    }
  } else if (s.type == "map") {
    if (!v.is_object()) return fail("Member must be a map");
    length_limits(v.as_object().size());
    const Shape* ks = FindShape(s.key);
    const Shape* vs = FindShape(s.value);
    for (auto& kv : v.as_object()) {
      json::value key(kv.key());
      if (ks) Check(*ks, key, path + ".key", errors);
      if (vs) Check(*vs, kv.value(), path + "." + std::string(kv.key()), errors);
    }
  } else if (s.type == "string") {
    if (!v.is_string()) return fail("Member must be a string");
    std::string_view str = v.as_string();
    length_limits(str.size());
    if (!s.enums.empty() &&
        std::find(s.enums.begin(), s.enums.end(), str) == s.enums.end()) {
      std::string set;
      for (size_t i = 0; i < s.enums.size(); ++i) set += (i ? ", " : "") + s.enums[i];
      fail("Member must satisfy enum value set: [" + set + "]");
    }
  } else if (s.type == "integer" || s.type == "long") {
    if (!IsIntegral(v)) return fail("Member must be an integer");
    if (v.is_uint64() && v.get_uint64() > static_cast<uint64_t>(INT64_MAX)) {
      return fail("Member must be a 64-bit integer");
    }
    int64_t n = v.is_int64() ? v.get_int64() : static_cast<int64_t>(v.get_uint64());
    if (s.type == "integer" && (n < INT32_MIN || n > INT32_MAX)) {
      return fail("Member must be a 32-bit integer");
    }
    if (s.min && n < *s.min) fail("Member must have value greater than or equal to " +
                                  std::to_string(*s.min));
    if (s.max && n > *s.max) fail("Member must have value less than or equal to " +
                                  std::to_string(*s.max));
  } else if (s.type == "float" || s.type == "double") {
    if (!v.is_number()) return fail("Member must be a number");
  } else if (s.type == "boolean") {
    if (!v.is_bool()) return fail("Member must be a boolean");
  } else if (s.type == "timestamp") {
    if (!v.is_number()) return fail("Member must be a timestamp");
  }
}

}  // namespace drover::model
