#include <charconv>

#include "server/server.h"

namespace drover::server {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<std::vector<CredentialEntry>> ParseCredentials(std::string_view text) {
  std::vector<CredentialEntry> out;
  CredentialEntry cur;
  int line_no = 0;
  auto flush = [&]() -> Status {
    if (cur.profile.empty()) return Status::Ok();
    if (cur.access_key_id.empty() != cur.secret_access_key.empty()) {
      return Status::Client("profile [" + cur.profile +
                            "] needs both aws_access_key_id and aws_secret_access_key");
    }
    if (!cur.access_key_id.empty()) out.push_back(cur);
    return Status::Ok();
  };
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') {
        return Status::Client("credentials line " + std::to_string(line_no) +
                              ": unterminated section header");
      }
      DROVER_RETURN_IF_ERROR(flush());
      cur = CredentialEntry{std::string(Trim(line.substr(1, line.size() - 2))), "", ""};
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return Status::Client("credentials line " + std::to_string(line_no) + ": expected key = value");
    }
    std::string_view key = Trim(line.substr(0, eq));
    std::string_view value = Trim(line.substr(eq + 1));
    if (key == "aws_access_key_id") cur.access_key_id = value;
    if (key == "aws_secret_access_key") cur.secret_access_key = value;
  }
  DROVER_RETURN_IF_ERROR(flush());
  return out;
}

std::string RenderCredentials(const std::string& id, const std::string& secret) {
  return "[default]\naws_access_key_id = " + id + "\naws_secret_access_key = " + secret + "\n";
}

Result<std::pair<std::string, int>> ParseListen(std::string_view listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status::Client("--listen must be HOST:PORT, got '" + std::string(listen) + "'");
  }
  std::string_view host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string_view port_s = listen.substr(colon + 1);
  int port = -1;
  auto [p, ec] = std::from_chars(port_s.data(), port_s.data() + port_s.size(), port);
  if (ec != std::errc() || p != port_s.data() + port_s.size() || port < 0 || port > 65535) {
    return Status::Client("--listen port must be 0-65535, got '" + std::string(port_s) + "'");
  }
  return std::pair{std::string(host), port};
}

}  // namespace drover::server
