#include "auth/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <memory>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <utility>

namespace drover::auth {

namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kTerminator = "aws4_request";
constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
constexpr int64_t kMsPerSecond = 1000;
constexpr int64_t kMsPerDay = 86400 * kMsPerSecond;

// ---------------------------------------------------------------- strings

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

bool IsWs(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsWs(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsWs(s.back())) s.remove_suffix(1);
  return s;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// SigV4's Trimall: leading and trailing whitespace removed, inner runs of
// whitespace collapsed to one space (botocore: ' '.join(value.split())).
std::string CanonicalHeaderValue(std::string_view v) {
  v = Trim(v);
  std::string out;
  out.reserve(v.size());
  bool in_ws = false;
  for (char c : v) {
    if (IsWs(c)) {
      in_ws = true;
      continue;
    }
    if (in_ws) out.push_back(' ');
    in_ws = false;
    out.push_back(c);
  }
  return out;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    auto b = static_cast<unsigned char>(ch);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

// Appends `in` URI-encoded the SigV4 way: unreserved characters as they are,
// every other byte as %XX with upper-case hex.
void AppendUriEncoded(std::string_view in, std::string* out) {
  static constexpr char kHexUpper[] = "0123456789ABCDEF";
  for (char ch : in) {
    auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c)) {
      out->push_back(ch);
    } else {
      out->push_back('%');
      out->push_back(kHexUpper[c >> 4]);
      out->push_back(kHexUpper[c & 0xf]);
    }
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; a '%' not followed by two hex digits is kept literally,
// and '+' stays '+' (SigV4 clients encode a space as %20).
std::string PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// Splits a request-target into its path and query (without '?'); drops a
// fragment, and the scheme and authority of an absolute-form target.
void SplitTarget(std::string_view target, std::string_view* path, std::string_view* query) {
  if (size_t hash = target.find('#'); hash != std::string_view::npos) {
    target = target.substr(0, hash);
  }
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() &&
        EqualsIgnoreCase(target.substr(0, scheme.size()), scheme)) {
      target.remove_prefix(scheme.size());
      size_t slash = target.find_first_of("/?");
      target = slash == std::string_view::npos ? std::string_view() : target.substr(slash);
      break;
    }
  }
  size_t q = target.find('?');
  if (q == std::string_view::npos) {
    *path = target;
    *query = std::string_view();
  } else {
    *path = target.substr(0, q);
    *query = target.substr(q + 1);
  }
}

// ---------------------------------------------------------------- dates

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, int64_t* m, int64_t* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yoe + era * 400 + (*m <= 2 ? 1 : 0);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int64_t DaysInMonth(int64_t y, int64_t m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at s[*pos], advancing *pos.
bool ReadDigits(std::string_view s, size_t* pos, size_t n, int64_t* out) {
  if (*pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[*pos + i];
    if (!IsDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}

std::optional<int64_t> ToMillis(int64_t y, int64_t mo, int64_t d, int64_t h, int64_t mi,
                                int64_t s) {
  if (mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, mo) || h > 23 || mi > 59 || s > 59) {
    return std::nullopt;
  }
  return (DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * kMsPerSecond;
}

std::optional<int64_t> ParseIsoBasic(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  size_t pos = 0;
  int64_t y, mo, d, h, mi, sec;
  if (!ReadDigits(s, &pos, 4, &y) || !ReadDigits(s, &pos, 2, &mo) || !ReadDigits(s, &pos, 2, &d)) {
    return std::nullopt;
  }
  pos = 9;
  if (!ReadDigits(s, &pos, 2, &h) || !ReadDigits(s, &pos, 2, &mi) ||
      !ReadDigits(s, &pos, 2, &sec)) {
    return std::nullopt;
  }
  return ToMillis(y, mo, d, h, mi, sec);
}

// RFC 1123: "Sun, 30 Aug 2015 12:36:00 GMT" (weekday optional; zone GMT, UTC,
// UT, Z or a numeric offset such as botocore's "-0000").
std::optional<int64_t> ParseRfc1123(std::string_view s) {
  static constexpr std::string_view kWeekdays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  s = Trim(s);
  if (size_t comma = s.find(','); comma != std::string_view::npos) {
    std::string_view wd = s.substr(0, comma);
    if (std::none_of(std::begin(kWeekdays), std::end(kWeekdays),
                     [&](std::string_view w) { return EqualsIgnoreCase(w, wd); })) {
      return std::nullopt;
    }
    s = Trim(s.substr(comma + 1));
  }
  std::vector<std::string_view> fields;
  for (std::string_view f : Split(s, ' ')) {
    if (!f.empty()) fields.push_back(f);
  }
  if (fields.size() != 5) return std::nullopt;
  // Day: one or two digits.
  int64_t day = 0;
  if (fields[0].empty() || fields[0].size() > 2) return std::nullopt;
  for (char c : fields[0]) {
    if (!IsDigit(c)) return std::nullopt;
    day = day * 10 + (c - '0');
  }
  int64_t month = 0;
  for (int i = 0; i < 12; ++i) {
    if (EqualsIgnoreCase(kMonths[i], fields[1])) month = i + 1;
  }
  if (month == 0) return std::nullopt;
  size_t pos = 0;
  int64_t year, h, mi, sec;
  if (fields[2].size() != 4 || !ReadDigits(fields[2], &pos, 4, &year)) return std::nullopt;
  std::string_view t = fields[3];
  pos = 0;
  if (t.size() != 8 || t[2] != ':' || t[5] != ':' || !ReadDigits(t, &pos, 2, &h)) {
    return std::nullopt;
  }
  pos = 3;
  if (!ReadDigits(t, &pos, 2, &mi)) return std::nullopt;
  pos = 6;
  if (!ReadDigits(t, &pos, 2, &sec)) return std::nullopt;
  int64_t offset_minutes = 0;
  std::string_view zone = fields[4];
  if (EqualsIgnoreCase(zone, "GMT") || EqualsIgnoreCase(zone, "UTC") ||
      EqualsIgnoreCase(zone, "UT") || zone == "Z") {
    offset_minutes = 0;
  } else if (zone.size() == 5 && (zone[0] == '+' || zone[0] == '-')) {
    int64_t zh, zm;
    pos = 1;
    if (!ReadDigits(zone, &pos, 2, &zh) || !ReadDigits(zone, &pos, 2, &zm) || zm > 59) {
      return std::nullopt;
    }
    offset_minutes = (zh * 60 + zm) * (zone[0] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  std::optional<int64_t> ms = ToMillis(year, month, day, h, mi, sec);
  if (!ms) return std::nullopt;
  return *ms - offset_minutes * 60 * kMsPerSecond;
}

std::string FormatAmzDateImpl(int64_t ms) {
  int64_t days = ms / kMsPerDay;
  int64_t rem = ms % kMsPerDay;
  if (rem < 0) {
    rem += kMsPerDay;
    --days;
  }
  int64_t y, m, d;
  CivilFromDays(days, &y, &m, &d);
  const int64_t secs = rem / kMsPerSecond;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld%02lld%02lldT%02lld%02lld%02lldZ",
                static_cast<long long>(y), static_cast<long long>(m), static_cast<long long>(d),
                static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                static_cast<long long>(secs % 60));
  return buf;
}

// ---------------------------------------------------------------- crypto

// OpenSSL 3 looks an algorithm up in its provider tables on every EVP_Digest or
// HMAC() call (a lock, a hash lookup, a context allocated and freed): more than
// the hashing of a request's few hundred bytes. The algorithms are fetched once
// and each thread reuses its contexts.
const EVP_MD* Sha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

std::string Sha256Raw(std::string_view data) {
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                           &EVP_MD_CTX_free);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (ctx == nullptr || Sha256() == nullptr || EVP_DigestInit_ex2(ctx.get(), Sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), md, &len) != 1) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

// A thread's HMAC-SHA256 context, its digest set once (EVP_MAC_init then only
// takes the key).
EVP_MAC_CTX* HmacContext() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  thread_local std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(
      [] {
        EVP_MAC_CTX* c = mac ? EVP_MAC_CTX_new(mac) : nullptr;
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                               OSSL_PARAM_construct_end()};
        if (c != nullptr && EVP_MAC_CTX_set_params(c, params) != 1) {
          EVP_MAC_CTX_free(c);
          c = nullptr;
        }
        return c;
      }(),
      &EVP_MAC_CTX_free);
  return ctx.get();
}

std::string HmacRaw(std::string_view key, std::string_view data) {
  EVP_MAC_CTX* ctx = HmacContext();
  unsigned char md[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (ctx == nullptr ||
      EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                   nullptr) != 1 ||
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1 ||
      EVP_MAC_final(ctx, md, &len, sizeof md) != 1) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

// ---------------------------------------------------------------- canonical request

std::string CanonicalUriImpl(std::string_view raw_path) {
  if (raw_path.empty()) return "/";
  // botocore's remove_dot_segments (also dropping empty segments), on the raw path.
  std::vector<std::string_view> segments;
  for (std::string_view seg : Split(raw_path, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
      continue;
    }
    segments.push_back(seg);
  }
  std::string out;
  out.reserve(raw_path.size() + raw_path.size() / 2);
  if (raw_path.front() == '/') out.push_back('/');
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out.push_back('/');
    AppendUriEncoded(segments[i], &out);
  }
  if (raw_path.back() == '/' && !segments.empty()) out.push_back('/');
  if (out.empty()) out = "/";
  return out;
}

std::string CanonicalQueryImpl(std::string_view raw_query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (std::string_view pair : Split(raw_query, '&')) {
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    std::string k, v;
    AppendUriEncoded(PercentDecode(key), &k);
    AppendUriEncoded(PercentDecode(value), &v);
    pairs.emplace_back(std::move(k), std::move(v));
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [k, v] : pairs) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

bool QueryHasKey(std::string_view raw_query, std::string_view key) {
  for (std::string_view pair : Split(raw_query, '&')) {
    if (PercentDecode(pair.substr(0, pair.find('='))) == key) return true;
  }
  return false;
}

const Header* FindHeader(const std::vector<Header>& headers, std::string_view lname) {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, lname)) return &h;
  }
  return nullptr;
}

// The canonical value of header `lname`: every occurrence Trimall'ed, joined by ','.
std::string JoinedHeaderValue(const std::vector<Header>& headers, std::string_view lname) {
  std::string out;
  bool found = false;
  for (const Header& h : headers) {
    if (!EqualsIgnoreCase(h.name, lname)) continue;
    if (found) out.push_back(',');
    out += CanonicalHeaderValue(h.value);
    found = true;
  }
  // An HTTP/2 request carries the host as ":authority".
  if (!found && lname == "host") return JoinedHeaderValue(headers, ":authority");
  return out;
}

std::string PayloadHash(const std::vector<Header>& headers, std::string_view body) {
  const Header* h = FindHeader(headers, "x-amz-content-sha256");
  if (h != nullptr && Trim(h->value) == kUnsignedPayload) return std::string(kUnsignedPayload);
  return HexEncode(Sha256Raw(body));
}

// `signed_headers` is the SignedHeaders value, `names` its lower-cased entries.
std::string CanonicalRequest(std::string_view method, std::string_view target,
                             const std::vector<Header>& headers, std::string_view signed_headers,
                             const std::vector<std::string>& names, std::string_view body) {
  std::string_view path, query;
  SplitTarget(target, &path, &query);
  std::string out;
  out.reserve(256 + target.size() * 2);
  out.append(method).push_back('\n');
  out.append(CanonicalUriImpl(path)).push_back('\n');
  out.append(CanonicalQueryImpl(query)).push_back('\n');
  for (const std::string& name : names) {
    out.append(name).push_back(':');
    out.append(JoinedHeaderValue(headers, name)).push_back('\n');
  }
  out.push_back('\n');
  out.append(signed_headers).push_back('\n');
  out.append(PayloadHash(headers, body));
  return out;
}

// The signing key of a secret for one day, region and service: four HMACs, the
// same for every request of that day, so each thread keeps the last few.
const std::string& SigningKey(std::string_view secret, std::string_view scope_date,
                              std::string_view region, std::string_view service) {
  thread_local std::unordered_map<std::string, std::string> cache;
  std::string id;
  id.append(secret).push_back('\0');
  id.append(scope_date).push_back('\0');
  id.append(region).push_back('\0');
  id.append(service);
  if (auto it = cache.find(id); it != cache.end()) return it->second;
  if (cache.size() >= 64) cache.clear();
  std::string key = "AWS4";
  key.append(secret);
  std::string k_date = HmacRaw(key, scope_date);
  std::string k_region = HmacRaw(k_date, region);
  std::string k_service = HmacRaw(k_region, service);
  return cache[std::move(id)] = HmacRaw(k_service, kTerminator);
}

// The hex signature of `canonical_request` for the scope date/region/service.
std::string ComputeSignature(std::string_view secret, std::string_view amz_date,
                             std::string_view scope_date, std::string_view region,
                             std::string_view service, std::string_view canonical_request) {
  std::string scope;
  scope.append(scope_date).append("/").append(region).append("/").append(service).append("/");
  scope.append(kTerminator);
  std::string string_to_sign;
  string_to_sign.append(kAlgorithm).append("\n").append(amz_date).append("\n");
  string_to_sign.append(scope).append("\n").append(HexEncode(Sha256Raw(canonical_request)));
  return HexEncode(HmacRaw(SigningKey(secret, scope_date, region, service), string_to_sign));
}

// ---------------------------------------------------------------- verify

AuthError Missing() {
  return {"MissingAuthenticationTokenException", 403, "Missing Authentication Token"};
}
AuthError Incomplete(std::string message) {
  return {"IncompleteSignatureException", 400, std::move(message)};
}
AuthError Invalid(std::string message) {
  return {"InvalidSignatureException", 403, std::move(message)};
}

std::string SkewText(int64_t max_skew_ms) {
  if (max_skew_ms % 60000 == 0) return std::to_string(max_skew_ms / 60000) + " min.";
  return std::to_string(max_skew_ms / 1000) + " sec.";
}

std::variant<Identity, AuthError> VerifyImpl(const RequestView& req, const SecretLookup& lookup,
                                             const VerifyOptions& opts) {
  static const std::vector<Header> kNoHeaders;
  const std::vector<Header>& headers = req.headers != nullptr ? *req.headers : kNoHeaders;

  const Header* authz = FindHeader(headers, "authorization");
  if (authz == nullptr || Trim(authz->value).empty()) {
    std::string_view path, query;
    SplitTarget(req.target, &path, &query);
    if (QueryHasKey(query, "X-Amz-Algorithm")) {
      return Incomplete(
          "Query-string (presigned) authentication is not supported; sign the Authorization "
          "header instead.");
    }
    return Missing();
  }
  const std::string& raw = authz->value;
  std::string_view value = Trim(raw);

  // "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."
  size_t sp = 0;
  while (sp < value.size() && !IsWs(value[sp])) ++sp;
  std::string_view algorithm = value.substr(0, sp);
  if (algorithm != kAlgorithm) {
    return Incomplete("Unsupported AWS 'algorithm': '" + std::string(algorithm) + "'.");
  }
  std::optional<std::string_view> credential, signed_headers, signature;
  for (std::string_view part : Split(value.substr(sp), ',')) {
    part = Trim(part);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      return Incomplete("'" + std::string(part) +
                        "' not a valid key=value pair (missing equal-sign) in Authorization "
                        "header: '" +
                        raw + "'");
    }
    std::string_view k = Trim(part.substr(0, eq));
    std::string_view v = Trim(part.substr(eq + 1));
    if (v.empty()) continue;
    if (k == "Credential" && !credential) credential = v;
    if (k == "SignedHeaders" && !signed_headers) signed_headers = v;
    if (k == "Signature" && !signature) signature = v;
  }

  const Header* amz_date_header = FindHeader(headers, "x-amz-date");
  const Header* date_header =
      amz_date_header != nullptr ? amz_date_header : FindHeader(headers, "date");
  {
    std::string missing;
    if (!credential) missing += "Authorization header requires 'Credential' parameter. ";
    if (!signature) missing += "Authorization header requires 'Signature' parameter. ";
    if (!signed_headers) missing += "Authorization header requires 'SignedHeaders' parameter. ";
    if (date_header == nullptr) {
      missing +=
          "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
          "header. ";
    }
    if (!missing.empty()) return Incomplete(missing + "Authorization=" + raw);
  }

  std::vector<std::string> names;
  for (std::string_view n : Split(*signed_headers, ';')) names.push_back(ToLower(Trim(n)));
  auto is_signed = [&](std::string_view n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  if (!is_signed("host")) {
    return Invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }
  if (amz_date_header != nullptr && !is_signed("x-amz-date")) {
    return Invalid("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.");
  }
  if (amz_date_header == nullptr && !is_signed("date")) {
    return Invalid("'Date' must be a 'SignedHeader' in the AWS Authorization.");
  }

  std::string_view date_value = Trim(date_header->value);
  std::optional<int64_t> request_ms =
      amz_date_header != nullptr ? ParseIsoBasic(date_value) : ParseAmzDate(date_value);
  if (!request_ms) {
    return Incomplete("Date must be in ISO-8601 'basic format'. Got '" + std::string(date_value) +
                      "'. See http://en.wikipedia.org/wiki/ISO_8601");
  }
  const std::string amz_date = FormatAmzDateImpl(*request_ms);
  if (*request_ms < opts.now_ms - opts.max_skew_ms) {
    return Invalid("Signature expired: " + amz_date + " is now earlier than " +
                   FormatAmzDateImpl(opts.now_ms - opts.max_skew_ms) + " (" +
                   FormatAmzDateImpl(opts.now_ms) + " - " + SkewText(opts.max_skew_ms) + ")");
  }
  if (*request_ms > opts.now_ms + opts.max_skew_ms) {
    return Invalid("Signature not yet current: " + amz_date + " is still later than " +
                   FormatAmzDateImpl(opts.now_ms + opts.max_skew_ms) + " (" +
                   FormatAmzDateImpl(opts.now_ms) + " + " + SkewText(opts.max_skew_ms) + ")");
  }

  // Credential=AKID/20150830/us-east-1/batch/aws4_request
  std::vector<std::string_view> scope = Split(*credential, '/');
  if (scope.size() != 5) {
    return Incomplete(
        "Credential must have exactly 5 slash-delimited elements, e.g. "
        "keyid/date/region/service/term, got '" +
        std::string(*credential) + "'");
  }
  const std::string_view access_key_id = scope[0], scope_date = scope[1], region = scope[2],
                         service = scope[3], terminator = scope[4];
  std::string scope_errors;
  if (region != opts.region) scope_errors += "Credential should be scoped to a valid region. ";
  if (std::find(opts.services.begin(), opts.services.end(), service) == opts.services.end()) {
    scope_errors += "Credential should be scoped to correct service: '" +
                    (opts.services.empty() ? std::string() : opts.services.front()) + "'. ";
  }
  if (terminator != kTerminator) {
    scope_errors += "Credential should be scoped with a valid terminator: 'aws4_request', not '" +
                    std::string(terminator) + "'. ";
  }
  if (scope_date != std::string_view(amz_date).substr(0, 8)) {
    scope_errors +=
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '" +
        std::string(scope_date) + "' != '" + amz_date.substr(0, 8) + "', from '" + amz_date + "'. ";
  }
  if (!scope_errors.empty()) return Invalid(scope_errors);

  std::optional<std::string> secret = lookup ? lookup(access_key_id) : std::nullopt;
  if (!secret) {
    return AuthError{"UnrecognizedClientException", 403,
                     "The security token included in the request is invalid."};
  }

  const std::string canonical =
      CanonicalRequest(req.method, req.target, headers, *signed_headers, names, req.body);
  const std::string expected =
      ComputeSignature(*secret, amz_date, scope_date, region, service, canonical);
  const std::string provided = ToLower(*signature);
  if (expected.size() != 64 || provided.size() != expected.size() ||
      CRYPTO_memcmp(provided.data(), expected.data(), expected.size()) != 0) {
    return Invalid(
        "The request signature we calculated does not match the signature you provided. Check "
        "your AWS Secret Access Key and signing method. Consult the service documentation for "
        "details.");
  }
  return Identity{std::string(access_key_id)};
}

std::vector<Header> SignImpl(const SigningInput& in) {
  const std::string amz_date = FormatAmzDateImpl(in.now_ms);
  std::vector<Header> headers;
  headers.push_back({"host", in.host});
  headers.push_back({"x-amz-date", amz_date});
  for (const Header& h : in.extra_headers) {
    if (EqualsIgnoreCase(h.name, "host") || EqualsIgnoreCase(h.name, "x-amz-date") ||
        EqualsIgnoreCase(h.name, "authorization")) {
      continue;
    }
    headers.push_back(h);
  }
  std::vector<std::string> names;
  for (const Header& h : headers) names.push_back(ToLower(h.name));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::string signed_headers;
  for (const std::string& n : names) {
    if (!signed_headers.empty()) signed_headers.push_back(';');
    signed_headers += n;
  }
  const std::string scope_date = amz_date.substr(0, 8);
  const std::string canonical =
      CanonicalRequest(in.method, in.target, headers, signed_headers, names, in.body);
  const std::string signature =
      ComputeSignature(in.secret, amz_date, scope_date, in.region, in.service, canonical);
  std::string authorization(kAlgorithm);
  authorization += " Credential=" + in.access_key_id + "/" + scope_date + "/" + in.region + "/" +
                   in.service + "/" + std::string(kTerminator);
  authorization += ", SignedHeaders=" + signed_headers + ", Signature=" + signature;
  headers.push_back({"authorization", std::move(authorization)});
  return headers;
}

}  // namespace

std::variant<Identity, AuthError> Verify(const RequestView& req, const SecretLookup& lookup,
                                         const VerifyOptions& opts) {
  try {
    return VerifyImpl(req, lookup, opts);
  } catch (...) {
    try {
      return AuthError{"InternalFailure", 500,
                       "The request processing has failed because of an unknown error, exception "
                       "or failure."};
    } catch (...) {
      // Out of memory even for the error: an empty error still refuses the request.
      return std::variant<Identity, AuthError>(std::in_place_index<1>);
    }
  }
}

std::vector<Header> Sign(const SigningInput& in) {
  try {
    return SignImpl(in);
  } catch (...) {
    return {};
  }
}

std::string Sha256Hex(std::string_view data) {
  try {
    return HexEncode(Sha256Raw(data));
  } catch (...) {
    return {};
  }
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  try {
    return HmacRaw(key, data);
  } catch (...) {
    return {};
  }
}

std::string CanonicalUri(std::string_view raw_path) {
  try {
    return CanonicalUriImpl(raw_path);
  } catch (...) {
    return {};
  }
}

std::string CanonicalQuery(std::string_view raw_query) {
  try {
    return CanonicalQueryImpl(raw_query);
  } catch (...) {
    return {};
  }
}

std::string FormatAmzDate(int64_t ms) {
  try {
    return FormatAmzDateImpl(ms);
  } catch (...) {
    return {};
  }
}

std::optional<int64_t> ParseAmzDate(std::string_view s) {
  try {
    if (std::optional<int64_t> ms = ParseIsoBasic(s)) return ms;
    return ParseRfc1123(s);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace drover::auth
