#include "service/arn.h"

namespace drover::service {

std::string Arns::Make(std::string_view kind, std::string_view resource) const {
  std::string out = "arn:aws:batch:";
  out.append(region_).append(":").append(account_).append(":");
  out.append(kind).append("/").append(resource);
  return out;
}

std::optional<ParsedArn> Arns::Parse(std::string_view s) {
  // arn:partition:service:region:account:kind/resource
  std::string_view parts[5];
  for (auto& p : parts) {
    size_t c = s.find(':');
    if (c == std::string_view::npos) return std::nullopt;
    p = s.substr(0, c);
    s.remove_prefix(c + 1);
  }
  if (parts[0] != "arn" || parts[2] != "batch" || parts[1].empty()) return std::nullopt;
  size_t slash = s.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size()) return std::nullopt;
  return ParsedArn{std::string(parts[3]), std::string(parts[4]), std::string(s.substr(0, slash)),
                   std::string(s.substr(slash + 1))};
}

}  // namespace drover::service
