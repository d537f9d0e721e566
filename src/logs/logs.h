// Logs: job output kept as CloudWatch-Logs-like streams in plain files, and
// the CloudWatch Logs operations that read them (GetLogEvents,
// FilterLogEvents, DescribeLogStreams, DescribeLogGroups).
//
// Thread-safety: a StreamWriter is safe for concurrent use (its calls are
// serialized by a mutex), but each stream must have one writer at a time:
// two writers on one stream would interleave their partial lines. Writers of
// different streams are independent. LogStore and LogsService hold no mutable
// state; they are safe for concurrent use, also while writers append (a
// reader sees a prefix of the stream and ignores a trailing partial line).
//
// On disk, under a root directory R, stream S of group G is the file
// R/<enc(G)>/<enc(S)>.log, where enc() percent-encodes every byte outside
// [A-Za-z0-9._-] ('/' becomes %2F; a name made only of dots is encoded
// entirely). Each event is one line, `<timestamp_ms>\t<ingestion_ms>\t<message>\n`.
// A message never contains '\n'; it is valid UTF-8 (the writer replaces
// invalid bytes with U+FFFD) and 1 to kMaxMessageBytes bytes long. The writer
// keeps timestamps non-decreasing in file order, so file order is time order:
// readers rely on it (first line = oldest, last line = newest). Lines that do
// not parse (e.g. a crash mid-write) are skipped by readers.
//
// A stream's file is made with its first event. A stream opened for writing
// before that is registered: a line "<enc(S)>\t<ms>\n" in one of 64 shards
// R/<enc(G)>/.streams/<2 hex digits> (FNV-1a of enc(S)), and readers take a
// registered stream without a file as existing and empty; <ms> is a stream's
// creation time (also once it has a file). A job that prints nothing so costs
// an append, not an inode.
//
// Errors: LogsService::Call returns Status codes that ToLogsError maps onto
// the Logs model's exceptions:
//   Code::kNotFound  -> ResourceNotFoundException (400)
//   Code::kClient    -> InvalidParameterException (400), except that a
//                       message starting with "UnknownOperationException: "
//                       (kUnknownOperationPrefix) is UnknownOperationException
//                       (400) with the prefix removed
//   Code::kThrottled -> ThrottlingException (400)
//   Code::kServer    -> ServiceUnavailableException (500)
// No exception escapes this module: Boost and std exceptions are caught and
// become kServer statuses.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"

namespace drover::logs {

// CloudWatch counts an event as its message bytes plus 26, and an event may be
// at most 256 KiB: longer lines are split into several events of at most this
// many bytes (at UTF-8 character boundaries), as Docker's awslogs driver does.
inline constexpr size_t kMaxMessageBytes = 262144 - 26;

// The percent-encoding of names on disk, and its inverse (nullopt when `enc`
// is not the canonical encoding of any name).
std::string EncodeName(std::string_view name);
std::optional<std::string> DecodeName(std::string_view enc);
// R/<enc(G)>/<enc(S)>.log
std::string StreamPath(std::string_view root, std::string_view group, std::string_view stream);

struct LogEvent {
  int64_t timestamp_ms = 0;
  int64_t ingestion_ms = 0;
  std::string message;
  int64_t offset = 0;  // byte offset of the line in its file: stable, used for tokens and eventIds
};

// Appends one stream's events.
class StreamWriter {
 public:
  // Opens stream S of group G for append: registers it (it exists, empty,
  // from now on) and, at the first output, opens or makes its file
  // R/<enc(G)>/<enc(S)>.log, so that a job that prints nothing costs no inode.
  // An existing file is continued (one that ends in a partial line, a crash
  // mid-write, is first ended with '\n' so that the new events start on a
  // line of their own). max_bytes caps the message bytes this writer writes;
  // 0 = no cap.
  static Result<std::unique_ptr<StreamWriter>> Open(const std::string& root,
                                                    const std::string& group,
                                                    const std::string& stream, uint64_t max_bytes,
                                                    Clock& clock);
  ~StreamWriter();  // Close()s if still open, ignoring errors.
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  // Feeds raw output bytes (a chunk from a pipe; may hold partial lines).
  // Complete lines become events stamped with clock.NowMillis() (the time the
  // line completed; never earlier than the stream's previous event). A '\r'
  // before '\n' is dropped; empty lines make no event (CloudWatch has no empty
  // messages); a partial line longer than kMaxMessageBytes is emitted in
  // kMaxMessageBytes pieces without waiting for its end. When the cap is
  // reached, writes what still fits, then one final event "[drover] output
  // truncated: this attempt exceeded its limit of N bytes", and drops the rest.
  Status Write(std::string_view bytes);
  // Flushes a trailing partial line as an event and closes the file. Call at
  // the end of the stream; later Write()s fail.
  Status Close();

  const std::string& path() const { return path_; }
  // Message bytes written so far (what the cap counts).
  uint64_t bytes_written() const;
  bool truncated() const;

 private:
  StreamWriter(std::string path, uint64_t max_bytes, Clock& clock);
  // Appends the event(s) for one complete message to `out` (no I/O).
  void AppendMessage(std::string_view raw, int64_t ts, std::string& out);
  Status Flush(const std::string& out);
  Status OpenFile();  // at the first output
  Status Continue();

  const std::string path_;
  const uint64_t max_bytes_;
  Clock& clock_;
  mutable std::mutex mu_;
  int fd_;                // -1 until the first output (and once closed)
  bool closed_ = false;
  std::string pending_;   // the current partial line
  uint64_t written_ = 0;  // message bytes written (counted against max_bytes_)
  bool truncated_ = false;
  int64_t last_ts_;  // timestamps never go backwards within a stream
};

// Reads streams from the files under `root`.
class LogStore {
 public:
  explicit LogStore(std::string root);

  struct StreamInfo {
    std::string name;
    int64_t creation_ms = 0;     // when it was opened (registered), else its first event's
                                 // ingestion time, else the file's mtime
    int64_t first_event_ms = 0;  // 0 when the stream has no events (nor the next two)
    int64_t last_event_ms = 0;
    int64_t last_ingestion_ms = 0;
    uint64_t stored_bytes = 0;  // file size
  };
  struct GroupInfo {
    std::string name;
    int64_t creation_ms = 0;  // oldest stream's creation time, else the directory's mtime
    uint64_t stored_bytes = 0;
  };

  const std::string& root() const { return root_; }
  // Group names, sorted. An absent root is no groups.
  Result<std::vector<std::string>> Groups() const;
  // NotFound ("The specified log group does not exist.") for an unknown group.
  Result<GroupInfo> Group(const std::string& group) const;
  // The group's streams, sorted by name. NotFound for an unknown group.
  Result<std::vector<StreamInfo>> Streams(const std::string& group) const;
  // NotFound ("... log group does not exist." / "... log stream does not exist.").
  Result<StreamInfo> Stream(const std::string& group, const std::string& stream) const;
  // Every complete event of the stream, in file order. NotFound as Stream().
  Result<std::vector<LogEvent>> ReadAll(const std::string& group, const std::string& stream) const;

  // Visits the stream's complete events in file order starting at byte
  // `from_offset` (0, or where a line starts: an event's offset or the
  // `next_offset` of one) until `visit` returns false. `next_offset` is where
  // the line after the event starts. Returns the offset just past the last line
  // read. A `from_offset` that is not a line start of the file as it is now is
  // a kClient status; an unknown group or stream is NotFound.
  using Visitor = std::function<bool(const LogEvent& event, int64_t next_offset)>;
  Result<int64_t> Scan(const std::string& group, const std::string& stream, int64_t from_offset,
                       const Visitor& visit) const;

  // Removes stream files last modified before cutoff_ms (retention), streams
  // registered before it that never had an event, and group directories this
  // leaves empty; returns how many streams it removed.
  Result<int> Prune(int64_t cutoff_ms) const;

 private:
  std::string root_;
};

// The CloudWatch Logs operations over a LogStore. Transport-free: requests and
// replies are JSON objects shaped as the Logs model (2014-03-28) says.
class LogsService {
 public:
  // region and account make the ARNs (arn:aws:logs:<region>:<account>:log-group:...).
  LogsService(const LogStore& store, std::string region, std::string account);

  // op is the operation name from X-Amz-Target (e.g. "GetLogEvents" from
  // "Logs_20140328.GetLogEvents"); request is the JSON body.
  Result<json::object> Call(std::string_view op, const json::value& request) const;

 private:
  Result<json::object> GetLogEvents(const json::object& req) const;
  Result<json::object> FilterLogEvents(const json::object& req) const;
  Result<json::object> DescribeLogStreams(const json::object& req) const;
  Result<json::object> DescribeLogGroups(const json::object& req) const;
  // The group named by logGroupName or logGroupIdentifier (a name or an ARN).
  Result<std::string> ResolveGroup(const std::optional<std::string>& name,
                                   const std::optional<std::string>& identifier) const;
  std::string GroupArn(std::string_view group) const;

  const LogStore& store_;
  const std::string region_, account_;
};

// How an UnknownOperationException travels in a kClient Status message.
inline constexpr std::string_view kUnknownOperationPrefix = "UnknownOperationException: ";

// The Logs model's view of a non-OK status from LogsService::Call.
struct LogsError {
  int http_status;
  std::string type;  // e.g. "ResourceNotFoundException"
  std::string message;
};
LogsError ToLogsError(const Status& s);

}  // namespace drover::logs
