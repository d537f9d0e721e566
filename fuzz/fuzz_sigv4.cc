// fuzz_sigv4: SigV4 Authorization-header parsing and verification.
//
// Input (text): line 1 the method, line 2 the request-target (path?query),
// then "Name: value" header lines up to an empty line, then the body. The
// request is verified (auth::Verify) with access key AKIDEXAMPLE known, the
// clock at 2015-08-30T12:36:00Z, region us-east-1, service batch; the URI,
// query and date helpers run on its parts too. Then, for a request a real
// client could send (token method, printable target and header values), the
// request is signed with auth::Sign and must verify: signer and verifier
// agree.
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/sigv4.h"
#include "fuzz/fuzz_util.h"

namespace {

using drover::auth::Header;
constexpr int64_t kNow = 1440938160000;  // 2015-08-30T12:36:00Z
constexpr std::string_view kKey = "AKIDEXAMPLE";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

std::string_view Line(std::string_view& in) {
  size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  if (line.ends_with('\r')) line.remove_suffix(1);
  return line;
}

bool Printable(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

bool Token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!std::isalnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string method(Line(in));
  std::string target(Line(in));
  std::vector<Header> headers;
  while (!in.empty()) {
    std::string_view line = Line(in);
    if (line.empty()) break;
    size_t colon = line.find(':');
    headers.push_back({std::string(line.substr(0, colon)),
                       colon == std::string_view::npos ? "" : std::string(line.substr(colon + 1))});
  }
  std::string body(in);

  auth::SecretLookup lookup = [](std::string_view id) -> std::optional<std::string> {
    if (id == kKey) return std::string(kSecret);
    return std::nullopt;
  };
  auth::VerifyOptions opts{"us-east-1", {"batch"}, kNow};
  auth::RequestView view{method, target, &headers, body};
  auto verdict = auth::Verify(view, lookup, opts);
  if (auto* err = std::get_if<auth::AuthError>(&verdict)) {
    fuzz::Trace(err->type + ": " + err->message);
    fuzz::Check(err->http_status == 400 || err->http_status == 403,
                "internal failure: " + err->type + ": " + err->message);
    fuzz::Check(!err->type.empty() && !err->message.empty(), "empty error");
  } else {
    fuzz::Trace("verified");
    fuzz::Check(std::get<auth::Identity>(verdict).access_key_id == kKey, "wrong identity");
  }

  std::string_view path = std::string_view(target).substr(0, target.find('?'));
  std::string uri = auth::CanonicalUri(path);
  fuzz::Check(uri.starts_with('/') || !path.starts_with('/'), "canonical URI lost its leading /");
  if (path.size() < target.size()) auth::CanonicalQuery(target.substr(path.size() + 1));
  for (const Header& h : headers) {
    if (auto ms = auth::ParseAmzDate(h.value)) auth::FormatAmzDate(*ms);
  }

  // Round trip: what we sign, we verify.
  bool sane = Token(method) && target.starts_with('/') && Printable(target) &&
              target.find(' ') == std::string::npos;
  std::vector<Header> extra;
  for (const Header& h : headers) {
    std::string lower = h.name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.starts_with("x-amz-") || lower == "host" || lower == "authorization" ||
        lower == "date") {
      continue;
    }
    sane &= Token(h.name) && Printable(h.value);
    extra.push_back(h);
  }
  if (sane) {
    auth::SigningInput s{method, target, body, "localhost:8080", "us-east-1", "batch",
                         std::string(kKey), std::string(kSecret), kNow, extra};
    std::vector<Header> signed_headers = auth::Sign(s);
    auth::RequestView signed_view{method, target, &signed_headers, body};
    auto v = auth::Verify(signed_view, lookup, opts);
    auto* err = std::get_if<auth::AuthError>(&v);
    fuzz::Check(!err, err ? "signed request refused: " + err->type + ": " + err->message : "");
  }
  return 0;
}
