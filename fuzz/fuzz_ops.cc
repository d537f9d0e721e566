// fuzz_ops: JSON decoding, validation and handling of every Batch operation's
// input. The first byte picks an operation of the Batch model (in name order,
// modulo their count); the rest is the request body. The request goes the
// router's way (api::RouteBatch on the operation's method and URI, with the
// queue's ARN in the tags URIs), then into a real BatchService
// (fuzz_util.h) and api::ServiceResponse, as the server does.
//
// Beyond the sanitizers it checks CONTRIBUTING's "bad input gets an AWS-style
// error and changes nothing" (a refused request leaves the state as it was),
// and that memory and the store agree (a service loaded afresh from the store
// reads the same as the one that served the request).
#include "api/handler.h"
#include "fuzz/fuzz_util.h"
#include "model/model.h"

namespace {

std::string Encode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  if (size < 1) return 0;
  const auto& ops = model::ServiceModel::Batch().operations();
  auto op = std::next(ops.begin(), data[0] % ops.size());
  fuzz::World w;
  api::HttpRequest req;
  req.method = op->second.method;
  req.target = op->second.uri;
  if (size_t brace = req.target.find('{'); brace != std::string::npos) {
    req.target = req.target.substr(0, brace) + Encode(w.queue_arn);
    if (op->first == "UntagResource") req.target += "?tagKeys=a&tagKeys=b%20c";
  }
  req.body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string before = fuzz::Snapshot(*w.svc, w);
  auto routed = api::RouteBatch(req);
  api::HttpResponse resp;
  if (auto* err = std::get_if<api::RouteError>(&routed)) {
    fuzz::Check(err->status == 400, "route error " + err->message);
    resp = api::ErrorResponse(err->status, err->type, err->message);
  } else {
    api::Route& route = std::get<api::Route>(routed);
    fuzz::Check(route.operation == op->first, "routed to " + route.operation);
    resp = api::ServiceResponse(route.operation,
                                w.svc->CallSync(route.operation, std::move(route.input)));
    fuzz::Check(resp.status != 500, "ServerException from " + op->first + ": " + resp.body);
  }
  fuzz::CheckResponse(resp);
  const std::string after = fuzz::Snapshot(*w.svc, w);
  if (resp.status >= 400) {
    fuzz::Check(after == before, op->first + " was refused but changed the state:\n" + before +
                                     "--- became ---\n" + after + "--- reply ---\n" + resp.body);
  }
  service::BatchService reloaded(service::ServiceConfig{}, *w.store, w.clock, w.ids);
  fuzz::Check(reloaded.Load().ok(), "reload failed");
  const std::string stored = fuzz::Snapshot(reloaded, w);
  fuzz::Check(stored == after, "after " + op->first + ", memory and store disagree:\n" + after +
                                   "--- stored ---\n" + stored);
  return 0;
}
