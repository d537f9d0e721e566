#include "client/client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "auth/sigv4.h"

namespace drover::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// The value of `key` in section [section] of an INI file ("" when absent).
std::string IniValue(const std::string& text, const std::string& section, const std::string& key) {
  std::istringstream in(text);
  std::string line, current;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      current = Trim(line.substr(1, line.size() - 2));
      if (current.rfind("profile ", 0) == 0) current = Trim(current.substr(8));
      continue;
    }
    size_t eq = line.find('=');
    if (current == section && eq != std::string::npos && Trim(line.substr(0, eq)) == key) {
      return Trim(line.substr(eq + 1));
    }
  }
  return "";
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Result<Endpoint> Discover(const std::string& endpoint_flag, const std::string& data_dir) {
  Endpoint ep;
  std::string dir = data_dir.empty() ? "./drover-data" : data_dir;
  if (!endpoint_flag.empty()) ep.url = endpoint_flag;
  else if (!Env("DROVER_ENDPOINT").empty()) ep.url = Env("DROVER_ENDPOINT");
  else if (auto f = ReadFile(dir + "/endpoint")) ep.url = Trim(*f);
  ep.access_key_id = Env("AWS_ACCESS_KEY_ID");
  ep.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
  if (ep.access_key_id.empty()) {
    std::string file = Env("AWS_SHARED_CREDENTIALS_FILE");
    if (file.empty()) file = dir + "/credentials";
    std::string profile = Env("AWS_PROFILE").empty() ? "default" : Env("AWS_PROFILE");
    if (auto f = ReadFile(file)) {
      ep.access_key_id = IniValue(*f, profile, "aws_access_key_id");
      ep.secret_access_key = IniValue(*f, profile, "aws_secret_access_key");
    }
  }
  if (ep.access_key_id.empty() || ep.secret_access_key.empty()) {
    return Status::Client("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                          "point --data at the server's data dir (its credentials file)");
  }
  if (!Env("AWS_REGION").empty()) ep.region = Env("AWS_REGION");
  else if (!Env("AWS_DEFAULT_REGION").empty()) ep.region = Env("AWS_DEFAULT_REGION");
  else if (auto f = ReadFile(dir + "/config")) {
    std::string r = IniValue(*f, "default", "region");
    if (!r.empty()) ep.region = r;
  }
  if (ep.url.rfind("http://", 0) != 0) {
    return Status::Client("endpoint '" + ep.url + "' must start with http://");
  }
  while (!ep.url.empty() && ep.url.back() == '/') ep.url.pop_back();
  return ep;
}

namespace {

// One signed request as HTTP/1.1 bytes (SigV4 over the exact body sent).
std::string EncodeRequest(const Endpoint& ep, int64_t now_ms, const std::string& target,
                          const std::string& body, const std::string& service,
                          const std::string& content_type, const std::string& amz_target) {
  std::string hostport = ep.url.substr(7);
  hostport = hostport.substr(0, hostport.find('/'));
  auth::SigningInput in;
  in.method = "POST";
  in.target = target;
  in.body = body;
  in.host = hostport;
  in.region = ep.region;
  in.service = service;
  in.access_key_id = ep.access_key_id;
  in.secret = ep.secret_access_key;
  in.now_ms = now_ms;
  in.extra_headers.push_back({"content-type", content_type});
  if (!amz_target.empty()) in.extra_headers.push_back({"x-amz-target", amz_target});
  std::string out;
  out.reserve(512 + body.size());
  out.append("POST ").append(target).append(" HTTP/1.1\r\n");
  for (const auto& h : auth::Sign(in)) out.append(h.name).append(": ").append(h.value).append("\r\n");
  out.append("content-length: ").append(std::to_string(body.size())).append("\r\n\r\n");
  out.append(body);
  return out;
}

}  // namespace

std::string EncodeBatchRequest(const Endpoint& ep, int64_t now_ms, std::string_view operation,
                               const json::object& input) {
  return EncodeRequest(ep, now_ms, "/v1/" + Lower(operation), ToJson(input), "batch",
                       "application/json", "");
}

struct Client::Conn {
  asio::io_context io;
  beast::tcp_stream stream{io};
  bool open = false;
};

Client::Client(Endpoint ep, Clock& clock)
    : ep_(std::move(ep)), clock_(clock), conn_(std::make_unique<Conn>()) {}

Client::~Client() = default;

Result<json::object> Client::Batch(std::string_view operation, const json::object& input) {
  return Send("/v1/" + Lower(operation), ToJson(input), "batch", "application/json", "");
}

Result<json::object> Client::Logs(std::string_view operation, const json::object& input) {
  return Send("/", ToJson(input), "logs", "application/x-amz-json-1.1",
              "Logs_20140328." + std::string(operation));
}

Result<json::object> Client::Send(const std::string& target, const std::string& body,
                                  const std::string& service, const std::string& content_type,
                                  const std::string& amz_target) {
  std::string hostport = ep_.url.substr(7);
  hostport = hostport.substr(0, hostport.find('/'));
  size_t colon = hostport.rfind(':');
  std::string host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  std::string port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const std::string request =
      EncodeRequest(ep_, clock_.NowMillis(), target, body, service, content_type, amz_target);

  for (int tries = 0; tries < 2; ++tries) {
    beast::error_code ec;
    if (!conn_->open) {
      tcp::resolver resolver(conn_->io);
      auto results = resolver.resolve(host, port, ec);
      if (!ec) conn_->stream.connect(results, ec);
      if (ec) return Status::Server("cannot connect to " + ep_.url + ": " + ec.message());
      conn_->open = true;
    }
    asio::write(conn_->stream, asio::buffer(request), ec);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    if (!ec) http::read(conn_->stream, buf, res, ec);
    if (ec) {  // a kept-alive connection the server closed: reconnect once
      conn_->stream.close();
      conn_->open = false;
      if (tries == 0) continue;
      return Status::Server("request to " + ep_.url + " failed: " + ec.message());
    }
    if (!res.keep_alive()) {
      conn_->stream.close();
      conn_->open = false;
    }
    auto parsed = ParseJson(res.body().empty() ? std::string_view("{}") : res.body());
    json::object obj = parsed.ok() && parsed->is_object() ? parsed->as_object() : json::object();
    if (res.result_int() >= 300) {
      last_error_.status = static_cast<int>(res.result_int());
      last_error_.type = std::string(res["x-amzn-ErrorType"]);
      if (last_error_.type.empty()) last_error_.type = std::string(GetString(obj, "__type").value_or("Error"));
      last_error_.message = std::string(GetString(obj, "message").value_or(res.body()));
      std::string msg = last_error_.type + ": " + last_error_.message;
      return res.result_int() >= 500 ? Status::Server(msg) : Status::Client(msg);
    }
    return obj;
  }
  return Status::Server("unreachable");
}

}  // namespace drover::client
