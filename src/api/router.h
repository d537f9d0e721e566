// Router: turns an HTTP request into a Batch operation and its JSON input,
// and a result into an HTTP response, exactly as the AWS REST-JSON protocol
// (botocore's "rest-json") expects. Pure functions: no sockets, no state.
//
// Thread-safety: all functions are pure and safe to call concurrently.
#pragma once

#include <string>
#include <vector>

#include "auth/sigv4.h"
#include "common/json.h"
#include "common/status.h"

namespace drover::api {

struct HttpRequest {
  std::string method;
  std::string target;  // raw: path + "?query", percent-encoded
  std::vector<auth::Header> headers;
  std::string body;
  const std::string* Header(std::string_view name) const;  // case-insensitive; nullptr if absent
};

struct HttpResponse {
  int status = 200;
  std::vector<auth::Header> headers;
  std::string body;
};

struct Route {
  std::string operation;  // e.g. "CreateJobQueue"
  json::value input;      // the request members, URI and query members merged in
};

// What a request that reaches no operation gets: HTTP status and AWS error type.
struct RouteError {
  int status;
  std::string type;
  std::string message;
};

// Maps a Batch REST-JSON request onto an operation of the Batch model.
std::variant<Route, RouteError> RouteBatch(const HttpRequest& req);

// The AWS error response: `x-amzn-ErrorType` header and {"__type","message"} body.
HttpResponse ErrorResponse(int status, std::string_view type, std::string_view message);
// Maps a Status from the service onto ClientException / ServerException / ...
HttpResponse StatusResponse(const Status& s);
HttpResponse JsonResponse(const json::object& body);

std::string PercentDecode(std::string_view s);

}  // namespace drover::api
