// The plain (coroutine-free) part of serving one HTTP request: the limits the
// request parser runs with, turning a parsed Beast message into an
// HttpRequest, and everything between that and the Batch service (health
// check, SigV4, the Logs JSON 1.1 protocol, REST-JSON routing), then turning
// the service's result into a response. The server (http_server.cc) wraps
// these in its coroutines; the fuzz targets (fuzz/) call them directly, so what
// they fuzz is what the server runs.
//
// Thread-safety: pure functions of their arguments, safe to call concurrently
// (they call BatchService::SecretFor and LogsService::Call, both thread-safe).
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>
#include <string_view>
#include <variant>

#include "api/api.h"
#include "api/router.h"

namespace drover::api {

using BeastRequest = boost::beast::http::request<boost::beast::http::string_body>;
using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// The request line plus headers may take at most this many bytes (Beast's default).
inline constexpr uint32_t kMaxHeaderBytes = 8 * 1024;

// Sets the body and header limits every request is read with.
void ConfigureParser(RequestParser& parser, const ApiOptions& opts);

// The answer to a read that failed with `ec` before a whole request arrived:
// 413 for a body over the limit; nullopt means drop the connection silently.
std::optional<HttpResponse> ReadErrorResponse(const boost::beast::error_code& ec);

// The parsed message as the router sees it (the body is moved out of `raw`).
HttpRequest FromBeast(BeastRequest& raw);

struct RequestContext {
  const ApiOptions& opts;
  service::BatchService& svc;
  const logs::LogsService* logs;  // may be null: Logs answer UnknownOperationException
  int64_t now_ms;                 // for the signature's clock-skew check
};

// Everything before the Batch service runs: GET /healthz, SigV4 verification,
// the Logs protocol (answered here), Batch routing. Returns the response, or
// the Batch operation to run (then answer with ServiceResponse()).
std::variant<HttpResponse, Route> PrepareRequest(const HttpRequest& req,
                                                 const RequestContext& ctx);

// CloudWatch Logs, JSON 1.1: `op` is X-Amz-Target without "Logs_20140328.".
HttpResponse HandleLogs(const HttpRequest& req, std::string_view op,
                        const logs::LogsService* logs);

// The response to a Batch operation's result (server errors are logged).
HttpResponse ServiceResponse(std::string_view operation, const Result<json::object>& result);

}  // namespace drover::api
