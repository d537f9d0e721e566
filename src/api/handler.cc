#include "api/handler.h"

#include <boost/beast/http/error.hpp>

#include "auth/sigv4.h"
#include "common/log.h"

namespace drover::api {

namespace http = boost::beast::http;

void ConfigureParser(RequestParser& parser, const ApiOptions& opts) {
  parser.body_limit(opts.max_body_bytes);
  parser.header_limit(kMaxHeaderBytes);
}

std::optional<HttpResponse> ReadErrorResponse(const boost::beast::error_code& ec) {
  if (ec == http::error::body_limit) {
    return ErrorResponse(413, "ClientException", "The request body is too large");
  }
  if (ec == http::error::header_limit) {
    return ErrorResponse(431, "ClientException",
                         "The request line and headers are larger than " +
                             std::to_string(kMaxHeaderBytes / 1024) + " KiB");
  }
  return std::nullopt;  // closed, timed out or malformed: drop the connection
}

HttpRequest FromBeast(BeastRequest& raw) {
  HttpRequest req;
  req.method = std::string(raw.method_string());
  req.target = std::string(raw.target());
  for (const auto& f : raw) {
    req.headers.push_back({std::string(f.name_string()), std::string(f.value())});
  }
  req.body = std::move(raw.body());
  return req;
}

HttpResponse HandleLogs(const HttpRequest& req, std::string_view op,
                        const logs::LogsService* logs) {
  auto json11 = [](HttpResponse r) {
    for (auto& h : r.headers) {
      if (h.name == "Content-Type") h.value = "application/x-amz-json-1.1";
    }
    return r;
  };
  auto json_error = [&](int status, std::string_view type, std::string_view message) {
    return json11(ErrorResponse(status, type, message));
  };
  if (!logs) return json_error(400, "UnknownOperationException", "Logs are not served here");
  auto body = ParseJson(req.body.empty() ? std::string_view("{}") : req.body);
  if (!body.ok() || !body->is_object()) {
    return json_error(400, "SerializationException", "The request body must be a JSON object");
  }
  if (HasNonFiniteNumber(*body)) {
    return json_error(400, "SerializationException",
                      "Malformed JSON in request body: a number is out of range");
  }
  Result<json::object> result = logs->Call(op, *body);
  if (!result.ok()) {
    logs::LogsError e = logs::ToLogsError(result.status());
    return json_error(e.http_status, e.type, e.message);
  }
  return json11(JsonResponse(result.value()));
}

std::variant<HttpResponse, Route> PrepareRequest(const HttpRequest& req,
                                                 const RequestContext& ctx) {
  if (req.method == "GET" && req.target == "/healthz") {
    return JsonResponse({{"status", "ok"}});
  }
  // The protocol decides the service a signature must be scoped to.
  const std::string* amz_target = req.Header("X-Amz-Target");
  bool logs_protocol = amz_target && std::string_view(*amz_target).starts_with("Logs_20140328.");
  auth::RequestView view{req.method, req.target, &req.headers, req.body};
  auto verdict = auth::Verify(
      view, [&ctx](std::string_view id) { return ctx.svc.SecretFor(id); },
      auth::VerifyOptions{ctx.opts.region, {logs_protocol ? "logs" : "batch"}, ctx.now_ms});
  if (auto* err = std::get_if<auth::AuthError>(&verdict)) {
    LOG_DEBUG("{} {} refused: {} {}", req.method, req.target, err->type, err->message);
    return ErrorResponse(err->http_status, err->type, err->message);
  }
  if (amz_target) {
    constexpr std::string_view kLogs = "Logs_20140328.";
    if (req.method == "POST" && logs_protocol) {
      return HandleLogs(req, std::string_view(*amz_target).substr(kLogs.size()), ctx.logs);
    }
    return ErrorResponse(400, "UnknownOperationException", "Drover does not serve " + *amz_target);
  }
  auto routed = RouteBatch(req);
  if (auto* err = std::get_if<RouteError>(&routed)) {
    return ErrorResponse(err->status, err->type, err->message);
  }
  return std::get<Route>(std::move(routed));
}

HttpResponse ServiceResponse(std::string_view operation, const Result<json::object>& result) {
  if (!result.ok()) {
    if (result.status().code() == Code::kServer) {
      LOG_ERROR("{} failed: {}", operation, result.status().message());
    } else {
      LOG_DEBUG("{} refused: {}", operation, result.status().message());
    }
    return StatusResponse(result.status());
  }
  return JsonResponse(result.value());
}

}  // namespace drover::api
