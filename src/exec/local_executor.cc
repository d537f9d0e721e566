// LocalExecutor: attempts as processes on this host, run by the host's
// drover-supervisor (exec/supervisor.h), so they outlive the server.
//
// The executor is the supervisor's client: it connects to the run
// directory's socket (starting a supervisor when none listens) and sends
// start, attach and terminate requests without waiting; one reader thread
// turns the supervisor's replies and exits into the listener's events
// (a start that failed there is a kExited with start_failed). The supervisor
// keeps each exit until the caller acknowledges it (Acknowledge(), once the
// exit is durable in the store). If the supervisor goes away, every
// attempt it ran is reported lost and the next request starts a new one.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "common/json.h"
#include "common/log.h"
#include "common/thread.h"
#include "exec/executor.h"
#include "exec/supervisor.h"

namespace drover::exec {
namespace {

constexpr const char* kHostLost = "Host lost: the host's drover-supervisor ended without a status";

class LocalExecutor final : public Executor {
 public:
  LocalExecutor(LocalOptions opts, Clock& clock, Listener listener)
      : opts_(std::move(opts)), clock_(clock), listener_(std::move(listener)) {
    reader_ = std::thread([this] { Reader(); });
    std::lock_guard<std::mutex> l(mu_);
    if (Status s = EnsureConnected(); !s.ok()) LOG_WARN("job supervisor: {}", s.message());
  }
  ~LocalExecutor() override { Shutdown(); }

  Status Start(const TaskSpec& spec) override { return StartAll({&spec})[0]; }
  std::vector<Status> StartAll(const std::vector<const TaskSpec*>& specs) override;
  void Attach(const std::string& task_id, const std::string& job_id, int attempt) override;
  void Terminate(const std::string& task_id, const std::string& reason) override;
  void Acknowledge(const std::string& task_id) override { AcknowledgeAll({task_id}); }
  void AcknowledgeAll(const std::vector<std::string>& task_ids) override {
    std::string lines;
    for (const std::string& t : task_ids) lines += ToJson(json::object{{"op", "ack"}, {"task", t}}) + "\n";
    std::lock_guard<std::mutex> l(mu_);
    (void)SendLinesLocked(lines);
  }
  void Shutdown() override;
  std::string Describe() const override {
    std::lock_guard<std::mutex> l(mu_);
    return describe_;
  }

 private:
  struct Known {
    std::string job_id;
    int attempt = 1;
    pid_t pid = 0;
    bool running = false;  // started or attached: a lost supervisor loses it
    std::string term_reason;
  };
  Status EnsureConnected();  // mu_ held
  Status SpawnSupervisor(bool* busy);
  Status SendLocked(const json::object& msg);  // mu_ held
  Status SendLinesLocked(const std::string& lines);  // mu_ held: JSON lines, each ending in '\n'
  void Reader();
  void HandleLine(const json::object& msg);
  void Lost(int fd);

  LocalOptions opts_;
  Clock& clock_;
  Listener listener_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int fd_ = -1;                                // guarded by mu_
  bool stop_ = false;                          // guarded by mu_
  std::map<std::string, Known> known_;         // guarded by mu_
  std::string describe_ = "no job supervisor connected yet";  // guarded by mu_
  std::thread reader_;
};

Status LocalExecutor::SpawnSupervisor(bool* busy) {
  *busy = false;
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return Status::Server(std::string("pipe: ") + strerror(errno));
  std::vector<std::string> args = {"drover-supervisor", "--run-dir", opts_.run_dir,
                                   "--cgroup-root", opts_.cgroup_root, "--cgroup-parent",
                                   opts_.cgroup_parent};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // posix_spawn (a vfork): the server's address space is large. The supervisor
  // gets the ready pipe as fd 3, no other descriptor, and no blocked signals.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, ready[1], 3);  // dup2 clears close-on-exec
  posix_spawn_file_actions_addclosefrom_np(&actions, 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int err = ::posix_spawn(&pid, opts_.supervisor_path.c_str(), &actions, &attr, argv.data(),
                          environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  ::close(ready[1]);
  if (err != 0) {
    ::close(ready[0]);
    return Status::Server("cannot start " + opts_.supervisor_path + ": " + strerror(err));
  }
  ::waitpid(pid, nullptr, 0);  // it forks the supervisor proper and exits at once
  std::string line;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(ready[0], buf, sizeof buf);
    if (n > 0) line.append(buf, n);
    else if (n == 0 || errno != EINTR) break;
  }
  ::close(ready[0]);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (line == "ok") return Status::Ok();
  if (line == "err busy") {
    *busy = true;
    return Status::Ok();
  }
  return Status::Server("drover-supervisor (" + opts_.supervisor_path + ") did not start" +
                        (line.size() > 4 ? ": " + line.substr(4) : std::string()));
}

Status LocalExecutor::EnsureConnected() {
  if (stop_) return Status::Server("the executor is shutting down");
  if (fd_ >= 0) return Status::Ok();
  Status last = Status::Server("cannot reach the job supervisor");
  for (int tries = 0; tries < 40; ++tries) {
    auto fd = ConnectSupervisor(opts_.run_dir);
    if (!fd.ok()) {
      last = fd.status();
      bool busy = false;
      if (Status s = SpawnSupervisor(&busy); !s.ok()) return s;
      if (busy) std::this_thread::sleep_for(std::chrono::milliseconds(25));
      continue;
    }
    // The handshake, before the reader thread sees the socket.
    std::string hello = ToJson(json::object{{"op", "hello"}, {"version", kSupervisorProtocol}}) + "\n";
    std::string reply;
    bool ok = ::send(*fd, hello.data(), hello.size(), MSG_NOSIGNAL) ==
              static_cast<ssize_t>(hello.size());
    while (ok && reply.find('\n') == std::string::npos) {
      pollfd p{*fd, POLLIN, 0};
      char buf[1024];
      ssize_t n = ::poll(&p, 1, 5000) > 0 ? ::read(*fd, buf, sizeof buf) : -1;
      if (n <= 0) ok = false;
      else reply.append(buf, n);
    }
    auto msg = ok ? ParseJson(reply.substr(0, reply.find('\n'))) : Result<json::value>(Status::Server(""));
    if (!msg.ok() || !msg->is_object()) {
      // It was leaving (idle) as we connected: the next try starts another.
      ::close(*fd);
      last = Status::Server("the job supervisor closed the connection");
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
      continue;
    }
    const json::object& o = msg->as_object();
    if (GetInt(o, "version").value_or(0) != kSupervisorProtocol) {
      ::close(*fd);
      return Status::Server("the job supervisor running for " + opts_.run_dir +
                            " speaks protocol " + std::to_string(GetInt(o, "version").value_or(0)) +
                            ", this server " + std::to_string(kSupervisorProtocol) +
                            ": stop it once its jobs have ended");
    }
    describe_ = std::string(GetString(o, "describe").value_or("")) +
                "; attempts run under drover-supervisor (pid " +
                std::to_string(GetInt(o, "pid").value_or(0)) + ") and outlive the server";
    fd_ = *fd;
    cv_.notify_all();
    return Status::Ok();
  }
  return last;
}

Status LocalExecutor::SendLocked(const json::object& msg) {
  return SendLinesLocked(ToJson(msg) + "\n");
}

Status LocalExecutor::SendLinesLocked(const std::string& line) {
  size_t off = 0;
  while (fd_ >= 0 && off < line.size()) {
    ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n > 0) off += n;
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  if (off == line.size()) return Status::Ok();
  return Status::Server("lost the connection to the job supervisor");
}

// The starts go in one message (JSON lines), made outside the lock.
std::vector<Status> LocalExecutor::StartAll(const std::vector<const TaskSpec*>& specs) {
  std::vector<Status> out(specs.size());
  std::vector<std::string> lines(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TaskSpec& spec = *specs[i];
    if (!spec.cannot_start.empty()) {
      out[i] = Status::Client(spec.cannot_start);
      continue;
    }
    // Sent, not awaited: the supervisor's reply comes back as an event.
    lines[i] = ToJson(json::object{{"op", "start"}, {"spec", SpecToJson(spec)},
                                   {"pidsMax", opts_.pids_max}}) + "\n";
  }
  std::lock_guard<std::mutex> l(mu_);
  Status connected = EnsureConnected();
  std::string batch;
  std::vector<size_t> sent;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (lines[i].empty()) continue;
    const TaskSpec& spec = *specs[i];
    if (!connected.ok()) {
      out[i] = connected;
    } else if (known_.count(spec.task_id)) {
      out[i] = Status::Server("attempt " + spec.task_id + " already started");
    } else {
      Known& k = known_[spec.task_id];
      k.job_id = spec.job_id;
      k.attempt = spec.attempt;
      batch += lines[i];
      sent.push_back(i);
    }
  }
  if (!batch.empty()) {
    if (Status s = SendLinesLocked(batch); !s.ok()) {
      for (size_t i : sent) {
        known_.erase(specs[i]->task_id);
        out[i] = s;
      }
    }
  }
  return out;
}

void LocalExecutor::Attach(const std::string& task_id, const std::string& job_id, int attempt) {
  Status s;
  {
    std::lock_guard<std::mutex> l(mu_);
    s = EnsureConnected();
    if (s.ok()) {
      Known& k = known_[task_id];
      k.job_id = job_id;
      k.attempt = attempt;
      k.running = true;
      s = SendLocked(json::object{{"op", "attach"}, {"task", task_id}});
      if (!s.ok()) return;  // the reader reports it lost with the rest
    }
  }
  if (!s.ok()) {
    LOG_WARN("cannot re-attach to job {} attempt {}: {}", job_id, attempt, s.message());
    listener_(TaskEvent{TaskEvent::Kind::kExited, task_id, job_id, attempt, clock_.NowMillis(), -1,
                        kHostLost});
  }
}

void LocalExecutor::Terminate(const std::string& task_id, const std::string& reason) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = known_.find(task_id);
  if (it == known_.end()) return;
  if (it->second.term_reason.empty()) it->second.term_reason = reason;
  (void)SendLocked(json::object{{"op", "term"}, {"task", task_id}, {"graceMs", opts_.kill_grace_ms}});
}

void LocalExecutor::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    stop_ = true;
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  cv_.notify_all();
  if (reader_.joinable()) reader_.join();
  std::lock_guard<std::mutex> l(mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  known_.clear();  // the attempts run on; the next server re-attaches
}

void LocalExecutor::Reader() {
  SetThreadName("drover-exec");
  for (;;) {
    int fd;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || fd_ >= 0; });
      if (stop_) return;
      fd = fd_;
    }
    std::string buf;
    char chunk[65536];
    for (;;) {
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(chunk, n);
      size_t start = 0;
      for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
        // (A message is a few hundred bytes, read once: parsed into memory on
        // the stack, not a heap allocation per key and string.)
        unsigned char mem[4096];
        json::monotonic_resource mr(mem, sizeof mem);
        auto msg = ParseJson(std::string_view(buf).substr(start, nl - start), &mr);
        if (msg.ok() && msg->is_object()) HandleLine(msg->as_object());
      }
      buf.erase(0, start);
    }
    Lost(fd);
  }
}

void LocalExecutor::HandleLine(const json::object& msg) {
  std::string_view op = GetString(msg, "op").value_or("");
  std::string task(GetString(msg, "task").value_or(""));
  std::unique_lock<std::mutex> l(mu_);
  auto it = known_.find(task);
  if (op == "started" || op == "running") {
    if (it == known_.end()) return;
    it->second.pid = static_cast<pid_t>(GetInt(msg, "pid").value_or(0));
    it->second.running = true;
    TaskEvent ev{TaskEvent::Kind::kRunning, task, it->second.job_id, it->second.attempt,
                 GetInt(msg, "at").value_or(clock_.NowMillis()), 0, ""};
    l.unlock();
    if (op == "running") LOG_INFO("re-attached to job {} attempt {}", ev.job_id, ev.attempt);
    listener_(ev);
  } else if (op == "failed") {
    if (it == known_.end()) return;
    TaskEvent ev{TaskEvent::Kind::kExited, task, it->second.job_id, it->second.attempt,
                 clock_.NowMillis(), -1,
                 std::string(GetString(msg, "error").value_or("the job supervisor could not start it"))};
    ev.start_failed = true;
    ev.client_error = GetBool(msg, "client").value_or(false);
    known_.erase(it);
    l.unlock();
    listener_(ev);
  } else if (op == "exited" || op == "unknown") {
    TaskEvent ev{TaskEvent::Kind::kExited, task, "", 1, clock_.NowMillis(), -1, kHostLost};
    if (it != known_.end()) {
      ev.job_id = it->second.job_id;
      ev.attempt = it->second.attempt;
    }
    if (op == "exited") {
      ev.at_ms = GetInt(msg, "at").value_or(ev.at_ms);
      ev.exit_code = static_cast<int>(GetInt(msg, "exitCode").value_or(255));
      ev.peak_memory_bytes = GetInt(msg, "peakMemoryBytes").value_or(-1);
      ev.cpu_time_ns = GetInt(msg, "cpuTimeNs").value_or(-1);
      int sig = static_cast<int>(GetInt(msg, "signal").value_or(0));
      ev.reason.clear();
      if (GetBool(msg, "oomKilled").value_or(false)) {
        ev.reason = "OutOfMemoryError: Container killed due to memory usage";
      } else if (sig) {
        ev.reason = "Process killed by signal " + std::to_string(sig) + " (" + sigabbrev_np(sig) + ")";
      }
    }
    if (it != known_.end()) {
      if (!it->second.term_reason.empty()) ev.reason = it->second.term_reason;
      known_.erase(it);
    }
    l.unlock();
    if (!ev.job_id.empty()) listener_(ev);  // it calls Acknowledge() once the exit is durable
  }
}

void LocalExecutor::Lost(int fd) {
  std::vector<TaskEvent> lost;
  std::vector<pid_t> pids;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (fd_ == fd) {
      ::close(fd_);
      fd_ = -1;
    }
    if (stop_) return;
    LOG_ERROR("the job supervisor went away; its {} attempts are lost", known_.size());
    for (auto& [id, k] : known_) {
      if (k.pid > 0) pids.push_back(k.pid);
      lost.push_back(TaskEvent{TaskEvent::Kind::kExited, id, k.job_id, k.attempt,
                               clock_.NowMillis(), -1, kHostLost});
      if (!k.running) {
        lost.back().reason = "the job supervisor went away while starting the attempt";
        lost.back().start_failed = true;
      }
    }
    known_.clear();
  }
  for (pid_t pid : pids) ::kill(-pid, SIGKILL);  // orphans of the supervisor: no one reports them
  for (const auto& ev : lost) listener_(ev);
}

}  // namespace

std::unique_ptr<Executor> MakeLocalExecutor(LocalOptions opts, Clock& clock, Listener listener) {
  return std::make_unique<LocalExecutor>(std::move(opts), clock, std::move(listener));
}

}  // namespace drover::exec
