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
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <ctime>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "api/api.h"
#include "api/handler.h"
#include "api/router.h"
#include "auth/sigv4.h"
#include "common/log.h"
#include "common/thread.h"

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

  // Every open connection, so that Stop() can close the idle ones and wait for
  // the others to be answered. A connection's coroutine runs on its own strand;
  // `reading` (true while it waits for the first bytes of a request, i.e. idle)
  // is touched only there.
  struct Conn {
    explicit Conn(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    bool reading = false;
  };
  std::mutex conns_mu;
  std::unordered_set<std::shared_ptr<Conn>> conns;  // guarded by conns_mu
  bool stopping = false;                              // guarded by conns_mu
  asio::steady_timer drain_timer{io};

  Impl(ApiOptions o, service::BatchService& s, const logs::LogsService* l, Clock& c,
       IdGenerator& i)
      : opts(std::move(o)), svc(s), logs(l), clock(c), ids(i) {}

  // The plain part (auth, Logs, routing) is in handler.cc; only the call into
  // the service, which may complete on the store's writer thread, is awaited.
  asio::awaitable<HttpResponse> Handle(const HttpRequest& req) {
    auto prepared = PrepareRequest(req, RequestContext{opts, svc, logs, clock.NowMillis()});
    if (auto* resp = std::get_if<HttpResponse>(&prepared)) co_return std::move(*resp);
    Route& route = std::get<Route>(prepared);
    Result<json::object> result = co_await CallService(svc, route.operation,
                                                       std::move(route.input));
    co_return ServiceResponse(route.operation, result);
  }

  bool Stopping() {
    std::lock_guard<std::mutex> l(conns_mu);
    return stopping;
  }

  asio::awaitable<void> Session(std::shared_ptr<Conn> conn) {
    beast::tcp_stream& stream = conn->stream;
    beast::flat_buffer buffer;
    while (!Stopping()) {
      RequestParser parser;
      ConfigureParser(parser, opts);
      stream.expires_after(std::chrono::seconds(opts.idle_timeout_seconds));
      if (buffer.size() == 0) {  // idle until the next request's first bytes
        conn->reading = true;
        auto [ec, n] = co_await stream.async_read_some(buffer.prepare(16 * 1024), kTuple);
        conn->reading = false;
        if (ec) break;
        buffer.commit(n);
      }
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
      if (ec) {  // 413/431 for a body/headers over the limit; closed, timed out or malformed: drop
        if (auto r = ReadErrorResponse(ec)) co_await Write(stream, *r, 11, false);
        break;
      }
      BeastRequest raw = parser.release();
      HttpRequest req = FromBeast(raw);
      stream.expires_never();
      HttpResponse resp = co_await Handle(req);
      bool keep_alive = raw.keep_alive() && !Stopping();
      if (!co_await Write(stream, resp, raw.version(), keep_alive)) break;
      if (!keep_alive) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    std::lock_guard<std::mutex> l(conns_mu);
    conns.erase(conn);
    if (stopping && conns.empty()) io.stop();  // the last answer of a graceful stop is out
  }

  // One connection too many: answered at once, without reading its request.
  asio::awaitable<void> Refuse(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    HttpResponse r = ErrorResponse(429, "TooManyRequestsException",
                                   "Too many connections (" +
                                       std::to_string(opts.max_connections) + "); retry");
    co_await Write(stream, r, 11, false);
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
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
      auto strand = asio::make_strand(io);  // the new connection's own
      auto [ec, socket] = co_await acceptor.async_accept(strand, kTuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        LOG_WARN("accept failed: {}", ec.message());
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      std::shared_ptr<Conn> conn;
      {
        std::lock_guard<std::mutex> l(conns_mu);
        if (stopping) co_return;
        if (conns.size() < opts.max_connections) {
          conn = std::make_shared<Conn>(std::move(socket));
          conns.insert(conn);
        }
      }
      if (conn) {
        asio::co_spawn(strand, Session(std::move(conn)), asio::detached);
      } else {
        asio::co_spawn(strand, Refuse(std::move(socket)), asio::detached);
      }
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
  for (int i = 1; i < threads; ++i) {
    extra.emplace_back([this] {
      SetThreadName("drover-http");
      impl_->io.run();
    });
  }
  impl_->io.run();
  for (auto& t : extra) t.join();
}

// A graceful stop: no new connections; idle ones are closed; a request being
// read or served is answered (with Connection: close) before its connection
// closes. Run() returns when the last one closed, or after drain_seconds.
void ApiServer::Stop() {
  asio::post(impl_->io, [this] {
    Impl& im = *impl_;
    beast::error_code ec;
    im.acceptor.close(ec);
    std::lock_guard<std::mutex> l(im.conns_mu);
    im.stopping = true;
    if (im.conns.empty()) return im.io.stop();
    for (const auto& conn : im.conns) {
      asio::post(conn->stream.get_executor(), [conn] {
        if (conn->reading) conn->stream.cancel();  // idle between requests: close it
      });
    }
    im.drain_timer.expires_after(std::chrono::seconds(im.opts.drain_seconds));
    im.drain_timer.async_wait([&im](const beast::error_code& e) {
      if (!e) {
        LOG_WARN("stopping with requests still unanswered after {} s", im.opts.drain_seconds);
        im.io.stop();
      }
    });
  });
}

}  // namespace drover::api
