// ARNs in AWS format: arn:aws:batch:<region>:<account>:<kind>/<name>[:<revision>].
//
// Thread-safety: Arns is immutable after construction.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace drover::service {

struct ParsedArn {
  std::string region, account, kind, resource;  // resource: "name" or "name:revision"
};

class Arns {
 public:
  Arns(std::string region, std::string account)
      : region_(std::move(region)), account_(std::move(account)) {}
  std::string Make(std::string_view kind, std::string_view resource) const;
  // Parses any batch ARN; nullopt when `s` is not one.
  static std::optional<ParsedArn> Parse(std::string_view s);
  const std::string& region() const { return region_; }
  const std::string& account() const { return account_; }

 private:
  std::string region_, account_;
};

}  // namespace drover::service
