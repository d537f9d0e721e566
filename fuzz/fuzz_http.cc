// fuzz_http: arbitrary bytes on a connection, as the server reads them.
//
// The bytes go through a Beast request_parser configured exactly as the server
// configures it (api::ConfigureParser), request after request (keep-alive, at
// most 8 per input); each parsed request goes through api::PrepareRequest
// (health check, SigV4, Logs protocol, the REST-JSON router) into a real
// BatchService (fuzz_util.h: in-memory store, nothing runs) and
// api::ServiceResponse, exactly the server's path minus the coroutines.
//
// A request without an Authorization header is signed here first with the
// world's access key (so fuzzing reaches the router and the service); one
// with an Authorization header is verified as sent.
#include <boost/beast/http/error.hpp>

#include "api/handler.h"
#include "auth/sigv4.h"
#include "fuzz/fuzz_util.h"

namespace drover::fuzz {
namespace {

namespace http = boost::beast::http;

void SignIfUnsigned(api::HttpRequest& req, const World& w) {
  if (req.Header("Authorization")) return;
  auth::SigningInput in;
  in.method = req.method;
  in.target = req.target;
  in.body = req.body;
  const std::string* host = req.Header("Host");
  in.host = host ? *host : "localhost";
  in.region = "us-east-1";
  const std::string* target = req.Header("X-Amz-Target");
  in.service = target && target->starts_with("Logs_20140328.") ? "logs" : "batch";
  in.access_key_id = w.key_id;
  in.secret = w.secret;
  in.now_ms = w.clock.NowMillis();
  for (const auto& h : req.headers) {
    std::string lower = h.name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower != "host" && lower != "x-amz-date" && lower != "authorization") {
      in.extra_headers.push_back(h);
    }
  }
  req.headers = auth::Sign(in);
}

// Feeds `in` to `parser` as a read of a connection that then closes would;
// returns how many bytes the request took.
size_t Parse(std::string_view in, api::RequestParser& parser, boost::beast::error_code& ec) {
  size_t used = 0;
  while (!parser.is_done()) {
    size_t n = parser.put(boost::asio::buffer(in.data() + used, in.size() - used), ec);
    used += n;
    if (ec && ec != http::error::need_more) break;
    ec = {};
    // No progress (the parser wants more than is left, or nothing is left):
    // nothing more will come, the peer closed.
    if (n == 0) {
      parser.put_eof(ec);
      break;
    }
  }
  return used;
}

}  // namespace
}  // namespace drover::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  fuzz::World w;
  logs::LogStore log_store(fuzz::LogRoot());
  logs::LogsService logs_service(log_store, "us-east-1", "123456789012");
  api::ApiOptions opts;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (int i = 0; i < 8 && !rest.empty(); ++i) {
    api::RequestParser parser;
    api::ConfigureParser(parser, opts);
    boost::beast::error_code ec;
    rest.remove_prefix(fuzz::Parse(rest, parser, ec));
    if (ec || !parser.is_done()) {
      if (auto r = api::ReadErrorResponse(ec)) fuzz::CheckResponse(*r);
      break;
    }
    api::BeastRequest raw = parser.release();
    api::HttpRequest req = api::FromBeast(raw);
    fuzz::SignIfUnsigned(req, w);
    auto prepared = api::PrepareRequest(
        req, api::RequestContext{opts, *w.svc, &logs_service, w.clock.NowMillis()});
    api::HttpResponse resp;
    if (auto* r = std::get_if<api::HttpResponse>(&prepared)) {
      resp = std::move(*r);
    } else {
      api::Route& route = std::get<api::Route>(prepared);
      resp = api::ServiceResponse(route.operation,
                                  w.svc->CallSync(route.operation, std::move(route.input)));
      fuzz::Check(resp.status != 500, "ServerException from " + route.operation + ": " + resp.body);
    }
    fuzz::CheckResponse(resp);
    if (!raw.keep_alive()) break;
  }
  return 0;
}
