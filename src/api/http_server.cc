// The Beast/Asio HTTP server. One coroutine per connection reads a request,
// awaits its answer and writes it, keeping the connection alive; no thread is
// ever blocked on a request, so a slow durable write holds only its own
// connection while the io threads serve everyone else.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <ctime>
#include <thread>

#include "api/api.h"
#include "api/router.h"
#include "auth/sigv4.h"
#include "common/log.h"

namespace drover::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

std::string HttpDate(int64_t ms) {
  std::time_t t = ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// Completes when the service replies. The reply may come inline or from the
// store's writer thread; either way the coroutine resumes on its own executor.
asio::awaitable<Result<json::object>> CallService(service::BatchService& svc,
                                                  std::string op, json::value input) {
  auto shared = std::make_shared<std::optional<Result<json::object>>>();
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [&](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        svc.Call(op, std::move(input), [h, shared](Result<json::object> r) {
          *shared = std::move(r);
          auto ex = asio::get_associated_executor(*h);
          asio::post(ex, [h]() mutable { (*h)(); });
        });
      },
      asio::use_awaitable);
  co_return std::move(**shared);
}

}  // namespace

struct ApiServer::Impl {
  ApiOptions opts;
  service::BatchService& svc;
  const logs::LogsService* logs;
  Clock& clock;
  IdGenerator& ids;
  asio::io_context io;
  tcp::acceptor acceptor{io};

  Impl(ApiOptions o, service::BatchService& s, const logs::LogsService* l, Clock& c,
       IdGenerator& i)
      : opts(std::move(o)), svc(s), logs(l), clock(c), ids(i) {}

  // CloudWatch Logs, JSON 1.1: the operation is in X-Amz-Target.
  HttpResponse HandleLogs(const HttpRequest& req, std::string_view op) {
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
    Result<json::object> result = logs->Call(op, *body);
    if (!result.ok()) {
      logs::LogsError e = logs::ToLogsError(result.status());
      return json_error(e.http_status, e.type, e.message);
    }
    return json11(JsonResponse(result.value()));
  }

  asio::awaitable<HttpResponse> Handle(const HttpRequest& req) {
    if (req.method == "GET" && req.target == "/healthz") {
      co_return JsonResponse({{"status", "ok"}});
    }
    // The protocol decides the service a signature must be scoped to.
    const std::string* amz_target = req.Header("X-Amz-Target");
    bool logs_protocol = amz_target && std::string_view(*amz_target).starts_with("Logs_20140328.");
    auth::RequestView view{req.method, req.target, &req.headers, req.body};
    auto verdict = auth::Verify(
        view, [this](std::string_view id) { return svc.SecretFor(id); },
        auth::VerifyOptions{opts.region, {logs_protocol ? "logs" : "batch"}, clock.NowMillis()});
    if (auto* err = std::get_if<auth::AuthError>(&verdict)) {
      LOG_DEBUG("{} {} refused: {} {}", req.method, req.target, err->type, err->message);
      HttpResponse r = ErrorResponse(err->http_status, err->type, err->message);
      co_return r;
    }
    if (const std::string* target = req.Header("X-Amz-Target")) {
      constexpr std::string_view kLogs = "Logs_20140328.";
      if (req.method == "POST" && std::string_view(*target).starts_with(kLogs)) {
        co_return HandleLogs(req, std::string_view(*target).substr(kLogs.size()));
      }
      co_return ErrorResponse(400, "UnknownOperationException",
                              "Drover does not serve " + *target);
    }
    auto routed = RouteBatch(req);
    if (auto* err = std::get_if<RouteError>(&routed)) {
      co_return ErrorResponse(err->status, err->type, err->message);
    }
    Route& route = std::get<Route>(routed);
    Result<json::object> result = co_await CallService(svc, route.operation,
                                                       std::move(route.input));
    if (!result.ok()) {
      if (result.status().code() == Code::kServer) {
        LOG_ERROR("{} failed: {}", route.operation, result.status().message());
      } else {
        LOG_DEBUG("{} refused: {}", route.operation, result.status().message());
      }
      co_return StatusResponse(result.status());
    }
    co_return JsonResponse(result.value());
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(opts.max_body_bytes);
      stream.expires_after(std::chrono::seconds(opts.idle_timeout_seconds));
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
      if (ec == http::error::body_limit) {
        HttpResponse r = ErrorResponse(413, "ClientException", "The request body is too large");
        co_await Write(stream, r, 11, false);
        break;
      }
      if (ec) break;  // closed, timed out or malformed: drop the connection
      http::request<http::string_body> raw = parser.release();
      HttpRequest req;
      req.method = std::string(raw.method_string());
      req.target = std::string(raw.target());
      for (const auto& f : raw) {
        req.headers.push_back({std::string(f.name_string()), std::string(f.value())});
      }
      req.body = std::move(raw.body());
      stream.expires_never();
      HttpResponse resp = co_await Handle(req);
      bool keep_alive = raw.keep_alive();
      if (!co_await Write(stream, resp, raw.version(), keep_alive)) break;
      if (!keep_alive) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  asio::awaitable<bool> Write(beast::tcp_stream& stream, HttpResponse& resp, unsigned version,
                              bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(resp.status), version};
    res.set(http::field::server, "drover");
    res.set(http::field::date, HttpDate(clock.NowMillis()));
    res.set("x-amzn-RequestId", ids.Uuid());
    for (const auto& h : resp.headers) res.set(h.name, h.value);
    res.body() = std::move(resp.body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    stream.expires_after(std::chrono::seconds(opts.idle_timeout_seconds));
    auto [ec, n] = co_await http::async_write(stream, res, kTuple);
    co_return !ec;
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kTuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        LOG_WARN("accept failed: {}", ec.message());
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(acceptor.get_executor(), Session(std::move(socket)), asio::detached);
    }
  }
};

ApiServer::ApiServer(ApiOptions opts, service::BatchService& svc, const logs::LogsService* logs,
                     Clock& clock, IdGenerator& ids)
    : impl_(std::make_unique<Impl>(std::move(opts), svc, logs, clock, ids)) {}

ApiServer::~ApiServer() = default;

Result<int> ApiServer::Listen(const std::string& host, int port) {
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return Status::Client("invalid listen address '" + host + "': " + ec.message());
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Server("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                          ec.message());
  }
  asio::co_spawn(impl_->io, impl_->Accept(), asio::detached);
  return static_cast<int>(a.local_endpoint().port());
}

void ApiServer::Run(int threads) {
  std::vector<std::thread> extra;
  for (int i = 1; i < threads; ++i) extra.emplace_back([this] { impl_->io.run(); });
  impl_->io.run();
  for (auto& t : extra) t.join();
}

void ApiServer::Stop() {
  asio::post(impl_->io, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->io.stop();
  });
}

}  // namespace drover::api
