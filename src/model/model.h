// The AWS service model (operations and shapes) and generic request
// validation against it.
//
// The model is generated at build time from the botocore model installed on
// the machine (tools/gen_model.py), so Drover validates exactly what the real
// service declares: member types, required members, enum values and limits.
// Rules the model cannot express (name patterns, ranges in the docs, cross-
// field rules) live in the service layer.
//
// Thread-safety: a ServiceModel is immutable after Parse(); Batch() returns a
// process-wide instance that is safe to use from any thread.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace drover::model {

struct MemberRef {
  std::string shape;
  std::string location;       // "" (body), "uri", "querystring" or "header"
  std::string location_name;  // wire name for non-body members
};

struct Shape {
  std::string type;  // structure, list, map, string, integer, long, boolean, float, double...
  std::map<std::string, MemberRef> members;  // structures
  std::vector<std::string> required;
  std::vector<std::string> enums;
  std::optional<int64_t> min, max;  // length for string/list/map, value for numbers
  std::string member, key, value;   // element shapes for list/map
};

struct Operation {
  std::string name, method, uri, input, output;
};

class ServiceModel {
 public:
  static Result<ServiceModel> Parse(std::string_view json_text);
  // The AWS Batch 2016-08-10 model, parsed once.
  static const ServiceModel& Batch();

  const Operation* FindOperation(std::string_view name) const;
  const Shape* FindShape(std::string_view name) const;
  const std::map<std::string, Operation, std::less<>>& operations() const { return ops_; }

  // Checks `value` against shape `shape_name` and removes members the shape
  // does not declare (AWS ignores unknown members; we do not store them).
  // Errors are collected AWS-style: "2 validation errors detected: Value null
  // at 'type' failed to satisfy constraint: Member must not be null; ...".
  Status Conform(std::string_view shape_name, json::value& value) const;

 private:
  void Check(const Shape& shape, json::value& v, const std::string& path,
             std::vector<std::string>& errors) const;
  std::map<std::string, Operation, std::less<>> ops_;
  std::map<std::string, Shape, std::less<>> shapes_;
};

}  // namespace drover::model
