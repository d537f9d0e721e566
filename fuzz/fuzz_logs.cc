// fuzz_logs: the CloudWatch Logs JSON 1.1 API. The first byte picks the
// operation (X-Amz-Target Logs_20140328.<op>: the four Drover serves and one
// it does not); the rest is the request body. The request goes through
// api::HandleLogs, as the server's Logs path does, into a real LogsService
// over a log root with a few streams (fuzz_util.h: LogRoot()).
//
// Beyond the sanitizers: every page token a reply hands out (nextToken,
// nextForwardToken, nextBackwardToken) must be accepted by the same request
// sent again with it, as the SDKs' paginators do.
#include "api/handler.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  if (size < 1) return 0;
  static const char* kOps[] = {"GetLogEvents", "FilterLogEvents", "DescribeLogStreams",
                               "DescribeLogGroups", "PutLogEvents"};
  std::string_view op = kOps[data[0] % std::size(kOps)];
  static const logs::LogStore* store = new logs::LogStore(fuzz::LogRoot());
  static const logs::LogsService* service =
      new logs::LogsService(*store, "us-east-1", "123456789012");
  api::HttpRequest req;
  req.method = "POST";
  req.target = "/";
  req.headers.push_back({"X-Amz-Target", "Logs_20140328." + std::string(op)});
  req.body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  api::HttpResponse resp = api::HandleLogs(req, op, service);
  fuzz::Check(resp.status != 500, "ServiceUnavailableException from " + std::string(op) + ": " +
                                      resp.body);
  fuzz::CheckResponse(resp);
  if (resp.status != 200) return 0;
  json::value sent = *ParseJson(req.body.empty() ? std::string_view("{}") : req.body);
  json::value reply = *ParseJson(resp.body);
  for (const char* key : {"nextToken", "nextForwardToken", "nextBackwardToken"}) {
    auto token = GetString(reply.as_object(), key);
    if (!token) continue;
    json::object again = sent.as_object();
    again["nextToken"] = *token;
    api::HttpRequest next = req;
    next.body = ToJson(again);
    api::HttpResponse r = api::HandleLogs(next, op, service);
    fuzz::Check(r.status == 200, std::string(op) + " refused its own " + key + " " +
                                     std::string(*token) + ": " + r.body);
  }
  return 0;
}
