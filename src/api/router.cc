#include "api/router.h"

#include <map>

#include "model/model.h"

namespace drover::api {
namespace {

constexpr std::string_view kTagsPrefix = "/v1/tags/";

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "POST /v1/createjobqueue" -> "CreateJobQueue", built once from the model.
const std::map<std::string, std::string, std::less<>>& Routes() {
  static const auto* routes = [] {
    auto* m = new std::map<std::string, std::string, std::less<>>();
    for (const auto& [name, op] : model::ServiceModel::Batch().operations()) {
      if (op.uri.find('{') != std::string::npos) continue;  // templated: the tags routes
      (*m)[op.method + " " + op.uri] = name;
    }
    return m;
  }();
  return *routes;
}

}  // namespace

const std::string* HttpRequest::Header(std::string_view name) const {
  for (const auto& h : headers) {
    if (h.name.size() == name.size() &&
        std::equal(h.name.begin(), h.name.end(), name.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      return &h.value;
    }
  }
  return nullptr;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && Hex(s[i + 1]) >= 0 && Hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(Hex(s[i + 1]) * 16 + Hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::variant<Route, RouteError> RouteBatch(const HttpRequest& req) {
  std::string_view target = req.target;
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view query =
      path.size() < target.size() ? target.substr(path.size() + 1) : std::string_view();
  Route route;
  if (path.starts_with(kTagsPrefix) && path.size() > kTagsPrefix.size()) {
    if (req.method == "GET") route.operation = "ListTagsForResource";
    else if (req.method == "POST") route.operation = "TagResource";
    else if (req.method == "DELETE") route.operation = "UntagResource";
  } else {
    auto it = Routes().find(req.method + " " + std::string(path));
    if (it != Routes().end()) route.operation = it->second;
  }
  if (route.operation.empty()) {
    return RouteError{404, "UnknownOperationException",
                      "No AWS Batch operation matches " + req.method + " " + std::string(path)};
  }
  if (req.body.empty()) {
    route.input = json::object();
  } else {
    auto parsed = ParseJson(req.body);
    if (!parsed.ok()) return RouteError{400, "ClientException", parsed.status().message()};
    if (!parsed->is_object()) {
      return RouteError{400, "ClientException", "The request body must be a JSON object"};
    }
    if (HasNonFiniteNumber(*parsed)) {
      return RouteError{400, "ClientException",
                        "Malformed JSON in request body: a number is out of range"};
    }
    route.input = std::move(parsed).value();
  }
  if (path.starts_with(kTagsPrefix)) {
    json::object& in = route.input.as_object();
    in["resourceArn"] = PercentDecode(path.substr(kTagsPrefix.size()));
    if (route.operation == "UntagResource") {
      json::array keys;
      while (!query.empty()) {
        std::string_view pair = query.substr(0, query.find('&'));
        query.remove_prefix(std::min(query.size(), pair.size() + 1));
        size_t eq = pair.find('=');
        if (PercentDecode(pair.substr(0, eq)) == "tagKeys" && eq != std::string_view::npos) {
          keys.emplace_back(PercentDecode(pair.substr(eq + 1)));
        }
      }
      in["tagKeys"] = std::move(keys);
    }
  }
  return route;
}

HttpResponse ErrorResponse(int status, std::string_view type, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.headers.push_back({"x-amzn-ErrorType", std::string(type)});
  r.headers.push_back({"Content-Type", "application/json"});
  // Messages may quote the request's path or headers: raw bytes, not JSON-parsed.
  r.body = ToJson(json::object{{"__type", type}, {"message", ValidUtf8(message)}});
  return r;
}

HttpResponse StatusResponse(const Status& s) {
  switch (s.code()) {
    case Code::kOk: return JsonResponse({});
    case Code::kClient:
    case Code::kNotFound:
    case Code::kAlreadyExists: return ErrorResponse(400, "ClientException", s.message());
    case Code::kThrottled: return ErrorResponse(429, "TooManyRequestsException", s.message());
    case Code::kServer: break;
  }
  return ErrorResponse(500, "ServerException", s.message());
}

HttpResponse JsonResponse(const json::object& body) {
  HttpResponse r;
  r.headers.push_back({"Content-Type", "application/json"});
  r.body = ToJson(body);
  return r;
}

}  // namespace drover::api
