// LocalExecutor: attempts as processes on this host, each under its own
// drover-shim (exec/shim.h), so they outlive the server.
//
// Start() creates the attempt's cgroup and task directory, starts the shim
// and waits for its one-line report ("ok <pid> <ms>" once the job exec'd, or
// "err <reason>"). One supervisor thread then watches every shim through a
// pidfd; when a shim exits, its status file says how the job ended. The same
// thread enforces TerminateJob's SIGTERM -> SIGKILL grace period.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "exec/cgroup.h"
#include "exec/executor.h"
#include "exec/shim.h"

namespace drover::exec {
namespace {

constexpr const char* kHostLost = "Host lost: the attempt's supervisor ended without a status";

bool IsShim(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline");
  std::string cmd;
  std::getline(f, cmd, '\0');
  return cmd.find("drover-shim") != std::string::npos;
}

class LocalExecutor final : public Executor {
 public:
  LocalExecutor(LocalOptions opts, Clock& clock, Listener listener)
      : opts_(std::move(opts)), clock_(clock), listener_(std::move(listener)) {
    cgroups_ = Cgroups::Detect(opts_.cgroup_root.empty() ? "/nonexistent" : opts_.cgroup_root,
                               opts_.cgroup_parent);
    std::error_code ec;
    std::filesystem::create_directories(opts_.run_dir, ec);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    thread_ = std::thread([this] { Loop(); });
  }

  ~LocalExecutor() override {
    Shutdown();
    ::close(wake_fd_);
  }

  Status Start(const TaskSpec& spec) override;
  void Attach(const std::string& task_id, const std::string& job_id, int attempt) override;
  void Terminate(const std::string& task_id, const std::string& reason) override;
  void Shutdown() override;
  std::string Describe() const override {
    return cgroups_->Describe() + "; attempts run under drover-shim and outlive the server";
  }

 private:
  struct Task {
    std::string task_id, job_id, dir;
    int attempt = 1;
    pid_t shim = -1, job = -1;
    bool child = false;  // the shim is our child (reap it)
    int pidfd = -1;
    CgroupGroup cgroup;
    int64_t kill_at = 0;      // guarded by mu_: when to SIGKILL (0: not scheduled)
    std::string term_reason;  // guarded by mu_
  };

  void Wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
  void Watch(std::unique_ptr<Task> t) {
    {
      std::lock_guard<std::mutex> l(mu_);
      tasks_[t->task_id] = std::move(t);
    }
    Wake();
  }
  // The exit event of a task whose shim has gone.
  TaskEvent Collect(const Task& t) {
    TaskEvent ev{TaskEvent::Kind::kExited, t.task_id, t.job_id, t.attempt, clock_.NowMillis(),
                 -1, kHostLost};
    if (auto st = ReadStatus(t.dir)) {
      ev.exit_code = st->exit_code;
      ev.at_ms = st->stopped_at_ms;
      ev.peak_memory_bytes = st->usage.peak_memory_bytes;
      ev.cpu_time_ns = st->usage.cpu_time_ns;
      ev.reason.clear();
      if (st->usage.oom_killed) {
        ev.reason = "OutOfMemoryError: Container killed due to memory usage";
      } else if (st->term_signal) {
        ev.reason = "Process killed by signal " + std::to_string(st->term_signal) + " (" +
                    sigabbrev_np(st->term_signal) + ")";
      }
    }
    if (!t.term_reason.empty()) ev.reason = t.term_reason;
    return ev;
  }
  void Cleanup(const Task& t) {
    if (!Cgroups::Remove(t.cgroup)) to_remove_.push_back(t.cgroup);
    std::error_code ec;
    std::filesystem::remove_all(t.dir, ec);
  }
  void Loop();

  LocalOptions opts_;
  Clock& clock_;
  Listener listener_;
  std::unique_ptr<Cgroups> cgroups_;
  int wake_fd_ = -1;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Task>> tasks_;  // guarded by mu_; erased by Loop only
  bool stop_ = false;                                    // guarded by mu_
  std::vector<CgroupGroup> to_remove_;  // Loop only: groups whose last process is still exiting
  std::thread thread_;
};

Status LocalExecutor::Start(const TaskSpec& spec) {
  if (!spec.cannot_start.empty()) return Status::Client(spec.cannot_start);
  std::string dir = opts_.run_dir + "/" + spec.task_id;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Server("cannot create " + dir + ": " + strerror(errno));
  }
  CgroupLimits limits;
  limits.memory_bytes = spec.memory_mib << 20;
  limits.vcpus = spec.vcpus;
  limits.hard_cpu = spec.hard_cpu;
  limits.pids_max = opts_.pids_max;
  auto group = cgroups_->Create(spec.task_id, limits);
  if (!group.ok()) return group.status();
  auto abandon = [&] {
    Cgroups::Remove(*group);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  };
  if (Status s = WriteSpec(dir, spec, *group); !s.ok()) {
    abandon();
    return s;
  }
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) {
    abandon();
    return Status::Server(std::string("pipe: ") + strerror(errno));
  }
  // posix_spawn (a vfork): the server's address space is large, and fork would
  // copy its page tables for every attempt. The shim gets the ready pipe as fd 3,
  // no other descriptor, and no blocked signals.
  const char* argv[] = {"drover-shim", dir.c_str(), nullptr};
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
  pid_t shim = -1;
  int err = ::posix_spawn(&shim, opts_.shim_path.c_str(), &actions, &attr,
                          const_cast<char* const*>(argv), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  ::close(ready[1]);
  if (err != 0) {
    ::close(ready[0]);
    abandon();
    return Status::Server(std::string("posix_spawn drover-shim: ") + strerror(err));
  }
  std::string line;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(ready[0], buf, sizeof buf);
    if (n > 0) line.append(buf, n);
    else if (n == 0 || errno != EINTR) break;
  }
  ::close(ready[0]);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (line.rfind("ok ", 0) != 0) {
    ::waitpid(shim, nullptr, 0);
    abandon();
    if (line.rfind("err ", 0) == 0) return Status::Client(line.substr(4));
    return Status::Server("drover-shim (" + opts_.shim_path + ") failed to start the attempt");
  }
  auto t = std::make_unique<Task>();
  t->task_id = spec.task_id;
  t->job_id = spec.job_id;
  t->attempt = spec.attempt;
  t->dir = dir;
  t->shim = shim;
  t->child = true;
  t->cgroup = std::move(group).value();
  int64_t started = clock_.NowMillis();
  std::istringstream in(line.substr(3));
  in >> t->job >> started;
  t->pidfd = static_cast<int>(::syscall(SYS_pidfd_open, shim, 0));
  listener_(TaskEvent{TaskEvent::Kind::kRunning, spec.task_id, spec.job_id, spec.attempt,
                      started, 0, ""});
  Watch(std::move(t));
  return Status::Ok();
}

void LocalExecutor::Attach(const std::string& task_id, const std::string& job_id, int attempt) {
  auto t = std::make_unique<Task>();
  t->task_id = task_id;
  t->job_id = job_id;
  t->attempt = attempt;
  t->dir = opts_.run_dir + "/" + task_id;
  t->cgroup = cgroups_->Open(task_id);
  auto pids = ReadPids(t->dir);
  if (pids) {
    listener_(TaskEvent{TaskEvent::Kind::kRunning, task_id, job_id, attempt, pids->started_at_ms,
                        0, ""});
    t->shim = pids->shim;
    t->job = pids->job;
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pids->shim, 0));
    if (fd >= 0 && IsShim(pids->shim) && !ReadStatus(t->dir)) {
      t->pidfd = fd;
      LOG_INFO("re-attached to job {} attempt {} (drover-shim pid {})", job_id, attempt, t->shim);
      Watch(std::move(t));
      return;
    }
    if (fd >= 0) ::close(fd);
  }
  TaskEvent ev = Collect(*t);  // ended while no server watched, or lost
  Cleanup(*t);
  listener_(ev);
}

void LocalExecutor::Terminate(const std::string& task_id, const std::string& reason) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return;
  Task& t = *it->second;
  if (t.term_reason.empty()) t.term_reason = reason;
  if (t.job > 0) ::kill(-t.job, SIGTERM);
  if (t.kill_at == 0) t.kill_at = clock_.NowMillis() + opts_.kill_grace_ms;
  Wake();
}

void LocalExecutor::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    stop_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [id, t] : tasks_) {
    if (t->pidfd >= 0) ::close(t->pidfd);
  }
  tasks_.clear();  // the shims run on; the next server re-attaches
}

void LocalExecutor::Loop() {
  for (;;) {
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}};
    int timeout = to_remove_.empty() ? -1 : 50;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
      int64_t now = clock_.NowMillis();
      for (auto& [id, t] : tasks_) {
        if (t->pidfd >= 0) fds.push_back({t->pidfd, POLLIN, 0});
        else timeout = timeout < 0 ? 50 : std::min(timeout, 50);  // no pidfd: poll for the pid
        if (t->kill_at > 0) {
          int ms = static_cast<int>(std::max<int64_t>(0, t->kill_at - now));
          timeout = timeout < 0 ? ms : std::min(timeout, ms);
        }
      }
    }
    if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      LOG_ERROR("executor poll failed: {}", strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (fds[0].revents) {
      uint64_t v;
      [[maybe_unused]] auto n = ::read(wake_fd_, &v, sizeof v);
    }
    for (auto it = to_remove_.begin(); it != to_remove_.end();) {
      if (Cgroups::Remove(*it)) it = to_remove_.erase(it);
      else ++it;
    }
    std::vector<TaskEvent> events;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
      int64_t now = clock_.NowMillis();
      for (auto it = tasks_.begin(); it != tasks_.end();) {
        Task& t = *it->second;
        if (t.kill_at && now >= t.kill_at) {
          if (t.job > 0) ::kill(-t.job, SIGKILL);
          Cgroups::Kill(t.cgroup);
          t.kill_at = 0;
        }
        bool gone;
        if (t.child) {
          gone = ::waitpid(t.shim, nullptr, WNOHANG) == t.shim;
        } else if (t.pidfd >= 0) {
          pollfd p{t.pidfd, POLLIN, 0};
          gone = ::poll(&p, 1, 0) > 0;
        } else {
          gone = ::kill(t.shim, 0) != 0 || !IsShim(t.shim);
        }
        if (!gone) {
          ++it;
          continue;
        }
        if (t.pidfd >= 0) ::close(t.pidfd);
        events.push_back(Collect(t));
        Cleanup(t);
        it = tasks_.erase(it);
      }
    }
    for (const auto& ev : events) listener_(ev);
  }
}

}  // namespace

std::unique_ptr<Executor> MakeLocalExecutor(LocalOptions opts, Clock& clock, Listener listener) {
  return std::make_unique<LocalExecutor>(std::move(opts), clock, std::move(listener));
}

}  // namespace drover::exec
