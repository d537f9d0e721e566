// LocalExecutor: attempts as process groups on this host.
//
// One supervisor thread owns every running attempt: it polls the attempts'
// output pipes (stdout and stderr share one pipe, so lines keep their order)
// and their pidfds, writes output to the log stream as it arrives, enforces
// the SIGTERM -> SIGKILL grace period, and reports exits. Start() forks on the
// caller's thread and returns once exec() has succeeded or failed.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "exec/cgroup.h"
#include "exec/executor.h"
#include "logs/logs.h"

namespace drover::exec {
namespace {

// Resolves argv[0] against the PATH of the job's environment (not the server's).
std::optional<std::string> Resolve(const std::string& cmd, const std::vector<std::string>& env) {
  if (cmd.empty()) return std::nullopt;
  if (cmd.find('/') != std::string::npos) return cmd;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string full = dir + "/" + cmd;
    if (::access(full.c_str(), X_OK) == 0) return full;
    start = end + 1;
  }
  return std::nullopt;
}

// Added to errno by the child when chdir() failed, to tell it from exec().
constexpr int kChdirFailed = 1 << 20;

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

class LocalExecutor final : public Executor {
 public:
  LocalExecutor(LocalOptions opts, Clock& clock, Listener listener)
      : opts_(opts), clock_(clock), listener_(std::move(listener)) {
    cgroups_ = opts_.cgroup_root.empty() ? Cgroups::Detect("/nonexistent", opts_.cgroup_parent)
                                         : Cgroups::Detect(opts_.cgroup_root, opts_.cgroup_parent);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    thread_ = std::thread([this] { Loop(); });
  }

  ~LocalExecutor() override {
    Shutdown();
    ::close(wake_fd_);
  }

  Status Start(const TaskSpec& spec) override;
  void Terminate(const std::string& task_id, const std::string& reason) override;
  void Shutdown() override;
  std::string Describe() const override { return cgroups_->Describe(); }

 private:
  struct Task {
    TaskSpec spec;
    pid_t pid = -1;
    int pidfd = -1;
    int out_fd = -1;
    std::unique_ptr<logs::StreamWriter> writer;
    bool exited = false;
    int status = 0;
    int64_t exited_at = 0;
    int64_t kill_at = 0;      // guarded by mu_: when to SIGKILL (0: not scheduled)
    std::string term_reason;  // guarded by mu_
    CgroupGroup cgroup;
    CgroupUsage usage;
  };

  void Wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
  void Loop();
  void Drain(Task& t);
  void Finish(std::unique_ptr<Task> t);

  LocalOptions opts_;
  Clock& clock_;
  Listener listener_;
  std::unique_ptr<Cgroups> cgroups_;
  std::vector<CgroupGroup> to_remove_;  // Loop only: groups whose last process is still exiting
  int wake_fd_ = -1;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Task>> tasks_;  // guarded by mu_; erased by Loop only
  bool stop_ = false;                                    // guarded by mu_
  std::thread thread_;
};

Status LocalExecutor::Start(const TaskSpec& spec) {
  if (spec.argv.empty()) {
    return Status::Client("CannotStartContainerError: the job has no command to run (host mode "
                          "has no image default command)");
  }
  auto path = Resolve(spec.argv[0], spec.env);
  if (!path) {
    return Status::Client("CannotStartContainerError: executable file not found in $PATH: " +
                          spec.argv[0]);
  }
  auto writer = logs::StreamWriter::Open(spec.log_root, spec.log_group, spec.log_stream,
                                         spec.log_cap_bytes, clock_);
  if (!writer.ok()) return Status::Server("cannot open the job's log: " + writer.status().message());
  for (const auto& line : spec.log_header) (void)(*writer)->Write(line + "\n");

  CgroupLimits limits;
  limits.memory_bytes = spec.memory_mib << 20;
  limits.vcpus = spec.vcpus;
  limits.hard_cpu = spec.hard_cpu;
  limits.pids_max = opts_.pids_max;
  auto group = cgroups_->Create(spec.task_id, limits);
  if (!group.ok()) return group.status();
  std::vector<int> procs_fds;
  for (const auto& f : cgroups_->ProcsFiles(*group)) {
    int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      for (int x : procs_fds) ::close(x);
      cgroups_->Remove(*group);
      return Status::Server("cannot open " + f + ": " + strerror(errno));
    }
    procs_fds.push_back(fd);
  }
  auto close_procs = [&] {
    for (int x : procs_fds) ::close(x);
  };
  int out[2], st[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    close_procs();
    cgroups_->Remove(*group);
    return Status::Server(std::string("pipe: ") + strerror(errno));
  }
  if (::pipe2(st, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return Status::Server(std::string("pipe: ") + strerror(errno));
  }
  // Everything the child needs is prepared before fork(): after it, the child
  // may only call async-signal-safe functions.
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const char* workdir = spec.workdir.empty() ? "/" : spec.workdir.c_str();

  pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {out[0], out[1], st[0], st[1]}) ::close(fd);
    return Status::Server(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) ::signal(s, SIG_DFL);
    ::setsid();
    int err = 0;
    // Join the attempt's cgroup(s) before anything else runs: every process
    // the job starts is then inside, and the limits apply from the first byte.
    char pidbuf[24];
    int len = 0;
    for (pid_t v = ::getpid(); v > 0; v /= 10) pidbuf[len++] = static_cast<char>('0' + v % 10);
    for (int i = 0; i < len / 2; ++i) std::swap(pidbuf[i], pidbuf[len - 1 - i]);
    for (int fd : procs_fds) {
      if (!err && ::write(fd, pidbuf, len) != len) err = errno;
    }
    if (!err && procs_fds.empty() && spec.memory_mib > 0) {
      // No cgroups: the address-space rlimit is the best effort left.
      struct rlimit rl;
      rl.rlim_cur = rl.rlim_max = static_cast<rlim_t>(spec.memory_mib) << 20;
      ::setrlimit(RLIMIT_AS, &rl);
    }
    if (spec.gid && (::setgroups(0, nullptr) != 0 || ::setgid(*spec.gid) != 0)) err = errno;
    if (!err && spec.uid && ::setuid(*spec.uid) != 0) err = errno;
    if (!err && ::chdir(workdir) != 0) err = errno + kChdirFailed;
    if (!err) {
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
      ::execve(path->c_str(), argv.data(), envp.data());
      err = errno;
    }
    [[maybe_unused]] auto n = ::write(st[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(st[1]);
  close_procs();
  int child_err = 0;
  ssize_t n;
  do {
    n = ::read(st[0], &child_err, sizeof child_err);
  } while (n < 0 && errno == EINTR);
  ::close(st[0]);
  if (n > 0) {
    ::waitpid(pid, nullptr, 0);
    ::close(out[0]);
    (void)(*writer)->Close();
    cgroups_->Remove(*group);
    if (child_err >= kChdirFailed) {
      return Status::Client("CannotStartContainerError: cannot enter the working directory " +
                            spec.workdir + ": " + strerror(child_err - kChdirFailed));
    }
    return Status::Client("CannotStartContainerError: " + spec.argv[0] + ": " +
                          strerror(child_err));
  }
  auto task = std::make_unique<Task>();
  task->spec = spec;
  task->pid = pid;
  task->pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  task->out_fd = out[0];
  ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
  task->writer = std::move(writer).value();
  task->cgroup = std::move(group).value();
  listener_(TaskEvent{TaskEvent::Kind::kRunning, spec.task_id, spec.job_id, spec.attempt,
                      clock_.NowMillis(), 0, ""});
  {
    std::lock_guard<std::mutex> l(mu_);
    tasks_[spec.task_id] = std::move(task);
  }
  Wake();
  return Status::Ok();
}

void LocalExecutor::Terminate(const std::string& task_id, const std::string& reason) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || it->second->exited) return;
  Task& t = *it->second;
  if (t.term_reason.empty()) t.term_reason = reason;
  ::killpg(t.pid, SIGTERM);
  if (t.kill_at == 0) t.kill_at = clock_.NowMillis() + opts_.kill_grace_ms;
  Wake();
}

void LocalExecutor::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    stop_ = true;
    for (auto& [id, t] : tasks_) {
      if (!t->exited) ::killpg(t->pid, SIGKILL);
      cgroups_->Kill(t->cgroup);
    }
  }
  Wake();
  if (thread_.joinable()) thread_.join();
}

void LocalExecutor::Drain(Task& t) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(t.out_fd, buf, sizeof buf);
    if (n > 0) {
      if (Status s = t.writer->Write(std::string_view(buf, n)); !s.ok()) {
        LOG_WARN("job {} log write failed: {}", t.spec.job_id, s.message());
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    ::close(t.out_fd);  // EOF (or error): every writer of the pipe is gone
    t.out_fd = -1;
    return;
  }
}

void LocalExecutor::Finish(std::unique_ptr<Task> t) {
  if (t->out_fd >= 0) ::close(t->out_fd);
  if (t->pidfd >= 0) ::close(t->pidfd);
  (void)t->writer->Close();
  if (t->spec.remove_workdir && !t->spec.workdir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(t->spec.workdir, ec);
  }
  TaskEvent ev{TaskEvent::Kind::kExited, t->spec.task_id, t->spec.job_id, t->spec.attempt,
               t->exited_at, ExitCode(t->status), ""};
  ev.peak_memory_bytes = t->usage.peak_memory_bytes;
  ev.cpu_time_ns = t->usage.cpu_time_ns;
  if (!t->term_reason.empty()) {
    ev.reason = t->term_reason;
  } else if (t->usage.oom_killed) {
    ev.reason = "OutOfMemoryError: Container killed due to memory usage";
  } else if (WIFSIGNALED(t->status)) {
    ev.reason = std::string("Process killed by signal ") + std::to_string(WTERMSIG(t->status)) +
                " (" + sigabbrev_np(WTERMSIG(t->status)) + ")";
  }
  listener_(ev);
}

void LocalExecutor::Loop() {
  for (;;) {
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}};
    std::vector<Task*> owners{nullptr};
    int timeout = -1;
    bool stopping;
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping = stop_;
      int64_t now = clock_.NowMillis();
      for (auto& [id, t] : tasks_) {
        if (t->out_fd >= 0) {
          fds.push_back({t->out_fd, POLLIN, 0});
          owners.push_back(t.get());
        }
        if (!t->exited && t->pidfd >= 0) {
          fds.push_back({t->pidfd, POLLIN, 0});
          owners.push_back(t.get());
        }
        // An exited attempt whose pipe is still held open (an escaped
        // grandchild) is finished after a short wait.
        int64_t deadline = t->exited ? t->exited_at + 2000 : t->kill_at;
        if (!t->exited && t->pidfd < 0) deadline = now + 50;  // no pidfd: poll waitpid
        if (deadline > 0) {
          int ms = static_cast<int>(std::max<int64_t>(0, deadline - now));
          timeout = timeout < 0 ? ms : std::min(timeout, ms);
        }
      }
      if (!to_remove_.empty()) timeout = timeout < 0 ? 50 : std::min(timeout, 50);
      if (stopping && tasks_.empty()) {
        for (const auto& g : to_remove_) cgroups_->Remove(g);
        return;
      }
      if (stopping) timeout = timeout < 0 ? 100 : std::min(timeout, 100);
    }
    int rc = ::poll(fds.data(), fds.size(), timeout);
    if (rc < 0 && errno != EINTR) {
      LOG_ERROR("executor poll failed: {}", strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (fds[0].revents) {
      uint64_t v;
      [[maybe_unused]] auto n = ::read(wake_fd_, &v, sizeof v);
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      Task& t = *owners[i];
      if (fds[i].fd == t.out_fd) Drain(t);
    }
    // Groups are removed once their last process has gone (it can take a
    // moment after the main process was reaped).
    for (auto it = to_remove_.begin(); it != to_remove_.end();) {
      if (cgroups_->Remove(*it)) it = to_remove_.erase(it);
      else ++it;
    }
    // Reap, enforce kill deadlines and finish attempts.
    std::vector<std::unique_ptr<Task>> done;
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping = stop_;  // attempts killed by Shutdown() are not reported as exits
      int64_t now = clock_.NowMillis();
      for (auto it = tasks_.begin(); it != tasks_.end();) {
        Task& t = *it->second;
        if (!t.exited) {
          int status = 0;
          pid_t r = ::waitpid(t.pid, &status, WNOHANG);
          if (r == t.pid) {
            t.exited = true;
            t.status = status;
            t.exited_at = now;
            // The attempt ends with its main process, as ECS does: its whole
            // tree goes, daemonized processes included (the cgroup has them).
            ::killpg(t.pid, SIGKILL);
            cgroups_->Kill(t.cgroup);
            t.usage = cgroups_->Usage(t.cgroup);
          } else if (t.kill_at && now >= t.kill_at) {
            ::killpg(t.pid, SIGKILL);
            cgroups_->Kill(t.cgroup);
            t.kill_at = 0;
          } else if (stop_) {
            ::killpg(t.pid, SIGKILL);
            cgroups_->Kill(t.cgroup);
          }
        }
        if (t.exited && t.out_fd >= 0) Drain(t);
        if (t.exited && (t.out_fd < 0 || now >= t.exited_at + 2000)) {
          to_remove_.push_back(t.cgroup);
          done.push_back(std::move(it->second));
          it = tasks_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& t : done) {
      if (!stopping) Finish(std::move(t));
      else {
        if (t->out_fd >= 0) ::close(t->out_fd);
        if (t->pidfd >= 0) ::close(t->pidfd);
        (void)t->writer->Close();
      }
    }
  }
}

}  // namespace

std::unique_ptr<Executor> MakeLocalExecutor(LocalOptions opts, Clock& clock, Listener listener) {
  return std::make_unique<LocalExecutor>(opts, clock, std::move(listener));
}

}  // namespace drover::exec
