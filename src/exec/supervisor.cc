#include "exec/supervisor.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include "common/clock.h"
#include "common/thread.h"
#include "exec/cgroup.h"
#include "exec/spawn.h"
#include "logs/logs.h"

namespace drover::exec {
namespace {

constexpr const char* kSocket = "supervisor.sock";
constexpr const char* kLock = "supervisor.lock";
// Exits no server acknowledged yet, kept here while no supervisor runs.
constexpr const char* kExits = "exits.jsonl";
constexpr int64_t kKeepExitsMs = 7LL * 24 * 3600 * 1000;
// Added to errno by the child when chdir() failed, to tell it from exec().
constexpr int kChdirFailed = 1 << 20;
// Free groups kept for reuse; more are removed.
constexpr size_t kMaxFreeGroups = 64;
// How long the output of an ended job is still read (an escaped process may hold the pipe).
constexpr int64_t kDrainMs = 2000;
// A pooled group's descriptors are moved to here or above, out of the range a
// child copies (ChildArgs::keep).
constexpr int kHighFd = 1024;
// Emptied scratch directories kept for reuse, per parent directory.
constexpr size_t kMaxPooledScratch = 256;

// What the child of Supervisor::Spawn() works with, all prepared beforehand:
// it shares the supervisor's memory (and, with `keep` >= 0, its descriptor
// table until it takes a copy of its own), so it makes system calls only, raw
// ones (RawSyscall: the supervisor's loop runs on meanwhile, and glibc's
// wrappers would write errno into the loop thread's storage).
struct ChildArgs {
  const std::vector<int>& procs;  // cgroup.procs files to write its pid into
  int v2_procs;                   // one more (-1: none, or it was born there)
  const std::vector<std::pair<int, rlimit>>& limits;
  bool sandbox;
  const char* merged;        // sandbox: where the image's overlay goes
  const char* overlay_opts;
  long uid, gid;             // -1: keep
  const char* workdir;
  int devnull, out;          // stdin; stdout and stderr (the pipe's write end)
  // With a shared descriptor table: the child's copy takes the descriptors below
  // `keep` only (devnull and out are among them; the groups' many descriptors,
  // kept high, are not), instead of every one of the supervisor's, each copied
  // and then closed again by the exec. -1: the table is the child's already.
  int keep;
  const char* path;
  char** argv;
  char** envp;
  int err = 0;  // set by the child when it fails before exec
};

template <typename T>
long SyscallArg(T v) {
  if constexpr (std::is_null_pointer_v<T>) {
    return 0;
  } else if constexpr (std::is_pointer_v<T>) {
    return reinterpret_cast<long>(v);
  } else {
    return static_cast<long>(v);
  }
}

// The job: its own process group, in its cgroup before it runs anything.
int ChildMain(void* p) {
  ChildArgs& a = *static_cast<ChildArgs*>(p);
  auto sys = [](long n, auto... args) { return RawSyscall(n, SyscallArg(args)...); };
  const uint64_t no_signals = 0;
  sys(SYS_rt_sigprocmask, SIG_SETMASK, &no_signals, nullptr, sizeof no_signals);
  struct {  // the kernel's struct sigaction: SIG_DFL, no flags, no mask
    long handler = 0;
    unsigned long flags = 0;
    long restorer = 0;
    uint64_t mask = 0;
  } dfl;
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) sys(SYS_rt_sigaction, s, &dfl, nullptr, sizeof dfl.mask);
  sys(SYS_setpgid, 0, 0);
  long err = 0;
  char pidbuf[24];
  int len = 0;
  for (long v = sys(SYS_getpid); v > 0; v /= 10) pidbuf[len++] = static_cast<char>('0' + v % 10);
  for (int i = 0; i < len / 2; ++i) std::swap(pidbuf[i], pidbuf[len - 1 - i]);
  auto join = [&](int fd) {
    long r = sys(SYS_write, fd, pidbuf, len);
    return r == len ? 0 : r < 0 ? -r : EIO;
  };
  for (int fd : a.procs) {
    if (!err) err = join(fd);
  }
  if (!err && a.v2_procs >= 0) err = join(a.v2_procs);
  if (!err && a.keep >= 0) err = -sys(SYS_close_range, a.keep, ~0U, CLOSE_RANGE_UNSHARE);
  if (err) {  // (the table may still be the supervisor's: nothing more is done to it)
    a.err = static_cast<int>(err);
    sys(SYS_exit_group, 127);
  }
  for (const auto& [resource, value] : a.limits) sys(SYS_prlimit64, 0, resource, &value, nullptr);
  if (a.sandbox) {
    // The image's root filesystem with a writable layer of its own, mounted in
    // a mount namespace of the attempt's (it vanishes with it); bubblewrap,
    // running as the job's user, then makes it the root of every namespace.
    err = -sys(SYS_unshare, CLONE_NEWNS);
    if (!err) err = -sys(SYS_mount, nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    if (!err) err = -sys(SYS_mount, "overlay", a.merged, "overlay", 0, a.overlay_opts);
  }
  if (!err && a.gid >= 0) {
    err = -sys(SYS_setgroups, 0, nullptr);
    if (!err) err = -sys(SYS_setresgid, a.gid, a.gid, a.gid);
  }
  if (!err && a.uid >= 0) err = -sys(SYS_setresuid, a.uid, a.uid, a.uid);
  if (!err) {
    if (long r = sys(SYS_chdir, a.workdir); r < 0) err = -r + kChdirFailed;
  }
  if (!err) {
    if (a.devnull >= 0) sys(SYS_dup3, a.devnull, 0, 0);
    sys(SYS_dup3, a.out, 1, 0);
    sys(SYS_dup3, a.out, 2, 0);
    err = -sys(SYS_execve, a.path, a.argv, a.envp);
  }
  a.err = static_cast<int>(err);
  sys(SYS_exit_group, 127);
  return 127;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json::array Strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

std::vector<std::string> Strings(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  if (const auto* a = GetArray(o, key)) {
    for (const auto& v : *a) {
      if (v.is_string()) out.emplace_back(v.as_string());
    }
  }
  return out;
}

// The socket's address: its path in the run directory, or the same file
// through /proc/self/fd when that path is longer than a sockaddr_un holds.
struct Address {
  sockaddr_un addr{};
  int dirfd = -1;
  ~Address() {
    if (dirfd >= 0) ::close(dirfd);
  }
};

bool MakeAddress(const std::string& run_dir, Address& a) {
  a.addr.sun_family = AF_UNIX;
  std::string path = run_dir + "/" + kSocket;
  if (path.size() >= sizeof a.addr.sun_path) {
    a.dirfd = ::open(run_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (a.dirfd < 0) return false;
    path = "/proc/self/fd/" + std::to_string(a.dirfd) + "/" + kSocket;
  }
  std::memcpy(a.addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

// Resolves argv[0] against the PATH of the job's environment (not the supervisor's).
// What was found is remembered for a second (by PATH and
// name): the walk costs an access() per directory until the command is found,
// four for `true` under Debian's default PATH, and the same few commands start
// attempt after attempt. (A command installed earlier in the PATH meanwhile is
// found a second later; one removed fails at exec, as it could anyway.)
std::optional<std::string> Resolve(const std::string& cmd, const std::vector<std::string>& env) {
  if (cmd.empty()) return std::nullopt;
  if (cmd.find('/') != std::string::npos) return cmd;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  struct Found {
    std::string full;
    std::chrono::steady_clock::time_point until;
  };
  thread_local std::unordered_map<std::string, Found> found;
  const auto now = std::chrono::steady_clock::now();
  std::string key = path + '\0' + cmd;
  if (auto it = found.find(key); it != found.end() && it->second.until > now) {
    return it->second.full;
  }
  if (found.size() >= 256) found.clear();
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string full = dir + "/" + cmd;
    if (::access(full.c_str(), X_OK) == 0) {
      found[std::move(key)] = Found{full, now + std::chrono::seconds(1)};
      return full;
    }
    start = end + 1;
  }
  return std::nullopt;
}

int RlimitOf(std::string_view name) {
  static const std::pair<const char*, int> kNames[] = {
      {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},     {"data", RLIMIT_DATA},
      {"fsize", RLIMIT_FSIZE},       {"locks", RLIMIT_LOCKS}, {"memlock", RLIMIT_MEMLOCK},
      {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},   {"nofile", RLIMIT_NOFILE},
      {"nproc", RLIMIT_NPROC},       {"rss", RLIMIT_RSS},     {"rtprio", RLIMIT_RTPRIO},
      {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
      {"stack", RLIMIT_STACK}};
  for (const auto& [n, r] : kNames) {
    if (name == n) return r;
  }
  return -1;
}

class Supervisor {
 public:
  Supervisor(const SupervisorOptions& opts, int listen_fd)
      : opts_(opts), listen_(listen_fd) {}
  int Run();

 private:
  enum Kind : uint64_t { kListen = 1, kConn = 2, kOut = 3, kChild = 4 };
  static uint64_t Key(Kind k, uint64_t id) { return (static_cast<uint64_t>(k) << 56) | id; }

  struct Conn {
    int fd = -1;
    std::string in, out;
    bool want_out = false;
    bool queued = false;  // in unsent_: flushed at the end of the loop's turn
  };
  // A cgroup, created once and reused by attempt after attempt.
  struct Group {
    CgroupGroup cg;
    CgroupLimits limits;         // as applied
    std::vector<int> procs;      // its cgroup.procs files, open for the child to join
    // Its cgroup v2 directory (Cgroups::BirthDir), where a child can be born
    // (CLONE_INTO_CGROUP) instead of joining through v2_procs; -1: none.
    int birth_dir = -1, v2_procs = -1;
    std::unique_ptr<CgroupCounters> counters;
    CgroupUsage base;            // counters where the previous attempt left them
    bool reusable = true;
  };
  struct Task {
    TaskSpec spec;
    uint64_t owner = 0;  // connection that hears its exit
    pid_t pid = -1;
    int out = -1;
    std::unique_ptr<logs::StreamWriter> writer;
    std::unique_ptr<Group> group;
    int64_t started = 0, kill_at = 0, drain_until = 0;
    bool exited = false;
    bool emptied = false;  // no process of its cgroup was left when it exited
    int status = 0;
  };
  struct Exit {
    json::object record;  // the "exited" message
    int64_t started = 0;
    uint64_t owner = 0;
  };

  void Accept();
  void ReadConn(uint64_t id);
  void CloseConn(uint64_t id);
  void Flush(uint64_t id, Conn& c);
  void Send(uint64_t conn, const json::object& msg);
  void FlushUnsent();  // the messages Send() queued this turn of the loop
  void Handle(uint64_t conn, const json::object& msg);
  void Start(uint64_t conn, const json::object& msg);
  struct Launch;
  std::string Spawn(Launch& l, bool* client_error);
  void Exited(uint64_t serial, int status);
  void ReapChildren();
  void OnOutput(uint64_t serial);
  void OnTimer(int64_t now);
  void Finish(uint64_t serial);
  Result<std::unique_ptr<Group>> TakeGroup(const CgroupLimits& limits);
  void Recycle(std::unique_ptr<Group> g);
  void DropGroup(Group& g);
  // Kills what is left in the group. From then on its processes join its v2
  // directory instead of being born there: Linux (6.18 here) SIGKILLs a process
  // that clone3 places in a cgroup whose cgroup.kill was ever written (it
  // compares the target's kill count with the parent's cgroup's).
  void KillGroup(Group& g);
  void CleanStaleGroups();
  // Whether this host's groups can have processes born in them (CanBeBornIn,
  // asked of a group made for the question and removed).
  bool CanBeBornInGroups();
  // No attempt and no server: it may leave (unacknowledged exits go to kExits).
  bool Idle() const { return conns_.empty() && tasks_.empty() && spawning_.empty(); }
  void LoadExits();
  void SaveExits();
  // Scratch directories: an emptied one from <parent>/.pool is renamed into
  // place, so that no inode is allocated or freed per attempt (on ext4 without
  // a journal, allocating next to many recently freed inodes is slow: making
  // and deleting a directory per attempt was a large share of dispatch CPU).
  std::string MakeScratch(const TaskSpec& spec);
  void QueueScratch(const std::string& dir, bool reuse);
  void ReleaseScratch(const std::string& dir, bool reuse);
  void Remover();

  SupervisorOptions opts_;
  int listen_ = -1, ep_ = -1, sigfd_ = -1, devnull_ = -1;
  rlimit nofile_{};  // the limit jobs get unless their ulimits say otherwise
  bool share_fds_ = false;  // children start on the supervisor's descriptor table (ChildArgs::keep)
  bool born_ok_ = true;  // clone3 can place a child in its v2 group (Linux 5.7)
  SystemClock clock_;
  std::unique_ptr<Cgroups> cgroups_;
  uint64_t next_conn_ = 1, next_task_ = 1, next_group_ = 1;
  std::map<uint64_t, Conn> conns_;
  // Connections with messages written during this turn of the loop: one send
  // each at its end, however many events the turn handled (a started and an
  // exit report each cost a send and a wake-up of the server's reader before).
  std::vector<uint64_t> unsent_;
  std::unordered_map<uint64_t, std::unique_ptr<Task>> tasks_;
  std::unordered_map<std::string, uint64_t> by_id_;   // task id -> serial
  std::unordered_map<pid_t, uint64_t> by_pid_;        // job pid -> serial
  std::unordered_map<std::string, Exit> exits_;       // until acknowledged
  std::set<std::pair<int64_t, uint64_t>> timers_;     // (when, task serial)
  std::vector<std::unique_ptr<Group>> free_;          // ready for the next attempt
  std::vector<std::unique_ptr<Group>> returning_;     // processes still dying in them
  int64_t idle_since_ = 0;
  // An attempt between its start message and its process having exec'd.
  struct Spawning {
    uint64_t owner = 0;      // hears "started" or "failed"
    int64_t term_grace = -1;  // a "term" that came first: applied once it runs
  };
  // A child on its way to exec: made from the loop with CLONE_VM but without
  // CLONE_VFORK, it runs beside the loop (which goes on serving) on the stack
  // and the arguments held here, and the kernel clears `ctid`
  // (CLONE_CHILD_CLEARTID) once it has exec'd or died: the loop looks at the
  // end of every turn (PollLaunches). A vfork would hold its parent until the
  // exec (hundreds of microseconds on a busy host: on the loop, the starts and
  // exits of every other attempt waited behind it; on spawner threads, each
  // start cost two hand-offs between threads and a wake-up of the vfork's parent).
  struct Launch {
    std::unique_ptr<Task> task;
    std::string argv0;  // (for errors)
    std::vector<std::string> argv;  // (the spec's, or bubblewrap's around it)
    std::vector<char*> cargv, cenv;
    std::vector<std::pair<int, rlimit>> limits;
    std::string path, merged, overlay_opts;
    std::unique_ptr<char[]> stack;
    std::unique_ptr<ChildArgs> args;
    int out_w = -1;       // the output pipe's write end, closed here once the child has its own
    alignas(4) pid_t ctid = 1;  // 0 once the child has exec'd or exited
  };
  bool Launched(const Launch& l) const { return __atomic_load_n(&l.ctid, __ATOMIC_ACQUIRE) == 0; }
  void PollLaunches();
  void WaitLoneLaunch();
  void Running(std::unique_ptr<Task> t);
  void SpawnFailed(std::unique_ptr<Task> t, const std::string& error, bool client);
  std::unordered_map<std::string, Spawning> spawning_;
  std::vector<std::unique_ptr<Launch>> launching_;
  static constexpr size_t kChildStack = 64 << 10, kMaxFreeStacks = 64;
  std::vector<std::unique_ptr<char[]>> free_stacks_;  // launches' stacks, for the next ones
  std::unordered_map<pid_t, int> early_exits_;  // reaped before their spawn came back (loop only)
  // Workdirs are removed on a thread of their own (a big one must not stall starts).
  std::mutex rm_mu_;
  std::condition_variable rm_cv_;
  std::deque<std::pair<std::string, bool>> rm_queue_;  // (scratch dir, reuse it)
  bool rm_wake_ = false;  // (the loop's) the remover is to be woken this turn
  std::set<std::string> pools_made_;  // (the remover's) <parent>/.pool directories made
  bool rm_stop_ = false;
  std::map<std::string, std::vector<std::string>> scratch_pool_;  // guarded by rm_mu_
  uint64_t next_scratch_ = 1;                                     // guarded by rm_mu_
};

int Supervisor::Run() {
  ep_ = ::epoll_create1(EPOLL_CLOEXEC);
  devnull_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ::getrlimit(RLIMIT_NOFILE, &nofile_);
  rlimit more = nofile_;
  more.rlim_cur = more.rlim_max;  // a pooled group holds a descriptor per hierarchy
  ::setrlimit(RLIMIT_NOFILE, &more);
  share_fds_ = CanUnshareDescriptors();
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);  // before any thread: they all inherit it
  sigfd_ = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  cgroups_ = Cgroups::Detect(opts_.cgroup_root.empty() ? "/nonexistent" : opts_.cgroup_root,
                             opts_.cgroup_parent);
  CleanStaleGroups();
  born_ok_ = CanBeBornInGroups();
  LoadExits();
  epoll_event ev{EPOLLIN, {.u64 = Key(kListen, 0)}};
  ::epoll_ctl(ep_, EPOLL_CTL_ADD, listen_, &ev);
  ev = {EPOLLIN, {.u64 = Key(kChild, 0)}};
  ::epoll_ctl(ep_, EPOLL_CTL_ADD, sigfd_, &ev);
  std::thread remover([this] { Remover(); });
  idle_since_ = NowMs();
  std::vector<epoll_event> events(256);
  for (;;) {
    WaitLoneLaunch();
    int64_t now = NowMs();
    int timeout = -1;
    if (!timers_.empty()) timeout = static_cast<int>(std::max<int64_t>(0, timers_.begin()->first - now));
    if (!returning_.empty()) timeout = timeout < 0 ? 20 : std::min(timeout, 20);
    // (children on their way to exec are looked at after each turn)
    if (!launching_.empty()) timeout = timeout < 0 ? 1 : std::min(timeout, 1);
    if (Idle()) {
      // Idle with nobody connected: leave after a second (a server that
      // connects meanwhile keeps it; one that finds it gone starts another).
      if (now - idle_since_ >= 1000 && returning_.empty()) break;
      timeout = timeout < 0 ? 1000 : std::min(timeout, 1000);
    }
    int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0 && errno != EINTR) {
      std::fprintf(stderr, "drover-supervisor: epoll_wait: %s\n", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    bool was_idle = Idle();
    for (int i = 0; i < n; ++i) {
      uint64_t key = events[i].data.u64;
      uint64_t id = key & ((uint64_t{1} << 56) - 1);
      switch (static_cast<Kind>(key >> 56)) {
        case kListen: Accept(); break;
        case kChild: ReapChildren(); break;
        case kOut: OnOutput(id); break;
        case kConn: {
          auto it = conns_.find(id);
          if (it == conns_.end()) break;
          if (events[i].events & EPOLLOUT) Flush(id, it->second);
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ReadConn(id);
          break;
        }
      }
    }
    now = NowMs();
    OnTimer(now);
    for (auto it = returning_.begin(); it != returning_.end();) {
      if ((*it)->counters->Populated()) {
        ++it;
        continue;
      }
      auto g = std::move(*it);
      it = returning_.erase(it);
      Recycle(std::move(g));
    }
    PollLaunches();
    FlushUnsent();
    if (rm_wake_) {
      rm_wake_ = false;
      rm_cv_.notify_one();
    }
    if (Idle() && !was_idle) idle_since_ = now;
    if (int64_t us = GatherMicros(tasks_.size() + spawning_.size(), n); us > 0) {
      timespec gather{0, static_cast<long>(us * 1000)};
      ::nanosleep(&gather, nullptr);
    }
  }
  ::unlink((opts_.run_dir + "/" + kSocket).c_str());
  ::close(listen_);
  SaveExits();
  for (auto& g : free_) DropGroup(*g);
  {
    std::lock_guard<std::mutex> l(rm_mu_);
    rm_stop_ = true;
  }
  rm_cv_.notify_all();
  remover.join();
  return 0;
}

void Supervisor::LoadExits() {
  std::ifstream in(opts_.run_dir + "/" + kExits);
  int64_t now = NowMs();
  for (std::string line; std::getline(in, line);) {
    auto v = ParseJson(line);
    if (!v.ok() || !v->is_object()) continue;
    const json::object& o = v->as_object();
    const json::object* record = GetObject(o, "record");
    if (!record || GetInt(*record, "at").value_or(0) < now - kKeepExitsMs) continue;
    exits_[std::string(GetString(*record, "task").value_or(""))] =
        Exit{*record, GetInt(o, "started").value_or(0), 0};
  }
}

void Supervisor::SaveExits() {
  std::string path = opts_.run_dir + "/" + kExits;
  if (exits_.empty()) {
    ::unlink(path.c_str());
    return;
  }
  std::string text;
  for (const auto& [task, e] : exits_) {
    text += ToJson(json::object{{"record", e.record}, {"started", e.started}}) + "\n";
  }
  std::ofstream(path + ".tmp") << text;
  ::rename((path + ".tmp").c_str(), path.c_str());
}

void Supervisor::Remover() {
  SetThreadName("sup-remover");
  for (;;) {
    std::deque<std::pair<std::string, bool>> batch;
    {
      std::unique_lock<std::mutex> l(rm_mu_);
      rm_cv_.wait(l, [&] { return rm_stop_ || !rm_queue_.empty(); });
      if (rm_queue_.empty()) return;
      rm_cv_.wait_for(l, std::chrono::milliseconds(kRemoverGatherMs),
                      [&] { return rm_stop_ || rm_queue_.size() >= kRemoverBatch; });
      batch.swap(rm_queue_);
    }
    for (auto& [dir, reuse] : batch) ReleaseScratch(dir, reuse);
  }
}

std::string Supervisor::MakeScratch(const TaskSpec& spec) {
  namespace fs = std::filesystem;
  const std::string& dir = spec.workdir;
  std::string parent = fs::path(dir).parent_path().string();
  std::string pooled;
  {
    std::lock_guard<std::mutex> l(rm_mu_);
    auto [it, fresh] = scratch_pool_.try_emplace(parent);
    if (fresh) {  // the pool a previous supervisor left
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(parent + "/.pool", ec)) {
        if (it->second.size() < kMaxPooledScratch) it->second.push_back(e.path().string());
      }
    }
    if (!it->second.empty()) {
      pooled = std::move(it->second.back());
      it->second.pop_back();
    }
  }
  if (pooled.empty() || ::rename(pooled.c_str(), dir.c_str()) != 0) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return "cannot make the attempt's scratch directory " + dir + ": " + std::strerror(errno);
    }
  }
  ::chmod(dir.c_str(), 0700);  // the previous attempt owned it and may have changed it
  if (spec.uid && ::chown(dir.c_str(), *spec.uid, spec.gid.value_or(0)) != 0) {
    return "cannot give the attempt's scratch directory " + dir + " to uid " +
           std::to_string(*spec.uid) + ": " + std::strerror(errno);
  }
  return "";
}

// On the loop: hands an ended attempt's scratch directory to the remover.
void Supervisor::QueueScratch(const std::string& dir, bool reuse) {
  std::lock_guard<std::mutex> l(rm_mu_);
  rm_queue_.emplace_back(dir, reuse);
  if (WakeRemover(rm_queue_.size())) rm_wake_ = true;  // (at the end of the loop's turn)
}

// On the remover thread: empties the directory and puts it in the pool (or
// removes it, when a process of its attempt may still be using it).
void Supervisor::ReleaseScratch(const std::string& dir, bool reuse) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!reuse) {
    fs::remove_all(dir, ec);
    return;
  }
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::error_code rm;
    fs::remove_all(e.path(), rm);
  }
  std::string pool = fs::path(dir).parent_path().string() + "/.pool";
  std::string name;
  {
    std::lock_guard<std::mutex> l(rm_mu_);
    auto& free = scratch_pool_[fs::path(dir).parent_path().string()];
    if (free.size() < kMaxPooledScratch) {
      name = pool + "/" + std::to_string(::getpid()) + "-" + std::to_string(next_scratch_++);
    }
  }
  if (!name.empty()) {
    if (pools_made_.insert(pool).second) ::mkdir(pool.c_str(), 0700);
    int rc = ::rename(dir.c_str(), name.c_str());
    if (rc != 0 && errno == ENOENT && ::access(dir.c_str(), F_OK) == 0) {
      ::mkdir(pool.c_str(), 0700);  // the pool was removed meanwhile
      rc = ::rename(dir.c_str(), name.c_str());
    }
    if (rc == 0) {
      std::lock_guard<std::mutex> l(rm_mu_);
      scratch_pool_[fs::path(dir).parent_path().string()].push_back(name);
      return;
    }
  }
  fs::remove_all(dir, ec);
}

void Supervisor::Accept() {
  for (;;) {
    int fd = ::accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    // Only the supervisor's own user (or root) may start jobs through it.
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != ::geteuid() && cred.uid != 0)) {
      ::close(fd);
      continue;
    }
    uint64_t id = next_conn_++;
    conns_[id].fd = fd;
    epoll_event ev{EPOLLIN, {.u64 = Key(kConn, id)}};
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  }
}

void Supervisor::ReadConn(uint64_t id) {
  Conn& c = conns_.at(id);
  char buf[65536];
  ssize_t n = ::read(c.fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    CloseConn(id);
    return;
  }
  if (n < 0) return;
  c.in.append(buf, n);
  size_t start = 0;
  for (size_t nl; (nl = c.in.find('\n', start)) != std::string::npos; start = nl + 1) {
    // (Parsed into memory on the stack: Handle() copies what it keeps.)
    unsigned char mem[16384];
    json::monotonic_resource mr(mem, sizeof mem);
    auto msg = ParseJson(std::string_view(c.in).substr(start, nl - start), &mr);
    if (msg.ok() && msg->is_object()) Handle(id, msg->as_object());
    if (!conns_.count(id)) return;
  }
  conns_.at(id).in.erase(0, start);
}

void Supervisor::CloseConn(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  ::epoll_ctl(ep_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  ::close(it->second.fd);
  conns_.erase(it);
}

void Supervisor::Flush(uint64_t id, Conn& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      break;
    } else {
      CloseConn(id);
      return;
    }
  }
  bool want = !c.out.empty();
  if (want != c.want_out) {
    c.want_out = want;
    epoll_event ev{EPOLLIN | (want ? EPOLLOUT : 0u), {.u64 = Key(kConn, id)}};
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }
}

void Supervisor::Send(uint64_t conn, const json::object& msg) {
  auto it = conns_.find(conn);
  if (it == conns_.end()) return;  // kept (exits) or lost (replies): the server asks again
  it->second.out += ToJson(msg);
  it->second.out += '\n';
  if (!it->second.queued) {
    it->second.queued = true;
    unsent_.push_back(conn);
  }
}

void Supervisor::FlushUnsent() {
  for (uint64_t id : unsent_) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    it->second.queued = false;
    Flush(id, it->second);
  }
  unsent_.clear();
}

void Supervisor::Handle(uint64_t conn, const json::object& msg) {
  std::string_view op = GetString(msg, "op").value_or("");
  std::string task(GetString(msg, "task").value_or(""));
  if (op == "hello") {
    Send(conn, {{"op", "hello"},
                {"version", kSupervisorProtocol},
                {"pid", ::getpid()},
                {"describe", cgroups_->Describe()}});
  } else if (op == "start") {
    Start(conn, msg);
  } else if (op == "attach") {
    if (auto sp = spawning_.find(task); sp != spawning_.end()) {
      sp->second.owner = conn;  // it hears "started" (as good as "running") or "failed"
    } else if (auto it = by_id_.find(task); it != by_id_.end()) {
      Task& t = *tasks_.at(it->second);
      t.owner = conn;
      Send(conn, {{"op", "running"}, {"task", task}, {"pid", t.pid}, {"at", t.started}});
    } else if (auto e = exits_.find(task); e != exits_.end()) {
      e->second.owner = conn;
      Send(conn, {{"op", "running"}, {"task", task}, {"pid", 0}, {"at", e->second.started}});
      Send(conn, e->second.record);
    } else {
      Send(conn, {{"op", "unknown"}, {"task", task}});
    }
  } else if (op == "term") {
    if (auto sp = spawning_.find(task); sp != spawning_.end()) {
      sp->second.term_grace = GetInt(msg, "graceMs").value_or(30000);
      return;
    }
    auto it = by_id_.find(task);
    if (it == by_id_.end()) return;
    Task& t = *tasks_.at(it->second);
    if (t.exited) return;
    ::kill(-t.pid, SIGTERM);
    if (t.kill_at == 0) {
      t.kill_at = NowMs() + GetInt(msg, "graceMs").value_or(30000);
      timers_.insert({t.kill_at, it->second});
    }
  } else if (op == "ack") {
    exits_.erase(task);
  }
}

void Supervisor::Start(uint64_t conn, const json::object& msg) {
  const json::object* spec = GetObject(msg, "spec");
  auto t = std::make_unique<Task>();
  if (spec) t->spec = SpecFromJson(*spec);
  t->owner = conn;
  const std::string id = t->spec.task_id;
  auto fail = [&](bool client, const std::string& error) {
    Send(conn, {{"op", "failed"}, {"task", id}, {"client", client}, {"error", error}});
  };
  if (id.empty() || by_id_.count(id) || exits_.count(id) || spawning_.count(id)) {
    fail(false, "attempt " + id + " is already known to the supervisor");
    return;
  }
  auto writer = logs::StreamWriter::Open(t->spec.log_root, t->spec.log_group, t->spec.log_stream,
                                         t->spec.log_cap_bytes, clock_);
  if (!writer.ok()) {
    fail(true, "CannotStartContainerError: cannot open the job's log: " + writer.status().message());
    return;
  }
  t->writer = std::move(writer).value();
  for (const auto& line : t->spec.log_header) (void)t->writer->Write(line + "\n");
  CgroupLimits limits;
  limits.memory_bytes = t->spec.memory_mib << 20;
  limits.vcpus = t->spec.vcpus;
  limits.hard_cpu = t->spec.hard_cpu;
  limits.pids_max = GetInt(msg, "pidsMax").value_or(0);
  if (cgroups_->mode() != Cgroups::Mode::kNone) {
    auto g = TakeGroup(limits);
    if (!g.ok()) {
      (void)t->writer->Close();
      fail(false, g.status().message());
      return;
    }
    t->group = std::move(g).value();
  }
  if (t->spec.scratch_workdir) {
    if (std::string error = MakeScratch(t->spec); !error.empty()) {
      (void)t->writer->Close();
      if (t->group) Recycle(std::move(t->group));
      fail(false, error);
      return;
    }
  }
  spawning_[id].owner = conn;
  auto l = std::make_unique<Launch>();
  l->task = std::move(t);
  bool client = true;
  if (std::string error = Spawn(*l, &client); !error.empty()) {
    SpawnFailed(std::move(l->task), error, client);
    return;
  }
  launching_.push_back(std::move(l));
}

// With one attempt on the host and its child on its way to exec, the loop
// waits for the exec (as a vfork would): nothing else is there to serve, and the
// attempt's "started" goes out at once.
void Supervisor::WaitLoneLaunch() {
  if (launching_.size() != 1 || !tasks_.empty()) return;
  Launch& l = *launching_.front();
  timespec limit{0, 20'000'000};
  while (!Launched(l)) {
    long r = RawSyscall(SYS_futex, reinterpret_cast<long>(&l.ctid), FUTEX_WAIT, 1,
                        reinterpret_cast<long>(&limit));
    if (r == -ETIMEDOUT) break;  // (a child stopped on its way: the loop goes on)
  }
  PollLaunches();
  FlushUnsent();
}

// Children that have exec'd (or failed to) since the last look.
void Supervisor::PollLaunches() {
  for (size_t i = 0; i < launching_.size();) {
    if (!Launched(*launching_[i])) {
      ++i;
      continue;
    }
    std::unique_ptr<Launch> l = std::move(launching_[i]);
    launching_[i] = std::move(launching_.back());
    launching_.pop_back();
    ::close(l->out_w);  // (the child's descriptor table is its own now, or gone)
    if (free_stacks_.size() < kMaxFreeStacks) free_stacks_.push_back(std::move(l->stack));
    std::unique_ptr<Task> t = std::move(l->task);
    if (int err = l->args->err; err != 0) {
      // It failed before its exec and exits: reaped here, or already by
      // ReapChildren (which took it for an attempt whose start is still to come).
      if (::waitpid(t->pid, nullptr, 0) != t->pid) early_exits_.erase(t->pid);
      t->pid = -1;
      ::close(t->out);
      t->out = -1;
      std::string error =
          err >= kChdirFailed
              ? "CannotStartContainerError: cannot enter the working directory " + t->spec.workdir +
                    ": " + std::strerror(err - kChdirFailed)
              : "CannotStartContainerError: " + l->argv0 + ": " + std::strerror(err);
      SpawnFailed(std::move(t), error, true);
      continue;
    }
    Running(std::move(t));
  }
}

void Supervisor::SpawnFailed(std::unique_ptr<Task> t, const std::string& error, bool client) {
  const std::string id = t->spec.task_id;
  Spawning sp = spawning_[id];
  spawning_.erase(id);
  (void)t->writer->Close();
  if (t->group) Recycle(std::move(t->group));
  if (t->spec.scratch_workdir) QueueScratch(t->spec.workdir, true);
  Send(sp.owner, {{"op", "failed"}, {"task", id}, {"client", client}, {"error", error}});
}

// The attempt's process has exec'd: it runs.
void Supervisor::Running(std::unique_ptr<Task> t) {
  const std::string id = t->spec.task_id;
  Spawning sp = spawning_[id];
  spawning_.erase(id);
  uint64_t serial = next_task_++;
  t->owner = sp.owner;
  epoll_event ev{EPOLLIN, {.u64 = Key(kOut, serial)}};
  ::epoll_ctl(ep_, EPOLL_CTL_ADD, t->out, &ev);
  by_id_[id] = serial;
  Send(sp.owner, {{"op", "started"}, {"task", id}, {"pid", t->pid}, {"at", t->started}});
  pid_t pid = t->pid;
  tasks_[serial] = std::move(t);
  if (auto e = early_exits_.find(pid); e != early_exits_.end()) {
    int status = e->second;
    early_exits_.erase(e);
    Exited(serial, status);
    return;
  }
  by_pid_[pid] = serial;
  if (sp.term_grace >= 0) {
    Task& r = *tasks_.at(serial);
    ::kill(-r.pid, SIGTERM);
    r.kill_at = NowMs() + sp.term_grace;
    timers_.insert({r.kill_at, serial});
  }
}

// Starts the job's process: a clone sharing the supervisor's memory whose child
// joins the cgroup, sets limits, mounts the sandbox's root, drops to the job's
// user and execs, while the loop goes on (Launch). Returns "" or why not.
std::string Supervisor::Spawn(Launch& l, bool* client_error) {
  Task& t = *l.task;
  const TaskSpec& spec = t.spec;
  l.argv = spec.argv;
  if (l.argv.empty()) {
    return "CannotStartContainerError: the job has no command to run (host mode has no image "
           "default command)";
  }
  l.argv0 = l.argv[0];
  // In a sandbox the command is found inside the image, by bubblewrap.
  if (spec.sandbox) {
    auto bwrap = Resolve("bwrap", {"PATH=/usr/bin:/bin:/usr/local/bin:/usr/sbin:/sbin"});
    if (!bwrap) return "CannotStartContainerError: bubblewrap (bwrap) is not installed on this host";
    std::string ovl = spec.workdir + "/.rootfs", upper = ovl + "/upper", work = ovl + "/work",
                tmp = spec.workdir + "/tmp";
    l.merged = ovl + "/merged";
    for (const auto& d : {ovl, upper, work, l.merged, tmp}) {
      ::mkdir(d.c_str(), 0700);
      if (spec.uid) {
        [[maybe_unused]] int rc = ::chown(d.c_str(), *spec.uid, spec.gid.value_or(0));
      }
    }
    l.overlay_opts = "lowerdir=" + spec.sandbox->rootfs + ",upperdir=" + upper + ",workdir=" + work;
    const auto& box = *spec.sandbox;
    std::vector<std::string> b = {*bwrap, "--unshare-all", "--die-with-parent"};
    if (box.network) b.push_back("--share-net");
    if (box.uid) b.insert(b.end(), {"--uid", std::to_string(*box.uid)});
    if (box.gid) b.insert(b.end(), {"--gid", std::to_string(*box.gid)});
    b.insert(b.end(), {box.read_only_root ? "--ro-bind" : "--bind", l.merged, "/", "--proc",
                       "/proc", "--dev", "/dev", "--bind", tmp, "/tmp"});
    for (const auto& m : box.mounts) {
      if (m.tmpfs_mib > 0) {
        b.insert(b.end(), {"--size", std::to_string(m.tmpfs_mib << 20), "--tmpfs", m.target});
        continue;
      }
      b.push_back(m.device ? "--dev-bind" : m.read_only ? "--ro-bind" : "--bind");
      b.push_back(m.source);
      b.push_back(m.target);
    }
    b.insert(b.end(), {"--chdir", "/", "--"});
    b.insert(b.end(), l.argv.begin(), l.argv.end());
    l.argv = std::move(b);
  }
  auto path = Resolve(l.argv[0], spec.env);
  if (!path) return "CannotStartContainerError: executable file not found in $PATH: " + l.argv[0];
  l.path = std::move(*path);
  for (auto& a : l.argv) l.cargv.push_back(a.data());
  l.cargv.push_back(nullptr);
  for (auto& e : t.spec.env) l.cenv.push_back(e.data());  // (the task lives as long as the launch)
  l.cenv.push_back(nullptr);
  // ulimits, as ECS maps them onto setrlimit (lowering works; raising past the
  // supervisor's own hard limit needs a privilege it may not have, and fails).
  l.limits.push_back({RLIMIT_NOFILE, nofile_});
  for (const auto& u : spec.ulimits) {
    if (int r = RlimitOf(u.name); r >= 0) {
      l.limits.push_back({r, {static_cast<rlim_t>(u.soft), static_cast<rlim_t>(u.hard)}});
    }
  }
  if (!t.group && spec.memory_mib > 0) {  // no cgroups: the address-space rlimit is what is left
    rlim_t bytes = static_cast<rlim_t>(spec.memory_mib) << 20;
    l.limits.push_back({RLIMIT_AS, {bytes, bytes}});
  }
  static const std::vector<int> kNoProcs;
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    *client_error = false;
    return std::string("cannot make the job's output pipe: ") + std::strerror(errno);
  }
  const int birth_dir = t.group && born_ok_ ? t.group->birth_dir : -1;
  l.args.reset(new ChildArgs{.procs = t.group ? t.group->procs : kNoProcs,
                             .v2_procs = t.group && birth_dir < 0 ? t.group->v2_procs : -1,
                             .limits = l.limits,
                             .sandbox = spec.sandbox.has_value(),
                             .merged = l.merged.c_str(),
                             .overlay_opts = l.overlay_opts.c_str(),
                             .uid = spec.uid ? static_cast<long>(*spec.uid) : -1,
                             .gid = spec.gid ? static_cast<long>(*spec.gid) : -1,
                             .workdir = spec.workdir.c_str(),
                             .devnull = devnull_,
                             .out = out[1],
                             .keep = share_fds_ ? std::max(devnull_, out[1]) + 1 : -1,
                             .path = l.path.c_str(),
                             .argv = l.cargv.data(),
                             .envp = l.cenv.data()});
  // The child runs on a stack of its own, in the supervisor's memory, until it
  // execs. Where system calls cannot be made without glibc (and its errno), the
  // loop waits meanwhile (CLONE_VFORK), as it once did.
  if (free_stacks_.empty()) {
    l.stack.reset(new char[kChildStack]);
  } else {
    l.stack = std::move(free_stacks_.back());
    free_stacks_.pop_back();
  }
  int flags = CLONE_VM | CLONE_CHILD_CLEARTID | (kRawSyscalls ? 0 : CLONE_VFORK) |
              (share_fds_ ? CLONE_FILES : 0);
  pid_t pid = -1;
  if (birth_dir >= 0) {
    // Born in the group's v2 directory: no join (a join takes the kernel's
    // cgroup_threadgroup_rwsem for writing, which every fork and exit on the
    // host takes for reading). Pure v2 hosts: nothing left to join at all.
    clone_args ca{};
    ca.flags = static_cast<uint64_t>(flags) | CLONE_INTO_CGROUP;
    ca.exit_signal = SIGCHLD;
    ca.stack = reinterpret_cast<uint64_t>(l.stack.get());
    ca.stack_size = kChildStack;
    ca.child_tid = reinterpret_cast<uint64_t>(&l.ctid);
    ca.cgroup = static_cast<uint64_t>(birth_dir);
    pid = Clone3(&ca, ChildMain, l.args.get());
    if (pid < 0 && pid != -EAGAIN && pid != -ENOMEM) {
      // Not placed: no clone3 (ENOSYS, E2BIG: Linux < 5.3, or not x86-64), no
      // CLONE_INTO_CGROUP (EINVAL: < 5.7), or not a cgroup v2 directory (EBADF).
      // The child joins instead, in this group from now on, in every group
      // when the kernel cannot.
      if (pid == -ENOSYS || pid == -E2BIG) born_ok_ = false;
      ::close(t.group->birth_dir);
      t.group->birth_dir = -1;
      l.args->v2_procs = t.group->v2_procs;
      pid = ::clone(ChildMain, l.stack.get() + kChildStack, flags | SIGCHLD, l.args.get(), nullptr,
                    nullptr, &l.ctid);
    } else if (pid < 0) {
      errno = -pid;
    }
  } else {
    pid = ::clone(ChildMain, l.stack.get() + kChildStack, flags | SIGCHLD, l.args.get(), nullptr,
                  nullptr, &l.ctid);
  }
  int fork_errno = errno;
  if (pid < 0) {
    ::close(out[0]);
    ::close(out[1]);
    *client_error = false;
    return std::string("cannot start the job's process: ") + std::strerror(fork_errno);
  }
  // (out[1] stays open until the child has a descriptor table of its own: with
  // CLONE_FILES, closing it here would close it for the child.)
  l.out_w = out[1];
  ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
  t.pid = pid;
  t.out = out[0];
  t.started = NowMs();
  return "";
}

void Supervisor::ReapChildren() {
  signalfd_siginfo si;
  while (::read(sigfd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
  }
  int status = 0;
  for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
    auto it = by_pid_.find(pid);
    if (it == by_pid_.end()) {
      early_exits_[pid] = status;  // its spawn has not come back to the loop yet
      continue;
    }
    uint64_t serial = it->second;
    by_pid_.erase(it);
    Exited(serial, status);
  }
}

// The job's main process has ended (and was reaped).
void Supervisor::Exited(uint64_t serial, int status) {
  Task& t = *tasks_.at(serial);
  t.exited = true;
  t.status = status;
  // The attempt ends with its main process, as ECS does: its whole tree
  // goes, daemonized processes included (the cgroup has them).
  ::kill(-t.pid, SIGKILL);
  if (t.group) {
    // An empty group stays empty: no process is left in it to start another.
    t.emptied = !t.group->counters->Populated();
    if (!t.emptied) KillGroup(*t.group);
  }
  if (t.out < 0) {
    Finish(serial);
  } else {
    t.drain_until = NowMs() + kDrainMs;
    timers_.insert({t.drain_until, serial});
  }
}

void Supervisor::OnOutput(uint64_t serial) {
  auto it = tasks_.find(serial);
  if (it == tasks_.end()) return;
  Task& t = *it->second;
  char buf[65536];
  ssize_t r = ::read(t.out, buf, sizeof buf);
  if (r > 0) {
    (void)t.writer->Write(std::string_view(buf, r));
    return;
  }
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  ::epoll_ctl(ep_, EPOLL_CTL_DEL, t.out, nullptr);  // every writer of the pipe is gone
  ::close(t.out);
  t.out = -1;
  if (t.exited) Finish(serial);
}

void Supervisor::OnTimer(int64_t now) {
  while (!timers_.empty() && timers_.begin()->first <= now) {
    uint64_t serial = timers_.begin()->second;
    timers_.erase(timers_.begin());
    auto it = tasks_.find(serial);
    if (it == tasks_.end()) continue;
    Task& t = *it->second;
    if (!t.exited && t.kill_at > 0 && t.kill_at <= now) {
      ::kill(-t.pid, SIGKILL);
      if (t.group) KillGroup(*t.group);
    } else if (t.exited && t.drain_until > 0 && t.drain_until <= now) {
      Finish(serial);  // an escaped process holds the pipe
    }
  }
}

void Supervisor::Finish(uint64_t serial) {
  auto it = tasks_.find(serial);
  std::unique_ptr<Task> t = std::move(it->second);
  tasks_.erase(it);
  by_id_.erase(t->spec.task_id);
  if (t->out >= 0) {
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, t->out, nullptr);
    ::close(t->out);
  }
  int64_t stopped = NowMs();
  (void)t->writer->Close();
  CgroupUsage usage;
  bool emptied = false;  // no process of the attempt is left
  if (t->group) {
    Group& g = *t->group;
    CgroupUsage now = g.counters->Read();
    usage.peak_memory_bytes = now.peak_memory_bytes;
    if (now.cpu_time_ns >= 0) usage.cpu_time_ns = now.cpu_time_ns - std::max<int64_t>(0, g.base.cpu_time_ns);
    if (now.oom_kills >= 0) usage.oom_killed = now.oom_kills > std::max<int64_t>(0, g.base.oom_kills);
    g.base = now;
    if (!t->emptied && g.counters->Populated()) {
      KillGroup(g);
      returning_.push_back(std::move(t->group));
    } else {
      emptied = true;
      Recycle(std::move(t->group));
    }
  }
  if (t->spec.scratch_workdir && !t->spec.workdir.empty()) QueueScratch(t->spec.workdir, emptied);
  int st = t->status;
  json::object record{{"op", "exited"},
                      {"task", t->spec.task_id},
                      {"at", stopped},
                      {"exitCode", WIFEXITED(st)     ? WEXITSTATUS(st)
                                   : WIFSIGNALED(st) ? 128 + WTERMSIG(st)
                                                     : 255},
                      {"signal", WIFSIGNALED(st) ? WTERMSIG(st) : 0},
                      {"peakMemoryBytes", usage.peak_memory_bytes},
                      {"cpuTimeNs", usage.cpu_time_ns},
                      {"oomKilled", usage.oom_killed}};
  Send(t->owner, record);
  exits_[t->spec.task_id] = Exit{std::move(record), t->started, t->owner};
}

Result<std::unique_ptr<Supervisor::Group>> Supervisor::TakeGroup(const CgroupLimits& limits) {
  // A free group with the same limits needs no write at all; another one
  // needs only the limits that differ.
  for (int pass = 0; pass < 2; ++pass) {
    for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
      if (pass == 0 && !((*it)->limits == limits)) continue;
      std::unique_ptr<Group> g = std::move(*it);
      free_.erase(std::next(it).base());
      if (pass == 1) {
        if (!cgroups_->Apply(g->cg, g->limits, limits).ok()) {
          DropGroup(*g);  // e.g. a memory limit below what is still charged: a new one
          break;
        }
        g->limits = limits;
      }
      return g;
    }
  }
  auto g = std::make_unique<Group>();
  auto cg = cgroups_->Create(
      "p" + std::to_string(::getpid()) + "-" + std::to_string(next_group_++), limits);
  if (!cg.ok()) return cg.status();
  g->cg = std::move(cg).value();
  g->counters = std::make_unique<CgroupCounters>(g->cg, kHighFd);
  g->limits = limits;
  g->base.cpu_time_ns = g->base.oom_kills = 0;
  const std::string birth = Cgroups::BirthDir(g->cg);
  for (const auto& f : cgroups_->ProcsFiles(g->cg)) {
    int fd = OpenHigh(f, O_WRONLY, kHighFd);
    if (fd < 0) {
      Status s = Status::Server("cannot set up the attempt's cgroup (open " + f +
                                "): " + std::strerror(errno));
      DropGroup(*g);
      return s;
    }
    if (!birth.empty() && f == birth + "/cgroup.procs") {
      g->v2_procs = fd;
    } else {
      g->procs.push_back(fd);
    }
  }
  if (!birth.empty()) g->birth_dir = OpenHigh(birth, O_RDONLY | O_DIRECTORY, kHighFd);
  return g;
}

void Supervisor::Recycle(std::unique_ptr<Group> g) {
  if (!g->reusable || free_.size() >= kMaxFreeGroups || !g->counters->ResetPeak()) {
    DropGroup(*g);
    return;
  }
  free_.push_back(std::move(g));
}

void Supervisor::KillGroup(Group& g) {
  Cgroups::Kill(g.cg);
  if (g.birth_dir >= 0) ::close(g.birth_dir);
  g.birth_dir = -1;
}

void Supervisor::DropGroup(Group& g) {
  for (int fd : g.procs) ::close(fd);
  g.procs.clear();
  for (int* fd : {&g.birth_dir, &g.v2_procs}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  g.counters.reset();
  for (int i = 0; i < 50 && !Cgroups::Remove(g.cg); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool Supervisor::CanBeBornInGroups() {
  if (cgroups_->mode() == Cgroups::Mode::kNone) return false;
  auto g = cgroups_->Create("p" + std::to_string(::getpid()) + "-0", CgroupLimits{});
  if (!g.ok()) return false;
  std::string birth = Cgroups::BirthDir(*g);
  int dir = birth.empty() ? -1 : ::open(birth.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  bool ok = dir >= 0 && CanBeBornIn(dir);
  if (dir >= 0) ::close(dir);
  for (int i = 0; i < 50 && !Cgroups::Remove(*g); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!ok && !birth.empty()) {
    std::fprintf(stderr, "drover-supervisor: processes join their cgroups: clone3 cannot create "
                         "them in one (an older kernel, or this supervisor's own cgroup was "
                         "killed before)\n");
  }
  return ok;
}

// Groups of supervisors that died ("p<pid>-<n>" whose pid is gone): removed
// when empty.
void Supervisor::CleanStaleGroups() {
  if (cgroups_->mode() == Cgroups::Mode::kNone) return;
  std::vector<std::string> parents;
  if (cgroups_->mode() == Cgroups::Mode::kV2) {
    parents.push_back(opts_.cgroup_root + "/" + opts_.cgroup_parent);
  } else {
    for (const char* c : {"memory", "cpu", "cpuacct", "pids", "freezer", "unified"}) {
      parents.push_back(opts_.cgroup_root + "/" + c + "/" + opts_.cgroup_parent);
    }
  }
  for (const auto& parent : parents) {
    DIR* d = ::opendir(parent.c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d)) {
      long pid = 0;
      int used = 0;
      if (std::sscanf(e->d_name, "p%ld-%*d%n", &pid, &used) != 1 || e->d_name[used] != '\0') {
        continue;
      }
      if (pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0) continue;
      ::rmdir((parent + "/" + e->d_name).c_str());
    }
    ::closedir(d);
  }
}

}  // namespace

int64_t GatherMicros(size_t attempts, int events) {
  return attempts >= 2 && events > 0 ? kGatherMicros : 0;
}

bool WakeRemover(size_t queued) { return queued == 1 || queued == kRemoverBatch; }

json::object SpecToJson(const TaskSpec& spec) {
  json::object o{{"taskId", spec.task_id},
                 {"jobId", spec.job_id},
                 {"attempt", spec.attempt},
                 {"argv", Strings(spec.argv)},
                 {"env", Strings(spec.env)},
                 {"workdir", spec.workdir},
                 {"scratchWorkdir", spec.scratch_workdir},
                 {"logRoot", spec.log_root},
                 {"logGroup", spec.log_group},
                 {"logStream", spec.log_stream},
                 {"logCapBytes", spec.log_cap_bytes},
                 {"logHeader", Strings(spec.log_header)},
                 {"memoryMiB", spec.memory_mib},
                 {"vcpus", spec.vcpus},
                 {"hardCpu", spec.hard_cpu}};
  if (spec.uid) o["uid"] = *spec.uid;
  if (spec.gid) o["gid"] = *spec.gid;
  if (spec.sandbox) {
    json::array mounts;
    for (const auto& m : spec.sandbox->mounts) {
      mounts.push_back(json::object{{"source", m.source}, {"target", m.target},
                                    {"readOnly", m.read_only}, {"device", m.device},
                                    {"tmpfsMiB", m.tmpfs_mib}});
    }
    json::object box{{"rootfs", spec.sandbox->rootfs},
                     {"readOnlyRoot", spec.sandbox->read_only_root},
                     {"network", spec.sandbox->network},
                     {"mounts", std::move(mounts)}};
    if (spec.sandbox->uid) box["uid"] = *spec.sandbox->uid;
    if (spec.sandbox->gid) box["gid"] = *spec.sandbox->gid;
    o["sandbox"] = std::move(box);
  }
  json::array ulimits;
  for (const auto& u : spec.ulimits) {
    ulimits.push_back(json::object{{"name", u.name}, {"soft", u.soft}, {"hard", u.hard}});
  }
  o["ulimits"] = std::move(ulimits);
  return o;
}

TaskSpec SpecFromJson(const json::object& o) {
  TaskSpec s;
  s.task_id = GetString(o, "taskId").value_or("");
  s.job_id = GetString(o, "jobId").value_or("");
  s.attempt = static_cast<int>(GetInt(o, "attempt").value_or(1));
  s.argv = Strings(o, "argv");
  s.env = Strings(o, "env");
  s.workdir = GetString(o, "workdir").value_or("/");
  s.scratch_workdir = GetBool(o, "scratchWorkdir").value_or(false);
  s.log_root = GetString(o, "logRoot").value_or("");
  s.log_group = GetString(o, "logGroup").value_or("");
  s.log_stream = GetString(o, "logStream").value_or("");
  s.log_cap_bytes = static_cast<uint64_t>(GetInt(o, "logCapBytes").value_or(0));
  s.log_header = Strings(o, "logHeader");
  s.memory_mib = GetInt(o, "memoryMiB").value_or(0);
  if (auto it = o.find("vcpus"); it != o.end() && it->value().is_number()) {
    s.vcpus = it->value().to_number<double>();
  }
  s.hard_cpu = GetBool(o, "hardCpu").value_or(false);
  if (auto u = GetInt(o, "uid")) s.uid = static_cast<uid_t>(*u);
  if (auto g = GetInt(o, "gid")) s.gid = static_cast<gid_t>(*g);
  if (const auto* box = GetObject(o, "sandbox")) {
    TaskSpec::Sandbox b;
    b.rootfs = GetString(*box, "rootfs").value_or("");
    b.read_only_root = GetBool(*box, "readOnlyRoot").value_or(false);
    b.network = GetBool(*box, "network").value_or(false);
    if (auto u = GetInt(*box, "uid")) b.uid = static_cast<uid_t>(*u);
    if (auto g = GetInt(*box, "gid")) b.gid = static_cast<gid_t>(*g);
    if (const auto* mounts = GetArray(*box, "mounts")) {
      for (const auto& m : *mounts) {
        if (!m.is_object()) continue;
        const auto& mo = m.as_object();
        TaskSpec::Mount mount;
        mount.source = GetString(mo, "source").value_or("");
        mount.target = GetString(mo, "target").value_or("");
        mount.read_only = GetBool(mo, "readOnly").value_or(false);
        mount.device = GetBool(mo, "device").value_or(false);
        mount.tmpfs_mib = GetInt(mo, "tmpfsMiB").value_or(0);
        b.mounts.push_back(std::move(mount));
      }
    }
    s.sandbox = std::move(b);
  }
  if (const auto* ul = GetArray(o, "ulimits")) {
    for (const auto& u : *ul) {
      if (!u.is_object()) continue;
      s.ulimits.push_back({std::string(GetString(u.as_object(), "name").value_or("")),
                           GetInt(u.as_object(), "soft").value_or(0),
                           GetInt(u.as_object(), "hard").value_or(0)});
    }
  }
  return s;
}

Result<int> ConnectSupervisor(const std::string& run_dir) {
  Address a;
  if (!MakeAddress(run_dir, a)) {
    return Status::Server("cannot open " + run_dir + ": " + std::strerror(errno));
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Server(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a.addr), sizeof a.addr) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    return Status::Server("cannot connect to the supervisor at " + run_dir + "/" + kSocket +
                          ": " + std::strerror(err));
  }
  return fd;
}

int RunSupervisor(const SupervisorOptions& opts) {
  auto report = [&](const std::string& line) {
    if (opts.ready_fd >= 0) {
      [[maybe_unused]] auto n = ::write(opts.ready_fd, line.data(), line.size());
      ::close(opts.ready_fd);
    }
  };
  for (int s : {SIGHUP, SIGINT, SIGTERM, SIGPIPE}) ::signal(s, SIG_IGN);
  std::error_code ec;
  std::filesystem::create_directories(opts.run_dir, ec);
  int lock = ::open((opts.run_dir + "/" + kLock).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) {
    report("err cannot open " + opts.run_dir + "/" + kLock + ": " + std::strerror(errno) + "\n");
    return 1;
  }
  if (::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    report("err busy\n");  // another supervisor serves this run directory
    return 0;
  }
  Address a;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ::unlink((opts.run_dir + "/" + kSocket).c_str());  // a dead supervisor's
  mode_t umask = ::umask(077);  // the socket: the supervisor's user only
  if (fd < 0 || !MakeAddress(opts.run_dir, a) ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&a.addr), sizeof a.addr) != 0 || ::listen(fd, 128) != 0) {
    report("err cannot listen on " + opts.run_dir + "/" + kSocket + ": " + std::strerror(errno) + "\n");
    return 1;
  }
  ::umask(umask);
  // Its own output goes to a file beside the socket.
  int log = ::open((opts.run_dir + "/supervisor.log").c_str(),
                   O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null >= 0) ::dup2(null, 0);
  if (log >= 0) {
    ::dup2(log, 1);
    ::dup2(log, 2);
  }
  report("ok\n");
  Supervisor s(opts, fd);
  int rc = s.Run();
  ::close(lock);
  return rc;
}

}  // namespace drover::exec
