#include "exec/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace drover::exec {
namespace {

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

bool WriteFile(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  if (!f) return false;
  f << value;
  f.flush();
  return static_cast<bool>(f);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A file's text as one integer, or the value of `key` in its "key value" lines
// (memory.events, memory.oom_control, cpu.stat); -1 when absent.
int64_t IntIn(const std::string& text) {
  return text.empty() ? -1 : std::strtoll(text.c_str(), nullptr, 10);
}

int64_t KeyIn(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  int64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return -1;
}

int64_t ReadInt(const std::string& path) { return IntIn(ReadFile(path)); }
int64_t ReadKey(const std::string& path, const std::string& key) { return KeyIn(ReadFile(path), key); }

bool MakeDir(const std::string& p) { return ::mkdir(p.c_str(), 0755) == 0 || errno == EEXIST; }

constexpr const char* kV1Controllers[] = {"memory", "cpu", "cpuacct", "pids", "freezer"};

}  // namespace

std::unique_ptr<Cgroups> Cgroups::Detect(const std::string& root, const std::string& parent) {
  auto cg = std::unique_ptr<Cgroups>(new Cgroups());
  cg->root_ = root;
  cg->parent_ = parent;
  if (Exists(root + "/cgroup.controllers") && Exists(root + "/cgroup.subtree_control")) {
    // Pure v2: our parent group delegates memory, cpu and pids to the attempts.
    std::string p = root + "/" + parent;
    std::string controllers = ReadFile(root + "/cgroup.controllers");
    bool usable = controllers.find("memory") != std::string::npos && MakeDir(p);
    if (usable) {
      for (const char* c : {"memory", "cpu", "pids"}) {
        WriteFile(root + "/cgroup.subtree_control", std::string("+") + c);
        WriteFile(p + "/cgroup.subtree_control", std::string("+") + c);
      }
      cg->mode_ = Mode::kV2;
      return cg;
    }
    cg->reason_ = "cgroup v2 at " + root + " offers no memory controller or is not writable";
    return cg;
  }
  bool v1 = true;
  for (const char* c : kV1Controllers) {
    v1 = v1 && Exists(root + "/" + c + "/cgroup.procs") && MakeDir(root + "/" + c + "/" + parent);
  }
  if (v1) {
    cg->mode_ = Mode::kHybrid;
    std::string unified = root + "/unified";
    cg->has_unified_ = Exists(unified + "/cgroup.procs") && MakeDir(unified + "/" + parent);
    return cg;
  }
  cg->reason_ = "no writable cgroup hierarchy under " + root;
  return cg;
}

std::string Cgroups::Describe() const {
  switch (mode_) {
    case Mode::kV2:
      return "cgroup v2 at " + root_ + ": memory, CPU weight/quota and pids limits per attempt, "
             "cgroup.kill for the whole tree";
    case Mode::kHybrid:
      return "hybrid cgroups at " + root_ + ": v1 memory/cpu/pids limits per attempt, " +
             (has_unified_ ? "v2 unified cgroup.kill for the whole tree and its CPU time"
                           : "v1 freezer to kill the whole tree");
    case Mode::kNone:
      break;
  }
  return "no cgroups (" + reason_ + "): attempts run with setsid and rlimits; limits are "
         "best effort";
}

Result<CgroupGroup> Cgroups::Create(const std::string& name, const CgroupLimits& l) const {
  CgroupGroup g;
  if (mode_ == Mode::kNone) return g;
  g.name = name;
  auto fail = [&](const std::string& what) -> Status {
    Status s = Status::Server("cannot set up the attempt's cgroup (" + what + "): " +
                              std::strerror(errno));
    Remove(g);
    return s;
  };
  if (mode_ == Mode::kV2) {
    std::string d = root_ + "/" + parent_ + "/" + name;
    if (!MakeDir(d)) return fail("mkdir " + d);
    g.v2 = g.cpu_stat_v2 = true;
    g.dirs.push_back(d);
    g.kill_dir = g.memory_dir = g.cpuacct_dir = d;
  } else {
    for (const char* c : kV1Controllers) {
      // The freezer only serves to kill the tree where cgroup.kill is missing,
      // and cpuacct to count CPU time where the unified hierarchy's cpu.stat
      // is missing: with it there, two directories (and two joins, a fifth of
      // a trivial process's start) less.
      std::string_view cv(c);
      if (has_unified_ && (cv == "freezer" || cv == "cpuacct")) continue;
      std::string d = root_ + "/" + c + "/" + parent_ + "/" + name;
      if (!MakeDir(d)) return fail("mkdir " + d);
      g.dirs.push_back(d);
    }
    g.memory_dir = root_ + "/memory/" + parent_ + "/" + name;
    if (has_unified_) {
      std::string u = root_ + "/unified/" + parent_ + "/" + name;
      if (!MakeDir(u)) return fail("mkdir " + u);
      g.dirs.push_back(u);
      g.kill_dir = g.cpuacct_dir = u;
      g.cpu_stat_v2 = true;
    } else {
      g.cpuacct_dir = root_ + "/cpuacct/" + parent_ + "/" + name;
      g.freezer_dir = root_ + "/freezer/" + parent_ + "/" + name;
    }
  }
  if (Status s = Apply(g, CgroupLimits{}, l); !s.ok()) {
    Remove(g);
    return s;
  }
  return g;
}

Status Cgroups::Apply(const CgroupGroup& g, const CgroupLimits& from,
                      const CgroupLimits& to) const {
  if (mode_ == Mode::kNone || g.dirs.empty()) return Status::Ok();
  auto fail = [&](const std::string& what) {
    return Status::Server("cannot set up the attempt's cgroup (" + what + "): " +
                          std::strerror(errno));
  };
  auto shares = [](const CgroupLimits& l) -> int64_t {
    return l.vcpus > 0 ? std::max<int64_t>(2, static_cast<int64_t>(l.vcpus * 1024)) : 0;
  };
  auto quota = [](const CgroupLimits& l) -> int64_t {
    return l.hard_cpu && l.vcpus > 0 ? static_cast<int64_t>(l.vcpus * 100000) : 0;
  };
  const bool memory = from.memory_bytes != to.memory_bytes;
  const bool cpu = shares(from) != shares(to);
  const bool cpu_max = quota(from) != quota(to);
  const bool pids = from.pids_max != to.pids_max;
  if (mode_ == Mode::kV2) {
    const std::string& d = g.dirs.front();
    if (memory) {
      if (!WriteFile(d + "/memory.max",
                     to.memory_bytes > 0 ? std::to_string(to.memory_bytes) : "max")) {
        return fail("memory.max");
      }
      // Absent without swap accounting: fine.
      WriteFile(d + "/memory.swap.max", to.memory_bytes > 0 ? "0" : "max");
    }
    if (cpu) {
      // cgroup v2's weight from v1 shares, as systemd and runc convert it (100: the default).
      int64_t s = shares(to);
      int64_t weight = s > 0 ? 1 + ((s - 2) * 9999) / 262142 : 100;
      if (!WriteFile(d + "/cpu.weight", std::to_string(weight))) return fail("cpu.weight");
    }
    if (cpu_max) {
      WriteFile(d + "/cpu.max", quota(to) > 0 ? std::to_string(quota(to)) + " 100000" : "max 100000");
    }
    if (pids && !WriteFile(d + "/pids.max", to.pids_max > 0 ? std::to_string(to.pids_max) : "max")) {
      return fail("pids.max");
    }
    return Status::Ok();
  }
  if (memory) {
    // -1: no limit. memsw (memory+swap) may never be below the memory limit:
    // when raising, it goes first.
    std::string v = to.memory_bytes > 0 ? std::to_string(to.memory_bytes) : "-1";
    bool raise = to.memory_bytes == 0 || (from.memory_bytes > 0 && to.memory_bytes > from.memory_bytes);
    if (raise) WriteFile(g.memory_dir + "/memory.memsw.limit_in_bytes", v);
    if (!WriteFile(g.memory_dir + "/memory.limit_in_bytes", v)) return fail("memory.limit_in_bytes");
    if (!raise) WriteFile(g.memory_dir + "/memory.memsw.limit_in_bytes", v);
  }
  std::string cpu_dir = root_ + "/cpu/" + parent_ + "/" + g.name;
  if (cpu && !WriteFile(cpu_dir + "/cpu.shares", std::to_string(shares(to) > 0 ? shares(to) : 1024))) {
    return fail("cpu.shares");
  }
  if (cpu_max) {
    if (quota(to) > 0) WriteFile(cpu_dir + "/cpu.cfs_period_us", "100000");
    WriteFile(cpu_dir + "/cpu.cfs_quota_us", quota(to) > 0 ? std::to_string(quota(to)) : "-1");
  }
  if (pids && !WriteFile(root_ + "/pids/" + parent_ + "/" + g.name + "/pids.max",
                         to.pids_max > 0 ? std::to_string(to.pids_max) : "max")) {
    return fail("pids.max");
  }
  return Status::Ok();
}

std::vector<std::string> Cgroups::ProcsFiles(const CgroupGroup& g) const {
  std::vector<std::string> out;
  for (const auto& d : g.dirs) out.push_back(d + "/cgroup.procs");
  return out;
}

void Cgroups::Kill(const CgroupGroup& g) {
  if (g.dirs.empty()) return;
  if (!g.kill_dir.empty() && WriteFile(g.kill_dir + "/cgroup.kill", "1")) return;
  // No cgroup.kill: freeze, kill every member, thaw (nothing can fork meanwhile).
  bool frozen = !g.freezer_dir.empty() && WriteFile(g.freezer_dir + "/freezer.state", "FROZEN");
  std::istringstream in(ReadFile(g.dirs.front() + "/cgroup.procs"));
  pid_t pid;
  while (in >> pid) ::kill(pid, SIGKILL);
  if (frozen) WriteFile(g.freezer_dir + "/freezer.state", "THAWED");
}

CgroupUsage Cgroups::Usage(const CgroupGroup& g) {
  CgroupUsage u;
  if (g.dirs.empty()) return u;
  if (g.v2) {
    u.peak_memory_bytes = ReadInt(g.memory_dir + "/memory.peak");
    u.oom_kills = ReadKey(g.memory_dir + "/memory.events", "oom_kill");
  } else {
    u.peak_memory_bytes = ReadInt(g.memory_dir + "/memory.max_usage_in_bytes");
    // The v1 oom_kill counter is local to the group: read it before removal.
    u.oom_kills = ReadKey(g.memory_dir + "/memory.oom_control", "oom_kill");
  }
  if (g.cpu_stat_v2) {
    int64_t usec = ReadKey(g.cpuacct_dir + "/cpu.stat", "usage_usec");
    u.cpu_time_ns = usec >= 0 ? usec * 1000 : -1;
  } else {
    u.cpu_time_ns = ReadInt(g.cpuacct_dir + "/cpuacct.usage");
  }
  u.oom_killed = u.oom_kills > 0;
  return u;
}

int OpenHigh(const std::string& path, int flags, int min_fd) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0 || fd >= min_fd) return fd;
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, min_fd);
  if (high < 0) return fd;
  ::close(fd);
  return high;
}

namespace {

std::string PRead(int fd) {
  if (fd < 0) return "";
  char buf[4096];
  ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, n) : std::string();
}

int64_t PReadInt(int fd) { return IntIn(PRead(fd)); }
int64_t PReadKey(int fd, const std::string& key) { return KeyIn(PRead(fd), key); }

}  // namespace

CgroupCounters::CgroupCounters(const CgroupGroup& g, int min_fd)
    : v2_(g.v2), cpu_stat_v2_(g.cpu_stat_v2), empty_(g.dirs.empty()) {
  if (empty_) return;
  auto OpenCounter = [min_fd](const std::string& path, int flags = O_RDONLY) {
    return OpenHigh(path, flags, min_fd);
  };
  if (v2_) {
    peak_ = OpenCounter(g.memory_dir + "/memory.peak", O_RDWR);
    oom_ = OpenCounter(g.memory_dir + "/memory.events");
  } else {
    peak_ = OpenCounter(g.memory_dir + "/memory.max_usage_in_bytes", O_RDWR);
    oom_ = OpenCounter(g.memory_dir + "/memory.oom_control");
  }
  cpu_ = OpenCounter(g.cpuacct_dir + (cpu_stat_v2_ ? "/cpu.stat" : "/cpuacct.usage"));
  procs_ = OpenCounter((g.kill_dir.empty() ? g.dirs.front() : g.kill_dir) + "/cgroup.procs");
}

CgroupCounters::~CgroupCounters() {
  for (int fd : {peak_, cpu_, oom_, procs_}) {
    if (fd >= 0) ::close(fd);
  }
}

CgroupUsage CgroupCounters::Read() const {
  CgroupUsage u;
  if (empty_) return u;
  u.peak_memory_bytes = PReadInt(peak_);
  if (cpu_stat_v2_) {
    int64_t usec = PReadKey(cpu_, "usage_usec");
    u.cpu_time_ns = usec >= 0 ? usec * 1000 : -1;
  } else {
    u.cpu_time_ns = PReadInt(cpu_);
  }
  u.oom_kills = PReadKey(oom_, "oom_kill");
  u.oom_killed = u.oom_kills > 0;
  return u;
}

bool CgroupCounters::Populated() const {
  return !empty_ && PRead(procs_).find_first_not_of(" \n") != std::string::npos;
}

bool CgroupCounters::ResetPeak() {
  if (empty_) return true;
  const char* v = v2_ ? "reset\n" : "0";
  return peak_ >= 0 && ::pwrite(peak_, v, std::strlen(v), 0) == static_cast<ssize_t>(std::strlen(v));
}

bool Cgroups::Populated(const CgroupGroup& g) {
  if (g.dirs.empty()) return false;
  std::string procs = ReadFile((g.kill_dir.empty() ? g.dirs.front() : g.kill_dir) + "/cgroup.procs");
  return procs.find_first_not_of(" \n") != std::string::npos;
}

bool Cgroups::Remove(const CgroupGroup& g) {
  bool all = true;
  for (const auto& d : g.dirs) {
    if (::rmdir(d.c_str()) != 0 && errno != ENOENT) all = false;
  }
  return all;
}

}  // namespace drover::exec
