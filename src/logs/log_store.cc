// StreamWriter and LogStore: the file format of log streams.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "logs/internal.h"
#include "logs/logs.h"

namespace drover::logs {

namespace fs = std::filesystem;

namespace {

constexpr const char* kNoGroup = "The specified log group does not exist.";
constexpr const char* kNoStream = "The specified log stream does not exist.";
constexpr std::string_view kSuffix = ".log";
constexpr size_t kMaxFileName = 255;  // NAME_MAX on Linux file systems

bool Plain(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower-case hex is not canonical
}

std::string ErrnoText(std::string_view what, const std::string& path, int err) {
  return std::string(what) + " " + path + ": " + std::strerror(err);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads up to n bytes at off (fewer only at end of file).
Result<size_t> ReadAt(int fd, int64_t off, char* dst, size_t n, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, dst + got, n - got, static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::Server(ErrnoText("reading", path, errno));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::Server(ErrnoText("writing", path, errno));
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  return Status::Ok();
}

int64_t MtimeMs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

// Position of the last '\n' in [0, before), or -1.
Result<int64_t> FindNewlineBefore(int fd, int64_t before, const std::string& path) {
  constexpr int64_t kBlock = 64 * 1024;
  std::string buf;
  while (before > 0) {
    int64_t start = std::max<int64_t>(0, before - kBlock);
    buf.resize(static_cast<size_t>(before - start));
    DROVER_ASSIGN_OR_RETURN(size_t got, ReadAt(fd, start, buf.data(), buf.size(), path));
    buf.resize(got);
    const void* p = ::memrchr(buf.data(), '\n', buf.size());
    if (p) return start + (static_cast<const char*>(p) - buf.data());
    before = start;
  }
  return int64_t{-1};
}

Result<int64_t> ScanFd(int fd, int64_t size, int64_t from, const LogStore::Visitor& visit,
                       const std::string& path) {
  if (from < 0 || from > size) {
    return Status::Client("offset " + std::to_string(from) + " is beyond the end of " + path);
  }
  if (from > 0) {
    char c = 0;
    DROVER_ASSIGN_OR_RETURN(size_t got, ReadAt(fd, from - 1, &c, 1, path));
    if (got != 1 || c != '\n') {
      return Status::Client("offset " + std::to_string(from) + " is not the start of an event in " +
                            path);
    }
  }
  std::string buf;
  int64_t buf_start = from;  // file offset of buf[0]
  int64_t read_pos = from;
  int64_t consumed = from;
  size_t block = 64 * 1024;  // small first read: many scans stop early
  LogEvent ev;
  while (read_pos < size) {
    size_t n = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(block), size - read_pos));
    size_t old = buf.size();
    buf.resize(old + n);
    DROVER_ASSIGN_OR_RETURN(size_t got, ReadAt(fd, read_pos, buf.data() + old, n, path));
    buf.resize(old + got);
    if (got == 0) break;
    read_pos += static_cast<int64_t>(got);
    block = 1024 * 1024;
    size_t line_start = 0;
    for (;;) {
      const void* p = std::memchr(buf.data() + line_start, '\n', buf.size() - line_start);
      if (!p) break;
      size_t nl = static_cast<const char*>(p) - buf.data();
      int64_t next = buf_start + static_cast<int64_t>(nl) + 1;
      consumed = next;
      if (internal::ParseLine(std::string_view(buf).substr(line_start, nl - line_start), ev)) {
        ev.offset = buf_start + static_cast<int64_t>(line_start);
        if (!visit(ev, next)) return consumed;
      }
      line_start = nl + 1;
    }
    buf.erase(0, line_start);
    buf_start += static_cast<int64_t>(line_start);
  }
  return consumed;  // a trailing partial line is left for a later scan
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string GroupDir(const std::string& root, std::string_view group) {
  return root + "/" + EncodeName(group);
}

// Everything about a stream from its open file: two small reads.
Result<LogStore::StreamInfo> InfoFromFd(int fd, std::string name, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::Server(ErrnoText("stat", path, errno));
  LogStore::StreamInfo info;
  info.name = std::move(name);
  info.stored_bytes = static_cast<uint64_t>(st.st_size);
  info.creation_ms = MtimeMs(st);
  std::optional<LogEvent> first;
  auto take_first = [&](const LogEvent& e, int64_t) {
    first = e;
    return false;
  };
  DROVER_ASSIGN_OR_RETURN(int64_t ignored, ScanFd(fd, st.st_size, 0, take_first, path));
  (void)ignored;
  if (!first) return info;
  DROVER_ASSIGN_OR_RETURN(std::optional<LogEvent> read_last,
                          internal::ReadLastEvent(fd, st.st_size, path));
  const LogEvent& last = read_last ? *read_last : *first;
  info.creation_ms = first->ingestion_ms;
  info.first_event_ms = first->timestamp_ms;
  info.last_event_ms = last.timestamp_ms;
  info.last_ingestion_ms = last.ingestion_ms;
  return info;
}

// ---- the registry of streams without a file ----
//
// A stream's file is made at its first event: a job that prints nothing costs
// no inode (on this ext4 without a journal, making one was a tenth of the
// supervisor's CPU per job in dispatch). So that such a stream still exists
// from its start, as a CloudWatch stream does, the writer registers it: one
// line "<enc(S)>\t<ms>\n" appended to R/<enc(G)>/.streams/<shard>, the shard
// (two hex digits) chosen by a hash of enc(S). Readers take a stream without a
// file but with a line there as existing and empty. Prune() rewrites a shard
// under an exclusive flock and renames the new one into place; an appender
// holds a shared flock and, finding its file replaced (no links left), opens
// the new one.

constexpr std::string_view kRegistryDir = ".streams";
constexpr uint32_t kRegistryShards = 64;

std::string RegistryDir(const std::string& group_dir) {
  return group_dir + "/" + std::string(kRegistryDir);
}

std::string ShardPath(const std::string& group_dir, std::string_view enc_stream) {
  uint32_t h = 2166136261u;  // FNV-1a: stable across builds and processes
  for (char c : enc_stream) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  static constexpr char kHex[] = "0123456789abcdef";
  uint32_t shard = h % kRegistryShards;
  std::string p = RegistryDir(group_dir);
  p += '/';
  p += kHex[shard >> 4];
  p += kHex[shard & 15];
  return p;
}

bool IsShardName(std::string_view f) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  return f.size() == 2 && hex(f[0]) && hex(f[1]);
}

struct Registered {
  std::string enc;  // the stream's encoded name
  int64_t ms = 0;   // when it was registered
};

// The well-formed lines of a shard's text (a line cut short by a crash is skipped).
std::vector<Registered> ParseShard(std::string_view text) {
  std::vector<Registered> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) break;
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    size_t tab = line.find('\t');
    if (tab == std::string_view::npos || tab == 0) continue;
    Registered r;
    auto res = std::from_chars(line.data() + tab + 1, line.data() + line.size(), r.ms);
    if (res.ec != std::errc() || res.ptr != line.data() + line.size()) continue;
    r.enc.assign(line.substr(0, tab));
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::string> ReadWhole(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::Server(ErrnoText("stat", path, errno));
  std::string text(static_cast<size_t>(st.st_size), '\0');
  DROVER_ASSIGN_OR_RETURN(size_t got, ReadAt(fd, 0, text.data(), text.size(), path));
  text.resize(got);
  return text;
}

// The lines of the shard at `path`; none when it does not exist.
Result<std::vector<Registered>> ReadShard(const std::string& path) {
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::vector<Registered>();
    return Status::Server(ErrnoText("opening", path, errno));
  }
  Fd fd(raw);
  DROVER_ASSIGN_OR_RETURN(std::string text, ReadWhole(fd.get(), path));
  return ParseShard(text);
}

// When the stream was registered (the earliest line), if it was.
Result<std::optional<int64_t>> RegisteredAt(const std::string& group_dir,
                                            std::string_view enc_stream) {
  DROVER_ASSIGN_OR_RETURN(std::vector<Registered> lines,
                          ReadShard(ShardPath(group_dir, enc_stream)));
  std::optional<int64_t> at;
  for (const Registered& r : lines) {
    if (r.enc == enc_stream && (!at || r.ms < *at)) at = r.ms;
  }
  return at;
}

// Appends the stream's line to its shard (making the directories a first
// stream of a group, or a Prune() meanwhile, left missing).
Status Register(const std::string& group_dir, std::string_view enc_stream, int64_t ms) {
  const std::string path = ShardPath(group_dir, enc_stream);
  std::string line(enc_stream);
  line += '\t';
  line += std::to_string(ms);
  line += '\n';
  for (int attempt = 0; attempt < 5; ++attempt) {
    int raw = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (raw < 0) {
      if (errno != ENOENT) return Status::Server(ErrnoText("opening", path, errno));
      std::error_code ec;
      fs::create_directories(RegistryDir(group_dir), ec);
      if (ec) return Status::Server("creating " + RegistryDir(group_dir) + ": " + ec.message());
      continue;
    }
    Fd fd(raw);
    while (::flock(fd.get(), LOCK_SH) != 0) {
      if (errno != EINTR) return Status::Server(ErrnoText("locking", path, errno));
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return Status::Server(ErrnoText("stat", path, errno));
    if (st.st_nlink == 0) continue;  // a Prune() replaced it meanwhile
    return WriteAll(fd.get(), line, path);
  }
  return Status::Server("registering the stream in " + path + ": it keeps being replaced");
}

// Drops the lines of a shard registered before cutoff_ms, adding their
// streams' encoded names to `dropped`. (A stream's line is never younger than
// its file's last change, so a stream whose file Prune() removes loses its
// line in the same pass.)
Status PruneShard(const std::string& path, int64_t cutoff_ms,
                  std::unordered_set<std::string>& dropped) {
  int raw = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::Server(ErrnoText("opening", path, errno));
  }
  Fd fd(raw);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Status::Server(ErrnoText("locking", path, errno));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::Server(ErrnoText("stat", path, errno));
  if (st.st_nlink == 0) return Status::Ok();
  DROVER_ASSIGN_OR_RETURN(std::string text, ReadWhole(fd.get(), path));
  std::string kept;
  for (const Registered& r : ParseShard(text)) {
    if (r.ms < cutoff_ms) {
      dropped.insert(r.enc);
      continue;
    }
    kept += r.enc;
    kept += '\t';
    kept += std::to_string(r.ms);
    kept += '\n';
  }
  if (kept.size() == text.size()) return Status::Ok();  // nothing expired (nor malformed)
  if (kept.empty()) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status::Server(ErrnoText("removing", path, errno));
    }
    return Status::Ok();
  }
  const std::string tmp = path + ".tmp";
  int traw = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (traw < 0) return Status::Server(ErrnoText("creating", tmp, errno));
  {
    Fd tfd(traw);
    DROVER_RETURN_IF_ERROR(WriteAll(tfd.get(), kept, tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Server(ErrnoText("replacing", path, errno));
  }
  return Status::Ok();
}

// Opens a stream file for reading; NotFound with CloudWatch's texts. -1 (and
// `registered_ms` set) for a registered stream that has no file yet.
Result<int> OpenStream(const std::string& root, const std::string& group, const std::string& stream,
                       std::string& path, int64_t& registered_ms) {
  const std::string dir = GroupDir(root, group);
  if (group.empty() || !IsDir(dir)) return Status::NotFound(kNoGroup);
  if (stream.empty()) return Status::NotFound(kNoStream);
  path = StreamPath(root, group, stream);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) return fd;
  const int err = errno;
  if (err == ENOENT) {
    DROVER_ASSIGN_OR_RETURN(std::optional<int64_t> at, RegisteredAt(dir, EncodeName(stream)));
    if (at) {
      registered_ms = *at;
      return -1;
    }
  }
  if (err == ENOENT || err == ENAMETOOLONG || err == ENOTDIR) return Status::NotFound(kNoStream);
  return Status::Server(ErrnoText("opening", path, err));
}

std::string ExceptionText(const std::exception& e) { return std::string("log store: ") + e.what(); }

}  // namespace

// ---- names ----

std::string EncodeName(std::string_view name) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  bool all_dots = !name.empty() && name.find_first_not_of('.') == std::string_view::npos;
  std::string out;
  out.reserve(name.size());
  for (char ch : name) {
    auto c = static_cast<unsigned char>(ch);
    if (Plain(c) && !(all_dots && c == '.')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<std::string> DecodeName(std::string_view enc) {
  std::string out;
  out.reserve(enc.size());
  for (size_t i = 0; i < enc.size(); ++i) {
    char c = enc[i];
    if (c == '%') {
      if (i + 2 >= enc.size()) return std::nullopt;
      int hi = HexValue(enc[i + 1]), lo = HexValue(enc[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (Plain(static_cast<unsigned char>(c))) {
      out.push_back(c);
    } else {
      return std::nullopt;
    }
  }
  if (out.empty() || EncodeName(out) != enc) return std::nullopt;  // one file per name
  return out;
}

std::string StreamPath(std::string_view root, std::string_view group, std::string_view stream) {
  std::string p(root);
  p += '/';
  p += EncodeName(group);
  p += '/';
  p += EncodeName(stream);
  p += kSuffix;
  return p;
}

// ---- line format and UTF-8 ----

namespace internal {

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (Unicode table 3-7), or 0.
size_t SequenceLength(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t left = s.size() - i;
  auto cont = [&](size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < left && b(k) >= lo && b(k) <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

size_t Utf8Cut(std::string_view s, size_t max) {
  if (max >= s.size()) return s.size();
  size_t k = max;
  for (int steps = 0; steps < 3 && k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80;
       ++steps) {
    --k;
  }
  // s[k] starts a character (or the data is not UTF-8 there: cut anywhere).
  return (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80 ? max : k;
}

bool ParseLine(std::string_view line, LogEvent& ev) {
  size_t t1 = line.find('\t');
  if (t1 == std::string_view::npos || t1 == 0) return false;
  size_t t2 = line.find('\t', t1 + 1);
  if (t2 == std::string_view::npos || t2 == t1 + 1) return false;
  const char* b = line.data();
  auto r1 = std::from_chars(b, b + t1, ev.timestamp_ms);
  if (r1.ec != std::errc() || r1.ptr != b + t1) return false;
  auto r2 = std::from_chars(b + t1 + 1, b + t2, ev.ingestion_ms);
  if (r2.ec != std::errc() || r2.ptr != b + t2) return false;
  ev.message.assign(line.substr(t2 + 1));
  return true;
}

void AppendLine(std::string& out, int64_t ts, int64_t ingestion, std::string_view message) {
  char num[24];
  auto r = std::to_chars(num, num + sizeof num, ts);
  out.append(num, r.ptr);
  out.push_back('\t');
  r = std::to_chars(num, num + sizeof num, ingestion);
  out.append(num, r.ptr);
  out.push_back('\t');
  out.append(message);
  out.push_back('\n');
}

Result<std::optional<LogEvent>> ReadLastEvent(int fd, int64_t size, const std::string& path) {
  DROVER_ASSIGN_OR_RETURN(int64_t nl, FindNewlineBefore(fd, size, path));
  std::string line;
  LogEvent ev;
  while (nl >= 0) {
    DROVER_ASSIGN_OR_RETURN(int64_t prev, FindNewlineBefore(fd, nl, path));
    line.resize(static_cast<size_t>(nl - prev - 1));
    DROVER_ASSIGN_OR_RETURN(size_t got, ReadAt(fd, prev + 1, line.data(), line.size(), path));
    line.resize(got);
    if (ParseLine(line, ev)) {
      ev.offset = prev + 1;
      return std::optional<LogEvent>(std::move(ev));
    }
    nl = prev;
  }
  return std::optional<LogEvent>();
}

}  // namespace internal

// ---- StreamWriter ----

Result<std::unique_ptr<StreamWriter>> StreamWriter::Open(const std::string& root,
                                                         const std::string& group,
                                                         const std::string& stream,
                                                         uint64_t max_bytes, Clock& clock) {
  try {
    if (group.empty() || stream.empty()) {
      return Status::Client("log group and log stream names must not be empty");
    }
    std::string enc_group = EncodeName(group);
    std::string enc_stream = EncodeName(stream);
    if (enc_group.size() > kMaxFileName || enc_stream.size() + kSuffix.size() > kMaxFileName) {
      return Status::Client("log group or stream name is too long to be stored: " + group + " / " +
                            stream);
    }
    std::string dir = root + "/" + enc_group;
    std::string path = dir + "/" + enc_stream + std::string(kSuffix);
    auto writer = std::unique_ptr<StreamWriter>(new StreamWriter(path, max_bytes, clock));
    // Registered (a stream reopened by a later writer gets another line: the
    // earliest is its creation time); the file is opened or made with the
    // first output (looking it up here cost as much as the registration).
    DROVER_RETURN_IF_ERROR(Register(dir, enc_stream, clock.NowMillis()));
    return writer;
  } catch (const std::exception& e) {
    return Status::Server(ExceptionText(e));
  }
}

// Goes on in the stream's file, opened for append: a file that ends in a
// partial line (a crash mid-write) is first ended with '\n', and the new events
// never go back in time from its last one.
Status StreamWriter::Continue() {
  const int fd = fd_;
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::Server(ErrnoText("stat", path_, errno));
  if (st.st_size == 0) return Status::Ok();
  char c = 0;
  DROVER_ASSIGN_OR_RETURN(size_t got, ReadAt(fd, st.st_size - 1, &c, 1, path_));
  (void)got;
  if (c != '\n') DROVER_RETURN_IF_ERROR(WriteAll(fd, "\n", path_));
  DROVER_ASSIGN_OR_RETURN(std::optional<LogEvent> last,
                          internal::ReadLastEvent(fd, st.st_size, path_));
  if (last) last_ts_ = std::max(last_ts_, last->timestamp_ms);
  return Status::Ok();
}

// The stream's file, opened or made at its first output (with the group's
// directory when the file cannot be: Prune() may have removed it meanwhile).
Status StreamWriter::OpenFile() {
  int fd = -1;
  for (int attempt = 0; attempt < 3; ++attempt) {
    fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != ENOENT) break;
    std::error_code ec;
    fs::create_directories(fs::path(path_).parent_path(), ec);
    if (ec) return Status::Server("creating the directory of " + path_ + ": " + ec.message());
  }
  if (fd < 0) return Status::Server(ErrnoText("opening", path_, errno));
  fd_ = fd;
  return Continue();
}

StreamWriter::StreamWriter(std::string path, uint64_t max_bytes, Clock& clock)
    : path_(std::move(path)), max_bytes_(max_bytes), clock_(clock), fd_(-1), last_ts_(INT64_MIN) {}

StreamWriter::~StreamWriter() { (void)Close(); }

uint64_t StreamWriter::bytes_written() const {
  std::lock_guard<std::mutex> l(mu_);
  return written_;
}

bool StreamWriter::truncated() const {
  std::lock_guard<std::mutex> l(mu_);
  return truncated_;
}

void StreamWriter::AppendMessage(std::string_view raw, int64_t ts, std::string& out) {
  std::string clean;
  std::string_view msg = raw;
  if (!internal::IsValidUtf8(raw)) {
    clean = ValidUtf8(raw);
    msg = clean;
  }
  while (!msg.empty() && !truncated_) {
    size_t n = internal::Utf8Cut(msg, kMaxMessageBytes);
    if (n == 0) n = std::min(msg.size(), kMaxMessageBytes);
    std::string_view piece = msg.substr(0, n);
    if (max_bytes_ != 0 && written_ + n > max_bytes_) {
      size_t fit = internal::Utf8Cut(piece, static_cast<size_t>(max_bytes_ - written_));
      if (fit > 0) {
        internal::AppendLine(out, ts, ts, piece.substr(0, fit));
        written_ += fit;
      }
      internal::AppendLine(out, ts, ts,
                           "[drover] output truncated: this attempt exceeded its limit of " +
                               std::to_string(max_bytes_) + " bytes");
      truncated_ = true;
      return;
    }
    internal::AppendLine(out, ts, ts, piece);
    written_ += n;
    msg.remove_prefix(n);
  }
}

Status StreamWriter::Flush(const std::string& out) {
  if (out.empty()) return Status::Ok();
  if (fd_ < 0) DROVER_RETURN_IF_ERROR(OpenFile());
  return WriteAll(fd_, out, path_);
}

Status StreamWriter::Write(std::string_view bytes) {
  try {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return Status::Server("log stream " + path_ + " is already closed");
    if (truncated_ || bytes.empty()) return Status::Ok();
    if (fd_ < 0) DROVER_RETURN_IF_ERROR(OpenFile());  // (before `now`: it reads the last event)
    int64_t now = std::max(clock_.NowMillis(), last_ts_);
    std::string out;
    size_t pos = 0;
    while (pos < bytes.size() && !truncated_) {
      size_t nl = bytes.find('\n', pos);
      if (nl == std::string_view::npos) {
        pending_.append(bytes.substr(pos));
        // A line without end: emit it in pieces rather than buffer without bound.
        size_t done = 0;
        while (pending_.size() - done > kMaxMessageBytes && !truncated_) {
          std::string_view rest = std::string_view(pending_).substr(done);
          size_t cut = internal::Utf8Cut(rest, kMaxMessageBytes);
          if (cut == 0) cut = kMaxMessageBytes;
          AppendMessage(rest.substr(0, cut), now, out);
          done += cut;
        }
        pending_.erase(0, done);
        break;
      }
      std::string_view line = bytes.substr(pos, nl - pos);
      if (!pending_.empty()) {
        pending_.append(line);
        line = pending_;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      AppendMessage(line, now, out);
      pending_.clear();
      pos = nl + 1;
    }
    if (truncated_) pending_.clear();
    if (!out.empty()) last_ts_ = now;
    return Flush(out);
  } catch (const std::exception& e) {
    return Status::Server(ExceptionText(e));
  }
}

Status StreamWriter::Close() {
  try {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return Status::Ok();
    closed_ = true;
    std::string out;
    if (!pending_.empty() && !truncated_) {
      int64_t now = std::max(clock_.NowMillis(), last_ts_);
      AppendMessage(pending_, now, out);
      if (!out.empty()) last_ts_ = now;
    }
    pending_.clear();
    Status s = Flush(out);
    if (fd_ >= 0 && ::close(fd_) != 0 && s.ok()) {
      s = Status::Server(ErrnoText("closing", path_, errno));
    }
    fd_ = -1;
    return s;
  } catch (const std::exception& e) {
    return Status::Server(ExceptionText(e));
  }
}

// ---- LogStore ----

LogStore::LogStore(std::string root) : root_(std::move(root)) {}

Result<std::vector<std::string>> LogStore::Groups() const {
  try {
    std::vector<std::string> out;
    std::error_code ec;
    if (!fs::is_directory(root_, ec)) return out;
    for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code dec;
      if (!it->is_directory(dec)) continue;
      if (auto name = DecodeName(it->path().filename().string())) out.push_back(std::move(*name));
    }
    if (ec) return Status::Server("listing " + root_ + ": " + ec.message());
    std::sort(out.begin(), out.end());
    return out;
  } catch (const std::exception& e) {
    return Status::Server(ExceptionText(e));
  }
}

Result<LogStore::StreamInfo> LogStore::Stream(const std::string& group,
                                              const std::string& stream) const {
  try {
    std::string path;
    int64_t registered_ms = 0;
    DROVER_ASSIGN_OR_RETURN(int raw_fd, OpenStream(root_, group, stream, path, registered_ms));
    if (raw_fd < 0) {  // registered, no event yet
      StreamInfo info;
      info.name = stream;
      info.creation_ms = registered_ms;
      return info;
    }
    Fd fd(raw_fd);
    DROVER_ASSIGN_OR_RETURN(StreamInfo info, InfoFromFd(fd.get(), stream, path));
    DROVER_ASSIGN_OR_RETURN(std::optional<int64_t> opened,
                            RegisteredAt(GroupDir(root_, group), EncodeName(stream)));
    if (opened) info.creation_ms = std::min(info.creation_ms, *opened);
    return info;
  } catch (const std::exception& e) {
    return Status::Server(ExceptionText(e));
  }
}

Result<std::vector<LogStore::StreamInfo>> LogStore::Streams(const std::string& group) const {
  try {
    std::string dir = GroupDir(root_, group);
    if (group.empty() || !IsDir(dir)) return Status::NotFound(kNoGroup);
    std::vector<StreamInfo> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string file = it->path().filename().string();
      if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) continue;
      auto name = DecodeName(std::string_view(file).substr(0, file.size() - kSuffix.size()));
      if (!name) continue;
      std::string path = it->path().string();
      int raw_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (raw_fd < 0) {
        if (errno == ENOENT) continue;  // pruned meanwhile
        return Status::Server(ErrnoText("opening", path, errno));
      }
      Fd fd(raw_fd);
      DROVER_ASSIGN_OR_RETURN(StreamInfo info, InfoFromFd(fd.get(), std::move(*name), path));
      out.push_back(std::move(info));
    }
    if (ec) return Status::Server("listing " + dir + ": " + ec.message());
    // The registry: streams without a file yet, and when each stream was
    // opened (its creation time, also once it has events; the earliest line).
    std::unordered_map<std::string, size_t> index;  // name -> position in out
    for (size_t i = 0; i < out.size(); ++i) index.emplace(out[i].name, i);
    for (fs::directory_iterator it(RegistryDir(dir), ec), end; !ec && it != end;
         it.increment(ec)) {
      if (!IsShardName(it->path().filename().string())) continue;
      DROVER_ASSIGN_OR_RETURN(std::vector<Registered> lines, ReadShard(it->path().string()));
      for (Registered& r : lines) {
        auto name = DecodeName(r.enc);
        if (!name) continue;
        auto [at, fresh] = index.try_emplace(*name, out.size());
        if (fresh) {
          StreamInfo info;
          info.name = std::move(*name);
          info.creation_ms = r.ms;
          out.push_back(std::move(info));
        } else {
          out[at->second].creation_ms = std::min(out[at->second].creation_ms, r.ms);
        }
      }
    }
    if (ec && ec != std::errc::no_such_file_or_directory) {
      return Status::Server("listing " + RegistryDir(dir) + ": " + ec.message());
    }
    std::sort(out.begin(), out.end(),
              [](const StreamInfo& a, const StreamInfo& b) { return a.name < b.name; });
    return out;
  } catch (const std::exception& e) {
    return Status::Server(ExceptionText(e));
  }
}

Result<LogStore::GroupInfo> LogStore::Group(const std::string& group) const {
  DROVER_ASSIGN_OR_RETURN(std::vector<StreamInfo> streams, Streams(group));
  GroupInfo info;
  info.name = group;
  struct stat st;
  if (::stat(GroupDir(root_, group).c_str(), &st) == 0) info.creation_ms = MtimeMs(st);
  for (size_t i = 0; i < streams.size(); ++i) {
    if (i == 0 || streams[i].creation_ms < info.creation_ms) {
      info.creation_ms = streams[i].creation_ms;
    }
    info.stored_bytes += streams[i].stored_bytes;
  }
  return info;
}

Result<int64_t> LogStore::Scan(const std::string& group, const std::string& stream,
                               int64_t from_offset, const Visitor& visit) const {
  try {
    std::string path;
    int64_t registered_ms = 0;
    DROVER_ASSIGN_OR_RETURN(int raw_fd, OpenStream(root_, group, stream, path, registered_ms));
    if (raw_fd < 0) {  // registered, no event yet: an empty file
      if (from_offset != 0) {
        return Status::Client("offset " + std::to_string(from_offset) + " is beyond the end of " +
                              path);
      }
      return int64_t{0};
    }
    Fd fd(raw_fd);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return Status::Server(ErrnoText("stat", path, errno));
    return ScanFd(fd.get(), st.st_size, from_offset, visit, path);
  } catch (const std::exception& e) {
    return Status::Server(ExceptionText(e));
  }
}

Result<std::vector<LogEvent>> LogStore::ReadAll(const std::string& group,
                                                const std::string& stream) const {
  std::vector<LogEvent> out;
  auto keep = [&](const LogEvent& e, int64_t) {
    out.push_back(e);
    return true;
  };
  DROVER_ASSIGN_OR_RETURN(int64_t end, Scan(group, stream, 0, keep));
  (void)end;
  return out;
}

Result<int> LogStore::Prune(int64_t cutoff_ms) const {
  try {
    int removed = 0;
    std::error_code ec;
    if (!fs::is_directory(root_, ec)) return removed;
    std::vector<std::string> dirs;
    for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code dec;
      if (it->is_directory(dec) && DecodeName(it->path().filename().string())) {
        dirs.push_back(it->path().string());
      }
    }
    if (ec) return Status::Server("listing " + root_ + ": " + ec.message());
    for (const std::string& dir : dirs) {
      struct stat dst;
      bool old_dir = ::stat(dir.c_str(), &dst) == 0 && MtimeMs(dst) < cutoff_ms;
      bool removed_here = false;
      // The registry: lines of streams registered before the cutoff.
      const std::string reg = RegistryDir(dir);
      std::vector<std::string> shards;
      for (fs::directory_iterator it(reg, ec), end; !ec && it != end; it.increment(ec)) {
        if (IsShardName(it->path().filename().string())) shards.push_back(it->path().string());
      }
      if (ec && ec != std::errc::no_such_file_or_directory) {
        return Status::Server("listing " + reg + ": " + ec.message());
      }
      ec.clear();
      std::unordered_set<std::string> dropped;  // streams whose line went
      for (const std::string& shard : shards) {
        DROVER_RETURN_IF_ERROR(PruneShard(shard, cutoff_ms, dropped));
      }
      if (!dropped.empty()) removed_here = true;
      for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::string file = it->path().filename().string();
        if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) continue;
        if (!DecodeName(std::string_view(file).substr(0, file.size() - kSuffix.size()))) continue;
        std::string path = it->path().string();
        struct stat st;
        if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (MtimeMs(st) >= cutoff_ms) continue;
        if (::unlink(path.c_str()) == 0) {
          ++removed;
          removed_here = true;
          dropped.erase(file.substr(0, file.size() - kSuffix.size()));  // (counted once)
        } else if (errno != ENOENT) {
          return Status::Server(ErrnoText("removing", path, errno));
        }
      }
      if (ec) return Status::Server("listing " + dir + ": " + ec.message());
      for (const std::string& enc : dropped) {  // streams that had no file: gone now too
        struct stat fst;
        if (::stat((dir + "/" + enc + std::string(kSuffix)).c_str(), &fst) != 0) ++removed;
      }
      // These fail harmlessly when the directory is not empty. A writer racing
      // with this retries (StreamWriter::OpenFile, Register).
      if (removed_here || old_dir) {
        ::rmdir(reg.c_str());
        ::rmdir(dir.c_str());
      }
    }
    return removed;
  } catch (const std::exception& e) {
    return Status::Server(ExceptionText(e));
  }
}

}  // namespace drover::logs
