// AWS Signature Version 4: verifying signed requests (and signing them).
//
// Thread-safety: every function here is a pure function of its arguments and
// keeps no state, so all of them may be called concurrently from any number of
// threads. Verify() calls the SecretLookup it is given on the calling thread;
// a lookup shared between threads must itself be safe for concurrent use.
//
// Verify() implements the header form of SigV4 ("Authorization:
// AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...") exactly
// as AWS's non-S3 services check it, so that requests signed by botocore (AWS
// CLI v1/v2, boto3) and the JavaScript SDK v3 verify. Its failures carry AWS's
// error type, HTTP status and message text, ready for the API layer to render
// as {"__type": type, "message": message}. Presigned (query-string) requests
// are not supported.
//
// No function in this module lets an exception escape: Verify() reports an
// internal failure (including one thrown by the SecretLookup) as an AuthError
// with status 500, and the helpers return an empty value.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace drover::auth {

// One HTTP header as received: name in any case, value untrimmed. A header sent
// several times appears several times.
struct Header {
  std::string name;
  std::string value;
};

// The parts of an HTTP request that SigV4 covers. Views; nothing is copied.
struct RequestView {
  std::string_view method;  // "POST", exactly as received.
  // Raw request-target exactly as received: path plus optional "?query", still
  // percent-encoded (an absolute-form target "http://host/path" is accepted too).
  std::string_view target;
  const std::vector<Header>* headers = nullptr;  // nullptr means no headers.
  std::string_view body;
};

// Why a request was refused.
struct AuthError {
  std::string type;     // AWS error type, e.g. "InvalidSignatureException".
  int http_status;      // 400 or 403 (500 only for an internal failure).
  std::string message;  // AWS's message text.
};

// Who signed a request that verified.
struct Identity {
  std::string access_key_id;
};

// Returns the secret for an access key id, or nullopt when the key is unknown.
using SecretLookup = std::function<std::optional<std::string>(std::string_view access_key_id)>;

struct VerifyOptions {
  std::string region;                 // e.g. "us-east-1": the scope must name it.
  std::vector<std::string> services;  // Accepted scope services, e.g. {"batch", "logs"}.
  int64_t now_ms = 0;                 // Injected clock, ms since the Unix epoch.
  int64_t max_skew_ms = 15 * 60 * 1000;
};

// Checks the request's SigV4 Authorization header. Returns the signer's identity,
// or the AWS error to answer with:
//   MissingAuthenticationTokenException 403  no Authorization header;
//   IncompleteSignatureException 400         malformed header, missing part or date;
//   UnrecognizedClientException 403          unknown access key id;
//   InvalidSignatureException 403            wrong signature, scope, or clock skew.
std::variant<Identity, AuthError> Verify(const RequestView& req, const SecretLookup& lookup,
                                         const VerifyOptions& opts);

struct SigningInput {
  std::string method;  // "POST"
  std::string target;  // Path plus optional "?query", percent-encoded as it will be sent.
  std::string body;
  std::string host;  // Host header value, with ":port" when not the default.
  std::string region;
  std::string service;
  std::string access_key_id;
  std::string secret;
  int64_t now_ms = 0;
  // Sent and signed too, e.g. content-type and x-amz-target. Entries named host,
  // x-amz-date or authorization are ignored (the signer sets those).
  std::vector<Header> extra_headers;
};

// Returns the headers to send, signed the way botocore signs: "host",
// "x-amz-date", the extra headers (names as given), then "authorization". Every
// returned header except authorization is signed. Returns an empty vector only
// on internal failure (out of memory).
std::vector<Header> Sign(const SigningInput& in);

// Helpers exposed for tests and other modules.

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// Raw (32-byte) HMAC-SHA256 of `data` under `key`.
std::string HmacSha256(std::string_view key, std::string_view data);

// The canonical URI of a raw (still percent-encoded) path, as botocore and the
// JS SDK compute it for non-S3 services: "." and ".." segments and empty
// segments are removed, then every segment is URI-encoded again (so "%3A"
// becomes "%253A"), unreserved characters A-Za-z0-9-_.~ staying as they are.
// An empty path is "/".
std::string CanonicalUri(std::string_view raw_path);

// The canonical query string of a raw query (without the "?"): pairs are
// percent-decoded and re-encoded strictly (space as %20, "+" kept as %2B), a key
// without "=" gets an empty value, and pairs are sorted by key then value.
std::string CanonicalQuery(std::string_view raw_query);

// Formats ms since the epoch (UTC) as ISO 8601 basic, e.g. "20150830T123600Z".
std::string FormatAmzDate(int64_t ms);

// Parses "20150830T123600Z", or an RFC 1123 "Date" header such as
// "Sun, 30 Aug 2015 12:36:00 GMT" (zone GMT, UTC, UT, Z or +-hhmm), into ms
// since the epoch. Returns nullopt when `s` is neither.
std::optional<int64_t> ParseAmzDate(std::string_view s);

}  // namespace drover::auth
