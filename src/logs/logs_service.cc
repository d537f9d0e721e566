// LogsService: the CloudWatch Logs read operations over a LogStore.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <deque>
#include <exception>
#include <initializer_list>
#include <queue>
#include <set>

#include <boost/json/serialize.hpp>

#include "common/base64.h"
#include "logs/internal.h"
#include "logs/logs.h"

namespace drover::logs {

namespace {

constexpr const char* kNoGroup = "The specified log group does not exist.";
constexpr const char* kBadToken = "The specified nextToken is invalid.";
constexpr const char* kGroupChoice =
    "You must include either logGroupIdentifier or logGroupName, but not both.";
// A page holds at most 1 MB of events, each counted as its message plus 26 bytes.
constexpr int64_t kPageBytes = 1048576;
constexpr int64_t kEventOverhead = 26;
constexpr int64_t kMaxEventsLimit = 10000;
constexpr int64_t kMaxDescribeLimit = 50;

int64_t Cost(const std::string& message) {
  return static_cast<int64_t>(message.size()) + kEventOverhead;
}

std::string Utf8(const std::string& s) {
  return internal::IsValidUtf8(s) ? s : ValidUtf8(s);
}

// ---- request validation, with AWS's "N validation errors detected" texts ----

bool IsGroupName(std::string_view s) {  // [\.\-_/#A-Za-z0-9]+
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
           c == '/' || c == '#';
  });
}
constexpr std::string_view kGroupNamePattern = "[\\.\\-_/#A-Za-z0-9]+";

bool IsGroupIdentifier(std::string_view s) {  // [\w#+=/:,.@-]*
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("_#+=/:,.@-").find(c) != std::string_view::npos;
  });
}
constexpr std::string_view kGroupIdentifierPattern = "[\\w#+=/:,.@-]*";

bool IsStreamName(std::string_view s) {  // [^:*]*
  return s.find_first_of(":*") == std::string_view::npos;
}
constexpr std::string_view kStreamNamePattern = "[^:*]*";

class Params {
 public:
  using Check = bool (*)(std::string_view);
  explicit Params(const json::object& o) : o_(o) {}

  void Require(std::string_view key) {
    if (!Find(key)) {
      errors_.push_back("Value null at '" + std::string(key) +
                        "' failed to satisfy constraint: Member must not be null");
    }
  }

  std::optional<std::string> Str(std::string_view key, size_t min, size_t max,
                                 Check check = nullptr, std::string_view pattern = {}) {
    const json::value* v = Find(key);
    if (!v) return std::nullopt;
    return CheckString(*v, std::string(key), min, max, check, pattern);
  }

  std::optional<std::string> Enum(std::string_view key,
                                  std::initializer_list<std::string_view> values) {
    auto s = Str(key, 0, SIZE_MAX);
    if (!s) return s;
    if (std::find(values.begin(), values.end(), *s) != values.end()) return s;
    std::string set;
    for (std::string_view v : values) set += (set.empty() ? "" : ", ") + std::string(v);
    Fail(std::string(key), Quote(*s), "Member must satisfy enum value set: [" + set + "]");
    return std::nullopt;
  }

  std::optional<int64_t> Int(std::string_view key, int64_t min, int64_t max) {
    const json::value* v = Find(key);
    if (!v) return std::nullopt;
    std::optional<int64_t> n;
    if (v->is_int64()) {
      n = v->get_int64();
    } else if (v->is_uint64()) {
      if (v->get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
        n = static_cast<int64_t>(v->get_uint64());
      }
    } else if (v->is_double()) {
      double d = v->get_double();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) {
        n = static_cast<int64_t>(d);
      }
    }
    if (!n) {
      Fail(std::string(key), Quote(*v), "Member must be an integer");
      return std::nullopt;
    }
    if (*n < min) {
      Fail(std::string(key), Quote(*v),
           "Member must have value greater than or equal to " + std::to_string(min));
      return std::nullopt;
    }
    if (*n > max) {
      Fail(std::string(key), Quote(*v),
           "Member must have value less than or equal to " + std::to_string(max));
      return std::nullopt;
    }
    return n;
  }

  std::optional<bool> Bool(std::string_view key) {
    const json::value* v = Find(key);
    if (!v) return std::nullopt;
    if (!v->is_bool()) {
      Fail(std::string(key), Quote(*v), "Member must be a boolean");
      return std::nullopt;
    }
    return v->get_bool();
  }

  std::optional<std::vector<std::string>> StrList(std::string_view key, size_t min, size_t max,
                                                  size_t emin, size_t emax, Check check,
                                                  std::string_view pattern) {
    const json::value* v = Find(key);
    if (!v) return std::nullopt;
    if (!v->is_array()) {
      Fail(std::string(key), "", "Member must be a list");
      return std::nullopt;
    }
    const json::array& a = v->get_array();
    if (a.size() < min) {
      Fail(std::string(key), "",
           "Member must have length greater than or equal to " + std::to_string(min));
    }
    if (a.size() > max) {
      Fail(std::string(key), "",
           "Member must have length less than or equal to " + std::to_string(max));
    }
    std::vector<std::string> out;
    bool ok = a.size() >= min && a.size() <= max;
    for (size_t i = 0; i < a.size(); ++i) {
      std::string path = std::string(key) + "." + std::to_string(i + 1) + ".member";
      if (a[i].is_null()) {
        errors_.push_back("Value null at '" + path +
                          "' failed to satisfy constraint: Member must not be null");
        ok = false;
        continue;
      }
      auto s = CheckString(a[i], path, emin, emax, check, pattern);
      if (!s) {
        ok = false;
        continue;
      }
      out.push_back(std::move(*s));
    }
    if (!ok) return std::nullopt;
    return out;
  }

  Status Done() const {
    if (errors_.empty()) return Status::Ok();
    std::string msg =
        std::to_string(errors_.size()) +
        (errors_.size() == 1 ? " validation error detected: " : " validation errors detected: ");
    for (size_t i = 0; i < errors_.size(); ++i) msg += (i ? "; " : "") + errors_[i];
    return Status::Client(msg);
  }

 private:
  const json::value* Find(std::string_view key) const {
    auto it = o_.find(key);
    if (it == o_.end() || it->value().is_null()) return nullptr;  // null is absent
    return &it->value();
  }

  static std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }
  static std::string Quote(const json::value& v) {
    return v.is_string() ? Quote(std::string_view(v.get_string())) : Quote(json::serialize(v));
  }

  void Fail(const std::string& path, const std::string& quoted, const std::string& constraint) {
    errors_.push_back("Value " + (quoted.empty() ? std::string() : quoted + " ") + "at '" + path +
                      "' failed to satisfy constraint: " + constraint);
  }

  std::optional<std::string> CheckString(const json::value& v, const std::string& path, size_t min,
                                         size_t max, Check check, std::string_view pattern) {
    if (!v.is_string()) {
      Fail(path, Quote(v), "Member must be a string");
      return std::nullopt;
    }
    std::string s(v.get_string());
    size_t before = errors_.size();
    if (s.size() < min) {
      Fail(path, Quote(s),
           "Member must have length greater than or equal to " + std::to_string(min));
    }
    if (s.size() > max) {
      Fail(path, Quote(s), "Member must have length less than or equal to " + std::to_string(max));
    }
    if (check && !check(s)) {
      Fail(path, Quote(s),
           "Member must satisfy regular expression pattern: " + std::string(pattern));
    }
    if (errors_.size() != before) return std::nullopt;
    return s;
  }

  const json::object& o_;
  std::vector<std::string> errors_;
};

struct GroupParams {
  std::optional<std::string> name, identifier;
};

GroupParams ReadGroupParams(Params& p) {
  GroupParams g;
  g.name = p.Str("logGroupName", 1, 512, IsGroupName, kGroupNamePattern);
  g.identifier = p.Str("logGroupIdentifier", 1, 2048, IsGroupIdentifier, kGroupIdentifierPattern);
  return g;
}

// ---- tokens ----

// GetLogEvents: "f/<offset>/s" (forward from offset) or "b/<offset>/s" (backward from offset),
// the offset as 20 digits, in the spirit of CloudWatch's "f/3196...0130/s".
std::string EventsToken(char dir, int64_t offset) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%c/%020lld/s", dir, static_cast<long long>(offset));
  return buf;
}

bool ParseEventsToken(std::string_view t, char& dir, int64_t& offset) {
  if (t.size() != 24 || (t[0] != 'f' && t[0] != 'b') || t[1] != '/' || t.substr(22) != "/s") {
    return false;
  }
  std::string_view digits = t.substr(2, 20);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), offset);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return false;
  dir = t[0];
  return true;
}

// Other tokens: base64 of tab-separated fields, the first naming the operation.
std::string FieldsToken(std::initializer_list<std::string_view> fields) {
  std::string raw;
  for (std::string_view f : fields) {
    if (!raw.empty()) raw += '\t';
    raw += f;
  }
  return Base64Encode(raw);
}

std::optional<std::vector<std::string>> ParseFieldsToken(std::string_view token,
                                                         std::string_view kind, size_t n) {
  auto raw = Base64Decode(token);
  if (!raw) return std::nullopt;
  std::vector<std::string> fields;
  size_t pos = 0;
  for (;;) {
    size_t tab = raw->find('\t', pos);
    if (fields.size() + 1 == n) tab = std::string::npos;  // the last field may hold tabs
    fields.push_back(raw->substr(pos, tab == std::string::npos ? std::string::npos : tab - pos));
    if (tab == std::string::npos) break;
    pos = tab + 1;
  }
  if (fields.size() != n || fields[0] != kind) return std::nullopt;
  return fields;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// eventId: 20 digits of a 64-bit FNV-1a hash of the stream name, then the event's
// offset in 20 digits: stable across calls and as streams come and go.
std::string EventId(std::string_view stream, int64_t offset) {
  uint64_t h = 14695981039346656037ull;
  for (char c : stream) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "%020llu%020lld", static_cast<unsigned long long>(h),
                static_cast<long long>(offset));
  return buf;
}

// ---- filter patterns ----

// The term syntax of CloudWatch filter patterns for unstructured events:
// whitespace-separated terms that must all appear (case-sensitive substrings),
// "quoted phrases" (with \" and \\ escapes), ?term (at least one of the ?-terms
// must appear) and -term (must not appear). An empty pattern matches everything.
class FilterPattern {
 public:
  static Result<FilterPattern> Parse(std::string_view text) {
    FilterPattern p;
    size_t i = 0;
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (i < text.size() && space(text[i])) ++i;
    if (i < text.size() && (text[i] == '{' || text[i] == '[' || text[i] == '%')) {
      const char* kind = text[i] == '{'   ? "JSON filter patterns ({ $.field ... })"
                         : text[i] == '[' ? "space-delimited filter patterns ([a, b, ...])"
                                          : "regular-expression filter patterns (%...%)";
      return Status::Client(std::string("Drover does not support ") + kind +
                            " yet: use terms, \"quoted phrases\", ?term or -term");
    }
    while (i < text.size()) {
      if (space(text[i])) {
        ++i;
        continue;
      }
      char mode = 0;
      if (text[i] == '?' || text[i] == '-') mode = text[i++];
      std::string term;
      if (i < text.size() && text[i] == '"') {
        ++i;
        bool closed = false;
        while (i < text.size()) {
          char c = text[i++];
          if (c == '\\' && i < text.size()) {
            term += text[i++];
          } else if (c == '"') {
            closed = true;
            break;
          } else {
            term += c;
          }
        }
        if (!closed) return Status::Client("Invalid filter pattern: a quoted term is not closed");
        if (i < text.size() && !space(text[i])) {
          return Status::Client(
              "Invalid filter pattern: a quoted term must be followed by a space");
        }
      } else {
        while (i < text.size() && !space(text[i])) term += text[i++];
      }
      if (term.empty()) {
        if (mode == 0) continue;  // ""
        return Status::Client(std::string("Invalid filter pattern: '") + mode +
                              "' must be followed by a term");
      }
      (mode == '?' ? p.any_ : mode == '-' ? p.none_ : p.all_).push_back(std::move(term));
    }
    return p;
  }

  bool Matches(std::string_view message) const {
    for (const auto& t : all_) {
      if (message.find(t) == std::string_view::npos) return false;
    }
    for (const auto& t : none_) {
      if (message.find(t) != std::string_view::npos) return false;
    }
    if (any_.empty()) return true;
    return std::any_of(any_.begin(), any_.end(), [&](const std::string& t) {
      return message.find(t) != std::string_view::npos;
    });
  }

 private:
  std::vector<std::string> all_, any_, none_;
};

json::object OutputEvent(const LogEvent& e) {
  json::object o;
  o["timestamp"] = e.timestamp_ms;
  o["message"] = Utf8(e.message);
  o["ingestionTime"] = e.ingestion_ms;
  return o;
}

bool HasEvents(const LogStore::StreamInfo& s) { return s.last_ingestion_ms != 0; }

}  // namespace

LogsService::LogsService(const LogStore& store, std::string region, std::string account)
    : store_(store), region_(std::move(region)), account_(std::move(account)) {}

Result<json::object> LogsService::Call(std::string_view op, const json::value& request) const {
  try {
    static const json::object kEmpty;
    const json::object* req = &kEmpty;
    if (request.is_object()) {
      req = &request.get_object();
    } else if (!request.is_null()) {
      return Status::Client("The request body must be a JSON object");
    }
    if (op == "GetLogEvents") return GetLogEvents(*req);
    if (op == "FilterLogEvents") return FilterLogEvents(*req);
    if (op == "DescribeLogStreams") return DescribeLogStreams(*req);
    if (op == "DescribeLogGroups") return DescribeLogGroups(*req);
    return Status::Client(std::string(kUnknownOperationPrefix) + "Drover does not support " +
                          std::string(op) +
                          ": its CloudWatch Logs endpoint serves job output through "
                          "GetLogEvents, FilterLogEvents, DescribeLogStreams and "
                          "DescribeLogGroups");
  } catch (const std::exception& e) {
    return Status::Server(std::string("logs: ") + e.what());
  }
}

std::string LogsService::GroupArn(std::string_view group) const {
  return "arn:aws:logs:" + region_ + ":" + account_ + ":log-group:" + std::string(group);
}

Result<std::string> LogsService::ResolveGroup(const std::optional<std::string>& name,
                                              const std::optional<std::string>& identifier) const {
  if (name.has_value() == identifier.has_value()) return Status::Client(kGroupChoice);
  if (name) return *name;
  std::string_view id = *identifier;
  if (!id.starts_with("arn:")) return std::string(id);
  // arn:<partition>:logs:<region>:<account>:log-group:<name> (the model's pattern has no '*')
  std::vector<std::string_view> parts;
  size_t pos = 0;
  for (int i = 0; i < 5; ++i) {
    size_t colon = id.find(':', pos);
    if (colon == std::string_view::npos) break;
    parts.push_back(id.substr(pos, colon - pos));
    pos = colon + 1;
  }
  std::string_view resource = id.substr(pos);
  if (parts.size() != 5 || parts[2] != "logs" || !resource.starts_with("log-group:")) {
    return Status::Client("logGroupIdentifier '" + std::string(id) +
                          "' is neither a log group name nor a log group ARN");
  }
  std::string_view group = resource.substr(10);
  if (group.empty() || !IsGroupName(group)) {
    return Status::Client("logGroupIdentifier '" + std::string(id) +
                          "' is not a valid log group ARN");
  }
  if (parts[3] != region_ || parts[4] != account_) return Status::NotFound(kNoGroup);
  return std::string(group);
}

// ---- GetLogEvents ----

Result<json::object> LogsService::GetLogEvents(const json::object& req) const {
  Params p(req);
  GroupParams g = ReadGroupParams(p);
  p.Require("logStreamName");
  auto stream = p.Str("logStreamName", 1, 512, IsStreamName, kStreamNamePattern);
  auto start = p.Int("startTime", 0, INT64_MAX);
  auto end = p.Int("endTime", 0, INT64_MAX);
  auto token = p.Str("nextToken", 1, SIZE_MAX);
  auto limit = p.Int("limit", 1, kMaxEventsLimit);
  auto head = p.Bool("startFromHead");
  p.Bool("unmask");
  DROVER_RETURN_IF_ERROR(p.Done());
  DROVER_ASSIGN_OR_RETURN(std::string group, ResolveGroup(g.name, g.identifier));

  const int64_t lo = start.value_or(INT64_MIN);  // inclusive
  const int64_t hi = end.value_or(INT64_MAX);    // exclusive
  const size_t max_events = static_cast<size_t>(limit.value_or(kMaxEventsLimit));
  char dir = head.value_or(false) ? 'f' : 'b';
  int64_t pos = -1;  // -1: no token (from the head, or from the newest event)
  if (token) {
    if (!ParseEventsToken(*token, dir, pos)) return Status::Client(kBadToken);
  }
  auto bad_token = [](const Status& s) {
    return s.code() == Code::kClient ? Status::Client(kBadToken) : s;
  };

  struct Entry {
    LogEvent event;
    int64_t next;
  };
  std::deque<Entry> page;
  int64_t bytes = 0;
  int64_t scan_end = 0;
  if (dir == 'f') {
    // The first events at or after pos.
    auto r = store_.Scan(group, *stream, pos < 0 ? 0 : pos, [&](const LogEvent& e, int64_t next) {
      if (e.timestamp_ms < lo) return true;
      if (e.timestamp_ms >= hi) return false;  // file order is time order
      if (!page.empty() && bytes + Cost(e.message) > kPageBytes) return false;
      bytes += Cost(e.message);
      page.push_back({e, next});
      return page.size() < max_events;
    });
    if (!r.ok()) return bad_token(r.status());
    scan_end = *r;
  } else {
    // The last events before pos (before the end without a token).
    if (pos >= 0) {
      auto r = store_.Scan(group, *stream, pos, [](const LogEvent&, int64_t) { return false; });
      if (!r.ok()) return bad_token(r.status());
    }
    auto r = store_.Scan(group, *stream, 0, [&](const LogEvent& e, int64_t next) {
      if (pos >= 0 && e.offset >= pos) return false;
      if (e.timestamp_ms < lo) return true;
      if (e.timestamp_ms >= hi) return false;
      bytes += Cost(e.message);
      page.push_back({e, next});
      while (page.size() > max_events || (page.size() > 1 && bytes > kPageBytes)) {
        bytes -= Cost(page.front().event.message);
        page.pop_front();
      }
      return true;
    });
    if (!r.ok()) return r.status();
    scan_end = *r;
  }

  json::object out;
  json::array events;
  events.reserve(page.size());
  for (const Entry& e : page) events.push_back(OutputEvent(e.event));
  out["events"] = std::move(events);
  std::string forward, backward;
  if (!page.empty()) {
    forward = EventsToken('f', page.back().next);
    backward = EventsToken('b', page.front().event.offset);
  } else if (token) {  // at the end: the same token again
    forward = dir == 'f' ? *token : EventsToken('f', pos);
    backward = dir == 'b' ? *token : EventsToken('b', pos);
  } else {
    int64_t at = dir == 'f' ? 0 : scan_end;
    forward = EventsToken('f', at);
    backward = EventsToken('b', at);
  }
  out["nextForwardToken"] = forward;
  out["nextBackwardToken"] = backward;
  return out;
}

// ---- FilterLogEvents ----

Result<json::object> LogsService::FilterLogEvents(const json::object& req) const {
  Params p(req);
  GroupParams g = ReadGroupParams(p);
  auto names = p.StrList("logStreamNames", 1, 100, 1, 512, IsStreamName, kStreamNamePattern);
  auto prefix = p.Str("logStreamNamePrefix", 1, 512, IsStreamName, kStreamNamePattern);
  auto start = p.Int("startTime", 0, INT64_MAX);
  auto end = p.Int("endTime", 0, INT64_MAX);
  auto pattern_text = p.Str("filterPattern", 0, 1024);
  auto token = p.Str("nextToken", 1, SIZE_MAX);
  auto limit = p.Int("limit", 1, kMaxEventsLimit);
  p.Bool("interleaved");
  p.Bool("unmask");
  DROVER_RETURN_IF_ERROR(p.Done());
  if (names && prefix) {
    return Status::Client(
        "logStreamNames and logStreamNamePrefix cannot both be specified: use one of them");
  }
  DROVER_ASSIGN_OR_RETURN(std::string group, ResolveGroup(g.name, g.identifier));
  DROVER_ASSIGN_OR_RETURN(FilterPattern pattern, FilterPattern::Parse(pattern_text.value_or("")));

  // Resume strictly after the key (timestamp, stream, offset) of the last event sent.
  struct Key {
    int64_t ts;
    std::string_view stream;
    int64_t offset;
    auto operator<=>(const Key&) const = default;
  };
  std::optional<Key> after;
  std::string token_stream;
  if (token) {
    auto f = ParseFieldsToken(*token, "e1", 4);
    std::optional<int64_t> ts, off;
    if (f) {
      ts = ParseInt((*f)[1]);
      off = ParseInt((*f)[2]);
    }
    if (!f || !ts || !off || *off < 0) return Status::Client(kBadToken);
    token_stream = (*f)[3];
    after = Key{*ts, token_stream, *off};
  }

  DROVER_ASSIGN_OR_RETURN(std::vector<LogStore::StreamInfo> streams, store_.Streams(group));
  std::set<std::string, std::less<>> wanted;
  if (names) wanted.insert(names->begin(), names->end());

  const int64_t lo = start.value_or(INT64_MIN);  // inclusive
  const int64_t hi = end.value_or(INT64_MAX);    // inclusive
  const size_t max_events = static_cast<size_t>(limit.value_or(kMaxEventsLimit));

  // The smallest keys seen, trimmed to what can still be on this page plus one
  // (which tells whether there is a next page).
  struct Candidate {
    Key key;
    LogEvent event;
  };
  auto cmp = [](const Candidate& a, const Candidate& b) { return a.key < b.key; };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(cmp)> heap(cmp);
  int64_t bytes = 0;

  for (const LogStore::StreamInfo& s : streams) {
    if (names && !wanted.contains(s.name)) continue;
    if (prefix && !s.name.starts_with(*prefix)) continue;
    if (!HasEvents(s) || s.last_event_ms < lo || s.first_event_ms > hi) continue;
    if (after && Key{s.last_event_ms, s.name, INT64_MAX} < *after) continue;
    // Earlier events of the token's own stream all sort before the token.
    int64_t from = after && after->stream == s.name ? after->offset : 0;
    auto r = store_.Scan(group, s.name, from, [&](const LogEvent& e, int64_t) {
      if (e.timestamp_ms < lo) return true;
      if (e.timestamp_ms > hi) return false;  // file order is time order
      Key key{e.timestamp_ms, s.name, e.offset};
      if (after && key <= *after) return true;
      if (!heap.empty() && heap.top().key < key &&
          (heap.size() > max_events || bytes > kPageBytes)) {
        return false;  // full, and the rest of this stream sorts later still
      }
      if (!pattern.Matches(e.message)) return true;
      bytes += Cost(e.message);
      heap.push({key, e});
      while (heap.size() > max_events + 1 ||
             (heap.size() > 1 && bytes - Cost(heap.top().event.message) > kPageBytes)) {
        bytes -= Cost(heap.top().event.message);
        heap.pop();
      }
      return true;
    });
    if (!r.ok()) {
      if (r.status().code() == Code::kNotFound) continue;  // pruned meanwhile
      if (r.status().code() == Code::kClient) return Status::Client(kBadToken);
      return r.status();
    }
  }

  std::vector<Candidate> sorted;
  sorted.reserve(heap.size());
  while (!heap.empty()) {
    sorted.push_back(std::move(const_cast<Candidate&>(heap.top())));
    heap.pop();
  }
  std::reverse(sorted.begin(), sorted.end());
  json::array events;
  int64_t page_bytes = 0;
  size_t n = 0;
  for (; n < sorted.size() && n < max_events; ++n) {
    int64_t c = Cost(sorted[n].event.message);
    if (n > 0 && page_bytes + c > kPageBytes) break;
    page_bytes += c;
    const Candidate& cand = sorted[n];
    json::object o;
    o["logStreamName"] = std::string(cand.key.stream);
    o["timestamp"] = cand.event.timestamp_ms;
    o["message"] = Utf8(cand.event.message);
    o["ingestionTime"] = cand.event.ingestion_ms;
    o["eventId"] = EventId(cand.key.stream, cand.event.offset);
    events.push_back(std::move(o));
  }
  json::object out;
  out["events"] = std::move(events);
  out["searchedLogStreams"] = json::array();  // deprecated by AWS: always empty
  if (n < sorted.size()) {  // more events: only then a nextToken (the paginators rely on it)
    const Candidate& last = sorted[n - 1];
    out["nextToken"] = FieldsToken(
        {"e1", std::to_string(last.key.ts), std::to_string(last.key.offset), last.key.stream});
  }
  return out;
}

// ---- DescribeLogStreams ----

Result<json::object> LogsService::DescribeLogStreams(const json::object& req) const {
  Params p(req);
  GroupParams g = ReadGroupParams(p);
  auto prefix = p.Str("logStreamNamePrefix", 1, 512, IsStreamName, kStreamNamePattern);
  auto order = p.Enum("orderBy", {"LogStreamName", "LastEventTime"});
  auto descending = p.Bool("descending");
  auto token = p.Str("nextToken", 1, SIZE_MAX);
  auto limit = p.Int("limit", 1, kMaxDescribeLimit);
  DROVER_RETURN_IF_ERROR(p.Done());
  bool by_time = order.value_or("LogStreamName") == "LastEventTime";
  if (by_time && prefix) {
    return Status::Client("Cannot order by LastEventTime with a logStreamNamePrefix.");
  }
  DROVER_ASSIGN_OR_RETURN(std::string group, ResolveGroup(g.name, g.identifier));
  DROVER_ASSIGN_OR_RETURN(std::vector<LogStore::StreamInfo> streams, store_.Streams(group));

  using Key = std::pair<int64_t, std::string_view>;  // (lastEventTimestamp or 0, name)
  auto key_of = [&](const LogStore::StreamInfo& s) {
    return Key{by_time ? s.last_event_ms : 0, s.name};
  };
  std::vector<const LogStore::StreamInfo*> selected;
  for (const auto& s : streams) {
    if (!prefix || s.name.starts_with(*prefix)) selected.push_back(&s);
  }
  std::sort(selected.begin(), selected.end(),
            [&](const auto* a, const auto* b) { return key_of(*a) < key_of(*b); });
  const bool desc = descending.value_or(false);
  if (desc) std::reverse(selected.begin(), selected.end());

  const std::string kind = std::string("s1") + (by_time ? "t" : "n") + (desc ? "d" : "a");
  size_t i = 0;
  if (token) {
    auto f = ParseFieldsToken(*token, kind, 3);
    std::optional<int64_t> ts;
    if (f) ts = ParseInt((*f)[1]);
    if (!f || !ts) return Status::Client(kBadToken);
    Key after{*ts, (*f)[2]};
    while (i < selected.size() &&
           (desc ? key_of(*selected[i]) >= after : key_of(*selected[i]) <= after)) {
      ++i;
    }
  }
  const size_t max_items = static_cast<size_t>(limit.value_or(kMaxDescribeLimit));
  json::array items;
  const LogStore::StreamInfo* last = nullptr;
  for (; i < selected.size() && items.size() < max_items; ++i) {
    const LogStore::StreamInfo& s = *selected[i];
    json::object o;
    o["logStreamName"] = s.name;
    o["creationTime"] = s.creation_ms;
    if (HasEvents(s)) {
      o["firstEventTimestamp"] = s.first_event_ms;
      o["lastEventTimestamp"] = s.last_event_ms;
      o["lastIngestionTime"] = s.last_ingestion_ms;
    }
    o["arn"] = GroupArn(group) + ":log-stream:" + s.name;
    o["storedBytes"] = s.stored_bytes;
    items.push_back(std::move(o));
    last = &s;
  }
  json::object out;
  out["logStreams"] = std::move(items);
  if (i < selected.size() && last) {
    Key k = key_of(*last);
    out["nextToken"] = FieldsToken({kind, std::to_string(k.first), k.second});
  }
  return out;
}

// ---- DescribeLogGroups ----

Result<json::object> LogsService::DescribeLogGroups(const json::object& req) const {
  Params p(req);
  p.StrList("accountIdentifiers", 0, 20, 12, 12, nullptr, {});
  auto prefix = p.Str("logGroupNamePrefix", 1, 512, IsGroupName, kGroupNamePattern);
  auto substring = p.Str("logGroupNamePattern", 0, 512, IsGroupName, kGroupNamePattern);
  auto token = p.Str("nextToken", 1, SIZE_MAX);
  auto limit = p.Int("limit", 1, kMaxDescribeLimit);
  p.Bool("includeLinkedAccounts");
  auto group_class = p.Enum("logGroupClass", {"STANDARD", "INFREQUENT_ACCESS", "DELIVERY"});
  auto identifiers =
      p.StrList("logGroupIdentifiers", 1, 50, 1, 2048, IsGroupIdentifier, kGroupIdentifierPattern);
  DROVER_RETURN_IF_ERROR(p.Done());
  if (prefix && substring) {
    return Status::Client(
        "logGroupNamePrefix and logGroupNamePattern are mutually exclusive. Only one of these "
        "parameters can be passed.");
  }
  if (identifiers && (prefix || substring)) {
    return Status::Client(
        "logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern.");
  }
  std::set<std::string, std::less<>> wanted;
  if (identifiers) {
    for (const std::string& id : *identifiers) {
      auto name = ResolveGroup(std::nullopt, id);
      if (name.ok()) {
        wanted.insert(*name);
      } else if (name.status().code() != Code::kNotFound) {
        return name.status();
      }
    }
  }

  DROVER_ASSIGN_OR_RETURN(std::vector<std::string> groups, store_.Groups());
  size_t i = 0;
  if (token) {
    auto f = ParseFieldsToken(*token, "g1", 2);
    if (!f) return Status::Client(kBadToken);
    i = std::upper_bound(groups.begin(), groups.end(), (*f)[1]) - groups.begin();
  }
  auto keep = [&](const std::string& name) {
    if (group_class && *group_class != "STANDARD") return false;  // all of Drover's are STANDARD
    if (identifiers && !wanted.contains(name)) return false;
    if (prefix && !name.starts_with(*prefix)) return false;
    if (substring && name.find(*substring) == std::string::npos) return false;
    return true;
  };
  const size_t max_items = static_cast<size_t>(limit.value_or(kMaxDescribeLimit));
  json::array items;
  std::string last;
  for (; i < groups.size(); ++i) {
    if (!keep(groups[i])) continue;
    if (items.size() == max_items) break;
    auto info = store_.Group(groups[i]);
    if (!info.ok()) {
      if (info.status().code() == Code::kNotFound) continue;  // pruned meanwhile
      return info.status();
    }
    json::object o;
    o["logGroupName"] = groups[i];
    o["creationTime"] = info->creation_ms;
    if (!substring) {
      o["metricFilterCount"] = 0;
      o["storedBytes"] = info->stored_bytes;
      o["logGroupClass"] = "STANDARD";
      o["logGroupArn"] = GroupArn(groups[i]);
    }
    o["arn"] = GroupArn(groups[i]) + ":*";
    items.push_back(std::move(o));
    last = groups[i];
  }
  json::object out;
  out["logGroups"] = std::move(items);
  if (i < groups.size() && !last.empty()) out["nextToken"] = FieldsToken({"g1", last});
  return out;
}

// ---- errors ----

LogsError ToLogsError(const Status& s) {
  switch (s.code()) {
    case Code::kNotFound:
      return {400, "ResourceNotFoundException", s.message()};
    case Code::kClient:
      if (s.message().starts_with(kUnknownOperationPrefix)) {
        return {400, "UnknownOperationException",
                s.message().substr(kUnknownOperationPrefix.size())};
      }
      return {400, "InvalidParameterException", s.message()};
    case Code::kThrottled:
      return {400, "ThrottlingException", s.message()};
    case Code::kAlreadyExists:
      return {400, "ResourceAlreadyExistsException", s.message()};
    case Code::kServer:
      return {500, "ServiceUnavailableException", s.message()};
    case Code::kOk:
      break;
  }
  return {500, "ServiceUnavailableException", "internal error: no error to report"};
}

}  // namespace drover::logs
