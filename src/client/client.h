// Client: Drover's own client for the AWS Batch and CloudWatch Logs APIs,
// SigV4-signed like any AWS SDK. Used by the `drover` CLI and by bench/.
//
// Thread-safety: a Client holds one keep-alive connection and is not safe for
// concurrent use; use one per thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"

namespace drover::client {

struct Endpoint {
  std::string url = "http://127.0.0.1:8080";
  std::string access_key_id, secret_access_key;
  std::string region = "us-east-1";
};

// Where the CLI finds its server and credentials, first match wins:
// --endpoint / DROVER_ENDPOINT / <data>/endpoint; AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY / the [default] profile of <data>/credentials;
// AWS_REGION / AWS_DEFAULT_REGION / <data>/config.
Result<Endpoint> Discover(const std::string& endpoint_flag, const std::string& data_dir);

// An AWS-style error from the server: HTTP status, error type, message.
struct ApiError {
  int status = 0;
  std::string type, message;
};

// The HTTP/1.1 bytes of one signed, keep-alive AWS Batch request (REST-JSON,
// POST /v1/<operation lower-cased>): what Client sends, for callers that do
// their own I/O (bench/load.cc drives many connections from one event loop).
std::string EncodeBatchRequest(const Endpoint& ep, int64_t now_ms, std::string_view operation,
                               const json::object& input);

class Client {
 public:
  explicit Client(Endpoint ep, Clock& clock);
  ~Client();
  // POST /v1/<operation lower-cased>; the reply's JSON body.
  Result<json::object> Batch(std::string_view operation, const json::object& input);
  // CloudWatch Logs (JSON 1.1, X-Amz-Target: Logs_20140328.<operation>).
  Result<json::object> Logs(std::string_view operation, const json::object& input);
  // The last AWS error (its type and status), for callers that branch on it.
  const ApiError& last_error() const { return last_error_; }

 private:
  Result<json::object> Send(const std::string& target, const std::string& body,
                            const std::string& service, const std::string& content_type,
                            const std::string& amz_target);
  struct Conn;
  Endpoint ep_;
  Clock& clock_;
  std::unique_ptr<Conn> conn_;
  ApiError last_error_;
};

}  // namespace drover::client
