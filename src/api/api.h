// The API front door: an event-driven HTTP/1.1 server (Boost.Beast over Asio,
// C++20 coroutines, keep-alive) that speaks the AWS Batch REST-JSON protocol
// and the CloudWatch Logs JSON 1.1 protocol (POST / with X-Amz-Target:
// Logs_20140328.<Op>) on one endpoint, checks SigV4 on every request but
// GET /healthz, and hands operations to the BatchService or the LogsService.
//
// Thread-safety: Listen() then Run() from one thread; Run() may be called from
// several threads to serve on all of them; Stop() may be called from any
// thread (including a signal-watching one) at any time.
#pragma once

#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "logs/logs.h"
#include "service/batch_service.h"

namespace drover::api {

struct ApiOptions {
  std::string region = "us-east-1";
  size_t max_body_bytes = 10 * 1024 * 1024;
  int idle_timeout_seconds = 300;
  // Connections served at once; one more is answered 429 TooManyRequestsException
  // (which SDKs retry) and closed.
  size_t max_connections = 4096;
  // Stop(): how long requests in flight may take to be answered.
  int drain_seconds = 10;
};

class ApiServer {
 public:
  // `logs` may be null: the Logs protocol then answers UnknownOperationException.
  ApiServer(ApiOptions opts, service::BatchService& svc, const logs::LogsService* logs,
            Clock& clock, IdGenerator& ids);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds host:port (port 0 picks a free one) and returns the bound port.
  Result<int> Listen(const std::string& host, int port);
  // Serves until Stop(), on `threads` threads (the caller's among them).
  void Run(int threads);
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace drover::api
