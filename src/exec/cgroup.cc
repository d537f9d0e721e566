#include "exec/cgroup.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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

int64_t ReadInt(const std::string& path) {
  std::string s = ReadFile(path);
  if (s.empty()) return -1;
  try {
    return std::stoll(s);
  } catch (...) {
    return -1;
  }
}

// "key value" lines (memory.events, memory.oom_control, cpu.stat): the value of `key`.
int64_t ReadKey(const std::string& path, const std::string& key) {
  std::istringstream in(ReadFile(path));
  std::string k;
  int64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return -1;
}

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
             (has_unified_ ? "v2 unified cgroup.kill for the whole tree"
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
  auto fail = [&](const std::string& what) -> Status {
    Remove(g);
    return Status::Server("cannot set up the attempt's cgroup (" + what + "): " +
                          std::strerror(errno));
  };
  int64_t shares = l.vcpus > 0 ? std::max<int64_t>(2, static_cast<int64_t>(l.vcpus * 1024)) : 0;
  if (mode_ == Mode::kV2) {
    std::string d = root_ + "/" + parent_ + "/" + name;
    if (!MakeDir(d)) return fail("mkdir " + d);
    g.v2 = true;
    g.dirs.push_back(d);
    g.kill_dir = g.memory_dir = g.cpuacct_dir = d;
    if (l.memory_bytes > 0) {
      if (!WriteFile(d + "/memory.max", std::to_string(l.memory_bytes))) return fail("memory.max");
      WriteFile(d + "/memory.swap.max", "0");  // absent without swap accounting: fine
    }
    if (shares > 0) {
      // cgroup v2's weight from v1 shares, as systemd and runc convert it.
      int64_t weight = 1 + ((shares - 2) * 9999) / 262142;
      if (!WriteFile(d + "/cpu.weight", std::to_string(weight))) return fail("cpu.weight");
      if (l.hard_cpu) {
        WriteFile(d + "/cpu.max", std::to_string(static_cast<int64_t>(l.vcpus * 100000)) + " 100000");
      }
    }
    if (l.pids_max > 0 && !WriteFile(d + "/pids.max", std::to_string(l.pids_max))) {
      return fail("pids.max");
    }
    return g;
  }
  for (const char* c : kV1Controllers) {
    std::string d = root_ + "/" + c + "/" + parent_ + "/" + name;
    if (!MakeDir(d)) return fail("mkdir " + d);
    g.dirs.push_back(d);
  }
  g.memory_dir = root_ + "/memory/" + parent_ + "/" + name;
  g.cpuacct_dir = root_ + "/cpuacct/" + parent_ + "/" + name;
  g.freezer_dir = root_ + "/freezer/" + parent_ + "/" + name;
  if (has_unified_) {
    std::string u = root_ + "/unified/" + parent_ + "/" + name;
    if (MakeDir(u)) {
      g.dirs.push_back(u);
      g.kill_dir = u;
    }
  }
  if (l.memory_bytes > 0) {
    if (!WriteFile(g.memory_dir + "/memory.limit_in_bytes", std::to_string(l.memory_bytes))) {
      return fail("memory.limit_in_bytes");
    }
    WriteFile(g.memory_dir + "/memory.memsw.limit_in_bytes", std::to_string(l.memory_bytes));
  }
  std::string cpu = root_ + "/cpu/" + parent_ + "/" + name;
  if (shares > 0) {
    if (!WriteFile(cpu + "/cpu.shares", std::to_string(shares))) return fail("cpu.shares");
    if (l.hard_cpu) {
      WriteFile(cpu + "/cpu.cfs_period_us", "100000");
      WriteFile(cpu + "/cpu.cfs_quota_us", std::to_string(static_cast<int64_t>(l.vcpus * 100000)));
    }
  }
  if (l.pids_max > 0 &&
      !WriteFile(root_ + "/pids/" + parent_ + "/" + name + "/pids.max", std::to_string(l.pids_max))) {
    return fail("pids.max");
  }
  return g;
}

CgroupGroup Cgroups::Open(const std::string& name) const {
  CgroupGroup g;
  if (mode_ == Mode::kV2) {
    std::string d = root_ + "/" + parent_ + "/" + name;
    g.v2 = true;
    g.dirs.push_back(d);
    g.kill_dir = g.memory_dir = g.cpuacct_dir = d;
  } else if (mode_ == Mode::kHybrid) {
    for (const char* c : kV1Controllers) g.dirs.push_back(root_ + "/" + c + "/" + parent_ + "/" + name);
    g.memory_dir = root_ + "/memory/" + parent_ + "/" + name;
    g.cpuacct_dir = root_ + "/cpuacct/" + parent_ + "/" + name;
    g.freezer_dir = root_ + "/freezer/" + parent_ + "/" + name;
    if (has_unified_) {
      g.kill_dir = root_ + "/unified/" + parent_ + "/" + name;
      g.dirs.push_back(g.kill_dir);
    }
  }
  return g;
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
    int64_t usec = ReadKey(g.cpuacct_dir + "/cpu.stat", "usage_usec");
    u.cpu_time_ns = usec >= 0 ? usec * 1000 : -1;
    u.oom_killed = ReadKey(g.memory_dir + "/memory.events", "oom_kill") > 0;
  } else {
    u.peak_memory_bytes = ReadInt(g.memory_dir + "/memory.max_usage_in_bytes");
    u.cpu_time_ns = ReadInt(g.cpuacct_dir + "/cpuacct.usage");
    // The v1 oom_kill counter is local to the group: read it before removal.
    u.oom_killed = ReadKey(g.memory_dir + "/memory.oom_control", "oom_kill") > 0;
  }
  return u;
}

bool Cgroups::Empty(const CgroupGroup& g) const {
  for (const auto& d : g.dirs) {
    std::string procs = ReadFile(d + "/cgroup.procs");
    if (procs.find_first_not_of(" \n") != std::string::npos) return false;
  }
  return true;
}

bool Cgroups::Remove(const CgroupGroup& g) {
  bool all = true;
  for (const auto& d : g.dirs) {
    if (::rmdir(d.c_str()) != 0 && errno != ENOENT) all = false;
  }
  return all;
}

}  // namespace drover::exec
