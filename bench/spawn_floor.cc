// bench_spawn_floor: how fast this host can start and reap trivial processes,
// the floor under any job dispatcher (issue #7). Four lines:
//   posix_spawn   posix_spawn(/bin/true) + waitpid
//   fork+exec     fork, execv(/bin/true) + waitpid
//   +cgroup       a fresh cgroup per process (Drover's own exec::Cgroups: every
//                 v1 hierarchy + unified on hybrid hosts, one directory on pure
//                 v2, limits as for a 0.125-vCPU, 16 MiB job), the child joins it
//                 before exec, the parent reads its usage and removes it after
//                 waitpid.
//   +pooled       as Drover's supervisor (exec/spawn.h): a cgroup made once per
//                 worker (as above) and reused process after process; the child
//                 shares the worker's memory and descriptor table, is born in the
//                 group's v2 directory (clone3 CLONE_INTO_CGROUP; where it cannot
//                 be, it joins it), joins the v1 hierarchies, keeps a copy of the
//                 low descriptors only, then execs; the parent reads its usage
//                 after waitpid.
// Each runs --parallel worker processes (default: the number of CPUs), each
// starting processes one after another, --n processes in all (default 5000),
// --repeats times (default 3); prints "key: median /s [min..max, n=R]".
// --extra-fds N opens N more descriptors (at 1024 and above) first, as a host
// supervisor holds for its pooled groups: posix_spawn and fork copy them into
// every child, whose exec closes them again; the pooled line's child does not.
// --only posix_spawn measures and prints the first line only (bench_load's
// dispatch mode runs it right before each burst: --floor).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "exec/cgroup.h"
#include "exec/spawn.h"

extern char** environ;

namespace {

double NowS() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

char kTrue[] = "/bin/true";
// The limits of the benchmark's dispatch jobs: 16 MiB, 0.125 vCPU.
const drover::exec::CgroupLimits kJobLimits{16 << 20, 0.125, false, 0};

bool SpawnOne() {
  char* argv[] = {kTrue, nullptr};
  pid_t pid;
  if (posix_spawn(&pid, kTrue, nullptr, nullptr, argv, environ) != 0) return false;
  int st;
  return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

bool ForkOne(const std::vector<std::string>* procs) {
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    if (procs) {
      for (const auto& f : *procs) {
        int fd = open(f.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1) _exit(120);
        close(fd);
      }
    }
    char* argv[] = {kTrue, nullptr};
    execv(kTrue, argv);
    _exit(127);
  }
  int st;
  return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

// A worker's pooled group: its v1 cgroup.procs files, its v2 directory (or
// its cgroup.procs when clone3 cannot place a process there).
struct Pooled {
  std::vector<int> procs;
  int birth_dir = -1, v2_procs = -1;
  int keep = 0;  // the child keeps the descriptors below this one
};

int PooledChild(void* arg) {
  const Pooled& p = *static_cast<const Pooled*>(arg);
  char buf[24];
  int len = std::snprintf(buf, sizeof buf, "%ld", static_cast<long>(syscall(SYS_getpid)));
  for (int fd : p.procs) {
    if (write(fd, buf, len) != len) _exit(120);
  }
  if (p.v2_procs >= 0 && write(p.v2_procs, buf, len) != len) _exit(120);
  if (drover::exec::UnshareDescriptorsFrom(p.keep) != 0) _exit(121);
  char* argv[] = {kTrue, nullptr};
  execve(kTrue, argv, environ);
  _exit(127);
}

// Starts /bin/true in `p` as Drover's supervisor does, waits for it.
bool PooledOne(Pooled& p) {
  constexpr size_t kStack = 64 << 10;
  alignas(16) static char stack[kStack];
  int flags = CLONE_VM | CLONE_VFORK | CLONE_FILES;
  pid_t pid = -1;
  if (p.birth_dir >= 0) {
    clone_args ca{};
    ca.flags = static_cast<uint64_t>(flags) | CLONE_INTO_CGROUP;
    ca.exit_signal = SIGCHLD;
    ca.stack = reinterpret_cast<uint64_t>(stack);
    ca.stack_size = kStack;
    ca.cgroup = static_cast<uint64_t>(p.birth_dir);
    pid = drover::exec::Clone3(&ca, PooledChild, &p);
    if (pid < 0) {  // as the supervisor: join instead
      close(p.birth_dir);
      p.birth_dir = -1;
    }
  }
  if (p.birth_dir < 0) {
    Pooled joining = p;
    joining.procs.push_back(p.v2_procs);
    joining.v2_procs = -1;
    pid = clone(PooledChild, stack + kStack, flags | SIGCHLD, &joining);
  }
  if (pid < 0) return false;
  int st;
  return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

// Runs `one(worker, i)` n times over p worker processes; returns processes/s
// (or -1 if any failed).
double Run(int n, int p, const std::function<bool(int, int)>& one) {
  double t0 = NowS();
  std::vector<pid_t> workers;
  for (int w = 0; w < p; ++w) {
    pid_t pid = fork();
    if (pid == 0) {
      int count = n / p + (w < n % p ? 1 : 0);
      for (int i = 0; i < count; ++i) {
        if (!one(w, i)) _exit(1);
      }
      _exit(0);
    }
    workers.push_back(pid);
  }
  bool ok = true;
  for (pid_t pid : workers) {
    int st;
    waitpid(pid, &st, 0);
    ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  return ok ? n / (NowS() - t0) : -1;
}

void Line(const char* key, std::vector<double> v, const std::string& extra) {
  std::sort(v.begin(), v.end());
  std::printf("%s: %.0f /s [%.0f..%.0f, n=%zu]  %s\n", key, v[v.size() / 2], v.front(), v.back(),
              v.size(), extra.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int n = 5000, repeats = 3, extra_fds = 0;
  bool only_posix_spawn = false;
  int p = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--n") n = std::stoi(argv[i + 1]);
    else if (a == "--parallel") p = std::stoi(argv[i + 1]);
    else if (a == "--repeats") repeats = std::stoi(argv[i + 1]);
    else if (a == "--extra-fds") extra_fds = std::stoi(argv[i + 1]);
    else if (a == "--only") only_posix_spawn = std::string(argv[i + 1]) == "posix_spawn";
  }
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  for (int i = 0; i < extra_fds; ++i) {
    if (fcntl(devnull, F_DUPFD_CLOEXEC, 1024) < 0) {
      std::fprintf(stderr, "--extra-fds: %s\n", std::strerror(errno));
      return 1;
    }
  }
  auto cg = drover::exec::Cgroups::Detect("/sys/fs/cgroup", "drover-bench-floor");
  std::string with = std::to_string(p) + " workers, " + std::to_string(n) + " processes per run";
  if (extra_fds > 0) with += ", " + std::to_string(extra_fds) + " extra descriptors";
  std::vector<double> a, b, c, d;
  for (int r = 0; r < repeats; ++r) {
    a.push_back(Run(n, p, [](int, int) { return SpawnOne(); }));
    if (only_posix_spawn) continue;
    b.push_back(Run(n, p, [](int, int) { return ForkOne(nullptr); }));
    if (cg->mode() != drover::exec::Cgroups::Mode::kNone) {
      c.push_back(Run(n, p, [&](int w, int i) {
        std::string name = "f" + std::to_string(getpid()) + "-" + std::to_string(w) + "-" +
                           std::to_string(i);
        auto g = cg->Create(name, kJobLimits);
        if (!g.ok()) return false;
        auto procs = cg->ProcsFiles(*g);
        bool ok = ForkOne(&procs);
        (void)drover::exec::Cgroups::Usage(*g);
        for (int k = 0; k < 100 && !drover::exec::Cgroups::Remove(*g); ++k) usleep(100);
        return ok;
      }));
      // A group per worker, made here and reused by all its processes (the
      // workers inherit its open descriptors, at 1024 and above as in the
      // supervisor), removed after the run.
      std::vector<drover::exec::CgroupGroup> groups;
      std::vector<Pooled> pooled(p);
      bool made = true;
      for (int w = 0; w < p && made; ++w) {
        auto g = cg->Create("pool-" + std::to_string(getpid()) + "-" + std::to_string(w),
                            kJobLimits);
        made = g.ok();
        if (!made) break;
        groups.push_back(*g);
        const std::string birth = drover::exec::Cgroups::BirthDir(*g);
        for (const auto& f : cg->ProcsFiles(*g)) {
          int fd = drover::exec::OpenHigh(f, O_WRONLY, 1024);
          made = made && fd >= 0;
          (!birth.empty() && f == birth + "/cgroup.procs" ? pooled[w].v2_procs
                                                          : pooled[w].procs.emplace_back()) = fd;
        }
        if (!birth.empty()) pooled[w].birth_dir = drover::exec::OpenHigh(birth, O_RDONLY | O_DIRECTORY, 1024);
        pooled[w].keep = devnull + 1;
      }
      d.push_back(made ? Run(n, p, [&](int w, int) {
        bool ok = PooledOne(pooled[w]);
        (void)drover::exec::Cgroups::Usage(groups[w]);
        return ok;
      }) : -1);
      for (auto& pw : pooled) {
        for (int fd : pw.procs) close(fd);
        for (int fd : {pw.birth_dir, pw.v2_procs}) {
          if (fd >= 0) close(fd);
        }
      }
      for (const auto& g : groups) {
        for (int k = 0; k < 100 && !drover::exec::Cgroups::Remove(g); ++k) usleep(100);
      }
    }
  }
  Line("spawn_floor_posix_spawn", a, with);
  if (only_posix_spawn) return 0;
  Line("spawn_floor_fork_exec", b, with);
  if (!c.empty()) {
    Line("spawn_floor_cgroup", c, with + "; " + cg->Describe());
    Line("spawn_floor_cgroup_pooled", d,
         with + "; a group per worker: born in its v2 directory, joining the v1 ones");
  } else {
    std::printf("spawn_floor_cgroup: not measured (%s)\n", cg->Describe().c_str());
  }
  return 0;
}
